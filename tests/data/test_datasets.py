"""The training pipeline around each dataset: batch shapes, dtypes and value ranges; label widths and conditions."""
import json
import os

import numpy as np
import pytest
import tensorflow as tf

from data_prep.export_shapes import export_shapes
from t2i import configs
from t2i.data import datasets, shapes


def test_shapes_training_pipeline_batches_images_in_unit_range(tmp_path):
    config = configs.TrainConfig(dataset="shapes", image_size=32, num_examples=20, log_dir=str(tmp_path), steps=1)
    dataset, size = datasets.build_dataset(config)
    assert size == 20
    batches = datasets.training_pipeline(dataset, batch_size=8, keys=("image", "label"), seed=0)
    seen = []
    for batch in batches.take(5):  # 40 images > 20: the pipeline repeats
        image = batch["image"].numpy()
        assert image.shape == (8, 32, 32, 3) and image.dtype == np.float32
        assert image.min() >= -1.0 and image.max() <= 1.0
        assert batch["label"].shape == (8, shapes.NUM_LABELS)
        seen.append(image)
    # The plain background maps to its exact [-1, 1] value.
    background = np.asarray(shapes.BACKGROUND, np.float32) / 127.5 - 1.0
    np.testing.assert_allclose(seen[0][0, 0, 0], background, atol=1e-6)
    # Shuffled differently each epoch, but every image comes from the dataset.
    originals = {shapes.render_example(i, image_size=32)["image"].tobytes() for i in range(20)}
    restored = np.round((np.concatenate(seen) + 1.0) * 127.5).astype(np.uint8)
    assert {image.tobytes() for image in restored} <= originals


def _write_png(path, value, size=(20, 30)):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(tf.io.encode_png(np.full(size + (3,), value, np.uint8)).numpy())


@pytest.fixture
def class_tree(tmp_path):
    root = tmp_path / "classes"
    for name, value in (("ant", 0), ("bee", 128), ("cat", 255)):
        _write_png(str(root / name / "1.png"), value)
    _write_png(str(root / "cat" / "2.png"), 255)
    os.makedirs(root / "dog")  # an empty class folder still has an id
    return root


@pytest.fixture
def iclevr_tree(tmp_path):
    root = tmp_path / "iclevr"
    export_shapes(str(root), num_examples=6, image_size=32, output_format="iclevr", num_test_conditions=3)
    return root


def _config(tmp_path, **overrides):
    values = dict(image_size=32, num_examples=6, log_dir=str(tmp_path / "run"), steps=1)
    values.update(overrides)
    return configs.TrainConfig(**values)


def test_training_pipeline_runs_without_tf_data_autotuning(tmp_path):
    """Its optimisation thread made the end of a long fit wait up to 60 s (datasets.training_pipeline); a
    mis-ordered option (set on an inner dataset) would be silently overridden, so the outermost one is checked."""
    config = configs.TrainConfig(dataset="shapes", image_size=32, num_examples=8, log_dir=str(tmp_path), steps=1)
    dataset, _ = datasets.build_dataset(config)
    pipeline = datasets.training_pipeline(dataset, batch_size=4, keys=("image",), seed=0)
    assert pipeline.options().autotune.enabled is False
    assert next(iter(pipeline))["image"].shape == (4, 32, 32, 3)


def test_folder_classes_yield_one_hot_labels(tmp_path, class_tree):
    config = _config(tmp_path, dataset="folder", data_dir=str(class_tree), class_subfolders=True)
    dataset, size = datasets.build_dataset(config, training=False)
    assert size == 4
    assert dataset.element_spec["label"] == tf.TensorSpec([4], tf.float32)
    by_file = {os.path.relpath(e["filename"].decode(), class_tree): e["label"] for e in dataset.as_numpy_iterator()}
    np.testing.assert_array_equal(by_file[os.path.join("ant", "1.png")], [1, 0, 0, 0])
    np.testing.assert_array_equal(by_file[os.path.join("bee", "1.png")], [0, 1, 0, 0])
    np.testing.assert_array_equal(by_file[os.path.join("cat", "2.png")], [0, 0, 1, 0])
    unlabelled, _ = datasets.build_dataset(config.replace(class_subfolders=False))
    assert "label" not in unlabelled.element_spec


