"""Config → networks, trainer and optimizers. The one place that maps config fields onto constructors."""
import keras

from t2i.data import datasets
from t2i.models.acgan import ConditionalDiscriminator, ConditionalGenerator
from t2i.models.began import BEGANDiscriminator, BEGANGenerator
from t2i.models.dcgan import DCGANDiscriminator, DCGANGenerator
from t2i.models.srgan import SRGANDiscriminator, SRGANGenerator
from t2i.models.wgan_gp import WGANGPCritic
from t2i.training import sampling, schedules
from t2i.training.began import BEGANTrainer
from t2i.training.conditional import ACGANTrainer, ConditionalGANTrainer
from t2i.training.gan import GANTrainer
from t2i.training.replay_buffer import ReplayBuffer
from t2i.training.srgan import SRGANTrainer


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


def _generator(config):
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
        return ConditionalGenerator(num_labels=config.num_labels, condition_dim=config.condition_dim, **dcgan_args)
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
        return ConditionalDiscriminator(num_labels=config.num_labels, auxiliary=config.model == "acgan",
                                        normalization=normalization, **dcgan_args)
    if normalization == "batch":
        return DCGANDiscriminator(**dcgan_args)
    return ConditionalDiscriminator(num_labels=0, normalization=normalization, **dcgan_args)


def build_networks(config):
    """(generator, discriminator) for `config.model`; `config.num_labels` must be resolved for labelled models."""
    if config.model not in ("dcgan", "began", "cgan", "acgan", "wgan_gp", "srgan"):
        raise ValueError(f"Unknown model. Received: model={config.model!r}")
    return _generator(config), _discriminator(config)


def build_generator(config):
    return _generator(config)


def build_optimizers(config, total_steps):
    def adam(learning_rate, updates_per_step):
        schedule = schedules.build_schedule(
            config.lr_schedule, learning_rate, updates_per_step, decay_steps=config.lr_decay_steps,
            rate=config.lr_decay_rate, minimum=config.lr_min, total_steps=total_steps,
        )
        return keras.optimizers.Adam(schedule, beta_1=config.beta1, beta_2=config.beta2)

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
    return ReplayBuffer(config.replay_size, [config.image_size, config.image_size, config.channels], conditions,
                        fraction=config.replay_fraction)


def build_trainer(config, total_steps):
    """A compiled trainer for a config whose `num_labels` is resolved; call inside the strategy scope."""
    generator, discriminator = build_networks(config)
    common = dict(num_samples=config.num_samples, sample_seed=config.seed)
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
            replay_buffer=_replay_buffer(config), **common,
        )
        if config.uses_labels:
            labelled = dict(label_key="label",
                            sample_labels=sampling.grid_conditions(config, config.num_samples, config.seed))
            if config.model == "acgan":
                trainer = ACGANTrainer(generator, discriminator, aux_weight=config.aux_weight, **labelled,
                                       **adversarial)
            else:
                trainer = ConditionalGANTrainer(generator, discriminator, **labelled, **adversarial)
        else:
            trainer = GANTrainer(generator, discriminator, **adversarial)
    g_optimizer, d_optimizer = build_optimizers(config, total_steps)
    trainer.compile(g_optimizer, d_optimizer, jit_compile=config.jit_compile)
    return trainer


def batch_keys(config):
    """The batch keys the trainer reads."""
    return ("image", "label") if config.uses_labels else ("image",)
