"""PanTiny's transformer layers (Restormer-style, channels-last, no biases).

REFERENCE §7: a transformer block is `x + Attn(LN(x))` then `x + FFN(LN(x))`,
where LN normalises over channels per pixel, Attn is channel ("transposed")
multi-head attention and FFN is a gated depthwise feed-forward network.
All convolutions are bias-free. Kernels are initialised like PyTorch's
default convolution init, U(-1/sqrt(fan_in), 1/sqrt(fan_in)), with the
per-group fan-in for depthwise convolutions.
"""

from __future__ import annotations

import keras
from keras import ops


def torch_conv_initializer(fan_in_scale: float = 1.0):
    """`U(-1/sqrt(fan_in), 1/sqrt(fan_in))`, PyTorch's default conv init.

    Keras computes a depthwise kernel's fan-in as `kh * kw * channels`;
    PyTorch uses `kh * kw` (one input channel per group). Pass
    `fan_in_scale=channels` for depthwise kernels to match PyTorch.
    """
    return keras.initializers.VarianceScaling(
        scale=fan_in_scale / 3.0, mode="fan_in", distribution="uniform"
    )


def _pointwise(filters: int, name: str) -> keras.layers.Conv2D:
    return keras.layers.Conv2D(
        filters,
        1,
        use_bias=False,
        kernel_initializer=torch_conv_initializer(),
        name=name,
    )


def _depthwise(channels: int, name: str) -> keras.layers.DepthwiseConv2D:
    return keras.layers.DepthwiseConv2D(
        3,
        padding="same",
        use_bias=False,
        depthwise_initializer=torch_conv_initializer(channels),
        name=name,
    )


def _check_rank4(layer, input_shape):
    if len(input_shape) != 4 or input_shape[-1] is None:
        raise ValueError(
            f"{type(layer).__name__} expects input of shape (batch, H, W, "
            f"channels) with known channels; got {tuple(input_shape)}."
        )


@keras.saving.register_keras_serializable(package="keras_pansharp")
class ChannelLayerNorm(keras.layers.Layer):
    """Layer normalisation over the channels of each pixel (with bias).

    `y = (x - mean_c(x)) / sqrt(var_c(x) + epsilon) * gamma + beta`, with the
    biased variance over the channel axis, as Restormer's `WithBias`
    LayerNorm (PanTiny).

    Args:
        epsilon: added to the variance, default 1e-5.
        **kwargs: standard `keras.layers.Layer` arguments.

    Input shape:
        `(batch, H, W, channels)` (any rank; the last axis is normalised).

    Output shape:
        Same as the input.

    Example:
    >>> x = np.random.rand(2, 8, 8, 28).astype("float32")
    >>> tuple(ChannelLayerNorm()(x).shape)
    (2, 8, 8, 28)
    """

    def __init__(self, epsilon: float = 1e-5, **kwargs):
        super().__init__(**kwargs)
        self.epsilon = float(epsilon)

    def build(self, input_shape):
        channels = input_shape[-1]
        if channels is None:
            raise ValueError(
                f"ChannelLayerNorm needs a known channel dimension; got "
                f"{tuple(input_shape)}."
            )
        self.gamma = self.add_weight(
            name="gamma", shape=(channels,), initializer="ones"
        )
        self.beta = self.add_weight(name="beta", shape=(channels,), initializer="zeros")

    def call(self, x):
        mean = ops.mean(x, axis=-1, keepdims=True)
        centred = x - mean
        var = ops.mean(ops.square(centred), axis=-1, keepdims=True)
        x_hat = centred * ops.rsqrt(var + self.epsilon)
        return x_hat * ops.cast(self.gamma, x.dtype) + ops.cast(self.beta, x.dtype)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)

    def get_config(self):
        config = super().get_config()
        config.update({"epsilon": self.epsilon})
        return config