def test_label_count_for_every_dataset(tmp_path, class_tree, iclevr_tree):
    assert datasets.label_count(_config(tmp_path, dataset="shapes")) == shapes.NUM_LABELS == 24
    assert datasets.label_count(_config(tmp_path, dataset="iclevr", data_dir=str(iclevr_tree))) == 24
    folder_config = _config(tmp_path, dataset="folder", data_dir=str(class_tree))
    assert datasets.label_count(folder_config.replace(class_subfolders=True)) == 4
    assert datasets.label_count(folder_config) == 0
    (iclevr_tree / "objects.json").write_text(json.dumps({"a": 0, "b": 1, "c": 2}))
    assert datasets.label_count(_config(tmp_path, dataset="iclevr", data_dir=str(iclevr_tree))) == 3
    with pytest.raises(ValueError, match="dataset='coco'"):
        datasets.label_count(_config(tmp_path, dataset="coco"))


@pytest.mark.parametrize("name", ["shapes", "folder", "iclevr"])
def test_training_pipeline_batches_images_and_labels(tmp_path, class_tree, iclevr_tree, name):
    data_dir = {"shapes": "", "folder": str(class_tree), "iclevr": str(iclevr_tree)}[name]
    config = _config(tmp_path, dataset=name, data_dir=data_dir, class_subfolders=name == "folder")
    dataset, _ = datasets.build_dataset(config)
    batch = next(iter(datasets.training_pipeline(dataset, batch_size=3, keys=("image", "label"))))
    assert set(batch) == {"image", "label"}
    assert batch["image"].shape == (3, 32, 32, 3) and batch["image"].dtype == tf.float32
    assert -1.0 <= batch["image"].numpy().min() and batch["image"].numpy().max() <= 1.0
    assert batch["label"].shape == (3, datasets.label_count(config)) and batch["label"].dtype == tf.float32
    # Every example has at least one object / exactly one class.
    assert (batch["label"].numpy().sum(axis=1) >= 1).all()


def test_iclevr_builder_matches_shapes_labels(tmp_path, iclevr_tree):
    config = _config(tmp_path, dataset="iclevr", data_dir=str(iclevr_tree))
    dataset, size = datasets.build_dataset(config)
    assert size == 6
    labels = np.stack([e["label"] for e in dataset.as_numpy_iterator()])
    expected = [shapes.render_example(i, image_size=32)["label"] for i in range(6)]
    np.testing.assert_array_equal(labels, np.stack(expected))
    test, test_size = datasets.build_dataset(config, split="test", training=False)
    assert test_size == 3 and set(test.element_spec) == {"label"}


def test_condition_examples_shapes_are_held_out_labels(tmp_path):
    config = _config(tmp_path, dataset="shapes", dataset_seed=3)
    conditions = datasets.condition_examples(config, 5)
    assert conditions.shape == (5, 24) and conditions.dtype == np.float32
    expected = [shapes.render_example(i, seed=3, image_size=32, split="test")["label"] for i in range(10)]
    np.testing.assert_array_equal(conditions, np.stack(expected[:5]))
    np.testing.assert_array_equal(datasets.condition_examples(config, 5), conditions)  # deterministic
    np.testing.assert_array_equal(datasets.condition_examples(config, 5, seed=1), np.stack(expected[5:]))


def test_condition_examples_iclevr_cycle_through_test_json(tmp_path, iclevr_tree):
    config = _config(tmp_path, dataset="iclevr", data_dir=str(iclevr_tree))
    test = [shapes.render_example(i, image_size=32, split="test")["label"] for i in range(3)]
    conditions = datasets.condition_examples(config, 7)
    np.testing.assert_array_equal(conditions, np.stack([test[i % 3] for i in range(7)]))
    np.testing.assert_array_equal(datasets.condition_examples(config, 2, seed=1), np.stack([test[2], test[0]]))


def test_condition_examples_folder_classes_cycle(tmp_path, class_tree):
    config = _config(tmp_path, dataset="folder", data_dir=str(class_tree), class_subfolders=True)
    conditions = datasets.condition_examples(config, 6)
    np.testing.assert_array_equal(conditions, np.eye(4, dtype=np.float32)[[0, 1, 2, 3, 0, 1]])
    assert datasets.condition_examples(config.replace(class_subfolders=False), 6).shape == (6, 0)
    with pytest.raises(ValueError, match="num=-1"):
        datasets.condition_examples(config, -1)
