"""StackGAN Stage-I/II networks: the paper's layout, tiny configs, unconditional variants, round trips, gradients."""
import keras
import numpy as np
import pytest
import tensorflow as tf

from t2i.layers.conditioning import ConditioningAugmentation
from t2i.losses.matching import kl_divergence
from t2i.models import stackgan
from t2i.models.stackgan import (StackGANStage1Discriminator, StackGANStage1Generator, StackGANStage2Discriminator,
                                 StackGANStage2Generator)

SMALL_G = dict(image_size=16, gf_dim=8, embedding_dim=12, noise_dim=6, ef_dim=4)
SMALL_D = dict(image_size=16, df_dim=8, embedding_dim=12, ef_dim=4)


def _generator_inputs(model, batch=2, seed=0):
    rng = np.random.default_rng(seed)
    noise = rng.standard_normal((batch, model.noise_dim)).astype("float32")
    if model.embedding_dim == 0:
        return noise
    return {"noise": noise, "embedding": rng.standard_normal((batch, model.embedding_dim)).astype("float32")}


def _discriminator_inputs(model, batch=2, seed=0):
    rng = np.random.default_rng(seed)
    image = rng.uniform(-1, 1, (batch, model.image_size, model.image_size, 3)).astype("float32")
    if model.embedding_dim == 0:
        return image
    return {"image": image, "embedding": rng.standard_normal((batch, model.embedding_dim)).astype("float32")}


def _ca_layers(model):
    is_generator = hasattr(model, "noise_dim")
    layers = [model.get_layer("ca")] if is_generator and model.embedding_dim else []
    if isinstance(model, StackGANStage2Generator):
        layers += _ca_layers(model.stage1)
    return layers


@pytest.mark.parametrize("variant", stackgan.VARIANTS)
def test_stage1_networks_at_the_paper_size(variant):
    generator = StackGANStage1Generator(variant=variant)
    # c (128) ++ z (100) → 4 × 4 × 1024, then 512, 256, 128 and the image.
    assert generator.get_layer("ca").dense.kernel.shape == (1024, 256)
    assert generator.get_layer("project").kernel.shape == (228, 4 * 4 * 1024)
    assert [generator.get_layer(f"stage{i}_bn").output.shape[1:] for i in (1, 2, 3)] == [
        (8, 8, 512), (16, 16, 256), (32, 32, 128)]
    images = np.asarray(generator(_generator_inputs(generator)))
    assert images.shape == (2, 64, 64, 3) and np.abs(images).max() <= 1

    discriminator = StackGANStage1Discriminator(variant=variant)
    assert discriminator.get_layer("text_dense").kernel.shape == (1024, 128)
    # 4 × 4 × 512 image features ++ the tiled 128-d text code, a 1 × 1 joint conv, and a 4 × 4 logit conv.
    assert discriminator.get_layer("image_text").output.shape == (None, 4, 4, 640)
    assert discriminator.get_layer("logit_conv").kernel.shape == (4, 4, 512, 1)
    logits = discriminator({"image": images, "embedding": _generator_inputs(generator)["embedding"]})
    assert logits.shape == (2, 1) and np.isfinite(np.asarray(logits)).all()


def test_the_variants_differ_as_in_the_original_code():
    simple = StackGANStage1Generator(variant="simple", **SMALL_G)
    complex_ = StackGANStage1Generator(variant="complex", **SMALL_G)
    kinds = lambda model: {type(layer).__name__ for layer in model.layers}  # noqa: E731
    assert "Conv2DTranspose" in kinds(simple) and "Add" not in kinds(simple)
    assert "UpSampling2D" in kinds(complex_) and "Conv2DTranspose" not in kinds(complex_)
    # Residual bottlenecks at s/16 (gf·2, gf·2 → gf·8) and s/8 (gf, gf → gf·4).
    assert complex_.get_layer("stage0_residual_0_conv").kernel.shape == (1, 1, 64, 16)
    assert complex_.get_layer("stage1_residual_2_conv").kernel.shape == (3, 3, 8, 32)
    discriminator = StackGANStage1Discriminator(variant="complex", **SMALL_D)
    assert discriminator.get_layer("down3_residual_add").output.shape == (None, 1, 1, 64)


