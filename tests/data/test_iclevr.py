"""Tests for t2i.data.iclevr on a tiny tree in the released layout (32x24 RGBA PNGs, 4 objects)."""
import json
import logging
import os

import numpy as np
import pytest
import tensorflow as tf

from t2i.data import folder, iclevr

OBJECTS = {"gray cube": 0, "red cube": 1, "blue sphere": 2, "green cylinder": 3}
TRAIN = {
    "CLEVR_train_002.png": ["green cylinder", "red cube", "gray cube"],
    "CLEVR_train_000.png": ["red cube"],
    "CLEVR_train_001.png": ["gray cube", "blue sphere"],
}
TEST = [["blue sphere"], ["gray cube", "green cylinder"], ["red cube", "blue sphere", "green cylinder"]]
# A solid RGB per image, under a half-transparent alpha that must be dropped, not blended.
COLOURS = {
    "CLEVR_train_000.png": (200, 40, 0),
    "CLEVR_train_001.png": (0, 128, 255),
    "CLEVR_train_002.png": (90, 90, 90),
}


def _write_png(path, rgb, alpha=100, height=24, width=32):
    image = np.empty((height, width, 4), np.uint8)
    image[..., :3] = rgb
    image[..., 3] = alpha
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(tf.io.encode_png(image).numpy())


def _write_json(path, value):
    with open(path, "w", encoding="utf-8") as f:
        json.dump(value, f)


@pytest.fixture
def tree(tmp_path):
    root = tmp_path / "iclevr_data"
    root.mkdir()
    _write_json(root / "objects.json", OBJECTS)
    _write_json(root / "train.json", TRAIN)
    _write_json(root / "test.json", TEST)
    for name, rgb in COLOURS.items():
        _write_png(str(root / "images" / name), rgb)
    return root


def _expected_label(names):
    label = np.zeros(len(OBJECTS), np.float32)
    label[[OBJECTS[name] for name in names]] = 1.0
    return label


def _by_name(dataset):
    return {os.path.basename(e["filename"].decode()): e for e in dataset.as_numpy_iterator()}


def test_train_labels_are_the_multi_hot_of_train_json(tree):
    dataset, num_examples, num_objects = iclevr.iclevr_dataset(tree, image_size=16)
    assert (num_examples, num_objects) == (3, 4)
    elements = list(dataset.as_numpy_iterator())
    # Sorted by filename, whatever the order in train.json.
    assert [os.path.basename(e["filename"].decode()) for e in elements] == sorted(TRAIN)
    for element in elements:
        name = os.path.basename(element["filename"].decode())
        np.testing.assert_array_equal(element["label"], _expected_label(TRAIN[name]))
    assert dataset.element_spec["label"] == tf.TensorSpec([4], tf.float32)


def test_images_drop_alpha_and_map_to_unit_range(tree):
    dataset = iclevr.iclevr_dataset(tree, image_size=16).dataset
    assert dataset.element_spec["image"] == tf.TensorSpec([16, 16, 3], tf.float32)
    for name, element in _by_name(dataset).items():
        expected = np.broadcast_to(np.float32(COLOURS[name]) / 127.5 - 1, (16, 16, 3))
        np.testing.assert_allclose(element["image"], expected, atol=1e-6)
    gray = iclevr.iclevr_dataset(tree, image_size=8, channels=1).dataset
    assert gray.element_spec["image"].shape == (8, 8, 1)


def test_whole_frame_is_resized_not_cropped(tree):
    # White in the leftmost 4 of 32 columns: a centre square crop (24 of 32 columns) would cut it away entirely.
    image = np.zeros((24, 32, 3), np.uint8)
    image[:, :4] = 255
    _write_png(str(tree / "images" / "CLEVR_train_000.png"), image, alpha=255)
    element = _by_name(iclevr.iclevr_dataset(tree, image_size=16).dataset)["CLEVR_train_000.png"]
    np.testing.assert_allclose(element["image"][:, 0], 1.0, atol=1e-5)
    np.testing.assert_allclose(element["image"][:, -1], -1.0, atol=1e-5)
    assert element["image"].min() >= -1.0 and element["image"].max() <= 1.0


def test_test_split_yields_the_conditions_of_test_json_in_order(tree):
    dataset, num_examples, num_objects = iclevr.iclevr_dataset(tree, image_size=16, split="test")
    assert (num_examples, num_objects) == (3, 4)
    assert set(dataset.element_spec) == {"label"}
    labels = [e["label"] for e in dataset.as_numpy_iterator()]
    np.testing.assert_array_equal(np.stack(labels), np.stack([_expected_label(names) for names in TEST]))
    np.testing.assert_array_equal(iclevr.condition_labels(tree), np.stack(labels))


