"""Tests for t2i.data.folder: listing, validation of corrupt files and the tf.data pipeline."""
import logging
import os

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from t2i.data import folder


def _save(path, array, fmt=None):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    array = np.asarray(array, np.uint8)
    Image.fromarray(array.squeeze(-1) if array.ndim == 3 and array.shape[-1] == 1 else array).save(
        path, format=fmt
    )
    return str(path)


def _solid(value, size=(20, 30), channels=3):
    return np.full(size + (channels,), value, np.uint8)


def _png_bytes(array):
    return tf.io.encode_png(tf.constant(array, tf.uint8)).numpy()


@pytest.fixture
def flat_tree(tmp_path):
    root = tmp_path / "imgs"
    _save(root / "b.png", _solid(10))
    _save(root / "a" / "deep" / "c.JPG", _solid(120), fmt="JPEG")
    _save(root / "a" / "d.jpeg", _solid(200), fmt="JPEG")
    _save(root / "z.BMP", _solid(30), fmt="BMP")
    _save(root / "g.gif", _solid(40), fmt="GIF")
    (root / "notes.txt").write_text("not an image")
    (root / ".hidden").mkdir()
    _save(root / ".hidden" / "x.png", _solid(1))
    return root


def test_recursive_sorted_listing_case_insensitive(flat_tree):
    paths, labels, classes = folder.list_image_files(flat_tree)
    rel = [os.path.relpath(p, flat_tree) for p in paths]
    assert rel == sorted(rel)
    assert set(rel) == {
        "b.png",
        os.path.join("a", "deep", "c.JPG"),
        os.path.join("a", "d.jpeg"),
        "z.BMP",
        "g.gif",
    }
    assert labels is None and classes is None
    assert paths == folder.list_image_files(str(flat_tree))[0]  # deterministic


def test_class_subfolders_labels(tmp_path):
    root = tmp_path / "classes"
    _save(root / "cat" / "1.png", _solid(1))
    _save(root / "cat" / "sub" / "2.png", _solid(2))
    _save(root / "ant" / "3.png", _solid(3))
    _save(root / "dog" / "4.PNG", _solid(4))
    paths, labels, classes = folder.list_image_files(root, class_subfolders=True)
    assert classes == ["ant", "cat", "dog"] == folder.image_folder_classes(root)
    by_name = {os.path.basename(p): label for p, label in zip(paths, labels)}
    assert by_name == {"3.png": 0, "1.png": 1, "2.png": 1, "4.PNG": 2}


def test_class_subfolders_rejects_loose_files(tmp_path):
    root = tmp_path / "classes"
    _save(root / "cat" / "1.png", _solid(1))
    _save(root / "loose.png", _solid(2))
    with pytest.raises(folder.ImageFolderError, match="loose.png"):
        folder.list_image_files(root, class_subfolders=True)


def test_missing_root_not_dir_and_empty(tmp_path):
    missing = tmp_path / "nope"
    with pytest.raises(folder.ImageFolderError, match="nope"):
        folder.list_image_files(missing)
    with pytest.raises(folder.ImageFolderError, match="nope"):
        folder.image_folder_dataset(missing)
    a_file = tmp_path / "file.png"
    a_file.write_bytes(b"x")
    with pytest.raises(folder.ImageFolderError, match="not a directory"):
        folder.list_image_files(a_file)
    empty = tmp_path / "empty"
    (empty / "sub").mkdir(parents=True)
    (empty / "readme.txt").write_text("hi")
    with pytest.raises(folder.ImageFolderError, match="empty.*no image files"):
        folder.list_image_files(empty)
    with pytest.raises(folder.ImageFolderError, match="empty"):
        folder.image_folder_dataset(empty)