def test_simple_generator_takes_nearest_upsampling_and_keeps_it_through_its_config():
    nearest = StackGANStage1Generator(variant="simple", upsampling="nearest", **SMALL_G)
    kinds = {type(layer).__name__ for layer in nearest.layers}
    assert "UpSampling2D" in kinds and "Conv2DTranspose" not in kinds and "Add" not in kinds
    # Same stage widths as the transposed simple network: only the ×2 operator changes (3×3 conv after resize).
    assert nearest.get_layer("stage1_conv").kernel.shape == (3, 3, 64, 32)
    assert nearest.get_layer("to_image_conv").kernel.shape == (3, 3, 8, 3)
    clone = StackGANStage1Generator.from_config(nearest.get_config())
    assert clone.upsampling == "nearest" and clone.count_params() == nearest.count_params()
    # A config saved before the argument existed keeps the variant's own operator.
    old = {key: value for key, value in StackGANStage1Generator(variant="simple", **SMALL_G).get_config().items()
           if key != "upsampling"}
    assert StackGANStage1Generator.from_config(old).upsampling == "transposed"
    with pytest.raises(ValueError, match="upsampling must be"):
        StackGANStage1Generator(variant="simple", upsampling="bilinear", **SMALL_G)


@pytest.mark.parametrize("variant", stackgan.VARIANTS)
def test_a_larger_base_size_drops_the_last_stages_of_both_stage1_networks(variant):
    """At 32×32 the paper's S/16 gives a 2×2 map; base 4 starts the generator and ends the discriminator at 4×4 with
    the paper's widths from the top (gf·8 → gf·4 → gf·2 → image; df·1, ·2, ·4)."""
    generator = StackGANStage1Generator(image_size=32, gf_dim=8, embedding_dim=12, noise_dim=6, ef_dim=4,
                                        variant=variant, base_size=4)
    assert generator.get_layer("project").kernel.shape == (10, 4 * 4 * 64)
    assert [generator.get_layer(f"stage{i}_bn").output.shape[1:] for i in (1, 2)] == [(8, 8, 32), (16, 16, 16)]
    assert "stage3_bn" not in [layer.name for layer in generator.layers]
    images = np.asarray(generator(_generator_inputs(generator), training=True))
    assert images.shape == (2, 32, 32, 3)
    discriminator = StackGANStage1Discriminator(image_size=32, df_dim=8, embedding_dim=12, ef_dim=4,
                                                variant=variant, base_size=4, num_labels=3, normalization="layer")
    last = "down2_residual_add" if variant == "complex" else "down2_lrelu"
    assert discriminator.get_layer(last).output.shape == (None, 4, 4, 32)
    assert "down3_conv" not in [layer.name for layer in discriminator.layers]
    assert discriminator.get_layer("logit_conv").kernel.shape == (4, 4, 64, 1)
    outputs = discriminator({"image": images, "embedding": _generator_inputs(generator)["embedding"]})
    assert outputs["logits"].shape == (2, 1) and outputs["aux_logits"].shape == (2, 3)
    # The default is the paper's S/16, spelt out or not.
    default = StackGANStage1Generator(image_size=32, gf_dim=8, embedding_dim=12, noise_dim=6, ef_dim=4)
    assert default.get_layer("project").kernel.shape == (10, 2 * 2 * 64)
    assert StackGANStage1Generator(image_size=32, gf_dim=8, embedding_dim=12, noise_dim=6, ef_dim=4,
                                   base_size=2).count_params() == default.count_params()
    for bad in (3, 16, 0, 1):
        with pytest.raises(ValueError, match="base_size must divide image_size into 4, 8 or 16"):
            StackGANStage1Discriminator(image_size=32, df_dim=8, embedding_dim=12, base_size=bad)


