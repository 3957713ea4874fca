"""Label-conditioned networks (cGAN / AC-GAN) and the WGAN-GP critic: shapes, conditioning, layers, round trips."""
import keras
import numpy as np
import pytest

from t2i.models.acgan import ConditionalDiscriminator, ConditionalGenerator
from t2i.models.wgan_gp import WGANGPCritic

SMALL = dict(base_filters=8, max_filters=16)


def _labels(batch, num_labels=24, seed=0):
    rng = np.random.default_rng(seed)
    labels = np.zeros((batch, num_labels), "float32")
    for row in labels:
        row[rng.choice(num_labels, rng.integers(1, 4), replace=False)] = 1.0
    return labels


@pytest.mark.parametrize("image_size,upsampling", [(32, "transposed"), (64, "nearest")])
def test_generator_and_discriminator_shapes(image_size, upsampling):
    generator = ConditionalGenerator(image_size=image_size, noise_dim=16, condition_dim=8, upsampling=upsampling,
                                     **SMALL)
    noise = np.random.default_rng(0).standard_normal((3, 16)).astype("float32")
    images = generator({"noise": noise, "labels": _labels(3)})
    assert images.shape == (3, image_size, image_size, 3)
    assert np.abs(np.asarray(images)).max() <= 1
    discriminator = ConditionalDiscriminator(image_size=image_size, auxiliary=True, **SMALL)
    outputs = discriminator({"image": np.asarray(images), "labels": _labels(3)})
    assert outputs["logits"].shape == (3, 1)
    assert outputs["aux_logits"].shape == (3, 24)


def test_condition_is_expanded_to_256_and_joined_with_z():
    generator = ConditionalGenerator(noise_dim=100, condition_dim=256, **SMALL)
    assert generator.get_layer("condition_dense").kernel.shape == (24, 256)
    assert generator.get_layer("noise_condition").output.shape == (None, 356)


def test_discriminator_sees_the_condition_as_one_image_sized_channel():
    discriminator = ConditionalDiscriminator(image_size=32, **SMALL)
    assert discriminator.get_layer("condition_dense").kernel.shape == (24, 32 * 32)
    assert discriminator.get_layer("image_condition").output.shape == (None, 32, 32, 4)


def test_labels_change_the_generated_image():
    generator = ConditionalGenerator(image_size=32, noise_dim=16, condition_dim=8, **SMALL)
    noise = np.zeros((2, 16), "float32")
    labels = np.eye(24, dtype="float32")[[0, 23]]
    images = np.asarray(generator({"noise": noise, "labels": labels}), "float64")
    # Fresh N(0, 0.02) weights give tiny images; compare the change with their scale.
    assert np.abs(images[0] - images[1]).max() > 0.05 * np.abs(images).max()


def test_wgan_gp_critic_uses_layer_norm_not_batch_norm():
    critic = WGANGPCritic(image_size=32, **SMALL)
    assert any(isinstance(layer, keras.layers.LayerNormalization) for layer in critic.layers)
    assert not any(isinstance(layer, keras.layers.BatchNormalization) for layer in critic.layers)
    # LayerNorm normalises each example over (H, W, C): the score of one image must not depend on its batch.
    images = np.random.default_rng(0).uniform(-1, 1, (4, 32, 32, 3)).astype("float32")
    alone = np.asarray(critic(images[:1], training=True))
    together = np.asarray(critic(images, training=True))[:1]
    np.testing.assert_allclose(alone, together, rtol=1e-5, atol=1e-6)


def test_conditional_critic_takes_labels():
    critic = WGANGPCritic(num_labels=24, image_size=32, **SMALL)
    assert critic({"image": np.zeros((2, 32, 32, 3), "float32"), "labels": _labels(2)}).shape == (2, 1)


def test_bad_arguments_are_clear_errors():
    with pytest.raises(ValueError, match="Received: num_labels=0"):
        ConditionalDiscriminator(num_labels=0, auxiliary=True)
    with pytest.raises(ValueError, match="Received: normalization='group'"):
        ConditionalDiscriminator(normalization="group")
    with pytest.raises(ValueError, match="projection needs the condition as an input"):
        ConditionalDiscriminator(auxiliary=True, condition_input=False, projection=True)


@pytest.mark.parametrize("build", [
    lambda: ConditionalGenerator(image_size=32, noise_dim=16, condition_dim=8, **SMALL),
    lambda: ConditionalDiscriminator(image_size=32, auxiliary=True, **SMALL),
    lambda: WGANGPCritic(num_labels=24, image_size=32, **SMALL),
    lambda: ConditionalDiscriminator(image_size=32, auxiliary=True, projection=True, **SMALL),
    lambda: ConditionalGenerator(image_size=32, noise_dim=16, condition_dim=8, conditional_bn=True, **SMALL),
])
def test_keras_round_trip_gives_identical_outputs(tmp_path, build):
    model = build()
    if "noise" in model.input:
        inputs = {"noise": np.random.default_rng(1).standard_normal((2, 16)).astype("float32"), "labels": _labels(2)}
    else:
        inputs = {"image": np.random.default_rng(1).uniform(-1, 1, (2, 32, 32, 3)).astype("float32"),
                  "labels": _labels(2)}
    path = tmp_path / "model.keras"
    model.save(path)
    reloaded = keras.models.load_model(path)
    assert type(reloaded) is type(model)
    for a, b in zip(keras.tree.flatten(model(inputs)), keras.tree.flatten(reloaded(inputs))):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-6, atol=1e-6)


