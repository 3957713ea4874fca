"""Config → networks, trainer and optimizers. The one place that maps config fields onto constructors."""
import contextlib
import json
import os

import keras

from t2i import configs
from t2i.data import datasets, shapes
from t2i.models.acgan import ConditionalDiscriminator, ConditionalGenerator
from t2i.models.began import BEGANDiscriminator, BEGANGenerator
from t2i.models.dcgan import DCGANDiscriminator, DCGANGenerator
from t2i.models.srgan import SRGANDiscriminator, SRGANGenerator
from t2i.models.wgan_gp import WGANGPCritic
from t2i.training import distribute, optimizers, sampling, schedules
from t2i.training.began import BEGANTrainer
from t2i.training.conditional import ACGANTrainer, ConditionalGANTrainer
from t2i.training.gan import GANTrainer
from t2i.training.replay_buffer import ReplayBuffer
from t2i.training.srgan import SRGANTrainer
from t2i.training.text_gan import HDGANTrainer, TextGANTrainer


def resolve_num_labels(config):
    """The config with `num_labels` filled in from the dataset when the networks take labels (0 otherwise)."""
    if not config.uses_labels:
        return config.replace(num_labels=0)
    if config.num_labels:
        return config
    count = datasets.label_count(config)
    if not count:
        raise ValueError(f"--model={config.model} needs labels, but --dataset={config.dataset} has none")
    return config.replace(num_labels=count)


def resolve_text(config):
    """The config with the text model's `embedding_dim` and encoder filled in from its embeddings (unchanged for
    other models). The encoder is what `t2i-sample --text` and text exports use to embed new captions."""
    if not config.uses_text:
        return config
    changes = {}
    if not config.embedding_dim:
        changes["embedding_dim"] = datasets.text_embedding_dim(config)
    if not config.text_encoder and not config.text_encoder_path:
        from t2i.text.encoders import ENCODER_MODULES

        kind, path = datasets.text_encoder_record(config)
        if kind in ENCODER_MODULES and path:
            changes.update(text_encoder=kind, text_encoder_path=path)
    return config.replace(**changes)


STAGE1_CONFIG = "stage1_config.json"


def stage1_config(config):
    """The Stage-I run's config for a stackgan_stage2 config: the copy in the Stage-II run, else the Stage-I run's."""
    from t2i import configs

    for directory, name in ((config.log_dir, STAGE1_CONFIG), (config.stage1_checkpoint, "config.json")):
        path = os.path.join(directory or "", name)
        if directory and os.path.isfile(path):
            with open(path, encoding="utf-8") as f:
                stage1 = configs.TrainConfig.from_dict(json.load(f))
            break
    else:
        raise configs.ConfigError(f"--stage1_checkpoint: no config.json in {config.stage1_checkpoint!r}; give the "
                                  "Stage-I run directory")
    if stage1.model != "stackgan_stage1":
        raise configs.ConfigError(f"--stage1_checkpoint: {config.stage1_checkpoint!r} is a {stage1.model} run, not "
                                  "stackgan_stage1")
    if stage1.image_size * 4 != config.image_size:
        raise configs.ConfigError(
            f"--image_size: Stage-II generates 4x its Stage-I's {stage1.image_size}px, i.e. {stage1.image_size * 4}. "
            f"Received: image_size={config.image_size}")
    if stage1.uses_text != config.uses_text or stage1.embedding_dim != config.embedding_dim:
        raise configs.ConfigError(
            f"--stage1_checkpoint: the Stage-I run takes {stage1.embedding_dim if stage1.uses_text else 'no'}-d "
            f"text embeddings, this run {config.embedding_dim if config.uses_text else 'none'}; use the same "
            "--embeddings (or both --nouse_text)")
    return stage1