@pytest.mark.parametrize("variant", stackgan.VARIANTS)
def test_conditional_bn_scales_and_offsets_every_stage_by_the_ca_code(variant):
    """Each modulated BatchNorm gives BN(x)·(1 + c·W_γ) + c·W_β with c the CA code of the same call."""
    generator = StackGANStage1Generator(image_size=32, gf_dim=8, embedding_dim=12, noise_dim=6, ef_dim=4,
                                        variant=variant, base_size=4, conditional_bn=True)
    names = [layer.name for layer in generator.layers if layer.name.endswith("_modulation")]
    assert names == ["project_bn_modulation", "stage1_bn_modulation", "stage2_bn_modulation"]
    rng = np.random.default_rng(8)
    for name in names:
        layer = generator.get_layer(name)
        layer.gamma.assign(rng.normal(0, 0.3, layer.gamma.shape).astype("float32"))
        layer.beta.assign(rng.normal(0, 0.3, layer.beta.shape).astype("float32"))
    probe = keras.Model(generator.input, [generator.get_layer("ca").output]
                        + [generator.get_layer(name.replace("_modulation", "")).output for name in names]
                        + [generator.get_layer(name).output for name in names])
    inputs = _generator_inputs(generator, batch=3, seed=9)
    code, *outputs = (np.asarray(value) for value in probe(inputs, training=True))
    for name, normalized, modulated in zip(names, outputs[:3], outputs[3:]):
        layer = generator.get_layer(name)
        shape = (-1,) + (1,) * (normalized.ndim - 2) + (normalized.shape[-1],)
        expected = (normalized * (1 + (code @ np.asarray(layer.gamma)).reshape(shape))
                    + (code @ np.asarray(layer.beta)).reshape(shape))
        np.testing.assert_allclose(modulated, expected, rtol=1e-4, atol=1e-5, err_msg=name)
    clone = StackGANStage1Generator.from_config(generator.get_config())
    assert clone.conditional_bn and clone.count_params() == generator.count_params()
    with pytest.raises(ValueError, match="conditional_bn needs a text input"):
        StackGANStage1Generator(image_size=32, gf_dim=8, embedding_dim=0, noise_dim=6, conditional_bn=True)


def test_the_base_size_flag_reaches_both_stage1_networks_and_is_checked_first(tmp_path):
    from t2i import configs
    from t2i.training import factory

    embeddings = tmp_path / "embeddings.h5"
    embeddings.touch()
    tiny = dict(model="stackgan_stage1", dataset="shapes", image_size=32, gf_dim=4, df_dim=4, ca_dim=4, noise_dim=4,
                embedding_dim=8, embeddings=str(embeddings), log_dir=str(tmp_path), steps=1)
    generator, discriminator = factory.build_networks(configs.TrainConfig(stackgan_base_size=4, conditional_bn=True,
                                                                          **tiny))
    assert generator.base_size == discriminator.base_size == 4 and generator.conditional_bn
    assert generator.get_layer("project").kernel.shape[1] == 4 * 4 * 32
    configs.validate(configs.TrainConfig(stackgan_base_size=4, **tiny))
    with pytest.raises(configs.ConfigError, match="^--stackgan_base_size: must be image_size/16, /8 or /4"):
        configs.validate(configs.TrainConfig(stackgan_base_size=16, **tiny))
    with pytest.raises(configs.ConfigError, match="^--stackgan_base_size: shapes the stackgan_stage1 networks"):
        configs.validate(configs.TrainConfig(**dict(tiny, model="hdgan", stackgan_base_size=4)))
    configs.validate(configs.TrainConfig(conditional_bn=True, **tiny))
    with pytest.raises(configs.ConfigError, match="^--conditional_bn: is for"):  # the unconditional StackGAN
        configs.validate(configs.TrainConfig(conditional_bn=True, use_text=False, **tiny))
    assert "stackgan_base_size" in configs.config.ARCHITECTURE_FIELDS  # a resumed run cannot change it


