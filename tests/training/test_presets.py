"""Every named preset builds and trains 2 steps on the embedded shapes (shrunk to test size), and every model family
samples and exports through the library functions the binaries call."""
import json

import keras
import numpy as np
import pytest
import tensorflow as tf

import t2i  # noqa: F401 — registers the networks for load_model
from t2i import configs
from t2i.export import saved_model, serving
from t2i.export.serving import image_output
from t2i.training import callbacks as cb
from t2i.training import sampling
from t2i.training.run import restore_generator, train

# Shrinks any preset to seconds on 2 CPU cores while keeping its model, losses and update rule.
TINY = dict(dataset="shapes", image_size=32, batch_size=4, steps=2, num_examples=8, gf_dim=8, df_dim=8,
            max_filters=16, residual_blocks=1, condition_dim=8, num_samples=4, sample_every=2, checkpoint_every=2,
            log_every=1)


def text_overrides(name, text_data, tmp_path):
    """Text presets read the shared tiny embeddings; Stage-II needs a Stage-I run (trained here, 32 → 128 px)."""
    model = configs.PRESETS[name]["model"]
    if model not in configs.TEXT_MODELS:
        return {}
    extra = dict(embeddings=text_data["embeddings"], num_examples=16, ca_dim=8)
    if model == "hdgan":
        extra["hdgan_scales"] = "16,32"
    if model == "stackgan_stage2":
        stage1 = configs.from_preset("stackgan_shapes", log_dir=str(tmp_path / "stage1"), **{**TINY, **extra})
        train(stage1, verbose=False)
        extra.update(image_size=128, stage1_checkpoint=stage1.log_dir)
    return extra


@pytest.mark.parametrize("name", sorted(configs.PRESETS))
def test_every_preset_trains_two_steps_on_shapes(name, tmp_path, text_data):
    config = configs.from_preset(name, log_dir=str(tmp_path / name),
                                 **{**TINY, **text_overrides(name, text_data, tmp_path)})
    result = train(config, verbose=False)
    assert result.step == 2
    rows = cb.read_csv_rows(str(tmp_path / name / "losses.csv"))
    assert rows and all(np.isfinite(float(v)) for row in rows for k, v in row.items() if k != "step")
    assert (tmp_path / name / "samples.png").exists()
    saved = configs.load(str(tmp_path / name))
    if saved.uses_labels:
        assert saved.num_labels == 24  # resolved from the dataset and written back
    if saved.uses_text:
        assert saved.embedding_dim == text_data["dim"]  # resolved from the embeddings file and written back


def _same_random_state(model, other):
    """Conditioning Augmentation draws ε from a seed state that a .keras file does not carry; align it to compare."""
    for mine, theirs in zip(model.variables, other.variables):
        if "seed_generator" in mine.path:
            theirs.assign(mine.numpy())


