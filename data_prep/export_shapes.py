"""Writes the embedded `shapes` dataset to disk, in a Reed-style caption layout or in the iCLEVR layout.

    python -m data_prep.export_shapes --output_dir=data/shapes64 --num_examples=1000 --image_size=64
    python -m data_prep.export_shapes --output_dir=data/shapes_iclevr --format=iclevr --num_examples=1000

--format=reed (default): one caption file per image, so the text tools and the image-folder pipeline read it as is:

    <output_dir>/images/<split>_<index>.png
    <output_dir>/text/<split>_<index>.txt        10 captions, one per line
    <output_dir>/labels.json                     {"label_names": [...], "labels": {"<split>_<index>": [ids]}}

--format=iclevr: the layout `t2i.data.iclevr` (and `t2i-train --dataset=iclevr`) reads; train.json lists the train
split, test.json holds the object sets of the first --num_test_conditions test-split examples:

    <output_dir>/images/train_<index>.png        RGBA with opaque alpha, like the released iCLEVR renders
    <output_dir>/objects.json                    {"red circle": 0, ...}   shapes.LABEL_NAMES -> label index
    <output_dir>/train.json                      {"train_<index>.png": ["red circle", ...], ...}
    <output_dir>/test.json                       [["blue square", "white triangle"], ...]
"""
import json
import os
import sys

import numpy as np
from absl import app, flags

FORMATS = ("reed", "iclevr")

FLAGS = flags.FLAGS
flags.DEFINE_string("output_dir", "", "Folder to write into (created).")
flags.DEFINE_integer("num_examples", 1000, "Images to write.")
flags.DEFINE_integer("image_size", 64, "Image side, 32-256.")
flags.DEFINE_integer("seed", 0, "Dataset seed.")
flags.DEFINE_string("split", "train", "train or test (--format=reed only; iclevr always writes train images).")
flags.DEFINE_enum("format", "reed", FORMATS, "reed: images + caption files + labels.json; iclevr: the iCLEVR layout.")
flags.DEFINE_integer("num_test_conditions", 32, "--format=iclevr: test.json entries (the released set has 32).")


def _export_reed(output_dir, num_examples, image_size, seed, split):
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


def _object_names(example):
    from t2i.data import shapes

    return [shapes.LABEL_NAMES[obj["label"]] for obj in example["objects"]]


def _export_iclevr(output_dir, num_examples, image_size, seed, num_test_conditions):
    from t2i.data import iclevr, shapes
    from t2i.utils import files
    from t2i.utils.images import write_png

    train = {}
    for index in range(num_examples):
        example = shapes.render_example(index, seed=seed, image_size=image_size, split="train")
        name = f"train_{index:06d}.png"
        opaque = np.full(example["image"].shape[:2] + (1,), 255, np.uint8)
        write_png(os.path.join(output_dir, iclevr.IMAGE_DIRS[0], name), np.concatenate([example["image"], opaque], -1))
        train[name] = _object_names(example)
    # Labels do not depend on the raster size, so the test conditions are drawn at the cheapest one.
    test = [
        _object_names(shapes.render_example(index, seed=seed, image_size=shapes.MIN_IMAGE_SIZE, split="test"))
        for index in range(num_test_conditions)
    ]
    objects = {name: index for index, name in enumerate(shapes.LABEL_NAMES)}
    # train.json last: a reader never finds one that lists images or objects not yet written.
    files.atomic_write_text(os.path.join(output_dir, iclevr.OBJECTS_FILE), json.dumps(objects, indent=1))
    files.atomic_write_text(os.path.join(output_dir, iclevr.TEST_FILE), json.dumps(test))
    files.atomic_write_text(os.path.join(output_dir, iclevr.TRAIN_FILE), json.dumps(train, indent=1))


def export_shapes(output_dir, num_examples, image_size=64, seed=0, split="train", output_format="reed",
                  num_test_conditions=32):
    """Renders examples 0..num_examples-1 and writes them in `output_format`; returns the number of images written.

    With output_format="iclevr" the images are always the train split (train.json) and test.json holds the object
    sets of test-split examples 0..num_test_conditions-1, so `split` must stay "train".
    """
    if output_format not in FORMATS:
        raise ValueError(f"output_format must be one of {FORMATS}. Received: output_format={output_format!r}")
    if output_format == "iclevr":
        if split != "train":
            raise ValueError(
                "--format=iclevr writes train-split images to train.json and test-split conditions to test.json; "
                f"leave --split at train. Received: split={split!r}"
            )
        if num_test_conditions <= 0:
            raise ValueError(f"num_test_conditions must be > 0. Received: num_test_conditions={num_test_conditions}")
        _export_iclevr(output_dir, num_examples, image_size, seed, num_test_conditions)
    else:
        _export_reed(output_dir, num_examples, image_size, seed, split)
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
        count = export_shapes(FLAGS.output_dir, FLAGS.num_examples, FLAGS.image_size, FLAGS.seed, FLAGS.split,
                              FLAGS.format, FLAGS.num_test_conditions)
    except ValueError as error:
        print(f"export_shapes: error: {error}", file=sys.stderr)
        return 1
    if FLAGS.format == "iclevr":
        print(f"Wrote {count} images, train.json, test.json ({FLAGS.num_test_conditions} conditions) and "
              f"objects.json to {FLAGS.output_dir}")
    else:
        print(f"Wrote {count} images with captions to {FLAGS.output_dir}")
    return 0


if __name__ == "__main__":
    app.run(main)