@pytest.mark.parametrize("variant", stackgan.VARIANTS)
def test_small_stage1_networks(variant):
    generator = StackGANStage1Generator(variant=variant, **SMALL_G)
    inputs = _generator_inputs(generator, batch=3)
    images = np.asarray(generator(inputs, training=True))
    assert images.shape == (3, 16, 16, 3) and np.abs(images).max() <= 1
    # The code is sampled anew on every call, at inference too.
    a, b = (np.asarray(generator(inputs, training=False)) for _ in range(2))
    assert np.abs(a - b).max() > 0
    discriminator = StackGANStage1Discriminator(variant=variant, **SMALL_D)
    logits = discriminator({"image": images, "embedding": inputs["embedding"]})
    assert logits.shape == (3, 1)
    # The logit depends on the embedding: the matching-aware discriminator reads the text.
    other = discriminator({"image": images, "embedding": -3 * inputs["embedding"]})
    assert np.abs(np.asarray(logits) - np.asarray(other)).max() > 1e-6


def test_ca_statistics_are_the_ca_layers():
    generator = StackGANStage1Generator(**SMALL_G)
    embedding = _generator_inputs(generator)["embedding"]
    mean, log_sigma = generator.ca_statistics(embedding)
    assert mean.shape == (2, 4) and log_sigma.shape == (2, 4)
    layer = generator.get_layer("ca")
    assert isinstance(layer, ConditioningAugmentation) and layer.units == 4
    hidden = embedding @ layer.dense.kernel.numpy() + layer.dense.bias.numpy()
    hidden = np.where(hidden > 0, hidden, 0.2 * hidden)
    np.testing.assert_allclose(np.asarray(mean), hidden[:, :4], rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(np.asarray(log_sigma), hidden[:, 4:], rtol=1e-5, atol=1e-7)


def test_the_ca_hidden_flag_reaches_the_generators_ca_and_is_checked_first(tmp_path):
    from t2i import configs
    from t2i.training import factory

    embeddings = tmp_path / "embeddings.h5"
    embeddings.touch()
    tiny = dict(model="stackgan_stage1", dataset="shapes", image_size=32, gf_dim=4, df_dim=4, ca_dim=4, noise_dim=4,
                embedding_dim=8, embeddings=str(embeddings), log_dir=str(tmp_path), steps=1)
    generator, _ = factory.build_networks(configs.TrainConfig(ca_hidden=12, **tiny))
    ca = generator.get_layer("ca")
    assert generator.ca_hidden == 12 and ca.hidden.kernel.shape == (8, 12) and ca.dense.kernel.shape == (12, 8)
    plain, _ = factory.build_networks(configs.TrainConfig(**tiny))
    assert plain.get_layer("ca").hidden is None
    configs.validate(configs.TrainConfig(ca_hidden=12, **tiny))
    with pytest.raises(configs.ConfigError, match="^--ca_hidden: must be >= 0"):
        configs.validate(configs.TrainConfig(ca_hidden=-1, **tiny))
    with pytest.raises(configs.ConfigError, match="^--ca_hidden: applies to the text-conditioned StackGAN"):
        configs.validate(configs.TrainConfig(**dict(tiny, model="hdgan", ca_hidden=12)))
    assert "ca_hidden" in configs.config.ARCHITECTURE_FIELDS


def test_stage2_refines_a_16px_stage1_image_to_64px():
    stage1 = StackGANStage1Generator(variant="complex", **SMALL_G)
    generator = StackGANStage2Generator(stage1, gf_dim=8)
    assert generator.stage1 is stage1 and generator.image_size == 64
    # One downsampling at least: 16 → 8, the code tiled there, then 8 → 16 → 32 → 64 (16, 8, 8 filters).
    assert generator.get_layer("image_code").output.shape == (None, 8, 8, 16 + 4)
    assert [generator.get_layer(f"up{i}_conv").kernel.shape[-1] for i in range(3)] == [16, 8, 8]
    assert generator.get_layer("ca") is not stage1.get_layer("ca")
    inputs = _generator_inputs(generator)
    images = np.asarray(generator(inputs))
    assert images.shape == (2, 64, 64, 3) and np.abs(images).max() <= 1
    discriminator = StackGANStage2Discriminator(image_size=64, df_dim=8, embedding_dim=12, ef_dim=4)
    assert discriminator.get_layer("image_text").output.shape == (None, 4, 4, 64 + 4)
    assert discriminator({"image": images, "embedding": inputs["embedding"]}).shape == (2, 1)


def test_stage2_layout_at_the_paper_size():
    # 64 → 16: gf·2, gf·4; up 16 → 256: gf·2, gf, gf/2, gf/4 (the original's hr_generator).
    assert stackgan.stage2_encoder_widths(64, 16, 128) == [256, 512]
    assert stackgan.stage2_upsampling_widths(16, 256, 128) == [256, 128, 64, 32]
    # 256 px down to 4 × 4 (df … df·32), then 3 × 3 convs back to df·16 and df·8, as the PyTorch STAGE2_D.
    discriminator = StackGANStage2Discriminator(image_size=256, df_dim=2, embedding_dim=12, ef_dim=4)
    assert discriminator.get_layer("down5_bn").output.shape == (None, 4, 4, 64)
    assert [discriminator.get_layer(f"reduce{i}_conv").kernel.shape for i in (0, 1)] == [
        (3, 3, 64, 32), (3, 3, 32, 16)]


def test_unconditional_networks_take_plain_tensors():
    generator = StackGANStage1Generator(**dict(SMALL_G, embedding_dim=0))
    assert not isinstance(generator.input, dict)
    assert not any(isinstance(layer, ConditioningAugmentation) for layer in generator.layers)
    images = np.asarray(generator(_generator_inputs(generator)))
    assert images.shape == (2, 16, 16, 3)
    with pytest.raises(ValueError, match="Received: embedding_dim=0"):
        generator.ca_statistics(np.zeros((2, 12), "float32"))
    discriminator = StackGANStage1Discriminator(**dict(SMALL_D, embedding_dim=0))
    assert discriminator(images).shape == (2, 1)
    stage2 = StackGANStage2Generator(generator, gf_dim=8)
    assert stage2(_generator_inputs(stage2)).shape == (2, 64, 64, 3)
    assert StackGANStage2Discriminator(image_size=64, df_dim=8, embedding_dim=0)(
        np.zeros((1, 64, 64, 3), "float32")).shape == (1, 1)


def test_bad_arguments_are_clear_errors():
    with pytest.raises(ValueError, match="Received: variant='deep'"):
        StackGANStage1Generator(variant="deep", **SMALL_G)
    with pytest.raises(ValueError, match="Received: image_size=8"):
        StackGANStage1Discriminator(**dict(SMALL_D, image_size=8))
    with pytest.raises(ValueError, match="Received: stage1_generator=StackGANStage1Discriminator"):
        StackGANStage2Generator(StackGANStage1Discriminator(**SMALL_D))
    with pytest.raises(ValueError, match="Received: image_size=32"):
        StackGANStage2Discriminator(image_size=32)
    with pytest.raises(ValueError, match="Received: normalization='group'"):
        StackGANStage1Discriminator(normalization="group", **SMALL_D)


@pytest.mark.parametrize("variant", stackgan.VARIANTS)
def test_layer_normalised_discriminator_scores_each_image_on_its_own(variant):
    # BatchNorm (the original) in training mode mixes batch-mates into every score; "layer" must not, so a fake
    # batch and a real batch are judged by the same function.
    batch = _discriminator_inputs(StackGANStage1Discriminator(**SMALL_D), batch=4, seed=1)
    other = _discriminator_inputs(StackGANStage1Discriminator(**SMALL_D), batch=4, seed=2)
    mixed = {key: np.concatenate([batch[key][:1], other[key][1:]]) for key in batch}
    for normalization, independent in (("batch", False), ("layer", True), ("none", True)):
        keras.utils.set_random_seed(0)
        model = StackGANStage1Discriminator(variant=variant, normalization=normalization, num_labels=5, **SMALL_D)
        kinds = {type(layer).__name__ for layer in model.layers}
        has_batch_norm = any(isinstance(layer, keras.layers.BatchNormalization) for layer in model.layers)
        assert has_batch_norm == (normalization == "batch")
        has_layer_norm = any(isinstance(layer, keras.layers.LayerNormalization) for layer in model.layers)
        assert has_layer_norm == (normalization == "layer")
        first, first_mixed = (np.asarray(model(b, training=True)["aux_logits"])[0] for b in (batch, mixed))
        assert np.allclose(first, first_mixed, atol=1e-6) == independent, normalization
        assert model.get_config()["normalization"] == normalization
    stage2 = StackGANStage2Discriminator(image_size=64, df_dim=8, embedding_dim=12, ef_dim=4, normalization="layer")
    assert not any(isinstance(layer, keras.layers.BatchNormalization) for layer in stage2.layers)


def test_projection_discriminator_adds_the_embedding_inner_product_with_the_summed_image_features():
    """logit(x, e) = ψ(φ(x)) + Σ_hwf φ(x)_hwf · (ê V)_f, ê the standardised embedding; no text is concatenated, and
    the TAC head (on φ(x)) does not see the text."""
    model = StackGANStage1Discriminator(projection=True, num_labels=3, normalization="layer",
                                        standardize_embedding=True, **SMALL_D)
    assert model.get_config()["projection"] is True
    assert not [layer.name for layer in model.layers if layer.name.startswith(("text", "image_text"))]
    rng = np.random.default_rng(5)
    mean, std = rng.normal(0, 1, 12).astype("float32"), rng.uniform(0.5, 2, 12).astype("float32")
    model.get_layer(stackgan.STANDARDIZATION_LAYER).set_statistics(mean, std)
    embedding_weights = rng.normal(0, 0.3, (12, 64)).astype("float32")
    model.get_layer("projection").embedding.assign(embedding_weights)
    inputs = _discriminator_inputs(model, batch=3, seed=6)
    outputs = model(inputs, training=False)

    features = np.asarray(keras.Model(model.input["image"], model.get_layer("down3_lrelu").output)(inputs["image"]))
    assert features.shape == (3, 1, 1, 64)
    unconditional = np.asarray(keras.Model(model.input["image"], model.get_layer("logits").output)(inputs["image"]))
    standardized = (inputs["embedding"] - mean) / std
    expected = unconditional[:, 0] + np.einsum("bf,bf->b", features.sum(axis=(1, 2)), standardized @ embedding_weights)
    np.testing.assert_allclose(np.asarray(outputs["logits"])[:, 0], expected, rtol=1e-4, atol=1e-4)
    other = dict(inputs, embedding=np.roll(inputs["embedding"], 1, axis=0))
    others = model(other, training=False)
    assert np.abs(np.asarray(others["logits"]) - np.asarray(outputs["logits"])).max() > 1e-3
    np.testing.assert_array_equal(np.asarray(others["aux_logits"]), np.asarray(outputs["aux_logits"]))
    with pytest.raises(ValueError, match="projection needs a text input"):
        StackGANStage1Discriminator(image_size=16, df_dim=8, embedding_dim=0, projection=True)


def test_the_projection_flag_builds_the_stage1_projection_discriminator_and_is_refused_elsewhere(tmp_path):
    from t2i import configs
    from t2i.training import factory

    embeddings = tmp_path / "embeddings.h5"
    embeddings.touch()  # validation only checks that the file exists
    tiny = dict(dataset="shapes", image_size=16, gf_dim=4, df_dim=4, ca_dim=4, noise_dim=4, embedding_dim=8,
                projection=True, embeddings=str(embeddings), log_dir=str(tmp_path), steps=1)
    _, discriminator = factory.build_networks(configs.TrainConfig(model="stackgan_stage1", **tiny))
    assert discriminator.projection and discriminator.get_layer("projection") is not None
    for model in ("hdgan", "dcgan"):
        with pytest.raises(configs.ConfigError, match="--projection: is for"):
            configs.validate(configs.TrainConfig(model=model, **dict(tiny, image_size=64)))
    configs.validate(configs.TrainConfig(model="stackgan_stage1", **dict(tiny, image_size=32)))
    with pytest.raises(configs.ConfigError, match="--projection: is for"):  # unconditional StackGAN: no text
        configs.validate(configs.TrainConfig(model="stackgan_stage1", use_text=False, **dict(tiny, image_size=32)))


@pytest.mark.parametrize("build", [
    lambda: StackGANStage1Generator(variant="complex", ca_seed=3, **SMALL_G),
    lambda: StackGANStage1Discriminator(variant="complex", **SMALL_D),
    lambda: StackGANStage1Discriminator(variant="complex", normalization="layer", num_labels=3, **SMALL_D),
    lambda: StackGANStage1Discriminator(projection=True, standardize_embedding=True, num_labels=3, **SMALL_D),
    lambda: StackGANStage1Generator(variant="simple", upsampling="nearest", ca_seed=3, base_size=4,
                                    conditional_bn=True, **SMALL_G),
    lambda: StackGANStage1Generator(variant="simple", ca_seed=3, ca_hidden=10, conditional_bn=True, **SMALL_G),
    lambda: StackGANStage2Generator(StackGANStage1Generator(**SMALL_G), gf_dim=8, num_residual=1),
    lambda: StackGANStage2Generator(StackGANStage1Generator(ca_hidden=5, **SMALL_G), gf_dim=8, num_residual=1,
                                    ca_hidden=6),
    lambda: StackGANStage2Discriminator(image_size=64, df_dim=8, embedding_dim=12, ef_dim=4),
], ids=["stage1_g", "stage1_d", "stage1_d_layer_norm", "stage1_d_projection", "stage1_g_base4_cbn",
        "stage1_g_ca_hidden", "stage2_g", "stage2_g_ca_hidden", "stage2_d"])
def test_keras_round_trip_gives_identical_outputs(tmp_path, build):
    model = build()
    if isinstance(model, StackGANStage2Generator):
        model.stage1.trainable = False
    inputs = _generator_inputs(model) if hasattr(model, "noise_dim") else _discriminator_inputs(model)
    model(inputs)  # advances the CA noise: the reload must not depend on a fresh seed state.
    path = tmp_path / "model.keras"
    model.save(path)
    reloaded = keras.models.load_model(path)
    assert type(reloaded) is type(model)
    assert reloaded.get_config() == model.get_config()
    # The CA noise is the only randomness: start both from the same generator state, then compare the full path.
    for original, restored in zip(_ca_layers(model), _ca_layers(reloaded)):
        restored.seed_generator.state.assign(original.seed_generator.state.value)
        np.testing.assert_array_equal(np.asarray(restored.statistics(inputs["embedding"])[0]),
                                      np.asarray(original.statistics(inputs["embedding"])[0]))
    tf.nest.map_structure(lambda a, b: np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-5, atol=1e-6),
                          reloaded(inputs), model(inputs))
    if isinstance(model, StackGANStage2Generator):
        assert isinstance(reloaded.stage1, StackGANStage1Generator) and not reloaded.stage1.trainable


