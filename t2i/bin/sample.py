"""Writes a PNG grid of generated images from a run's checkpoint or from an exported SavedModel.

    t2i-sample --log_dir=runs/demo --output=grid.png                  # newest checkpoint of the run
    t2i-sample --log_dir=runs/demo --checkpoint=runs/demo/checkpoints/ckpt-500 --output=grid.png
    t2i-sample --saved_model=saved_models/shapes_dcgan/1 --output=grid.png
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


def sample_to_png(output, num_samples=64, seed=0, log_dir="", checkpoint="", saved_model="", scale=1):
    """Generates `num_samples` images with fixed-seed noise and writes them as one grid; returns the grid."""
    import numpy as np
    import tensorflow as tf

    from t2i.utils import images

    if saved_model:
        if not os.path.isfile(os.path.join(saved_model, "saved_model.pb")):
            raise FileNotFoundError(f"--saved_model: no saved_model.pb in {saved_model!r}")
        serve = tf.saved_model.load(saved_model).signatures["serving_default"]
        noise_dim = serve.structured_input_signature[1]["noise"].shape[-1]
        noise = np.random.default_rng(seed).standard_normal((num_samples, noise_dim)).astype("float32")
        generated = serve(noise=tf.constant(noise))["images_float"].numpy()
    else:
        from t2i.training.run import restore_generator

        generator, _, _ = restore_generator(log_dir, checkpoint or None)
        noise = np.random.default_rng(seed).standard_normal((num_samples, generator.noise_dim)).astype("float32")
        generated = generator(noise, training=False).numpy()
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
        sample_to_png(FLAGS.output, FLAGS.num_samples, FLAGS.seed, FLAGS.log_dir, FLAGS.checkpoint,
                      FLAGS.saved_model, FLAGS.scale)
    except (ConfigError, FileNotFoundError) as error:
        print(f"t2i-sample: error: {error}", file=sys.stderr)
        return 1
    print(f"Wrote {FLAGS.output}")
    return 0


def run():
    app.run(main)


if __name__ == "__main__":
    run()