def _text_networks(config, restore_stage1=False):
    from t2i.models import hdgan, stackgan

    embedding_dim = config.embedding_dim if config.uses_text else 0
    bn = dict(bn_epsilon=config.bn_epsilon, bn_momentum=config.bn_momentum)
    standardize = dict(standardize_embedding=config.standardize_embeddings)
    if config.model == "hdgan":
        text = dict(embedding_dim=embedding_dim, ef_dim=config.ca_dim, max_filters=config.max_filters)
        return (
            hdgan.HDGANGenerator(output_scales=config.scales, noise_dim=config.noise_dim, gf_dim=config.gf_dim,
                                 name="generator", **text),
            hdgan.HDGANDiscriminators(config.scales, shared_trunk=config.hdgan_shared_trunk, df_dim=config.df_dim,
                                      name="discriminator", **text),
        )
    if config.model == "stackgan_stage1":
        return (
            stackgan.StackGANStage1Generator(
                image_size=config.image_size, noise_dim=config.noise_dim, embedding_dim=embedding_dim,
                ef_dim=config.ca_dim, gf_dim=config.gf_dim, variant=config.stackgan_variant, name="generator",
                # --upsampling picks the simple variant's; the complex one (the paper's) is nearest by definition.
                upsampling=config.upsampling if config.stackgan_variant == "simple" else None,
                base_size=config.stackgan_base_size or None, conditional_bn=config.conditional_bn,
                ca_hidden=config.ca_hidden, **standardize, **bn),
            stackgan.StackGANStage1Discriminator(
                image_size=config.image_size, embedding_dim=embedding_dim, ef_dim=config.ca_dim,
                df_dim=config.df_dim, variant=config.stackgan_variant, name="discriminator",
                num_labels=shapes.NUM_LABELS if config.text_aux_weight > 0 else 0,
                normalization=config.resolved_normalization, projection=config.projection,
                base_size=config.stackgan_base_size or None, **standardize, **bn),
        )
    stage1_run = stage1_config(config)
    stage1, _ = _text_networks(stage1_run)
    if restore_stage1:
        import tensorflow as tf

        from t2i.training import run

        path = tf.train.latest_checkpoint(run.checkpoint_dir(config.stage1_checkpoint))
        if not path:
            from t2i import configs

            raise configs.ConfigError(f"--stage1_checkpoint: no checkpoint under "
                                      f"{run.checkpoint_dir(config.stage1_checkpoint)}")
        # The weights the Stage-I run samples with: its EMA generator's when it kept one.
        run.restore_generator_weights(stage1, stage1_run, path)
    stage1.trainable = config.fine_tune_stage1
    return (
        stackgan.StackGANStage2Generator(stage1, gf_dim=config.gf_dim, ef_dim=config.ca_dim, name="generator",
                                         ca_hidden=config.ca_hidden, **standardize, **bn),
        stackgan.StackGANStage2Discriminator(image_size=config.image_size, embedding_dim=embedding_dim,
                                             ef_dim=config.ca_dim, df_dim=config.df_dim, name="discriminator",
                                             normalization=config.resolved_normalization, **standardize, **bn),
    )


def _generator(config):
    if config.model in configs.TEXT_MODELS:
        return _text_networks(config)[0]
    common = dict(image_size=config.image_size, channels=config.channels, name="generator")
    if config.model == "began":
        return BEGANGenerator(noise_dim=config.noise_dim, hidden_dim=config.gf_dim, **common)
    if config.model == "srgan":
        return SRGANGenerator(scale=config.sr_scale, filters=config.gf_dim, residual_blocks=config.residual_blocks,
                              num_labels=config.num_labels, **common)
    dcgan_args = dict(noise_dim=config.noise_dim, base_filters=config.gf_dim, max_filters=config.max_filters,
                      upsampling=config.upsampling, bn_epsilon=config.bn_epsilon, bn_momentum=config.bn_momentum,
                      **common)
    if config.uses_labels:
        return ConditionalGenerator(num_labels=config.num_labels, condition_dim=config.condition_dim,
                                    conditional_bn=config.conditional_bn, **dcgan_args)
    return DCGANGenerator(**dcgan_args)


def _discriminator(config):
    common = dict(image_size=config.image_size, channels=config.channels, name="discriminator")
    if config.model == "began":
        return BEGANDiscriminator(noise_dim=config.noise_dim, hidden_dim=config.df_dim, **common)
    if config.model == "srgan":
        return SRGANDiscriminator(filters=config.df_dim, num_labels=config.num_labels, **common)
    dcgan_args = dict(base_filters=config.df_dim, max_filters=config.max_filters, bn_epsilon=config.bn_epsilon,
                      bn_momentum=config.bn_momentum, **common)
    normalization = config.resolved_normalization
    if config.model == "wgan_gp":
        return WGANGPCritic(num_labels=config.num_labels, normalization=normalization, **dcgan_args)
    if config.model in ("cgan", "acgan"):
        acgan = config.model == "acgan"
        return ConditionalDiscriminator(num_labels=config.num_labels, auxiliary=acgan,
                                        condition_input=not acgan or config.projection,
                                        projection=config.projection, normalization=normalization, **dcgan_args)
    if normalization == "batch":
        return DCGANDiscriminator(**dcgan_args)
    return ConditionalDiscriminator(num_labels=0, normalization=normalization, **dcgan_args)


