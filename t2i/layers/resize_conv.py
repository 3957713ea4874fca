"""Nearest-neighbour 2× upsampling followed by a 3×3 "same" convolution, computed as one transposed convolution.

The resize-conv block (Odena et al. 2016) — `UpSampling2D(2, "nearest")` then `Conv2D(filters, 3, padding="same")` —
is a linear map of the low-resolution input in which every output pixel reads only 2×2 input pixels: per axis,

    y[2i]     = W[0]·x[i−1] + (W[1] + W[2])·x[i]
    y[2i + 1] = (W[0] + W[1])·x[i] + W[2]·x[i+1]

which is a stride-2 transposed convolution with the 4-tap kernel T = (W[2], W[1] + W[2], W[0] + W[1], W[0]) per axis
(T = M·W·Mᵀ in 2-D with M below). It does 16 multiply-adds per input pixel and channel pair where the resize-conv
does 36, and never materialises the upsampled tensor, nor the Tile / Sum pair that resizing and its gradient cost.

`NearestUpsampleConv2D` holds the same 3×3 kernel (and bias) as the Conv2D it replaces, so the function, the
initialisation and the weights are those of the two-layer block, up to float rounding; the fused kernel is derived
from them on every call (a [16, 9] matrix times the 9 taps), so gradients reach the 3×3 weights.
"""
import keras
import numpy as np
from keras import ops

# Row k of M: how much of the 3×3 kernel's taps (W[0], W[1], W[2]) transposed-conv tap k carries, along one axis.
_TAPS = np.array([[0, 0, 1], [0, 1, 1], [1, 1, 0], [1, 0, 0]], "float32")


# T[a, b] = Σ_pq M[a, p] M[b, q] W[p, q]: one [16, 9] matrix (M ⊗ M) applied to the 9 taps.
_TAPS_2D = np.kron(_TAPS, _TAPS)


def fused_kernel(kernel):
    """[3, 3, in, out] resize-conv kernel → the [4, 4, out, in] kernel of the equivalent stride-2 transposed conv."""
    _, _, channels_in, channels_out = kernel.shape
    taps = ops.convert_to_tensor(_TAPS_2D, dtype=kernel.dtype)
    fused = ops.matmul(taps, ops.reshape(kernel, (9, channels_in * channels_out)))
    return ops.transpose(ops.reshape(fused, (4, 4, channels_in, channels_out)), (0, 1, 3, 2))


@keras.saving.register_keras_serializable(package="t2i")
class NearestUpsampleConv2D(keras.layers.Conv2D):
    """`UpSampling2D(2, interpolation="nearest")` + `Conv2D(filters, 3, padding="same")` in one layer (module
    docstring): it takes the low-resolution input and returns [N, 2H, 2W, filters] (channels-last)."""

    def __init__(self, filters, kernel_size=3, **kwargs):
        def plain(value):  # a saved config holds lists where the constructor got ints or tuples
            return tuple(value) if isinstance(value, list) else value

        for key, allowed in (("strides", (1, (1, 1))), ("padding", ("same",)), ("dilation_rate", (1, (1, 1))),
                             ("groups", (1,)), ("data_format", (None, "channels_last"))):
            if plain(kwargs.get(key, allowed[0])) not in allowed:
                raise ValueError(f"NearestUpsampleConv2D supports only {key}={allowed[0]!r}. "
                                 f"Received: {key}={kwargs[key]!r}")
        if plain(kernel_size) not in (3, (3, 3)):
            raise ValueError(f"NearestUpsampleConv2D supports only kernel_size=3. Received: kernel_size={kernel_size!r}")
        kwargs.update(padding="same")
        super().__init__(filters, 3, **kwargs)

    def call(self, inputs):
        outputs = ops.conv_transpose(inputs, fused_kernel(self.kernel), strides=2, padding="same",
                                     data_format="channels_last")
        if self.use_bias:
            outputs = ops.add(outputs, self.bias)
        if self.activation is not None:
            outputs = self.activation(outputs)
        return outputs

    def compute_output_shape(self, input_shape):
        batch, height, width = input_shape[:3]
        return (batch, None if height is None else 2 * height, None if width is None else 2 * width, self.filters)
