"""Trains the seq2seq sentence autoencoder on a caption corpus and writes an encoder directory.

    python -m data_prep.train_seq2seq --dataset=shapes --steps=2000 --output_dir=runs/seq2seq_shapes
    python -m data_prep.train_seq2seq --dataset=cub --data_dir=data/CUB_200_2011 --text_dir=data/cub/text_c10 \
        --steps=20000 --output_dir=runs/seq2seq_cub

Every caption of every image of --split is a training sentence. Re-running with the same --output_dir resumes from its
newest checkpoint (and keeps its vocabulary); --steps is the total to reach. The directory is then an
--encoder_path for `--encoder=seq2seq` (see t2i.text.seq2seq for its files).

--joint_weight=W also matches every caption's vector with its image (a small CNN, contrastive over the batch), so the
vector carries what the image shows, as the text encoders of text-to-image GANs are trained:

    python -m data_prep.train_seq2seq --dataset=shapes --steps=1500 --joint_weight=1 --output_dir=runs/joint_shapes
"""
import sys

from absl import app, flags

from t2i.bin import common

FLAGS = flags.FLAGS
flags.DEFINE_string("dataset", "shapes", "shapes (embedded), cub or oxford (Reed's text_c10 captions).")
flags.DEFINE_string("data_dir", "", "cub / oxford: the dataset's root folder.")
flags.DEFINE_string("text_dir", "", "cub / oxford: Reed's text_c10 folder (default <data_dir>/text_c10).")
flags.DEFINE_string("split", "train", "Which split's captions to train on.")
flags.DEFINE_integer("num_examples", 10000, "shapes: images (10 captions each).")
flags.DEFINE_integer("dataset_seed", 0, "shapes: the dataset's seed.")
flags.DEFINE_enum("on_error", "fail", ["fail", "skip"], "cub / oxford: stop at, or skip, an image with bad captions.")
flags.DEFINE_string("output_dir", "", "Encoder directory to write (checkpoints, vocabulary, model, config).")
flags.DEFINE_integer("steps", 10000, "Total training steps (batches).")
flags.DEFINE_integer("batch_size", 64, "Sentences per batch.")
flags.DEFINE_integer("max_length", 32, "Tokens kept per sentence (longer ones are truncated).")
flags.DEFINE_integer("embedding_dim", 128, "Word embedding size (the bag-of-words part of the vector).")
flags.DEFINE_integer("units", 256, "LSTM units (the state part of the vector).")
flags.DEFINE_integer("min_count", 1, "Keep words seen at least this often; rarer ones become <unk>.")
flags.DEFINE_integer("max_vocab", 0, "Cap on vocabulary entries, reserved tokens included; 0 = no cap.")
flags.DEFINE_enum("vector", "both", ["state", "bow", "both"],
                  "Sentence vector: encoder final state, mean word embedding, or both concatenated.")
flags.DEFINE_float("lr", 1e-3, "Adam learning rate.")
flags.DEFINE_float("joint_weight", 0.0,
                   "Weight of the joint objective: match each caption's vector with its image (contrastive, as "
                   "text encoders for text-to-image are trained); 0 = reconstruction only.")
flags.DEFINE_integer("joint_image_size", 32, "Image side the joint objective reads its images at.")
flags.DEFINE_integer("joint_dim", 128, "Size of the joint text-image embedding space.")
flags.DEFINE_integer("checkpoint_every", 500, "Steps between checkpoints.")
flags.DEFINE_integer("seed", 0, "Seed for weights and batch order.")


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {' '.join(argv[1:])}")
    common.quiet_logs()
    if not FLAGS.output_dir:
        print("train_seq2seq: error: --output_dir is required", file=sys.stderr)
        return 1
    if FLAGS.max_vocab < 0:
        print(f"train_seq2seq: error: --max_vocab must be >= 0 (0 = no cap). Received: max_vocab={FLAGS.max_vocab}",
              file=sys.stderr)
        return 1
    from t2i.data import captions
    from t2i.text import seq2seq
    from t2i.training.callbacks import NonFiniteLossError

    try:
        corpus = captions.load_corpus(FLAGS.dataset, data_dir=FLAGS.data_dir, text_dir=FLAGS.text_dir,
                                      split=FLAGS.split, num_examples=FLAGS.num_examples, seed=FLAGS.dataset_seed,
                                      on_error=FLAGS.on_error)
        result = seq2seq.train_seq2seq(
            corpus, FLAGS.output_dir, FLAGS.steps, batch_size=FLAGS.batch_size, max_length=FLAGS.max_length,
            embedding_dim=FLAGS.embedding_dim, units=FLAGS.units, min_count=FLAGS.min_count,
            max_vocab=FLAGS.max_vocab or None, lr=FLAGS.lr, checkpoint_every=FLAGS.checkpoint_every,
            seed=FLAGS.seed, vector=FLAGS.vector, joint_weight=FLAGS.joint_weight,
            joint_image_size=FLAGS.joint_image_size, joint_dim=FLAGS.joint_dim,
        )
    except (ValueError, OSError, NonFiniteLossError) as error:
        # Bad flags and bad files are the user's to fix: one line, no traceback, unless --verbosity asks for it.
        if FLAGS.verbosity > 0:
            raise
        print(f"train_seq2seq: error: {error}", file=sys.stderr)
        return 1
    print(f"Wrote the seq2seq encoder (step {result.step}) to {result.output_dir}; use it with "
          f"--encoder=seq2seq --encoder_path={result.output_dir}", flush=True)
    return 0


if __name__ == "__main__":
    app.run(main)