@pytest.mark.parametrize("variant", stackgan.VARIANTS)
def test_gradients_reach_every_stage1_weight(variant):
    generator = StackGANStage1Generator(variant=variant, **SMALL_G)
    discriminator = StackGANStage1Discriminator(variant=variant, **SMALL_D)
    inputs = {key: tf.constant(value) for key, value in _generator_inputs(generator, batch=4).items()}
    variables = generator.trainable_variables + discriminator.trainable_variables
    with tf.GradientTape() as tape:
        images = generator(inputs, training=True)
        logits = discriminator({"image": images, "embedding": inputs["embedding"]}, training=True)
        kl = kl_divergence(*generator.ca_statistics(inputs["embedding"]))
        loss = tf.reduce_mean(tf.nn.softplus(-logits)) + 2.0 * tf.reduce_mean(kl)
    grads = tape.gradient(loss, variables)
    missing = [v.path for v, g in zip(variables, grads) if g is None or not np.any(np.asarray(g))]
    assert not missing


def test_freezing_stage1_removes_its_weights_from_stage2_training():
    stage1 = StackGANStage1Generator(**SMALL_G)
    generator = StackGANStage2Generator(stage1, gf_dim=8, num_residual=1)
    stage1_ids = {id(v) for v in stage1.trainable_variables}
    assert stage1_ids <= {id(v) for v in generator.trainable_variables}
    stage1.trainable = False
    assert not stage1_ids & {id(v) for v in generator.trainable_variables}
    inputs = _generator_inputs(generator)
    with tf.GradientTape() as tape:
        loss = tf.reduce_mean(generator(inputs, training=True))
    grads = tape.gradient(loss, generator.trainable_variables)
    assert grads and all(g is not None for g in grads)