@pytest.fixture
def corrupt_tree(tmp_path):
    root = tmp_path / "mixed"
    _save(root / "good1.png", _solid(50))
    _save(root / "sub" / "good2.png", _solid(60))
    png = _png_bytes(_solid(70))
    (root / "truncated.png").write_bytes(png[: len(png) // 2])
    (root / "sub" / "noise.jpg").write_bytes(np.random.default_rng(0).bytes(512))
    return root


def test_corrupt_files_skipped_and_logged(corrupt_tree, caplog):
    with caplog.at_level(logging.WARNING):
        ds = folder.image_folder_dataset(corrupt_tree, image_size=8, training=False)
    names = sorted(os.path.basename(e["filename"].decode()) for e in ds.as_numpy_iterator())
    assert names == ["good1.png", "good2.png"]
    text = caplog.text
    assert "truncated.png" in text and "noise.jpg" in text
    assert f"skipped 2 of 4 unreadable images under {corrupt_tree}" in text


def test_validate_images_reports_reasons(corrupt_tree):
    paths, _, _ = folder.list_image_files(corrupt_tree)
    good, bad = folder.validate_images(paths, channels=3, num_threads=4)
    assert [os.path.basename(p) for p in good] == ["good1.png", "good2.png"]
    assert sorted(os.path.basename(p) for p, _ in bad) == ["noise.jpg", "truncated.png"]
    assert all(reason and "\n" not in reason for _, reason in bad)


def test_on_error_fail_names_file(corrupt_tree):
    with pytest.raises(folder.ImageFolderError, match=r"noise\.jpg: unreadable image \("):
        folder.image_folder_dataset(corrupt_tree, on_error="fail")


def test_all_files_corrupt_raises(tmp_path):
    root = tmp_path / "bad"
    root.mkdir()
    (root / "x.png").write_bytes(b"garbage")
    with pytest.raises(folder.ImageFolderError, match="no readable images"):
        folder.image_folder_dataset(root)


def test_argument_validation(flat_tree):
    with pytest.raises(ValueError, match="on_error='ignore'"):
        folder.image_folder_dataset(flat_tree, on_error="ignore")
    with pytest.raises(ValueError, match="channels=0"):
        folder.image_folder_dataset(flat_tree, channels=0)
    with pytest.raises(ValueError, match="on_error"):
        folder.validate_images([], 3, on_error="raise")


def test_dataset_values_match_solid_colours(flat_tree):
    ds = folder.image_folder_dataset(flat_tree, image_size=16, training=False)
    spec = ds.element_spec
    assert spec["image"].shape == (16, 16, 3) and spec["image"].dtype == tf.float32
    assert spec["filename"].dtype == tf.string and "label" not in spec
    expected = {"b.png": 10, "c.JPG": 120, "d.jpeg": 200, "z.BMP": 30, "g.gif": 40}
    seen = {}
    for element in ds.as_numpy_iterator():
        name = os.path.basename(element["filename"].decode())
        # JPEG is lossy by a level or two even for solid colours.
        np.testing.assert_allclose(element["image"], expected[name] / 127.5 - 1, atol=3 / 127.5)
        seen[name] = element["image"]
    assert set(seen) == set(expected)
    np.testing.assert_allclose(seen["b.png"], 10 / 127.5 - 1, atol=1e-6)


def test_dataset_labels_and_training_shapes(tmp_path):
    root = tmp_path / "classes"
    _save(root / "a" / "1.png", _solid(0))
    _save(root / "b" / "2.png", _solid(255))
    ds = folder.image_folder_dataset(root, image_size=8, class_subfolders=True, seed=1)
    assert ds.element_spec["label"].dtype == tf.int32
    elements = list(ds.as_numpy_iterator())
    assert [e["label"] for e in elements] == [0, 1]
    np.testing.assert_allclose(elements[0]["image"], -1.0, atol=1e-6)
    np.testing.assert_allclose(elements[1]["image"], 1.0, atol=1e-6)
    assert all(e["image"].shape == (8, 8, 3) for e in elements)


def test_seeded_training_is_reproducible(tmp_path):
    root = tmp_path / "noise"
    rng = np.random.default_rng(0)
    for i in range(3):
        _save(root / f"{i}.png", rng.integers(0, 256, (40, 40, 3)))

    def run():
        ds = folder.image_folder_dataset(root, image_size=16, seed=5, validate=False)
        return [e["image"] for e in ds.repeat(2).as_numpy_iterator()]

    first, second = run(), run()
    for a, b in zip(first, second):
        np.testing.assert_array_equal(a, b)


def test_grayscale_png_channels(tmp_path):
    root = tmp_path / "gray"
    _save(root / "g.png", _solid(100, channels=1))
    rgb = next(folder.image_folder_dataset(root, image_size=8, training=False).as_numpy_iterator())
    assert rgb["image"].shape == (8, 8, 3)
    np.testing.assert_allclose(rgb["image"], 100 / 127.5 - 1, atol=1e-6)
    gray = folder.image_folder_dataset(root, image_size=8, channels=1, training=False)
    element = next(gray.as_numpy_iterator())
    assert element["image"].shape == (8, 8, 1)
    np.testing.assert_allclose(element["image"], 100 / 127.5 - 1, atol=1e-6)


def test_gif_and_bmp_to_one_and_four_channels(tmp_path):
    root = tmp_path / "fmt"
    _save(root / "a.gif", _solid(40), fmt="GIF")
    _save(root / "b.bmp", _solid(30), fmt="BMP")
    _save(root / "c.jpg", _solid(200), fmt="JPEG")
    for channels in (1, 4):
        ds = folder.image_folder_dataset(root, image_size=4, channels=channels, training=False)
        elements = list(ds.as_numpy_iterator())
        assert len(elements) == 3
        for e in elements:
            assert e["image"].shape == (4, 4, channels)
        if channels == 4:
            np.testing.assert_allclose(elements[0]["image"][..., 3], 1.0, atol=1e-6)


def test_npy_n_channel_images(tmp_path):
    root = tmp_path / "pose"
    root.mkdir()
    heat = np.zeros((24, 24, 18), np.float32)
    heat[..., 5] = 1.0
    np.save(root / "p0.npy", heat)
    with open(root / "p1.NPY", "wb") as f:  # np.save would append ".npy"
        np.save(f, np.full((24, 32, 18), 51, np.uint8))
    np.save(root / "wrong_channels.npy", np.zeros((24, 24, 3), np.float32))
    np.save(root / "out_of_range.npy", np.full((24, 24, 18), 2.0, np.float32))
    ds = folder.image_folder_dataset(root, image_size=16, channels=18, training=False)
    elements = {os.path.basename(e["filename"].decode()): e["image"] for e in ds.as_numpy_iterator()}
    assert set(elements) == {"p0.npy", "p1.NPY"}
    assert elements["p0.npy"].shape == (16, 16, 18)
    np.testing.assert_allclose(elements["p0.npy"][..., 5], 1.0, atol=1e-6)
    np.testing.assert_allclose(elements["p0.npy"][..., 0], -1.0, atol=1e-6)
    np.testing.assert_allclose(elements["p1.NPY"], 51 / 127.5 - 1, atol=1e-6)

    _, bad = folder.validate_images(sorted(str(p) for p in root.iterdir()), channels=18)
    reasons = dict((os.path.basename(p), r) for p, r in bad)
    assert "18 channels" in reasons["wrong_channels.npy"]
    assert "[0, 1]" in reasons["out_of_range.npy"]


def test_mixed_npy_and_png_folder(tmp_path):
    root = tmp_path / "mix"
    _save(root / "a.png", _solid(255))
    np.save(root / "b.npy", np.zeros((10, 10, 3), np.float32))
    ds = folder.image_folder_dataset(root, image_size=8, training=True, seed=0)
    images = [e["image"] for e in ds.as_numpy_iterator()]
    np.testing.assert_allclose(images[0], 1.0, atol=1e-6)
    np.testing.assert_allclose(images[1], -1.0, atol=1e-6)


def test_image_files_with_n_channels_are_rejected(tmp_path):
    root = tmp_path / "pose"
    _save(root / "a.png", _solid(1))
    np.save(root / "b.npy", np.zeros((10, 10, 18), np.float32))
    ds = folder.image_folder_dataset(root, image_size=8, channels=18)
    assert len(list(ds)) == 1
    with pytest.raises(folder.ImageFolderError, match=r"a\.png.*channels=18"):
        folder.image_folder_dataset(root, image_size=8, channels=18, validate=False)
