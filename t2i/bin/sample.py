"""Writes a PNG grid of generated images from a run's checkpoint or from an exported SavedModel.

    t2i-sample --log_dir=runs/demo --output=grid.png                  # newest checkpoint of the run
    t2i-sample --log_dir=runs/demo --checkpoint=runs/demo/checkpoints/ckpt-500 --output=grid.png
    t2i-sample --saved_model=saved_models/shapes_dcgan/1 --output=grid.png
    t2i-sample --log_dir=runs/acgan --labels="red circle" --labels="blue square,green triangle" --output=grid.png
    t2i-sample --log_dir=runs/shapes_text --text "a red circle and a blue square." --output=grid.png
    t2i-sample --saved_model=saved_models/shapes_stackgan/1 --text_file=captions.txt --output=grids/grid.png

Label-conditioned models draw one condition per grid row: the given --labels (cycled), or held-out conditions of the
training dataset. Super-resolution models upscale held-out images of their dataset. Text-to-image models write one
grid per --text caption (grid.png for one caption; grid_00.png, grid_01.png, ... and grid_captions.txt for several),
running the run's tokenizer + encoder + generator; without --text, one held-out caption per grid row.
"""
import os
import sys

from absl import app, flags

from t2i.bin import common

FLAGS = flags.FLAGS
# --log_dir is absl.logging's flag, reused as the run directory.
flags.DEFINE_string("checkpoint", "", "A specific checkpoint prefix (default: the run's newest).")
flags.DEFINE_string("saved_model", "", "Sample from an exported SavedModel version directory instead of a run.")
flags.DEFINE_string("output", "samples.png", "PNG file to write.")
flags.DEFINE_integer("num_samples", 64, "Images in the grid.")
flags.DEFINE_integer("seed", 0, "Noise seed: the same seed gives the same grid.")
flags.DEFINE_integer("scale", 1, "Nearest-neighbour magnification of each image in the grid.")
flags.DEFINE_multi_string("labels", [], "Conditions for label-conditioned models, one grid row each: label names "
                          "or indices separated by commas, e.g. --labels='red circle,blue square'.")
flags.DEFINE_multi_string("text", [], "Text-to-image models: a caption; one grid per caption (repeat the flag).")
flags.DEFINE_string("text_file", "", "Text-to-image models: a file of captions, one per line; one grid each.")


def _inputs_for(config, num_samples, seed, labels, label_names=None):
    from t2i.training import sampling

    rows = None
    if labels:
        if not config.uses_labels:
            raise ValueError(f"--labels: --model={config.model} is not label-conditioned")
        if label_names is None:
            from t2i.data import datasets

            label_names = datasets.label_names(config)
        rows = sampling.conditions_for_grid(sampling.parse_conditions(labels, label_names), num_samples)
    return sampling.generator_inputs(config, num_samples, seed, labels=rows)


def caption_outputs(output, num_captions):
    """The PNG path of each caption's grid: `output` itself for one caption, numbered siblings for several."""
    if num_captions == 1:
        return [output]
    stem, ext = os.path.splitext(output)
    return [f"{stem}_{i:02d}{ext or '.png'}" for i in range(num_captions)]


def text_to_png(output, captions, num_samples=64, seed=0, log_dir="", checkpoint="", saved_model="", scale=1):
    """One grid of `num_samples` images per caption (same noise for every caption); returns the PNG paths."""
    import numpy as np
    import tensorflow as tf

    from t2i import configs
    from t2i.export.serving import image_output
    from t2i.training import sampling
    from t2i.utils import files, images

    if saved_model:
        from t2i.export.saved_model import read_metadata

        if not os.path.isfile(os.path.join(saved_model, "saved_model.pb")):
            raise FileNotFoundError(f"--saved_model: no saved_model.pb in {saved_model!r}")
        metadata = read_metadata(saved_model)
        config = configs.TrainConfig.from_dict(metadata.get("config", {}))
        loaded = tf.saved_model.load(saved_model)
        if metadata.get("text_input"):
            serve = loaded.signatures["seeded"]

            def generate(caption):
                return serve(text=tf.constant([caption] * num_samples), seed=tf.constant(seed, tf.int64))

        else:
            serve = loaded.signatures["serving_default"]
            noise = sampling.fixed_noise(config, num_samples, seed)

            def generate(caption):
                embedding = np.repeat(sampling.embed_captions(config, [caption]), num_samples, axis=0)
                return serve(noise=tf.constant(noise), embedding=tf.constant(embedding))

        grids = [generate(caption)["images_float"].numpy() for caption in captions]
    else:
        from t2i.training.run import restore_generator

        generator, config, _ = restore_generator(log_dir, checkpoint or None)
        if not config.uses_text:
            raise ValueError(f"--text: --model={config.model} is not text-conditioned")
        noise = sampling.fixed_noise(config, num_samples, seed)
        vectors = sampling.embed_captions(config, captions)
        grids = [
            image_output(generator, generator({"noise": noise, "embedding": np.repeat(vector[None], num_samples, 0)},
                                              training=False)).numpy()
            for vector in vectors
        ]
    paths = caption_outputs(output, len(captions))
    for path, grid in zip(paths, grids):
        images.save_grid(path, grid, scale=scale)
    if len(captions) > 1:
        files.atomic_write_text(os.path.splitext(output)[0] + "_captions.txt",
                                "".join(f"{os.path.basename(p)}\t{c}\n" for p, c in zip(paths, captions)))
    return paths


