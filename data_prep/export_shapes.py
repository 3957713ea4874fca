"""Writes the embedded `shapes` dataset to disk: PNG images, caption files and a labels file.

    python -m data_prep.export_shapes --output_dir=data/shapes64 --num_examples=1000 --image_size=64

Layout (Reed-style captions, one file per image, so the text tools and the image-folder pipeline read it as is):

    <output_dir>/images/<split>_<index>.png
    <output_dir>/text/<split>_<index>.txt        10 captions, one per line
    <output_dir>/labels.json                     {"label_names": [...], "labels": {"<split>_<index>": [ids]}}
"""
import json
import os
import sys

from absl import app, flags

FLAGS = flags.FLAGS
flags.DEFINE_string("output_dir", "", "Folder to write into (created).")
flags.DEFINE_integer("num_examples", 1000, "Images to write.")
flags.DEFINE_integer("image_size", 64, "Image side, 32-256.")
flags.DEFINE_integer("seed", 0, "Dataset seed.")
flags.DEFINE_string("split", "train", "train or test.")


def export_shapes(output_dir, num_examples, image_size=64, seed=0, split="train"):
    """Renders examples 0..num_examples-1 and writes them; returns the number written."""
    from t2i.data import shapes
    from t2i.utils import files
    from t2i.utils.images import write_png

    os.makedirs(os.path.join(output_dir, "images"), exist_ok=True)
    os.makedirs(os.path.join(output_dir, "text"), exist_ok=True)
    labels = {}
    for index in range(num_examples):
        example = shapes.render_example(index, seed=seed, image_size=image_size, split=split)
        stem = f"{split}_{index:06d}"
        write_png(os.path.join(output_dir, "images", stem + ".png"), example["image"])
        files.atomic_write_text(os.path.join(output_dir, "text", stem + ".txt"), "\n".join(example["captions"]) + "\n")
        labels[stem] = [int(i) for i in example["label"].nonzero()[0]]
    files.atomic_write_text(
        os.path.join(output_dir, "labels.json"),
        json.dumps({"label_names": list(shapes.LABEL_NAMES), "labels": labels}, indent=1),
    )
    return num_examples


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {' '.join(argv[1:])}")
    if not FLAGS.output_dir:
        print("export_shapes: error: --output_dir is required", file=sys.stderr)
        return 1
    if FLAGS.num_examples <= 0:
        print(f"export_shapes: error: --num_examples must be > 0. Received: num_examples={FLAGS.num_examples}",
              file=sys.stderr)
        return 1
    try:
        count = export_shapes(FLAGS.output_dir, FLAGS.num_examples, FLAGS.image_size, FLAGS.seed, FLAGS.split)
    except ValueError as error:
        print(f"export_shapes: error: {error}", file=sys.stderr)
        return 1
    print(f"Wrote {count} images with captions to {FLAGS.output_dir}")
    return 0


if __name__ == "__main__":
    app.run(main)