@pytest.mark.parametrize("conditional_bn", [False, True])
def test_fused_nearest_upsampling_is_the_same_generator_with_fewer_layers(conditional_bn):
    kwargs = dict(SMALL_G, variant="simple", ca_seed=1, base_size=4, conditional_bn=conditional_bn)
    nearest = StackGANStage1Generator(upsampling="nearest", **kwargs)
    fused = StackGANStage1Generator(upsampling="nearest_fused", **kwargs)
    kinds = {type(layer).__name__ for layer in fused.layers}
    assert "NearestUpsampleConv2D" in kinds and "UpSampling2D" not in kinds
    resizes = sum(isinstance(layer, keras.layers.UpSampling2D) for layer in nearest.layers)
    assert resizes == 2 and len(fused.layers) == len(nearest.layers) - resizes  # one layer fewer per upsampling
    assert [w.shape for w in fused.weights] == [w.shape for w in nearest.weights]
    fused.set_weights(nearest.get_weights())
    inputs = _generator_inputs(nearest, batch=3)
    np.testing.assert_allclose(fused(inputs, training=False).numpy(), nearest(inputs, training=False).numpy(),
                               rtol=1e-4, atol=1e-5)
    clone = StackGANStage1Generator.from_config(fused.get_config())
    assert clone.upsampling == "nearest_fused" and clone.count_params() == fused.count_params()


@pytest.mark.parametrize("variant, upsampling, expected", [("simple", "nearest", "nearest"),
                                                           ("simple", "nearest_fused", "nearest_fused"),
                                                           ("simple", "transposed", "transposed"),
                                                           ("complex", "transposed", "nearest")])
def test_the_upsampling_flag_reaches_the_simple_stage1_generator_only(variant, upsampling, expected):
    from t2i import configs
    from t2i.training import factory

    config = configs.TrainConfig(model="stackgan_stage1", dataset="shapes", image_size=16, gf_dim=4, df_dim=4,
                                 ca_dim=4, noise_dim=4, embedding_dim=8, stackgan_variant=variant,
                                 upsampling=upsampling, log_dir="unused")
    generator, _ = factory.build_networks(config)
    assert generator.upsampling == expected
