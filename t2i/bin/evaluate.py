"""Scores `shapes` generators with the evaluator classifier: iCLEVR accuracy, caption accuracy and evaluator FID.

    t2i-eval --evaluator=runs/evaluator --log_dir=runs/acgan                         # the run's newest checkpoint
    t2i-eval --evaluator=runs/evaluator --log_dir=runs/acgan --checkpoint=runs/acgan/checkpoints/ckpt-500
    t2i-eval --evaluator=runs/evaluator --log_dir=runs/acgan --all_checkpoints       # score vs step, best one
    t2i-eval --evaluator=saved_models/shapes_evaluator --saved_model=saved_models/shapes_acgan/1 --output_dir=eval

The evaluator comes from `python -m data_prep.train_evaluator` (its output dir, its evaluator.keras, or its
SavedModel export). Each evaluation generates --num_images images from fixed seeds — label-conditioned models the
labels of held-out shapes images, text models held-out captions — and appends one JSON line to
<log_dir or --output_dir>/metrics.jsonl, e.g.

    {"step": 500, "checkpoint": ".../ckpt-500", "accuracy1k": 0.93, "fid1k": 4.1, "num_images": 1000, ...}

Metric names carry the sample count (1000 → "1k"). Also written: top_samples.png / bottom_samples.png (the images
the evaluator scores best / worst for what was asked, listed in samples_sheets.txt) and, with --all_checkpoints,
score_curve.png and best_checkpoint.json (highest accuracy; lowest FID for unconditional models).
"""
import os
import sys

from absl import app, flags

from t2i.bin import common

FLAGS = flags.FLAGS
# --log_dir is absl.logging's flag, reused as the run directory.
flags.DEFINE_string("evaluator", "", "The shapes evaluator: a data_prep.train_evaluator output dir, its "
                    "evaluator.keras, or its SavedModel (version or model dir).")
flags.DEFINE_string("checkpoint", "", "A specific checkpoint prefix of --log_dir (default: the newest).")
flags.DEFINE_bool("all_checkpoints", False, "Evaluate every checkpoint --log_dir kept: curve and best checkpoint.")
flags.DEFINE_string("saved_model", "", "Evaluate a t2i-export SavedModel version directory instead of a run.")
flags.DEFINE_string("output_dir", "", "Where metrics.jsonl, sheets and curve go (default: --log_dir).")
flags.DEFINE_integer("num_images", 1000, "Images generated per evaluation (the count in the metric names).")
flags.DEFINE_integer("seed", 0, "Noise seed; conditions and captions are always the first held-out examples.")
flags.DEFINE_integer("batch_size", 100, "Images per generator / evaluator call.")
flags.DEFINE_integer("sheet_size", 16, "Images in each of the top / bottom sample sheets (0: none).")
flags.DEFINE_string("reference_cache_dir", "",
                    "Cache of real-image statistics (default: <output dir>/reference_stats).")


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {' '.join(argv[1:])}")
    common.quiet_logs()
    # Checked before TensorFlow is imported: a wrong path is reported in a second.
    if not FLAGS.evaluator:
        print("t2i-eval: error: --evaluator is required: a shapes evaluator trained with "
              "`python -m data_prep.train_evaluator`. Received: evaluator=''", file=sys.stderr)
        return 1
    if not os.path.exists(FLAGS.evaluator):
        print(f"t2i-eval: error: --evaluator: {FLAGS.evaluator} not found (train one with "
              f"`python -m data_prep.train_evaluator`). Received: evaluator={FLAGS.evaluator!r}", file=sys.stderr)
        return 1
    from t2i import configs
    from t2i.evaluation.evaluate import run_evaluation

    try:
        report = run_evaluation(FLAGS.evaluator, log_dir=FLAGS.log_dir, checkpoint=FLAGS.checkpoint,
                                saved_model=FLAGS.saved_model, all_checkpoints=FLAGS.all_checkpoints,
                                output_dir=FLAGS.output_dir, num_images=FLAGS.num_images, seed=FLAGS.seed,
                                batch_size=FLAGS.batch_size, sheet_size=FLAGS.sheet_size,
                                reference_cache_dir=FLAGS.reference_cache_dir)
    except (configs.ConfigError, FileNotFoundError, ValueError) as error:
        if FLAGS.verbosity > 0:
            raise
        print(f"t2i-eval: error: {error}", file=sys.stderr)
        return 1
    written = [report.metrics_path, *report.sheet_paths, report.curve_path, report.best_path]
    print("Wrote " + ", ".join(path for path in written if path))
    return 0


def run():
    app.run(main)


if __name__ == "__main__":
    run()
