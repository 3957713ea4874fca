"""The WGAN-GP critic (Gulrajani et al. 2017): the DCGAN discriminator with LayerNormalization instead of BatchNorm.

BatchNorm makes each critic score depend on the other examples of the batch, so the per-example gradient penalty no
longer constrains the function it is meant to; the paper recommends layer normalisation. The critic returns an
unbounded score (no sigmoid). It is unconditional with `num_labels=0`, or takes labels / text embeddings as an extra
image-sized channel like the cGAN discriminator. The generator is `DCGANGenerator` or `ConditionalGenerator`.
"""
import keras

from t2i.models.acgan import ConditionalDiscriminator


@keras.saving.register_keras_serializable(package="t2i")
class WGANGPCritic(ConditionalDiscriminator):
    """A `ConditionalDiscriminator` whose normalisation defaults to "layer" and which has no auxiliary head."""

    def __init__(self, num_labels=0, image_size=64, channels=3, base_filters=64, max_filters=512,
                 normalization="layer", **kwargs):
        kwargs.pop("auxiliary", None)
        super().__init__(num_labels=num_labels, image_size=image_size, channels=channels, base_filters=base_filters,
                         max_filters=max_filters, normalization=normalization, auxiliary=False, **kwargs)