@pytest.mark.parametrize("model,extra", [
    ("dcgan", {}), ("began", {}), ("cgan", {}), ("acgan", {"replay_size": 8}),
    ("wgan_gp", {"conditional": True}), ("srgan", {"conditional": True}),
    ("stackgan_stage1", {"stackgan_variant": "complex", "replay_size": 8}),
    ("hdgan", {"hdgan_scales": "16,32"}),
])
def test_each_model_samples_reloads_and_exports(model, extra, tmp_path, text_data):
    log_dir = tmp_path / "run"
    if model in configs.TEXT_MODELS:
        extra = dict(extra, embeddings=text_data["embeddings"], num_examples=16, ca_dim=8)
    config = configs.TrainConfig(model=model, log_dir=str(log_dir), **{**TINY, **extra})
    if model == "wgan_gp":
        config = config.replace(loss="wasserstein", gp_weight=10.0)
    train(config, verbose=False)

    generator, saved, _ = restore_generator(str(log_dir))
    inputs = sampling.generator_inputs(saved, 4, seed=1)
    reloaded = keras.models.load_model(log_dir / "generator.keras")
    _same_random_state(generator, reloaded)
    before = [v.numpy() for v in generator.variables]
    images = np.asarray(image_output(generator, generator(inputs, training=False)))
    assert images.shape == (4, 32, 32, 3) and np.all(np.isfinite(images))

    # The .keras file written at the end of training reloads with identical outputs.
    np.testing.assert_allclose(np.asarray(image_output(reloaded, reloaded(inputs, training=False))), images,
                               rtol=1e-5, atol=1e-5)
    for variable, value in zip(generator.variables, before):
        variable.assign(value)  # the export starts from the random state the images above were drawn with

    path = saved_model.export_generator(generator, str(tmp_path / "exports"), model,
                                        sampling.export_metadata(saved))
    metadata = saved_model.read_metadata(path)
    serve = tf.saved_model.load(path).signatures["serving_default"]
    named = inputs if isinstance(inputs, dict) else {metadata["inputs"][0]: inputs}
    assert sorted(named) == metadata["inputs"]
    served = serve(**{name: tf.constant(value) for name, value in named.items()})
    assert served["images"].dtype == tf.uint8 and tuple(served["images"].shape) == (4, 32, 32, 3)
    np.testing.assert_allclose(served["images_float"].numpy(), images, rtol=1e-5, atol=1e-5)
    if saved.uses_labels:
        assert len(metadata["label_names"]) == 24
    json.dumps(metadata)

    # `seeded`: the same inputs with a seed per image in place of the noise (every model here but SRGAN).
    loaded = tf.saved_model.load(path)
    if "noise" not in named:
        assert model == "srgan" and "seeded" not in loaded.signatures and "seeded" not in metadata["signatures"]
        return
    conditions = {name: tf.constant(value) for name, value in named.items() if name != "noise"}
    assert sorted(metadata["signatures"]["seeded"]) == sorted(["seed", *conditions])
    seeded = loaded.signatures["seeded"]
    seeds = tf.constant([11, 12, 13, 14], tf.int64)
    first = seeded(seed=seeds, **conditions)["images_float"].numpy()
    np.testing.assert_array_equal(seeded(seed=seeds, **conditions)["images_float"].numpy(), first)
    assert first.shape == (4, 32, 32, 3) and np.all(np.isfinite(first))
    # Without Conditioning Augmentation a row depends on its own seed only; its noise is the distribution's draw.
    if model not in configs.TEXT_MODELS:
        last = seeded(seed=seeds[3:], **{k: v[3:] for k, v in conditions.items()})["images_float"].numpy()
        np.testing.assert_allclose(last[0], first[3], rtol=1e-5, atol=1e-5)
        noise = serving.noise_from_seeds(seeds, int(named["noise"].shape[-1]), sampling.noise_distribution(saved))
        np.testing.assert_allclose(serve(noise=noise, **conditions)["images_float"].numpy(), first, rtol=1e-5,
                                   atol=1e-5)


def test_acgan_grid_rows_hold_one_condition_each(tmp_path):
    config = configs.TrainConfig(model="acgan", log_dir=str(tmp_path), num_labels=24, **TINY)
    labels = sampling.grid_conditions(config, 16)
    assert labels.shape == (16, 24)
    rows = labels.reshape(4, 4, 24)
    assert np.all(rows == rows[:, :1])  # the same condition along a row
    assert np.all((labels.sum(1) >= 1) & (labels.sum(1) <= 3))


def test_labels_given_by_name_make_multi_hot_rows():
    names = ("red circle", "green circle", "blue square")
    rows = sampling.parse_conditions(["red circle, blue square", "1"], names)
    np.testing.assert_array_equal(rows, [[1, 0, 1], [0, 1, 0]])
    with pytest.raises(ValueError, match="--labels: unknown label 'pink cube'"):
        sampling.parse_conditions(["pink cube"], names)


def test_acgan_trains_on_an_iclevr_tree_and_srgan_on_a_folder(tmp_path):
    from data_prep.export_shapes import export_shapes

    iclevr_dir = tmp_path / "iclevr"
    export_shapes(str(iclevr_dir), num_examples=8, image_size=32, output_format="iclevr", num_test_conditions=4)
    config = configs.TrainConfig(model="acgan", log_dir=str(tmp_path / "acgan"), **dict(TINY, dataset="iclevr"),
                                 data_dir=str(iclevr_dir))
    assert train(config, verbose=False).step == 2
    saved = configs.load(str(tmp_path / "acgan"))
    assert saved.num_labels == 24
    # Grid rows are the iCLEVR test.json conditions, in order.
    expected = json.loads((iclevr_dir / "test.json").read_text())[0]
    names = json.loads((iclevr_dir / "objects.json").read_text())
    first_row = sampling.grid_conditions(saved, 4)[0]
    assert sorted(np.flatnonzero(first_row)) == sorted(names[name] for name in expected)

    folder_dir = tmp_path / "folder"
    export_shapes(str(folder_dir), num_examples=8, image_size=32)
    config = configs.TrainConfig(model="srgan", log_dir=str(tmp_path / "srgan"), **dict(TINY, dataset="folder"),
                                 data_dir=str(folder_dir / "images"))
    assert train(config, verbose=False).step == 2