def build_networks(config, restore_stage1=False):
    """(generator, discriminator) for `config.model`; `config.num_labels` must be resolved for labelled models and
    `embedding_dim` for text models. `restore_stage1`: load a Stage-II's Stage-I weights from its run."""
    if config.model not in configs.MODELS:
        raise ValueError(f"Unknown model. Received: model={config.model!r}")
    if config.model in configs.TEXT_MODELS:
        return _text_networks(config, restore_stage1)
    return _generator(config), _discriminator(config)


def build_generator(config):
    return _generator(config)


@contextlib.contextmanager
def precision_policy(config):
    """Keras' global dtype policy set to `config.mixed_precision` (float32 when empty; "auto" as
    `distribute.resolve_precision`) while networks are built.

    Layers take the global policy when they are constructed and keep it, so the policy only needs to be in force
    while the networks are built; restoring the previous one afterwards keeps the process-wide setting from leaking
    into whatever is built next (another run, a test, the export of a float32 generator). The networks' last layers
    are float32, so images and logits stay float32 under either mixed policy.
    """
    policy = config.mixed_precision
    if policy == "auto":  # `t2i.training.run` resolves it first and records the choice; a library caller may not
        policy = distribute.auto_precision()[0]
    previous = keras.mixed_precision.global_policy()
    keras.mixed_precision.set_global_policy(policy or "float32")
    try:
        yield
    finally:
        keras.mixed_precision.set_global_policy(previous)


def build_optimizers(config, total_steps, horizon=None):
    """(generator optimizer, discriminator optimizer): Adam on the config's schedule; under mixed_float16 each is
    wrapped in a `LossScaleOptimizer`, whose dynamic loss scale keeps float16 gradients from underflowing (the
    trainers scale their losses by it and it unscales the gradients, skipping steps whose gradients overflow).
    `horizon`: a variable holding the run's last step, which a linear schedule then follows (`--time_budget`)."""
    def adam(learning_rate, updates_per_step):
        schedule = schedules.build_schedule(
            config.lr_schedule, learning_rate, updates_per_step, decay_steps=config.lr_decay_steps,
            rate=config.lr_decay_rate, minimum=config.lr_min, total_steps=total_steps,
            hold_fraction=config.lr_hold_fraction, horizon=horizon,
        )
        optimizer = optimizers.FusedAdam(schedule, beta_1=config.beta1, beta_2=config.beta2)
        if config.mixed_precision == "mixed_float16":
            return keras.optimizers.LossScaleOptimizer(optimizer)
        return optimizer

    if config.model in ("began", "srgan"):
        return adam(config.lr_g, 1), adam(config.lr_d, 1)
    return adam(config.lr_g, config.n_gen), adam(config.lr_d, config.n_critic)


def apply_learning_rates(trainer, config):
    """Re-applies the config's constant learning rates after a restore: checkpoints carry the optimizer's
    learning-rate variable, and a user resuming with a new --lr_g / --lr_d means the new value."""
    if config.lr_schedule != "constant":
        return  # Schedules are rebuilt from the config, not restored.
    trainer.g_optimizer.learning_rate = config.lr_g
    trainer.d_optimizer.learning_rate = config.lr_d


def _replay_buffer(config):
    if not config.replay_size:
        return None
    conditions = {"label": [config.num_labels]} if config.uses_labels else {}
    if config.uses_text:
        conditions = {"embedding": [config.embedding_dim]}
    return ReplayBuffer(config.replay_size, [config.image_size, config.image_size, config.channels], conditions,
                        fraction=config.replay_fraction)


def _text_trainer(config, generator, discriminator, adversarial):
    if not config.uses_text:
        return GANTrainer(generator, discriminator, **adversarial)
    trainer_class = HDGANTrainer if config.model == "hdgan" else TextGANTrainer
    return trainer_class(
        generator, discriminator, kl_weight=config.kl_weight, matching_aware=config.matching_aware,
        interpolation_weight=config.interpolation_weight, interpolation_beta=config.interpolation_beta,
        stage1_learning_rate_scale=config.stage1_lr_scale, aux_weight=config.text_aux_weight,
        sample_embeddings=sampling.generator_inputs(config, config.num_samples, config.seed)["embedding"],
        **adversarial,
    )


