"""data_prep/export_shapes.py: both layouts, and the iCLEVR round trip through t2i.data.iclevr."""
import json
import os

import numpy as np
import pytest

from data_prep.export_shapes import export_shapes
from t2i.data import iclevr, shapes
from conftest import run_binary


def test_default_format_writes_images_captions_and_labels_json(tmp_path):
    assert export_shapes(str(tmp_path), num_examples=3, image_size=32, split="test") == 3
    assert sorted(os.listdir(tmp_path / "images")) == [f"test_{i:06d}.png" for i in range(3)]
    example = shapes.render_example(2, image_size=32, split="test")
    assert (tmp_path / "text" / "test_000002.txt").read_text().splitlines() == example["captions"]
    labels = json.loads((tmp_path / "labels.json").read_text())
    assert labels["labels"]["test_000002"] == [int(i) for i in example["label"].nonzero()[0]]


def test_iclevr_format_round_trips_to_the_shapes_labels_and_images(tmp_path):
    export_shapes(str(tmp_path), num_examples=5, image_size=32, seed=2, output_format="iclevr", num_test_conditions=4)
    assert sorted(os.listdir(tmp_path)) == ["images", "objects.json", "test.json", "train.json"]
    assert iclevr.read_objects(tmp_path) == {name: i for i, name in enumerate(shapes.LABEL_NAMES)}

    dataset, num_examples, num_objects = iclevr.iclevr_dataset(tmp_path, image_size=32)
    assert (num_examples, num_objects) == (5, shapes.NUM_LABELS)
    for index, element in enumerate(dataset.as_numpy_iterator()):
        expected = shapes.render_example(index, seed=2, image_size=32)
        assert element["filename"].decode().endswith(f"train_{index:06d}.png")
        np.testing.assert_array_equal(element["label"], expected["label"])
        # Same size in and out: the opaque alpha is dropped and the pixels come back unchanged.
        np.testing.assert_allclose(element["image"], expected["image"] / 127.5 - 1.0, atol=1e-5)

    test_labels = [e["label"] for e in iclevr.iclevr_dataset(tmp_path, 32, split="test").dataset.as_numpy_iterator()]
    expected_test = [shapes.render_example(i, seed=2, image_size=32, split="test")["label"] for i in range(4)]
    np.testing.assert_array_equal(np.stack(test_labels), np.stack(expected_test))


def test_iclevr_format_refuses_a_test_split(tmp_path):
    with pytest.raises(ValueError, match="split='test'"):
        export_shapes(str(tmp_path), 2, 32, split="test", output_format="iclevr")
    with pytest.raises(ValueError, match="output_format='coco'"):
        export_shapes(str(tmp_path), 2, 32, output_format="coco")


@pytest.mark.slow
def test_binary_format_flag(tmp_path):
    out = run_binary("data_prep.export_shapes", f"--output_dir={tmp_path}", "--format=iclevr", "--num_examples=2",
                     "--image_size=32", "--num_test_conditions=3")
    assert out.returncode == 0, out.stderr
    assert "Wrote 2 images" in out.stdout
    assert len(json.loads((tmp_path / "test.json").read_text())) == 3
    assert sorted(json.loads((tmp_path / "train.json").read_text())) == ["train_000000.png", "train_000001.png"]
    bad = run_binary("data_prep.export_shapes", f"--output_dir={tmp_path}", "--format=iclevr", "--split=test")
    assert bad.returncode == 1 and "leave --split at train" in bad.stderr
