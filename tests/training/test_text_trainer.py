"""Text-to-image trainers on the embedded shapes captions: StackGAN Stage-I/II, HDGAN, GAN-CLS/INT, the CA KL term."""
import numpy as np
import pytest
import tensorflow as tf

from conftest import tiny_config
from t2i.data import datasets, embeddings
from t2i.training import factory, run, text_gan

NUM_EXAMPLES = 16  # as conftest's text_data


def text_config(log_dir, text_data, **overrides):
    values = dict(model="stackgan_stage1", embeddings=text_data["embeddings"], num_examples=NUM_EXAMPLES,
                  ca_dim=8, gf_dim=8, df_dim=8, batch_size=4, steps=2, num_samples=4, loss="non_saturating")
    values.update(overrides)
    return factory.resolve_text(tiny_config(log_dir, **values))


def _batch(config):
    dataset, _ = datasets.build_dataset(config, split="train", training=True)
    pipeline = datasets.training_pipeline(dataset, config.batch_size, keys=factory.batch_keys(config), seed=0)
    return next(iter(pipeline))


def _values(variables):
    return [v.numpy().copy() for v in variables]


def _changed(before, variables):
    return [not np.array_equal(b, v.numpy()) for b, v in zip(before, variables)]


def test_config_takes_dim_and_encoder_from_the_embeddings_file(tmp_path, text_data):
    config = text_config(tmp_path / "run", text_data)
    assert config.embedding_dim == text_data["dim"]
    assert (config.text_encoder, config.text_encoder_path) == ("seq2seq", text_data["encoder"])


@pytest.mark.parametrize("overrides", [
    dict(stackgan_variant="simple", interpolation_weight=1.0),
    dict(stackgan_variant="complex", loss="hinge"),
    dict(loss="wasserstein", gp_weight=10.0, n_critic=2),
    dict(stackgan_variant="simple", upsampling="nearest", projection=True, conditional_bn=True,
         stackgan_base_size=8),
    dict(model="hdgan", image_size=64, hdgan_scales="16,32,64"),
    dict(model="hdgan", image_size=32, hdgan_scales="16,32", hdgan_shared_trunk=True),
], ids=["stage1-simple-gan-int", "stage1-complex-hinge", "stage1-wgan-gp", "stage1-nearest-projection-cbn-base8", "hdgan",
        "hdgan-shared"])
def test_one_step_updates_every_weight_with_finite_losses(tmp_path, text_data, overrides):
    config = text_config(tmp_path / "run", text_data, **overrides)
    trainer = factory.build_trainer(config, total_steps=2)
    batch = _batch(config)
    assert batch["embedding"].shape == (4, text_data["dim"])
    g_vars, d_vars = trainer.generator.trainable_variables, trainer.discriminator.trainable_variables
    g_before, d_before = _values(g_vars), _values(d_vars)
    logs = trainer.train_step(batch)
    for name, value in logs.items():
        assert np.isfinite(float(value)), name
    assert {"d_loss", "g_loss", "kl", "d_wrong"} <= set(logs)
    assert float(logs["kl"]) > 0
    assert all(_changed(g_before, g_vars)), [v.path for v, c in zip(g_vars, _changed(g_before, g_vars)) if not c]
    unchanged = [v.path for v, c in zip(d_vars, _changed(d_before, d_vars)) if not c]
    # With the hinge loss and every logit inside the margin, the logit bias gets -1 (real/right) + ½ + ½ (the two
    # fake terms): exactly zero.
    # The Wasserstein critic's bias cancels the same way: -1 + ½ + ½.
    assert unchanged == (["logit_conv/bias"] if config.loss in ("hinge", "wasserstein") else []), unchanged
    if config.gp_weight:
        assert float(logs["gradient_penalty"]) > 0


