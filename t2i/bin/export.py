"""Exports a run's generator as a SavedModel in TF Serving's layout, DIR/NAME/<version>/.

    t2i-export --log_dir=runs/demo --export_dir=saved_models --name=shapes_dcgan
    saved_model_cli show --dir saved_models/shapes_dcgan/1 --all

In Python (any process, no t2i needed):

    loaded = tf.saved_model.load("saved_models/shapes_dcgan/1")
    serve = loaded.signatures["serving_default"]
    images = serve(noise=tf.random.normal([4, 100]))["images"]      # uint8 [4, H, W, C]
    # no noise to send: one seed per image (generators with a noise input)
    images = loaded.signatures["seeded"](seed=tf.constant([1, 2, 3, 4], tf.int64))["images"]
    # label-conditioned models also take labels=<float32 [4, num_labels] multi-hot>; srgan takes low_res=<images>
    # text models exported with their encoder take captions:
    images = serve(text=tf.constant(["a red circle and a blue square."]))["images"]
    images = loaded.signatures["seeded"](text=..., seed=tf.constant(7, tf.int64))["images"]   # reproducible noise

The export's assets.extra/t2i.json records the training config, the noise distribution and the label names.

Each export is a new version (1, 2, ...); existing versions are never overwritten.
"""
import json
import sys

from absl import app, flags

from t2i.bin import common

FLAGS = flags.FLAGS
# --log_dir is absl.logging's flag, reused as the run directory.
flags.DEFINE_string("checkpoint", "", "A specific checkpoint prefix (default: the run's newest).")
flags.DEFINE_string("export_dir", "saved_models", "Folder holding exported models.")
flags.DEFINE_string("name", "", "Model name: the export goes to export_dir/name/<next version>.")
flags.DEFINE_bool("print_request", False, "Print a TF Serving REST request body for the export.")
flags.DEFINE_enum("request_signature", "serving_default", ["serving_default", "seeded"],
                  "Signature the --print_request body calls: serving_default (noise sent) or seeded (a seed per "
                  "image instead of noise; text exports: one seed per call).")
flags.DEFINE_enum("input", "auto", ["auto", "text", "embedding"],
                  "Text models: take caption strings (tokenizer + encoder bundled) or embedding vectors; auto = text "
                  "when the run records its encoder.")


def export_run(log_dir, export_dir, name, checkpoint="", input_kind="auto"):
    from t2i.training.run import export_generator, restore_generator

    generator, config, _ = restore_generator(log_dir, checkpoint or None)
    return export_generator(generator, config, export_dir, name, input_kind)


def rest_request(config, batch=1, seed=0, text_input=False, signature="serving_default"):
    """A TF Serving REST `predict` body (columnar "inputs" format) with one valid value per signature input.

    signature="seeded" replaces the noise by seeds: one per image (seed, seed + 1, ...), or one for the call when
    the export takes text.
    """
    from t2i.training import sampling

    if text_input:
        inputs = {"text": sampling.default_captions(config, batch)}
        if signature == "seeded":
            inputs["seed"] = seed
        return json.dumps({"signature_name": signature, "inputs": inputs})
    inputs = sampling.generator_inputs(config, batch, seed)
    if not isinstance(inputs, dict):
        inputs = {"low_res" if config.model == "srgan" else "noise": inputs}
    body = {name: value.round(4).tolist() for name, value in inputs.items()}
    if signature == "seeded":
        if "noise" not in body:
            raise ValueError(f"--request_signature=seeded: --model={config.model} takes no noise, so its export has "
                             "no seeded signature")
        del body["noise"]
        body["seed"] = list(range(seed, seed + batch))
    return json.dumps({"signature_name": signature, "inputs": body})


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {' '.join(argv[1:])}")
    common.quiet_logs()
    if not FLAGS.log_dir:
        print("t2i-export: error: --log_dir is required (the run to export)", file=sys.stderr)
        return 1
    if not FLAGS.name:
        print("t2i-export: error: --name is required (export goes to export_dir/name/<version>)", file=sys.stderr)
        return 1
    from t2i import configs

    try:
        path = export_run(FLAGS.log_dir, FLAGS.export_dir, FLAGS.name, FLAGS.checkpoint, FLAGS.input)
    except (configs.ConfigError, ValueError, FileNotFoundError) as error:
        print(f"t2i-export: error: {error}", file=sys.stderr)
        return 1
    print(f"Exported to {path}")
    if FLAGS.print_request:
        from t2i.export.saved_model import read_metadata

        try:
            print(rest_request(configs.load(FLAGS.log_dir), text_input=bool(read_metadata(path).get("text_input")),
                               signature=FLAGS.request_signature))
        except ValueError as error:
            print(f"t2i-export: error: {error}", file=sys.stderr)
            return 1
    return 0


def run():
    app.run(main)


if __name__ == "__main__":
    run()