def sample_to_png(output, num_samples=64, seed=0, log_dir="", checkpoint="", saved_model="", scale=1, labels=()):
    """Generates `num_samples` images from fixed-seed inputs and writes them as one grid; returns the grid."""
    import tensorflow as tf

    from t2i import configs
    from t2i.export.serving import image_output
    from t2i.utils import images

    if saved_model:
        from t2i.export.saved_model import read_metadata

        if not os.path.isfile(os.path.join(saved_model, "saved_model.pb")):
            raise FileNotFoundError(f"--saved_model: no saved_model.pb in {saved_model!r}")
        metadata = read_metadata(saved_model)
        if "config" not in metadata:
            raise FileNotFoundError(f"--saved_model: {saved_model!r} has no assets.extra/t2i.json (not a t2i export)")
        config = configs.TrainConfig.from_dict(metadata["config"])
        if metadata.get("text_input"):
            # Captions in: the held-out caption of each grid row, the same noise seed as a run's grid.
            from t2i.training import sampling

            rows = -(-num_samples // sampling.grid_columns(num_samples))
            texts = [c for c in sampling.default_captions(config, rows)
                     for _ in range(sampling.grid_columns(num_samples))][:num_samples]
            serve = tf.saved_model.load(saved_model).signatures["seeded"]
            generated = serve(text=tf.constant(texts), seed=tf.constant(seed, tf.int64))["images_float"].numpy()
            return images.save_grid(output, generated, scale=scale)
        inputs = _inputs_for(config, num_samples, seed, labels, metadata.get("label_names"))
        serve = tf.saved_model.load(saved_model).signatures["serving_default"]
        named = inputs if isinstance(inputs, dict) else {metadata["inputs"][0]: inputs}
        generated = serve(**{name: tf.constant(value) for name, value in named.items()})["images_float"].numpy()
    else:
        from t2i.training.run import restore_generator

        generator, config, _ = restore_generator(log_dir, checkpoint or None)
        generated = image_output(generator, generator(_inputs_for(config, num_samples, seed, labels),
                                                      training=False)).numpy()
    return images.save_grid(output, generated, scale=scale)


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {' '.join(argv[1:])}")
    common.quiet_logs()
    if bool(FLAGS.log_dir) == bool(FLAGS.saved_model):
        print("t2i-sample: error: give exactly one of --log_dir or --saved_model", file=sys.stderr)
        return 1
    for name in ("num_samples", "scale"):
        if FLAGS[name].value <= 0:
            print(f"t2i-sample: error: --{name} must be > 0. Received: {name}={FLAGS[name].value}", file=sys.stderr)
            return 1
    from t2i.configs import ConfigError

    try:
        captions = list(FLAGS.text)
        if FLAGS.text_file:
            from t2i.training.sampling import read_caption_file

            if not os.path.isfile(FLAGS.text_file):
                raise FileNotFoundError(f"--text_file: no such file {FLAGS.text_file!r}")
            captions += read_caption_file(FLAGS.text_file)
        if captions:
            paths = text_to_png(FLAGS.output, captions, FLAGS.num_samples, FLAGS.seed, FLAGS.log_dir,
                                FLAGS.checkpoint, FLAGS.saved_model, FLAGS.scale)
            for path, caption in zip(paths, captions):
                print(f"Wrote {path}: {caption}")
            return 0
        sample_to_png(FLAGS.output, FLAGS.num_samples, FLAGS.seed, FLAGS.log_dir, FLAGS.checkpoint,
                      FLAGS.saved_model, FLAGS.scale, FLAGS.labels)
    except (ConfigError, FileNotFoundError, ValueError) as error:
        print(f"t2i-sample: error: {error}", file=sys.stderr)
        return 1
    print(f"Wrote {FLAGS.output}")
    return 0


def run():
    app.run(main)


if __name__ == "__main__":
    run()
