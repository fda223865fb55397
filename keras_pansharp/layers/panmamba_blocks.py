"""Pan-Mamba's convolutional helper blocks (channels-last).

From github.com/alexhe101/Pan-Mamba, `pan-sharpening/model/
panmamba_baseline_finalversion.py`: `HinResBlock` (the encoders),
`PatchEmbed` (the 1x1 token projection) and the half-channel exchange of
`TokenSwapMamba`. The Mamba blocks themselves are assembled in
`keras_pansharp.models.panmamba` from `keras_pansharp.layers.mamba.Mamba`.

Two modules of the reference register weights that their forward pass never
uses: `HinResBlock.identity` (a 1x1 convolution) and `PatchEmbed.norm` (a
bias-free LayerNorm; its call is commented out). They count in the reference
parameter total, so these layers create them too, as *non-trainable* weights
the call never reads: in PyTorch they get no gradient, so they never change
either, and the parameter count matches.
"""

from __future__ import annotations

import math

import keras
from keras import ops


def _torch_uniform(fan_in: int) -> keras.initializers.Initializer:
    bound = 1.0 / math.sqrt(fan_in)
    return keras.initializers.RandomUniform(-bound, bound)


def _check_image(layer, shape):
    if len(shape) != 4 or shape[-1] is None:
        raise ValueError(
            f"{type(layer).__name__} expects a (batch, H, W, channels) input with "
            f"known channels; got {tuple(shape)}."
        )


