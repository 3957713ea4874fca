"""Config → networks, trainer and optimizers. The one place that maps config fields onto constructors."""
import keras

from t2i.models.dcgan import DCGANDiscriminator, DCGANGenerator
from t2i.training import schedules
from t2i.training.gan import GANTrainer


def build_networks(config):
    """(generator, discriminator) for `config.model`."""
    if config.model == "dcgan":
        generator = DCGANGenerator(
            image_size=config.image_size, channels=config.channels, noise_dim=config.noise_dim,
            base_filters=config.gf_dim, max_filters=config.max_filters, upsampling=config.upsampling,
            bn_epsilon=config.bn_epsilon, bn_momentum=config.bn_momentum, name="generator",
        )
        discriminator = DCGANDiscriminator(
            image_size=config.image_size, channels=config.channels, base_filters=config.df_dim,
            max_filters=config.max_filters, bn_epsilon=config.bn_epsilon, bn_momentum=config.bn_momentum,
            name="discriminator",
        )
        return generator, discriminator
    raise ValueError(f"Unknown model. Received: model={config.model!r}")


def build_generator(config):
    return build_networks(config)[0]


def build_optimizers(config, total_steps):
    def adam(learning_rate, updates_per_step):
        schedule = schedules.build_schedule(
            config.lr_schedule, learning_rate, updates_per_step, decay_steps=config.lr_decay_steps,
            rate=config.lr_decay_rate, minimum=config.lr_min, total_steps=total_steps,
        )
        return keras.optimizers.Adam(schedule, beta_1=config.beta1, beta_2=config.beta2)

    return adam(config.lr_g, config.n_gen), adam(config.lr_d, config.n_critic)


def apply_learning_rates(trainer, config):
    """Re-applies the config's constant learning rates after a restore: checkpoints carry the optimizer's
    learning-rate variable, and a user resuming with a new --lr_g / --lr_d means the new value."""
    if config.lr_schedule != "constant":
        return  # Schedules are rebuilt from the config, not restored.
    trainer.g_optimizer.learning_rate = config.lr_g
    trainer.d_optimizer.learning_rate = config.lr_d


def build_trainer(config, total_steps):
    """A compiled trainer; call inside the strategy scope."""
    generator, discriminator = build_networks(config)
    trainer = GANTrainer(
        generator, discriminator, adversarial_loss=config.loss, n_critic=config.n_critic, n_gen=config.n_gen,
        label_smoothing=config.label_smoothing, gradient_penalty_weight=config.gp_weight,
        num_samples=config.num_samples, sample_seed=config.seed,
    )
    g_optimizer, d_optimizer = build_optimizers(config, total_steps)
    trainer.compile(g_optimizer, d_optimizer, jit_compile=config.jit_compile)
    return trainer