def build_trainer(config, total_steps):
    """A compiled trainer for a config whose `num_labels` (and `embedding_dim`) is resolved; call inside the
    strategy scope. A Stage-II trainer starts from its Stage-I run's weights. The networks are built under the
    config's precision policy (see `precision_policy`)."""
    with precision_policy(config):
        return _build_trainer(config, total_steps)


def set_embedding_statistics(config, generator, discriminator):
    """Sets the training embeddings' per-dimension mean and std on the networks' `EmbeddingStandardization` layers
    (a Stage-II's Stage-I keeps the statistics restored from its own run); returns how many layers were set."""
    from t2i.layers.conditioning import EmbeddingStandardization

    mean, std = datasets.text_embedding_statistics(config)
    inner = getattr(generator, "stage1", None)
    skip = {id(layer) for layer in inner._flatten_layers()} if inner is not None else set()
    layers = [layer for model in (generator, discriminator) for layer in model._flatten_layers()
              if isinstance(layer, EmbeddingStandardization) and id(layer) not in skip]
    for layer in layers:
        layer.set_statistics(mean, std)
    return len(layers)


def _build_trainer(config, total_steps):
    generator, discriminator = build_networks(config, restore_stage1=True)
    if config.standardize_embeddings:
        set_embedding_statistics(config, generator, discriminator)
    common = dict(num_samples=config.num_samples, sample_seed=config.seed)
    if config.ema_decay > 0:
        # Same architecture, built again (a Stage-II's Stage-I included); the trainer copies the weights in.
        common.update(ema_generator=build_generator(config), ema_decay=config.ema_decay)
    if config.model == "began":
        trainer = BEGANTrainer(generator, discriminator, gamma=config.began_gamma, lambda_k=config.began_lambda_k,
                               **common)
    elif config.model == "srgan":
        from t2i.losses.perceptual import load_feature_network

        feature_network = None
        if config.perceptual_weights:
            feature_network = load_feature_network(config.perceptual_weights, config.perceptual_layer,
                                                   config.perceptual_network)
        sample_images, sample_labels = sampling.reference_images(config, config.num_samples, config.seed)
        trainer = SRGANTrainer(
            generator, discriminator, scale=config.sr_scale, adversarial_loss=config.loss,
            adversarial_weight=config.adversarial_weight, pixel_weight=config.pixel_weight,
            perceptual_weight=config.perceptual_weight, tv_weight=config.tv_weight, feature_network=feature_network,
            label_key="label" if config.uses_labels else None, sample_images=sample_images,
            sample_labels=sample_labels, **common,
        )
    else:
        adversarial = dict(
            adversarial_loss=config.loss, n_critic=config.n_critic, n_gen=config.n_gen,
            label_smoothing=config.label_smoothing, gradient_penalty_weight=config.gp_weight,
            replay_buffer=_replay_buffer(config), mode_seeking_weight=config.mode_seeking_weight,
            diff_augment=config.diff_augment, translation_ratio=config.translation_ratio, **common,
        )
        if config.model in configs.TEXT_MODELS:
            trainer = _text_trainer(config, generator, discriminator, adversarial)
        elif config.uses_labels:
            labelled = dict(label_key="label",
                            sample_labels=sampling.grid_conditions(config, config.num_samples, config.seed))
            if config.model == "acgan":
                trainer = ACGANTrainer(generator, discriminator, aux_weight=config.aux_weight,
                                       aux_fake_weight=config.aux_fake_weight, **labelled,
                                       **adversarial)
            else:
                trainer = ConditionalGANTrainer(generator, discriminator, **labelled, **adversarial)
        else:
            trainer = GANTrainer(generator, discriminator, **adversarial)
    trainer.step_horizon.assign(total_steps)
    # Under --time_budget the run's last step is found while it trains: the schedule follows the variable.
    horizon = trainer.step_horizon if config.time_budget > 0 else None
    g_optimizer, d_optimizer = build_optimizers(config, total_steps, horizon)
    trainer.compile(g_optimizer, d_optimizer, jit_compile=config.jit_compile)
    return trainer


def batch_keys(config):
    """The batch keys the trainer reads."""
    if config.uses_text:
        return ("image", "embedding", "class_id") + (("label",) if config.text_aux_weight > 0 else ())
    return ("image", "label") if config.uses_labels else ("image",)
