"""Sub-pixel convolution upsampling (Shi et al. 2016): a conv to r²·C channels, then this layer rearranges them.

`PixelShuffle(r)` maps [B, H, W, r²·C] → [B, r·H, r·W, C] with `tf.nn.depth_to_space`, whose channel order is
output[b, r·h + i, r·w + j, c] = input[b, h, w, (r·i + j)·C + c]. PyTorch's `nn.PixelShuffle` orders input channels
as c·r² + r·i + j instead, so kernels ported from PyTorch need their output channels permuted.
"""
import keras
import tensorflow as tf


@keras.saving.register_keras_serializable(package="t2i")
class PixelShuffle(keras.layers.Layer):
    """Rearranges depth into space: [B, H, W, scale²·C] → [B, scale·H, scale·W, C] (channels last).

    Args:
        scale: the upsampling factor r, an integer ≥ 2.
    """

    def __init__(self, scale=2, **kwargs):
        super().__init__(**kwargs)
        if not isinstance(scale, int) or isinstance(scale, bool) or scale < 2:
            raise ValueError(f"PixelShuffle scale must be an integer >= 2. Received: scale={scale!r}")
        self.scale = scale

    def build(self, input_shape):
        channels = input_shape[-1]
        if channels is not None and channels % self.scale**2:
            raise ValueError(
                f"PixelShuffle({self.scale}) needs input channels divisible by {self.scale**2}. "
                f"Received: input_shape={tuple(input_shape)}"
            )
        self.built = True

    def call(self, inputs):
        return tf.nn.depth_to_space(inputs, self.scale)

    def compute_output_shape(self, input_shape):
        batch, height, width, channels = input_shape
        scaled = [None if size is None else size * self.scale for size in (height, width)]
        return (batch, *scaled, None if channels is None else channels // self.scale**2)

    def get_config(self):
        config = super().get_config()
        config["scale"] = self.scale
        return config