def test_multi_hot_and_unknown_object_names_file_and_image(tree):
    np.testing.assert_array_equal(iclevr.multi_hot(["blue sphere", "gray cube"], OBJECTS), [1, 0, 1, 0])
    train = dict(TRAIN, **{"CLEVR_train_001.png": ["gray cube", "pink cube"]})
    _write_json(tree / "train.json", train)
    with pytest.raises(ValueError, match=r"train\.json: unknown object 'pink cube' for image CLEVR_train_001\.png; "
                                         r"known objects are in objects\.json"):
        iclevr.iclevr_dataset(tree, image_size=16)
    _write_json(tree / "test.json", [["gray cube"], ["purple torus"]])
    with pytest.raises(ValueError, match=r"test\.json: unknown object 'purple torus' for condition 1"):
        iclevr.iclevr_dataset(tree, image_size=16, split="test")


def test_missing_image_is_skipped_with_a_count(tree, caplog):
    os.remove(tree / "images" / "CLEVR_train_001.png")
    with caplog.at_level(logging.WARNING):
        dataset, num_examples, _ = iclevr.iclevr_dataset(tree, image_size=16)
    assert num_examples == 2
    elements = _by_name(dataset)
    assert sorted(elements) == ["CLEVR_train_000.png", "CLEVR_train_002.png"]
    # Labels stay with their images after the skip.
    np.testing.assert_array_equal(elements["CLEVR_train_002.png"]["label"], [1, 1, 0, 1])
    assert f"skipped 1 of 3 unreadable images under {tree / 'images'}" in caplog.text


def test_on_error_fail_names_the_missing_or_corrupt_image(tree):
    missing = tree / "images" / "CLEVR_train_001.png"
    os.remove(missing)
    with pytest.raises(FileNotFoundError, match=f"{missing}: image listed in .*train.json not found"):
        iclevr.iclevr_dataset(tree, image_size=16, on_error="fail")
    missing.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 20)
    with pytest.raises(folder.ImageFolderError, match=f"{missing}: unreadable image"):
        iclevr.iclevr_dataset(tree, image_size=16, on_error="fail")


@pytest.mark.parametrize("name,split", [("objects.json", "train"), ("train.json", "train"), ("test.json", "test")])
def test_missing_json_names_its_path(tree, name, split):
    os.remove(tree / name)
    with pytest.raises(FileNotFoundError, match=str(tree / name)):
        iclevr.iclevr_dataset(tree, image_size=16, split=split)


def test_image_folder_lookup(tree):
    os.rename(tree / "images", tree / "iclevr")  # the released archive's folder name
    assert iclevr.find_image_dir(tree) == str(tree / "iclevr")
    assert iclevr.iclevr_dataset(tree, image_size=8).num_examples == 3
    os.rename(tree / "iclevr", tree / "renders")
    with pytest.raises(FileNotFoundError, match="images or .*iclevr: iCLEVR image folder not found"):
        iclevr.iclevr_dataset(tree, image_size=8)
    assert iclevr.iclevr_dataset(tree, image_size=8, image_dir="renders").num_examples == 3
    assert iclevr.iclevr_dataset(tree, image_size=8, image_dir=str(tree / "renders")).num_examples == 3


def test_objects_json_indices_must_be_a_permutation(tree):
    _write_json(tree / "objects.json", {"gray cube": 0, "red cube": 0, "blue sphere": 2})
    with pytest.raises(ValueError, match=r"objects\.json: label indices must be 0\.\.2.*duplicated: \[0\], "
                                         r"missing: \[1\]"):
        iclevr.read_objects(tree)
    (tree / "objects.json").write_text("{not json")
    with pytest.raises(ValueError, match="objects.json: not valid JSON"):
        iclevr.read_objects(tree)


def test_seeded_flips_keep_labels_and_repeat(tree):
    image = np.zeros((24, 32, 3), np.uint8)
    image[:, :16] = 255
    _write_png(str(tree / "images" / "CLEVR_train_000.png"), image, alpha=255)

    def left_columns(seed):
        dataset = iclevr.iclevr_dataset(tree, image_size=16, seed=seed, random_flip=True).dataset
        return [e["image"][0, 0, 0] for e in dataset.repeat(8).as_numpy_iterator()
                if e["filename"].endswith(b"CLEVR_train_000.png")]

    first = left_columns(3)
    assert first == left_columns(3)  # reproducible
    assert set(np.round(first)) == {-1.0, 1.0}  # both flipped and unflipped over 8 passes
    unflipped = iclevr.iclevr_dataset(tree, image_size=16, seed=3).dataset
    assert all(e["image"][0, 0, 0] == 1.0 for e in unflipped.as_numpy_iterator()
               if e["filename"].endswith(b"CLEVR_train_000.png"))


def test_argument_validation(tree):
    with pytest.raises(ValueError, match="split='val'"):
        iclevr.iclevr_dataset(tree, image_size=16, split="val")
    with pytest.raises(ValueError, match="channels=2"):
        iclevr.iclevr_dataset(tree, image_size=16, channels=2)
    with pytest.raises(ValueError, match="on_error='ignore'"):
        iclevr.iclevr_dataset(tree, image_size=16, on_error="ignore")
    with pytest.raises(ValueError, match="image_size=0"):
        iclevr.iclevr_dataset(tree, image_size=0)