def test_tac_gan_head_learns_labels_from_real_images_and_trains_the_generator_on_them(tmp_path, text_data):
    from t2i.data import shapes

    config = text_config(tmp_path / "run", text_data, text_aux_weight=3.0)
    trainer = factory.build_trainer(config, total_steps=2)
    batch = _batch(config)
    # Each row's labels are those of its own image (found among the 16 renders by its pixels).
    renders = [shapes.render_example(i, image_size=32) for i in range(NUM_EXAMPLES)]
    for image, label in zip(batch["image"].numpy(), batch["label"].numpy()):
        errors = [np.abs(image - (r["image"] / 127.5 - 1.0)).max() for r in renders]
        assert min(errors) < 1e-5
        np.testing.assert_array_equal(label, renders[int(np.argmin(errors))]["label"])

    fake = trainer.generate({"noise": trainer.sample_noise(4), "embedding": batch["embedding"]})
    real_out, fake_out = trainer.discriminate(batch["image"], batch), trainer.discriminate(fake, batch)
    assert real_out["aux_logits"].shape == (4, 24)
    labels = batch["label"].numpy()
    bce = lambda logits: np.mean(np.logaddexp(0, logits) - labels * logits, axis=-1)  # noqa: E731
    # D: the matching-aware loss plus 3·BCE on the real images only.
    d_loss, d_extras = trainer.discriminator_objective(batch, batch, real_out, fake_out)
    trainer.aux_weight = 0.0
    d_plain, _ = trainer.discriminator_objective(batch, batch, real_out, fake_out)
    g_plain, _ = trainer.generator_objective(batch, fake_out)
    trainer.aux_weight = 3.0
    aux_real = bce(real_out["aux_logits"].numpy())
    np.testing.assert_allclose(d_loss.numpy() - d_plain.numpy(), 3.0 * aux_real, rtol=1e-4, atol=1e-5)
    assert float(d_extras["d_aux_loss"]) == pytest.approx(aux_real.mean(), rel=1e-5)
    # G: plus 3·BCE of its fakes against the labels of the images the captions describe.
    g_loss, g_extras = trainer.generator_objective(batch, fake_out)
    aux_fake = bce(fake_out["aux_logits"].numpy())
    np.testing.assert_allclose(g_loss.numpy() - g_plain.numpy(), 3.0 * aux_fake, rtol=1e-4, atol=1e-5)
    assert float(g_extras["g_aux_loss"]) == pytest.approx(aux_fake.mean(), rel=1e-5)

    head = [v for v in trainer.discriminator.trainable_variables if "aux_logits" in v.path]
    before = _values(head)
    logs = trainer.train_step(batch)
    assert {"d_aux_loss", "g_aux_loss"} <= set(logs) and all(_changed(before, head))
    plain = text_config(tmp_path / "plain", text_data)
    assert "label" not in factory.batch_keys(plain)
    assert "d_aux_loss" not in [m.name for m in factory.build_trainer(plain, total_steps=2).metrics]


@pytest.mark.parametrize("overrides", [dict(model="hdgan", image_size=32, hdgan_scales="16,32"),
                                       dict(use_text=False)])
def test_tac_gan_head_is_refused_where_it_is_not_built(tmp_path, text_data, overrides):
    from t2i import configs

    with pytest.raises(configs.ConfigError, match="text_aux_weight"):
        configs.validate(text_config(tmp_path / "run", text_data, text_aux_weight=1.0, **overrides))


def test_kl_tracker_is_the_closed_form_of_the_ca_statistics(tmp_path, text_data):
    config = text_config(tmp_path / "run", text_data)
    trainer = factory.build_trainer(config, total_steps=2)
    batch = _batch(config)
    # Scaled up so that μ, log σ are far from 0 and the float32 terms do not cancel.
    batch["embedding"] = batch["embedding"] * 300.0
    mean, log_sigma = (t.numpy().astype(np.float64) for t in trainer.generator.ca_statistics(batch["embedding"]))
    expected = np.mean(-log_sigma + 0.5 * (np.exp(2 * log_sigma) + mean**2 - 1))
    _, extras = trainer.generator_objective(batch, trainer.discriminate(trainer.generate(
        {"noise": trainer.sample_noise(4), "embedding": batch["embedding"]}), batch))
    assert expected > 0.01
    np.testing.assert_allclose(float(extras["kl"]), expected, rtol=1e-5)


