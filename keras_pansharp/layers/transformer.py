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
import numpy as np
from keras import ops

from keras_pansharp.utils import perf


class GlobalStatisticsCollected(Exception):
    """Raised by a `ChannelAttention` in `"collect"` mode to end the pass."""


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
        # Float32 statistics (also under mixed precision) and, on TensorFlow, a
        # hand-written gradient: same values as the formula above, ~2x faster
        # training on CPU (`keras_pansharp.utils.perf.channel_layer_norm`).
        return perf.channel_layer_norm(x, self.gamma, self.beta, self.epsilon)

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

    Global statistics: step 3-4 make `A` depend on the whole image through
    `G = sum_pixels q k^T`, `sum_pixels q^2` and `sum_pixels k^2` only
    (per image, i.e. per batch element); everything else is per pixel. For
    exact tiled inference (`keras_pansharp.predict_scene`) the attribute
    `global_stats_mode` (default `None`: the normal call, unchanged) may be
    set, for eager calls only, to `("collect", mask)` with a `(B, H, W)` 0/1
    mask: the layer stores `global_stats = (G, sum q^2, sum k^2)` over the
    masked pixels as NumPy arrays `(B, dim, dim), (B, dim), (B, dim)` and
    raises `GlobalStatisticsCollected` to end the forward pass; or to
    `("frozen", A)` with `A` from `attention_from_stats` (`(B, dim, dim)` or
    `(dim, dim)`): the layer applies that `A` instead of its own.

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
        # Exact tiled inference (`keras_pansharp.predict_scene`); see the
        # "Global statistics" section of the docstring. Not part of the config.
        self.global_stats_mode = None
        self.global_stats = None

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
        # Same maths as steps 1-5, laid out for speed (tests/test_perf_paths.py):
        # the qkv kernels are sliced instead of the 3*dim activation, 1x1 convs
        # are matmuls, and `perf.channel_attention` works on channels-last
        # (pixels, channels) views without transposes, normalising the tiny
        # Gram matrix instead of q and k.
        dim = self.dim
        kernel = self.qkv.kernel
        dw_kernel = self.qkv_dwconv.kernel
        # One op per part (q, k, v): they have separate consumers, and on JAX
        # three backward passes measured faster than one over 3 * dim channels.
        q, k, v = (
            perf.pointwise_depthwise(
                x,
                kernel[..., i * dim : (i + 1) * dim],
                dw_kernel[:, :, i * dim : (i + 1) * dim],
            )[0]
            for i in range(3)
        )
        if self.global_stats_mode is None:
            out = perf.channel_attention(q, k, v, self.temperature, self.num_heads)
        else:
            out = self._global_stats_call(q, k, v)
        return perf.pointwise_conv(out, self.project_out.kernel)

    def _global_stats_call(self, q, k, v):
        """The `"collect"` / `"frozen"` modes (eager calls only)."""
        kind, value = self.global_stats_mode
        dim = self.dim
        shape = ops.shape(v)
        b = shape[0]
        if kind == "collect":
            mask = ops.reshape(ops.convert_to_tensor(value, "float32"), (b, -1, 1))
            q2 = ops.cast(ops.reshape(q, (b, -1, dim)), "float32") * mask
            k2 = ops.cast(ops.reshape(k, (b, -1, dim)), "float32") * mask
            self.global_stats = tuple(
                ops.convert_to_numpy(t)
                for t in (
                    ops.matmul(ops.transpose(q2, (0, 2, 1)), k2),
                    ops.sum(ops.square(q2), axis=1),
                    ops.sum(ops.square(k2), axis=1),
                )
            )
            raise GlobalStatisticsCollected(self.name)
        if kind != "frozen":
            raise ValueError(
                f"ChannelAttention.global_stats_mode must be None, ('collect', "
                f"mask) or ('frozen', attention); got {self.global_stats_mode!r}."
            )
        attn = ops.cast(ops.convert_to_tensor(value), v.dtype)
        if len(attn.shape) == 2:
            attn = ops.expand_dims(attn, 0)
        v2 = ops.reshape(v, (b, -1, dim))
        out = ops.matmul(v2, ops.transpose(attn, (0, 2, 1)))
        return ops.reshape(out, shape)

    def attention_from_stats(self, gram, sq_q, sq_k):
        """Attention matrices from image-wide statistics (NumPy, float64).

        Args:
            gram: `(B, dim, dim)` `sum_pixels q_i k_j` of each image.
            sq_q: `(B, dim)` `sum_pixels q_i^2`.
            sq_k: `(B, dim)` `sum_pixels k_j^2`.

        Returns:
            `(B, dim, dim)` float32 block-diagonal (one block per head)
            row-stochastic `A` with `out = A v` per pixel, exactly the matrix
            the normal call computes from the same image.
        """
        gram = np.asarray(gram, np.float64)
        nq = np.maximum(np.sqrt(np.asarray(sq_q, np.float64)), 1e-12)
        nk = np.maximum(np.sqrt(np.asarray(sq_k, np.float64)), 1e-12)
        d = self.dim // self.num_heads
        t = np.repeat(np.asarray(ops.convert_to_numpy(self.temperature), np.float64), d)
        logits = gram * (t / nq)[..., :, None] / nk[..., None, :]
        attn = np.zeros_like(logits)
        for h in range(self.num_heads):
            blk = logits[..., h * d : (h + 1) * d, h * d : (h + 1) * d]
            blk = np.exp(blk - blk.max(axis=-1, keepdims=True))
            attn[..., h * d : (h + 1) * d, h * d : (h + 1) * d] = blk / blk.sum(
                axis=-1, keepdims=True
            )
        return attn.astype(np.float32)

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
        # `dwconv(project_in(x))` split in halves (`perf.pointwise_depthwise`:
        # per half with split kernels on TF/PyTorch, no 2*hidden activation is
        # sliced; one fused op on JAX/CPU), then the fused GELU gate.
        x1, x2 = perf.pointwise_depthwise(
            x, self.project_in.kernel, self.dwconv.kernel, splits=2
        )
        return perf.pointwise_conv(perf.gelu_gate(x1, x2), self.project_out.kernel)

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