@keras.saving.register_keras_serializable(package="keras_pansharp")
class HinResBlock(keras.layers.Layer):
    """Residual block with half instance normalisation (HINet style).

    `x + lrelu(conv2(concat(IN(r[:c/2]), r[c/2:])))` with
    `r = lrelu(conv1(x))`: two 3x3 convolutions (bias) of `c` channels,
    leaky ReLU, and an affine instance normalisation (eps 1e-5, per image
    and channel over H, W) of the first half of the channels. `c` is the
    input's channel count and must be even. Holds the reference's unused
    1x1 `identity` convolution as non-trainable weights (see the module
    docstring): `2 * (9c^2 + c) + c + (c^2 + c)` weights, 19,584 for c = 32.

    Args:
        relu_slope: negative slope of the leaky ReLUs (0.2).
        **kwargs: standard `keras.layers.Layer` arguments.

    Call args:
        x: `(batch, H, W, c)`.

    Returns:
        `(batch, H, W, c)`.

    Example:
    >>> import numpy as np
    >>> block = HinResBlock()
    >>> tuple(block(np.random.rand(1, 8, 8, 32).astype("float32")).shape)
    (1, 8, 8, 32)
    >>> block.count_params()
    19584
    """

    def __init__(self, relu_slope: float = 0.2, epsilon: float = 1e-5, **kwargs):
        super().__init__(**kwargs)
        self.relu_slope = relu_slope
        self.epsilon = epsilon

    def build(self, input_shape):
        _check_image(self, input_shape)
        c = int(input_shape[-1])
        if c % 2:
            raise ValueError(f"HinResBlock needs an even channel count, got {c}.")
        self.channels = c
        self.conv_1_kernel = self.add_weight(
            shape=(3, 3, c, c), initializer=_torch_uniform(9 * c), name="conv_1_kernel"
        )
        self.conv_1_bias = self.add_weight(
            shape=(c,), initializer=_torch_uniform(9 * c), name="conv_1_bias"
        )
        self.conv_2_kernel = self.add_weight(
            shape=(3, 3, c, c), initializer=_torch_uniform(9 * c), name="conv_2_kernel"
        )
        self.conv_2_bias = self.add_weight(
            shape=(c,), initializer=_torch_uniform(9 * c), name="conv_2_bias"
        )
        self.norm_gamma = self.add_weight(
            shape=(c // 2,), initializer="ones", name="norm_gamma"
        )
        self.norm_beta = self.add_weight(
            shape=(c // 2,), initializer="zeros", name="norm_beta"
        )
        # Registered but unused by the reference forward pass (module docstring).
        self.identity_kernel = self.add_weight(
            shape=(1, 1, c, c),
            initializer=_torch_uniform(c),
            trainable=False,
            name="identity_kernel",
        )
        self.identity_bias = self.add_weight(
            shape=(c,),
            initializer=_torch_uniform(c),
            trainable=False,
            name="identity_bias",
        )
        self.built = True

    def call(self, x):
        half = self.channels // 2
        r = ops.conv(x, self.conv_1_kernel, padding="same") + self.conv_1_bias
        r = ops.leaky_relu(r, negative_slope=self.relu_slope)
        r1, r2 = r[..., :half], r[..., half:]
        mean, var = ops.moments(r1, axes=[1, 2], keepdims=True)
        r1 = (r1 - mean) * ops.rsqrt(
            var + self.epsilon
        ) * self.norm_gamma + self.norm_beta
        r = ops.concatenate([r1, r2], axis=-1)
        r = ops.conv(r, self.conv_2_kernel, padding="same") + self.conv_2_bias
        return x + ops.leaky_relu(r, negative_slope=self.relu_slope)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)

    def get_config(self):
        config = super().get_config()
        config.update({"relu_slope": self.relu_slope, "epsilon": self.epsilon})
        return config


@keras.saving.register_keras_serializable(package="keras_pansharp")
class PatchEmbed(keras.layers.Layer):
    """Pan-Mamba's token projection: a 1x1 convolution (bias), image in and out.

    The reference `PatchEmbed(patch_size=1, stride=1)` is a 1x1 `Conv2d`
    followed by flattening to tokens (done here inside `Mamba`). It also
    registers a bias-free LayerNorm it never applies; that scale is kept as
    a non-trainable, unused weight (module docstring): `c * e + e + e`
    weights, 1,088 for c = e = 32.

    Args:
        embed_dim: output channels `e`.
        **kwargs: standard `keras.layers.Layer` arguments.

    Call args:
        x: `(batch, H, W, c)`.

    Returns:
        `(batch, H, W, embed_dim)`.

    Example:
    >>> import numpy as np
    >>> layer = PatchEmbed(32)
    >>> tuple(layer(np.random.rand(1, 4, 4, 32).astype("float32")).shape)
    (1, 4, 4, 32)
    >>> layer.count_params()
    1088
    """

    def __init__(self, embed_dim: int, **kwargs):
        super().__init__(**kwargs)
        if int(embed_dim) != embed_dim or embed_dim < 1:
            raise ValueError(
                f"PatchEmbed: `embed_dim` must be a positive integer, got {embed_dim!r}"
            )
        self.embed_dim = int(embed_dim)

    def build(self, input_shape):
        _check_image(self, input_shape)
        c = int(input_shape[-1])
        self.kernel = self.add_weight(
            shape=(c, self.embed_dim), initializer=_torch_uniform(c), name="proj_kernel"
        )
        self.bias = self.add_weight(
            shape=(self.embed_dim,), initializer=_torch_uniform(c), name="proj_bias"
        )
        # Registered but unused by the reference forward pass (module docstring).
        self.norm_weight = self.add_weight(
            shape=(self.embed_dim,),
            initializer="ones",
            trainable=False,
            name="norm_weight",
        )
        self.built = True

    def call(self, x):
        return ops.matmul(x, self.kernel) + self.bias

    def compute_output_shape(self, input_shape):
        return (*tuple(input_shape)[:-1], self.embed_dim)

    def get_config(self):
        config = super().get_config()
        config.update({"embed_dim": self.embed_dim})
        return config


@keras.saving.register_keras_serializable(package="keras_pansharp")
class HalfChannelSwap(keras.layers.Layer):
    """Replace the first `c // 2` channels of `x` by those of `other`.

    `TokenSwapMamba`'s exchange: with `k = c // 2`, the MS stream becomes
    `concat(pan[..., :k], ms[..., k:])` (`layer(ms, pan)`) and the PAN stream
    `concat(ms[..., :k], pan[..., k:])` (`layer(pan, ms)`). No weights.

    Call args:
        x: `(..., c)` tensor.
        other: `(..., c)` tensor of the same shape.

    Returns:
        `concat(other[..., :c // 2], x[..., c // 2:])`, the shape of `x`.

    Example:
    >>> import numpy as np
    >>> x, other = np.zeros((1, 2, 4), "float32"), np.ones((1, 2, 4), "float32")
    >>> np.asarray(HalfChannelSwap()(x, other))[0, 0].tolist()
    [1.0, 1.0, 0.0, 0.0]
    """

    def build(self, x_shape, other_shape=None):
        if x_shape[-1] is None:
            raise ValueError("HalfChannelSwap needs a known channel count.")
        self.built = True

    def call(self, x, other):
        k = x.shape[-1] // 2
        return ops.concatenate([other[..., :k], x[..., k:]], axis=-1)

    def compute_output_shape(self, x_shape, other_shape=None):
        return tuple(x_shape)
