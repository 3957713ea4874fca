"""Trains the `shapes` evaluator classifier (for `t2i-eval`) on the embedded dataset and exports it.

    python -m data_prep.train_evaluator --output_dir=runs/evaluator --image_size=32 --steps=500
    python -m data_prep.train_evaluator --output_dir=runs/evaluator --image_size=32 --steps=500 \
        --export_dir=saved_models --export_name=shapes_evaluator

Writes <output_dir>/evaluator.keras and <output_dir>/evaluator.json (image size, label names, accuracy on held-out
test-split images) and, with --export_dir, a SavedModel version under <export_dir>/<export_name>/<version>/ whose
serving_default signature takes uint8 images [B, S, S, 3] and returns probabilities [B, 24] and features [B, d]:

    serve = tf.saved_model.load("saved_models/shapes_evaluator/1").signatures["serving_default"]
    probabilities = serve(images=tf.constant(uint8_images))["probabilities"]

Then: t2i-eval --evaluator=runs/evaluator --log_dir=runs/acgan --all_checkpoints
"""
import sys

from absl import app, flags

FLAGS = flags.FLAGS
flags.DEFINE_string("output_dir", "", "Folder for evaluator.keras and evaluator.json (created).")
flags.DEFINE_integer("image_size", 32, "Image side the evaluator reads (a power of two, 32-256).")
flags.DEFINE_integer("steps", 500, "Training steps.")
flags.DEFINE_integer("batch_size", 64, "Images per step.")
flags.DEFINE_integer("num_examples", 10000, "Train-split shapes images rendered for training.")
flags.DEFINE_integer("num_test", 1000, "Held-out test-split images the reported accuracy is measured on.")
flags.DEFINE_float("learning_rate", 3e-3, "Initial Adam learning rate (cosine-decayed over --steps).")
flags.DEFINE_integer("seed", 0, "Seed of the weights and the batch order.")
flags.DEFINE_integer("dataset_seed", 0, "Seed of the shapes dataset.")
flags.DEFINE_string("export_dir", "", "If set, also export a SavedModel to <export_dir>/<export_name>/<version>.")
flags.DEFINE_string("export_name", "shapes_evaluator", "Model name under --export_dir.")

# The iCLEVR-style accuracy t2i-eval's numbers are trusted at (issue #6).
MIN_ACCURACY = 0.98


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {' '.join(argv[1:])}")
    from t2i.bin import common

    common.quiet_logs()
    if not FLAGS.output_dir:
        print("train_evaluator: error: --output_dir is required", file=sys.stderr)
        return 1
    # Checked before TensorFlow is imported: a bad count is reported in a second.
    for name in ("steps", "batch_size", "num_examples", "num_test"):
        if FLAGS[name].value <= 0:
            print(f"train_evaluator: error: --{name} must be > 0. Received: {name}={FLAGS[name].value}",
                  file=sys.stderr)
            return 1
    from t2i.evaluation.classifier import train_evaluator

    try:
        result = train_evaluator(FLAGS.output_dir, image_size=FLAGS.image_size, num_examples=FLAGS.num_examples,
                                 steps=FLAGS.steps, batch_size=FLAGS.batch_size, seed=FLAGS.seed,
                                 dataset_seed=FLAGS.dataset_seed, learning_rate=FLAGS.learning_rate,
                                 num_test=FLAGS.num_test, export_dir=FLAGS.export_dir, export_name=FLAGS.export_name)
    except ValueError as error:
        print(f"train_evaluator: error: {error}", file=sys.stderr)
        return 1
    if result.accuracy < MIN_ACCURACY:
        print(f"train_evaluator: warning: held-out accuracy {result.accuracy:.4f} is below {MIN_ACCURACY}; "
              "train longer (--steps) before trusting its scores", file=sys.stderr)
    return 0


if __name__ == "__main__":
    app.run(main)