@keras.saving.register_keras_serializable(package="keras_pansharp")
class ChannelAttention(keras.layers.Layer):
    """Multi-head channel ("transposed") self-attention (Restormer MDTA).

    1. `qkv = DWConv3x3(Conv1x1(x))`, `dim -> 3 dim`, split into q, k, v
       (in that channel order);
    2. per head (channels split head-major: channel `head * d + c`), view q,
       k, v as `(d, pixels)` with `d = dim / num_heads`;
    3. L2-normalise q and k along pixels (`x / max(||x||, 1e-12)`);
    4. `A = softmax(q k^T * temperature[head])` over the last (channel) axis,
       a `(d, d)` matrix per head; `out = A v`;
    5. `Conv1x1` `dim -> dim`.

    The temperature is one learnable scalar per head, initialised to 1. The
    cost is linear in the number of pixels. No convolution has a bias.

    Args:
        num_heads: number of heads; must divide the channel count.
        **kwargs: standard `keras.layers.Layer` arguments.

    Input shape:
        `(batch, H, W, dim)`.

    Output shape:
        `(batch, H, W, dim)`.

    Example:
    >>> x = np.random.rand(2, 8, 8, 28).astype("float32")
    >>> tuple(ChannelAttention(num_heads=2)(x).shape)
    (2, 8, 8, 28)
    """

    def __init__(self, num_heads: int = 2, **kwargs):
        super().__init__(**kwargs)
        if int(num_heads) != num_heads or num_heads < 1:
            raise ValueError(
                f"`num_heads` must be a positive integer, got {num_heads}."
            )
        self.num_heads = int(num_heads)

    def build(self, input_shape):
        _check_rank4(self, input_shape)
        dim = int(input_shape[-1])
        if dim % self.num_heads:
            raise ValueError(
                f"ChannelAttention: channels ({dim}) must be divisible by "
                f"num_heads ({self.num_heads})."
            )
        self.dim = dim
        self.temperature = self.add_weight(
            name="temperature", shape=(self.num_heads,), initializer="ones"
        )
        self.qkv = _pointwise(3 * dim, "qkv")
        self.qkv.build(input_shape)
        self.qkv_dwconv = _depthwise(3 * dim, "qkv_dwconv")
        self.qkv_dwconv.build(tuple(input_shape[:-1]) + (3 * dim,))
        self.project_out = _pointwise(dim, "project_out")
        self.project_out.build(input_shape)

    def call(self, x):
        shape = ops.shape(x)
        dim, heads = self.dim, self.num_heads
        head_dim = dim // heads
        qkv = self.qkv_dwconv(self.qkv(x))
        # (B, N, heads, head_dim) with N = H * W pixels.
        qkv = ops.reshape(qkv, (shape[0], -1, 3, heads, head_dim))
        q, k, v = qkv[:, :, 0], qkv[:, :, 1], qkv[:, :, 2]
        eps = ops.cast(1e-12, x.dtype)
        q = q / ops.maximum(
            ops.sqrt(ops.sum(ops.square(q), axis=1, keepdims=True)), eps
        )
        k = k / ops.maximum(
            ops.sqrt(ops.sum(ops.square(k), axis=1, keepdims=True)), eps
        )
        # attn[b, h, c, d] = sum_n q[b, n, h, c] k[b, n, h, d]
        attn = ops.einsum("bnhc,bnhd->bhcd", q, k)
        temperature = ops.cast(self.temperature, x.dtype)
        attn = attn * ops.reshape(temperature, (1, heads, 1, 1))
        attn = ops.softmax(attn, axis=-1)
        out = ops.einsum("bhcd,bnhd->bnhc", attn, v)
        out = ops.reshape(out, (shape[0], shape[1], shape[2], dim))
        return self.project_out(out)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)

    def get_config(self):
        config = super().get_config()
        config.update({"num_heads": self.num_heads})
        return config