def test_standardized_embeddings_carry_the_files_statistics_into_both_networks(tmp_path, text_data):
    import h5py

    with h5py.File(text_data["embeddings"], "r") as f:
        values = f["embeddings"][...].reshape(-1, text_data["dim"]).astype(np.float64)
    mean, std = datasets.text_embedding_statistics(text_config(tmp_path / "stats", text_data))
    np.testing.assert_allclose(mean, values.mean(0), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(std, values.std(0), rtol=1e-4, atol=1e-6)

    config = text_config(tmp_path / "run", text_data, standardize_embeddings=True, ema_decay=0.99)
    trainer = factory.build_trainer(config, total_steps=2)
    for model in (trainer.generator, trainer.discriminator, trainer.ema_generator):
        layer = model.get_layer("embedding_standardization")
        np.testing.assert_allclose(layer.mean.numpy(), mean, rtol=1e-6)
        np.testing.assert_allclose(layer.std.numpy(), std, rtol=1e-6)
    # CA (and so the KL term) reads the standardised embedding.
    embedding = tf.constant(values[:3].astype(np.float32))
    ca = trainer.generator.get_layer("ca")
    for got, expected in zip(trainer.generator.ca_statistics(embedding),
                             ca.statistics(tf.constant(((values[:3] - mean) / std).astype(np.float32)))):
        np.testing.assert_allclose(got.numpy(), expected.numpy(), rtol=1e-4, atol=1e-5)
    assert np.isfinite(float(trainer.train_step(_batch(config))["kl"]))

    # The statistics are weights: a run's checkpoint brings them back into a freshly built generator.
    result = run.train(config, verbose=False)
    restored, _, _ = run.restore_generator(result.log_dir)
    np.testing.assert_allclose(restored.get_layer("embedding_standardization").std.numpy(), std, rtol=1e-6)


def test_standardized_embeddings_are_refused_where_not_built(tmp_path, text_data):
    from t2i import configs

    with pytest.raises(configs.ConfigError, match="^--standardize_embeddings"):
        configs.validate(text_config(tmp_path / "run", text_data, model="hdgan", image_size=32,
                                     hdgan_scales="16,32", standardize_embeddings=True))


def test_wrong_images_come_from_other_classes_when_the_batch_has_classes(tmp_path, text_data):
    trainer = factory.build_trainer(text_config(tmp_path / "run", text_data), total_steps=2)
    images = tf.reshape(tf.range(6, dtype=tf.float32), [6, 1, 1, 1]) * tf.ones([6, 2, 2, 3])
    class_ids = tf.constant([0, 0, 1, 1, 2, 2], tf.int32)
    for step in range(20):
        trainer.global_step.assign(step)
        wrong, mask = trainer.wrong_images({"image": images, "class_id": class_ids})
        partner = wrong[:, 0, 0, 0].numpy().astype(int)
        assert np.all(class_ids.numpy()[partner] != class_ids.numpy())
        np.testing.assert_array_equal(mask.numpy(), np.ones(6))


def test_gan_int_interpolates_with_the_next_rows_embedding(tmp_path, text_data):
    trainer = factory.build_trainer(text_config(tmp_path / "run", text_data, interpolation_beta=0.25), total_steps=2)
    embedding = tf.constant([[1.0, 0.0], [0.0, 1.0], [2.0, 2.0]])
    mixed = trainer.interpolated_embeddings({"embedding": embedding}).numpy()
    np.testing.assert_allclose(mixed, 0.25 * embedding.numpy() + 0.75 * np.roll(embedding.numpy(), 1, axis=0))


@pytest.fixture(scope="module")
def stage1_run(tmp_path_factory, text_data):
    config = text_config(tmp_path_factory.mktemp("stage1") / "run", text_data, image_size=32)
    run.train(config, verbose=False)
    return config.log_dir


@pytest.mark.parametrize("fine_tune", [False, True], ids=["frozen", "fine-tuned"])
def test_stage2_trains_on_a_stage1_run_frozen_or_fine_tuned(tmp_path, text_data, stage1_run, fine_tune):
    config = text_config(tmp_path / "run", text_data, model="stackgan_stage2", image_size=128,
                         stage1_checkpoint=stage1_run, fine_tune_stage1=fine_tune)
    trainer = factory.build_trainer(config, total_steps=2)
    stage1 = trainer.generator.stage1
    restored, _, _ = run.restore_generator(stage1_run)
    # Weights, not the CA's random-number state (which every call advances).
    weights = [v for v in stage1.variables if "seed_generator" not in v.path]
    for mine, theirs in zip(weights, [v for v in restored.variables if "seed_generator" not in v.path]):
        np.testing.assert_array_equal(mine.numpy(), theirs.numpy())  # Stage-II starts from the Stage-I run.

    stage1_before = _values(weights)
    own = [v for v in trainer.generator.trainable_variables if all(v is not s for s in stage1.variables)]
    own_before = _values(own)
    logs = trainer.train_step(_batch(config))
    assert np.isfinite(float(logs["g_loss"]))
    assert all(_changed(own_before, own))
    stage1_trainable = _changed(stage1_before, weights)
    if fine_tune:
        assert any(stage1_trainable)
        assert int(trainer.stage1_optimizer.iterations) == 1
        # Its own Adam at 0.1x the generator's learning rate.
        np.testing.assert_allclose(float(trainer.stage1_optimizer.learning_rate),
                                   0.1 * float(trainer.g_optimizer.learning_rate), rtol=1e-6)
    else:
        assert not any(stage1_trainable), "a frozen Stage-I changed"
        assert trainer.stage1_optimizer is None


def test_unconditional_stackgan_takes_noise_only(tmp_path, text_data):
    config = text_config(tmp_path / "run", text_data, use_text=False)
    trainer = factory.build_trainer(config, total_steps=2)
    assert not isinstance(trainer.generator.input, dict)
    logs = trainer.train_step(_batch(config))
    assert np.isfinite(float(logs["d_loss"]))


def test_wrong_embedding_dim_is_a_clear_error(tmp_path, text_data):
    config = text_config(tmp_path / "run", text_data, embedding_dim=7)
    with pytest.raises(embeddings.EmbeddingDimError, match=r"dim 16 but the model expects 7"):
        datasets.build_dataset(config)


def test_hdgan_trainer_refuses_the_gradient_penalty(tmp_path, text_data):
    config = text_config(tmp_path / "run", text_data, model="hdgan", image_size=32, hdgan_scales="16,32")
    generator, discriminator = factory.build_networks(config)
    with pytest.raises(ValueError, match="gradient_penalty_weight"):
        text_gan.HDGANTrainer(generator, discriminator, gradient_penalty_weight=10.0)
