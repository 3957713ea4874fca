"""Encodes every caption of a corpus once and stores the vectors in HDF5 (format: `t2i.data.embeddings`).

    python -m data_prep.embed_captions --dataset=shapes --num_examples=1000 \
        --encoder=seq2seq --encoder_path=encoders/seq2seq --output=data/shapes_seq2seq.h5
    python -m data_prep.embed_captions --dataset=cub --data_dir=data/CUB_200_2011 --text_dir=data/cub_text_c10 \
        --split=test --encoder=skip_thought --encoder_path=data/skip_thoughts --output=data/cub_test_st.h5

Rows are written to `<output>.partial` and renamed when complete: re-running the same command after an interruption
resumes where it stopped (--noresume starts over); --overwrite replaces an existing `<output>`.

Converting files from earlier projects instead of encoding:

    python -m data_prep.embed_captions --import_format=paarthneekhara --import_path=Data/flower_tv.hdf5 \
        --output=data/oxford_skipthought.h5 [--dataset=oxford --data_dir=data/oxford102 to add captions and classes]
    python -m data_prep.embed_captions --import_format=stackgan --import_path=Data/birds --split=train \
        --output=data/cub_train_char_cnn_rnn.h5
"""
import sys

from absl import app, flags

FLAGS = flags.FLAGS
flags.DEFINE_string("output", "", "The .h5 file to write.")
flags.DEFINE_string("dataset", "",
                    "Caption corpus: shapes, cub or oxford (optional with --import_format: adds captions, classes).")
flags.DEFINE_string("data_dir", "", "The dataset's root folder (cub, oxford).")
flags.DEFINE_string("text_dir", "", "Reed's text_c10 folder; default <data_dir>/text_c10.")
flags.DEFINE_string("split", "train", "Split to embed or import.")
flags.DEFINE_integer("num_examples", 10000, "shapes: images in the corpus.")
flags.DEFINE_integer("seed", 0, "shapes: dataset seed.")
flags.DEFINE_enum("on_error", "fail", ["fail", "skip"],
                  "cub / oxford: a record with bad caption files fails the run or is skipped.")
flags.DEFINE_enum("encoder", None, ["seq2seq", "skip_thought", "hub"], "Sentence encoder kind.")
flags.DEFINE_string("encoder_path", "", "The encoder's files (a directory or SavedModel); nothing is downloaded.")
flags.DEFINE_integer("batch_size", 256, "Images per encoder call (their captions are encoded together).")
flags.DEFINE_bool("overwrite", False, "Replace an existing --output.")
flags.DEFINE_bool("resume", True, "Continue an unfinished <output>.partial of the same corpus and encoder.")
flags.DEFINE_bool("progress", True, "Show a progress bar.")
flags.DEFINE_enum("import_format", None, ["paarthneekhara", "stackgan"],
                  "Convert --import_path instead of encoding: a paarthneekhara/text-to-image .hdf5 file or a StackGAN "
                  "data folder (<dir>/<split>/char-CNN-RNN-embeddings.pickle ...).")
flags.DEFINE_string("import_path", "", "The file or folder to import.")


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {' '.join(argv[1:])}")
    from t2i.bin import common

    common.quiet_logs()
    if not FLAGS.output:
        print("embed_captions: error: --output is required", file=sys.stderr)
        return 1
    from t2i.data import embeddings

    try:
        if FLAGS.import_format:
            path = embeddings.import_embeddings(
                FLAGS.import_format, FLAGS.import_path, FLAGS.output, split=FLAGS.split, overwrite=FLAGS.overwrite,
                dataset=FLAGS.dataset, data_dir=FLAGS.data_dir, text_dir=FLAGS.text_dir, on_error=FLAGS.on_error)
        else:
            if not FLAGS.dataset or not FLAGS.encoder:
                print("embed_captions: error: --dataset and --encoder are required (or --import_format). "
                      f"Received: dataset={FLAGS.dataset!r}, encoder={FLAGS.encoder!r}", file=sys.stderr)
                return 1
            path = embeddings.embed_corpus(
                FLAGS.output, FLAGS.dataset, FLAGS.encoder, FLAGS.encoder_path, data_dir=FLAGS.data_dir,
                text_dir=FLAGS.text_dir, split=FLAGS.split, num_examples=FLAGS.num_examples, seed=FLAGS.seed,
                on_error=FLAGS.on_error, batch_size=FLAGS.batch_size, overwrite=FLAGS.overwrite,
                resume=FLAGS.resume, progress=FLAGS.progress)
    except (ValueError, OSError) as error:
        # FileNotFoundError, the encoders' and corpora's errors and EmbeddingFileError all name their file or flag.
        print(f"embed_captions: error: {error}", file=sys.stderr)
        return 1
    with embeddings.read_embeddings(path) as handle:
        print(f"Wrote {len(handle)} images x {handle.captions_per_image} captions x {handle.dim} "
              f"({handle.encoder}) to {path}")
    return 0


if __name__ == "__main__":
    app.run(main)