@keras.saving.register_keras_serializable(package="keras_pansharp")
class GatedDepthwiseFFN(keras.layers.Layer):
    """Gated depthwise feed-forward network (Restormer GDFN).

    `Conv1x1(dim -> 2 hidden)`, `DWConv3x3`, split into halves `x1, x2`,
    `GELU(x1) * x2` (exact, erf-based GELU), `Conv1x1(hidden -> dim)`, with
    `hidden = int(dim * expansion_factor)`. No biases.

    Args:
        expansion_factor: hidden width relative to `dim`, default 2.0
            (PanTiny: 28 -> 112 -> split 56 -> 28).
        **kwargs: standard `keras.layers.Layer` arguments.

    Input shape:
        `(batch, H, W, dim)`.

    Output shape:
        `(batch, H, W, dim)`.

    Example:
    >>> x = np.random.rand(2, 8, 8, 28).astype("float32")
    >>> tuple(GatedDepthwiseFFN()(x).shape)
    (2, 8, 8, 28)
    """

    def __init__(self, expansion_factor: float = 2.0, **kwargs):
        super().__init__(**kwargs)
        if expansion_factor <= 0:
            raise ValueError(
                f"`expansion_factor` must be positive, got {expansion_factor}."
            )
        self.expansion_factor = float(expansion_factor)

    def build(self, input_shape):
        _check_rank4(self, input_shape)
        dim = int(input_shape[-1])
        hidden = int(dim * self.expansion_factor)
        self.hidden = hidden
        self.project_in = _pointwise(2 * hidden, "project_in")
        self.project_in.build(input_shape)
        self.dwconv = _depthwise(2 * hidden, "dwconv")
        self.dwconv.build(tuple(input_shape[:-1]) + (2 * hidden,))
        self.project_out = _pointwise(dim, "project_out")
        self.project_out.build(tuple(input_shape[:-1]) + (hidden,))

    def call(self, x):
        h = self.dwconv(self.project_in(x))
        x1, x2 = h[..., : self.hidden], h[..., self.hidden :]
        return self.project_out(ops.gelu(x1, approximate=False) * x2)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)

    def get_config(self):
        config = super().get_config()
        config.update({"expansion_factor": self.expansion_factor})
        return config


@keras.saving.register_keras_serializable(package="keras_pansharp")
class TransformerBlock(keras.layers.Layer):
    """PanTiny's transformer block: `x + Attn(LN(x))`, then `x + FFN(LN(x))`.

    Args:
        num_heads: heads of the channel attention.
        expansion_factor: FFN hidden width relative to the channels.
        epsilon: LayerNorm epsilon (1e-5).
        **kwargs: standard `keras.layers.Layer` arguments.

    Input shape:
        `(batch, H, W, dim)`.

    Output shape:
        `(batch, H, W, dim)`.

    Example:
    >>> x = np.random.rand(2, 8, 8, 28).astype("float32")
    >>> block = TransformerBlock(num_heads=2)
    >>> tuple(block(x).shape), block.count_params()
    ((2, 8, 8, 28), 9718)
    """

    def __init__(
        self,
        num_heads: int = 2,
        expansion_factor: float = 2.0,
        epsilon: float = 1e-5,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.num_heads = int(num_heads)
        self.expansion_factor = float(expansion_factor)
        self.epsilon = float(epsilon)
        self.norm1 = ChannelLayerNorm(epsilon, name="norm1")
        self.attn = ChannelAttention(num_heads, name="attn")
        self.norm2 = ChannelLayerNorm(epsilon, name="norm2")
        self.ffn = GatedDepthwiseFFN(expansion_factor, name="ffn")

    def build(self, input_shape):
        _check_rank4(self, input_shape)
        for layer in (self.norm1, self.attn, self.norm2, self.ffn):
            layer.build(input_shape)

    def call(self, x):
        x = x + self.attn(self.norm1(x))
        return x + self.ffn(self.norm2(x))

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "num_heads": self.num_heads,
                "expansion_factor": self.expansion_factor,
                "epsilon": self.epsilon,
            }
        )
        return config