def test_the_acgan_discriminator_sees_the_image_alone_and_the_cgan_one_sees_the_labels():
    """An auxiliary head that could read the labels off its input would score ~0 on every fake (no signal for G)."""
    from t2i import configs
    from t2i.training.factory import build_networks

    tiny = dict(image_size=32, gf_dim=8, df_dim=8, condition_dim=8, num_labels=24)
    _, acgan_d = build_networks(configs.TrainConfig(model="acgan", **tiny))
    assert not isinstance(acgan_d.input, dict) and acgan_d.get_config()["condition_input"] is False
    assert [layer.name for layer in acgan_d.layers if "condition" in layer.name] == []
    images = np.random.default_rng(0).uniform(-1, 1, (2, 32, 32, 3)).astype("float32")
    outputs = acgan_d(images)
    assert outputs["logits"].shape == (2, 1) and outputs["aux_logits"].shape == (2, 24)
    restored = ConditionalDiscriminator.from_config(acgan_d.get_config())
    assert not isinstance(restored.input, dict)

    _, cgan_d = build_networks(configs.TrainConfig(model="cgan", **tiny))
    assert sorted(cgan_d.input) == ["image", "labels"] and cgan_d.get_config()["condition_input"] is True


def test_projection_adds_the_label_embeddings_inner_product_with_the_summed_features():
    """logit(x, y) = ψ(φ(x)) + Σ_hwf φ(x)_hwf · (y V)_f, with the aux head on φ(x) of the image alone."""
    model = ConditionalDiscriminator(image_size=32, auxiliary=True, projection=True, **SMALL)
    assert sorted(model.input) == ["image", "labels"]
    assert [layer.name for layer in model.layers if "condition" in layer.name] == []  # no label channel
    rng = np.random.default_rng(3)
    images = rng.uniform(-1, 1, (4, 32, 32, 3)).astype("float32")
    labels = _labels(4, seed=4)
    embedding = rng.normal(0, 0.5, (24, 16)).astype("float32")
    model.get_layer("projection").embedding.assign(embedding)
    outputs = model({"image": images, "labels": labels}, training=False)

    features = np.asarray(keras.Model(model.input["image"], model.get_layer("down2_lrelu").output)(images))
    unconditional = np.asarray(keras.Model(model.input["image"], model.get_layer("logits").output)(images))[:, 0]
    expected = unconditional + np.einsum("bf,bf->b", features.sum(axis=(1, 2)), labels @ embedding)
    np.testing.assert_allclose(np.asarray(outputs["logits"])[:, 0], expected, rtol=1e-4, atol=1e-4)
    # Other labels change the logit but not the auxiliary prediction, which sees the image alone.
    others = model({"image": images, "labels": _labels(4, seed=9)}, training=False)
    assert np.abs(np.asarray(others["logits"]) - np.asarray(outputs["logits"])).max() > 1e-3
    np.testing.assert_array_equal(np.asarray(others["aux_logits"]), np.asarray(outputs["aux_logits"]))


def test_factory_builds_projection_and_conditional_bn_for_label_models_only(tmp_path):
    from t2i import configs
    from t2i.training.factory import build_networks

    tiny = dict(image_size=32, gf_dim=8, df_dim=8, condition_dim=8, num_labels=24, projection=True)
    for model in ("acgan", "cgan"):
        _, discriminator = build_networks(configs.TrainConfig(model=model, **tiny))
        assert discriminator.get_config()["projection"] is True and sorted(discriminator.input) == ["image", "labels"]
    with pytest.raises(ValueError, match="projection"):
        configs.validate(configs.TrainConfig(model="dcgan", projection=True, log_dir=str(tmp_path), steps=1))
    generator, _ = build_networks(configs.TrainConfig(model="acgan", conditional_bn=True, **tiny))
    assert generator.get_config()["conditional_bn"] is True
    with pytest.raises(ValueError, match="--conditional_bn: is for label-conditioned generators"):
        configs.validate(configs.TrainConfig(model="srgan", conditional=True, conditional_bn=True,
                                             log_dir=str(tmp_path), steps=1))


def test_conditional_batch_norm_scales_and_offsets_each_channel_by_the_labels():
    """x̂·(1 + y·W_γ) + y·W_β after a BatchNorm without its own γ/β; the labels change every stage's output."""
    from t2i.models.acgan import ConditionalScaleOffset

    rng = np.random.default_rng(5)
    x = rng.standard_normal((3, 4, 4, 6)).astype("float32")
    labels = _labels(3, seed=6)
    layer = ConditionalScaleOffset()
    layer.build([x.shape, labels.shape])
    gamma, beta = rng.standard_normal((2, 24, 6)).astype("float32")
    layer.gamma.assign(gamma)
    layer.beta.assign(beta)
    expected = x * (1 + (labels @ gamma)[:, None, None, :]) + (labels @ beta)[:, None, None, :]
    np.testing.assert_allclose(np.asarray(layer([x, labels])), expected, rtol=1e-5, atol=1e-5)

    generator = ConditionalGenerator(image_size=32, noise_dim=16, condition_dim=8, conditional_bn=True, **SMALL)
    norms = [layer for layer in generator.layers if isinstance(layer, keras.layers.BatchNormalization)]
    assert len(norms) == 3 and not any(layer.center or layer.scale for layer in norms)
    assert len([layer for layer in generator.layers if isinstance(layer, ConditionalScaleOffset)]) == 3
    # At initialisation W_β = 0 and W_γ ~ N(0, 0.02): close to the plain generator's start.
    assert not np.any(generator.get_layer("up1_bn_modulation").beta.numpy())
