"""train(): artifacts of a run, resume at the right step, NaN stops with the last good checkpoint, config guards."""
import json
import os

import numpy as np
import pytest
import tensorflow as tf

from t2i import configs
from t2i.training import callbacks as cb
from t2i.training import run


def test_run_writes_samples_logs_checkpoint_and_resumes(make_config):
    config = make_config(steps=4)
    result = run.train(config, verbose=0)
    log_dir = config.log_dir
    assert result.step == 4 and result.resumed_from == 0
    assert result.checkpoint.endswith("ckpt-4")
    assert sorted(os.listdir(os.path.join(log_dir, "samples"))) == ["step_0000002.png", "step_0000004.png"]
    grid = tf.io.decode_png(tf.io.read_file(os.path.join(log_dir, "samples.png"))).numpy()
    # 4 samples of 32 px, shown 4× (128 px), in a 2×2 grid with 2 px padding
    assert grid.shape == (2 + 2 * 130, 2 + 2 * 130, 3)
    assert os.path.isfile(os.path.join(log_dir, "loss_curves.png"))
    assert os.path.isfile(os.path.join(log_dir, "generator.keras"))
    assert any(name.startswith("events.out.tfevents") for name in os.listdir(os.path.join(log_dir, "tensorboard")))
    rows = cb.read_csv_rows(os.path.join(log_dir, "losses.csv"))
    assert [row["step"] for row in rows] == [1, 2, 3, 4]
    assert all(np.isfinite(row["d_loss"]) and np.isfinite(row["g_loss"]) for row in rows)
    assert json.load(open(os.path.join(log_dir, "config.json")))["steps"] == 4

    # Weights of the checkpoint, to check the resumed run starts from them.
    generator, _, _ = run.restore_generator(log_dir)
    step4_weights = [v.numpy() for v in generator.trainable_variables]

    resumed = run.train(config.replace(steps=6), verbose=0)
    assert resumed.resumed_from == 4 and resumed.step == 6
    assert resumed.checkpoint.endswith("ckpt-6")
    rows = cb.read_csv_rows(os.path.join(log_dir, "losses.csv"))
    assert [row["step"] for row in rows] == [1, 2, 3, 4, 5, 6]
    generator6, _, _ = run.restore_generator(log_dir)
    assert any(not np.allclose(a, v.numpy()) for a, v in zip(step4_weights, generator6.trainable_variables))
    generator4, _, _ = run.restore_generator(log_dir, os.path.join(log_dir, "checkpoints", "ckpt-4"))
    for a, v in zip(step4_weights, generator4.trainable_variables):
        np.testing.assert_array_equal(a, v.numpy())


def test_resume_truncates_rows_logged_after_the_checkpoint(tmp_path):
    path = str(tmp_path / "losses.csv")
    for step in (1, 2, 3, 4, 5):
        cb.append_csv_row(path, step, {"d_loss": float(step), "g_loss": 0.5})
    with open(path, "a") as f:
        f.write("6,0.1")  # torn by a kill mid-write
    cb.truncate_csv(path, 3)
    assert [row["step"] for row in cb.read_csv_rows(path)] == [1, 2, 3]


def test_non_finite_loss_stops_training_and_keeps_last_good_checkpoint(make_config):
    config = make_config(steps=2, checkpoint_every=1)
    run.train(config, verbose=0)
    # An infinite learning rate makes the next update non-finite.
    with pytest.raises(cb.NonFiniteLossError, match=r"non-finite|is nan|is inf") as error:
        run.train(config.replace(steps=6, lr_d=float("inf"), lr_g=float("inf")), verbose=0)
    assert "ckpt-2" in str(error.value)
    assert tf.train.latest_checkpoint(run.checkpoint_dir(config.log_dir)).endswith("ckpt-2")
    generator, _, _ = run.restore_generator(config.log_dir)
    assert all(np.isfinite(v.numpy()).all() for v in generator.variables)


def test_resume_refuses_a_different_architecture(make_config):
    config = make_config(steps=1)
    run.train(config, verbose=0)
    with pytest.raises(configs.ConfigError, match=r"--image_size: .*trained with image_size=32"):
        run.train(config.replace(image_size=64), verbose=0)


def test_ema_run_checkpoints_samples_and_exports_the_averaged_generator(make_config):
    config = make_config(steps=3, ema_decay=0.9)
    result = run.train(config, verbose=0)
    reader = tf.train.load_checkpoint(result.checkpoint)
    saved = {name.split("/")[0] for name in reader.get_variable_to_shape_map()}
    assert {"generator", "ema_generator"} <= saved
    ema, _, _ = run.restore_generator(config.log_dir)
    raw = run.factory.build_generator(config)
    tf.train.Checkpoint(generator=raw).restore(result.checkpoint).expect_partial()
    assert any(not np.allclose(a.numpy(), b.numpy()) for a, b in zip(ema.weights, raw.weights))
    noise = np.random.default_rng(0).standard_normal((2, config.noise_dim)).astype("float32")
    reloaded = tf.keras.models.load_model(os.path.join(config.log_dir, "generator.keras"))
    np.testing.assert_allclose(reloaded(noise, training=False).numpy(), ema(noise, training=False).numpy(),
                               atol=1e-6)
    # Switching the EMA off (or on) for the same log_dir is refused: the checkpoint would not match.
    with pytest.raises(configs.ConfigError, match=r"^--ema_decay: .*with a generator EMA"):
        run.train(config.replace(steps=4, ema_decay=0.0), verbose=0)
    assert run.train(config.replace(steps=4, ema_decay=0.99), verbose=0).resumed_from == 3


def test_epochs_count_whole_passes_over_the_data(make_config):
    config = make_config(steps=0, epochs=2, num_examples=8, batch_size=4, checkpoint_every=100)
    assert run.train(config, verbose=0).step == 4


def test_folder_dataset_trains_and_skips_a_corrupt_image(make_config, tmp_path, caplog):
    from data_prep.export_shapes import export_shapes

    data_dir = tmp_path / "shapes_png"
    export_shapes(str(data_dir), num_examples=8, image_size=32)
    (data_dir / "images" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 20)
    config = make_config(dataset="folder", data_dir=str(data_dir / "images"), steps=2, batch_size=4)
    result = run.train(config, verbose=0)
    assert result.step == 2
    assert "broken.png" in caplog.text and "skipped 1 of 9" in caplog.text

    with pytest.raises(ValueError, match="broken.png"):
        run.train(config.replace(on_bad_image="fail", log_dir=str(tmp_path / "run2")), verbose=0)
