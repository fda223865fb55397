"""Fast, result-preserving building blocks for PanTiny and performance defaults.

Everything here computes *the same function* as the paper's formulation (see
`tests/test_perf_paths.py`, which checks outputs and gradients against the
straightforward reference code) but lays the work out so that fewer tensors
are materialised on CPU:

- `pointwise_conv`: a 1x1 convolution as one 2-D matmul (its gradient is two
  matmuls; TensorFlow's `Conv2D` backward for 1x1 kernels is ~1.5x slower).
- `channel_layer_norm`: LayerNorm over channels per pixel, computed in
  float32, with a hand-written backward pass on TensorFlow (the autodiff graph
  of mean/variance has ~3x more kernels).
- `channel_attention`: the "transposed" multi-head channel attention without
  any transpose of the (pixels x channels) activations: one Gram matmul over
  pixels for all heads, the L2 normalisation of q and k applied to the tiny
  (C x C) Gram matrix instead of the activations, heads separated by a
  block-diagonal `-inf` mask before the softmax, and one matmul back.
- `default_jit_compile`: the `jit_compile` value the library uses for
  `Model.compile`, chosen per backend and device from measurements.

Mixed precision: all of them accept `float16`/`bfloat16` activations (Keras
`mixed_float16` / `mixed_bfloat16` policies); normalisations, the Gram scaling
and the softmax run in float32 and the result is cast back.
"""

from __future__ import annotations

import functools

import keras
import numpy as np
from keras import ops

__all__ = [
    "channel_attention",
    "channel_layer_norm",
    "default_jit_compile",
    "has_accelerator",
    "pointwise_conv",
]


# ----------------------------------------------------------------- jit defaults
def has_accelerator() -> bool:
    """Whether the current Keras backend sees a GPU/TPU.

    Returns:
        `True` when the backend (TensorFlow, JAX or PyTorch) lists a non-CPU
        device.
    """
    backend = keras.backend.backend()
    try:
        if backend == "tensorflow":
            import tensorflow as tf

            return any(
                d.device_type != "CPU" for d in tf.config.list_physical_devices()
            )
        if backend == "jax":
            import jax

            return any(d.platform != "cpu" for d in jax.devices())
        if backend == "torch":
            import torch

            return bool(torch.cuda.is_available())
    except Exception:  # pragma: no cover - device query failures mean CPU
        return False
    return False


def default_jit_compile(
    backend: str | None = None, accelerator: bool | None = None
) -> bool:
    """The `jit_compile` value to pass to `Model.compile` for PanTiny-like models.

    Measured on a 2-core AVX2/AVX-512 CPU (see `benchmarks/bench_vs_torch.py`):
    with TensorFlow, XLA makes the training step several times *slower* on CPU
    (depthwise convolutions and layer norms compile to naive loops), so the
    default is `False` there; on GPUs XLA fuses the element-wise chains and is
    the better choice. JAX always compiles (`False` would run op by op), and
    the PyTorch backend runs eagerly.

    Args:
        backend: Keras backend name; default `keras.backend.backend()`.
        accelerator: whether a GPU/TPU is used; default: detected with
            `has_accelerator()` (only when `backend` is the active backend).

    Returns:
        `True` or `False`.

    Example:
    >>> model.compile(optimizer="adam", loss="mae",
    ...               jit_compile=default_jit_compile())  # doctest: +SKIP
    """
    backend = backend or keras.backend.backend()
    if backend == "jax":
        return True
    if backend == "torch":
        return False
    if accelerator is None:
        accelerator = has_accelerator() if backend == keras.backend.backend() else False
    return bool(accelerator)


# ------------------------------------------------------------------- 1x1 conv
def pointwise_conv(x, kernel):
    """1x1 convolution without bias as a single matmul.

    Args:
        x: `(..., C_in)` channels-last tensor.
        kernel: `(C_in, C_out)` or `(1, 1, C_in, C_out)` kernel.

    Returns:
        `(..., C_out)` tensor in the dtype of `x`.
    """
    kernel = ops.cast(kernel, x.dtype)
    if len(kernel.shape) == 4:
        kernel = ops.reshape(kernel, kernel.shape[2:])
    c_in, c_out = kernel.shape
    if keras.backend.backend() == "jax":
        # XLA picks its own layout: a plain dot on the last axis is best.
        return ops.matmul(x, kernel)
    shape = ops.shape(x)
    y = ops.matmul(ops.reshape(x, (-1, c_in)), kernel)
    return ops.reshape(y, (*shape[:-1], c_out))


# ----------------------------------------------------------------- layer norm
def _layer_norm_reference(x, gamma, beta, epsilon):
    mean = ops.mean(x, axis=-1, keepdims=True)
    xc = x - mean
    inv = ops.rsqrt(ops.mean(ops.square(xc), axis=-1, keepdims=True) + epsilon)
    return xc * inv * gamma + beta


@functools.cache
def _tf_normalize_fn(epsilon: float):
    import tensorflow as tf

    @tf.custom_gradient
    def normalize(x):
        mean = tf.reduce_mean(x, axis=-1, keepdims=True)
        xc = x - mean
        inv = tf.math.rsqrt(tf.reduce_mean(xc * xc, axis=-1, keepdims=True) + epsilon)
        xhat = xc * inv

        def grad(dy):
            return inv * (
                dy
                - tf.reduce_mean(dy, axis=-1, keepdims=True)
                - xhat * tf.reduce_mean(dy * xhat, axis=-1, keepdims=True)
            )

        return xhat, grad

    return normalize


def channel_layer_norm(x, gamma, beta, epsilon: float = 1e-5):
    """LayerNorm over the last (channel) axis, per pixel, with weight and bias.

    `y = (x - mean) / sqrt(var + epsilon) * gamma + beta` with the biased
    variance, exactly as the paper's `WithBias_LayerNorm`. Computed in
    float32 (cast back to the dtype of `x`). On TensorFlow the normalisation
    has a hand-written gradient (same values as autodiff, ~2x faster on CPU);
    on PyTorch it uses the fused `layer_norm` kernel.

    Args:
        x: `(..., C)` tensor.
        gamma: `(C,)` scale.
        beta: `(C,)` offset.
        epsilon: variance epsilon.

    Returns:
        Tensor of the shape and dtype of `x`.
    """
    dtype = x.dtype
    x32 = ops.cast(x, "float32")
    gamma = ops.cast(gamma, "float32")
    beta = ops.cast(beta, "float32")
    backend = keras.backend.backend()
    if backend == "tensorflow":
        y = _tf_normalize_fn(float(epsilon))(x32) * gamma + beta
    elif backend == "torch":
        y = ops.layer_normalization(x32, gamma, beta, axis=-1, epsilon=epsilon)
    else:
        y = _layer_norm_reference(x32, gamma, beta, epsilon)
    return ops.cast(y, dtype)


# ------------------------------------------------------------------ attention
@functools.cache
def _head_mask(channels: int, num_heads: int) -> np.ndarray:
    d = channels // num_heads
    mask = np.full((channels, channels), -np.inf, dtype=np.float32)
    for h in range(num_heads):
        mask[h * d : (h + 1) * d, h * d : (h + 1) * d] = 0.0
    return mask


def channel_attention(q, k, v, temperature, num_heads: int, epsilon: float = 1e-12):
    """Multi-head "transposed" (channel) attention of the paper, transpose-free.

    Reference formulation (per image, per head h with `d = C / num_heads`
    channels): reshape q, k, v to `(d, pixels)`, L2-normalise q and k along
    pixels (`t / max(||t||, epsilon)`), `A = softmax(q k^T * temperature[h])`
    over the last axis, `out = A v`, heads concatenated along channels.

    Here: `G = q^T k` for all channels at once (one matmul over pixels),
    `G / (||q_i|| ||k_j||)` replaces normalising the activations, a
    block-diagonal `-inf` mask confines each softmax row to its head, and
    `out = v A^T` is one matmul back in channels-last layout.

    Args:
        q: `(B, H, W, C)` queries.
        k: `(B, H, W, C)` keys.
        v: `(B, H, W, C)` values.
        temperature: `(num_heads,)` learnable temperatures.
        num_heads: number of heads; `C` must be divisible by it.
        epsilon: lower bound of the L2 norms (the paper's `F.normalize`).

    Returns:
        `(B, H, W, C)` tensor in the dtype of `v`.
    """
    channels = q.shape[-1]
    if channels is None or channels % num_heads:
        raise ValueError(
            f"channel_attention: channels ({channels}) must be known and "
            f"divisible by num_heads ({num_heads})."
        )
    shape = ops.shape(v)
    b = shape[0]
    q2 = ops.reshape(q, (b, -1, channels))
    k2 = ops.reshape(k, (b, -1, channels))
    v2 = ops.reshape(v, (b, -1, channels))
    # The Gram matrix sums over all pixels: float32 even under float16 policies
    # (it would overflow float16 on large scenes).
    q32 = ops.cast(q2, "float32")
    k32 = ops.cast(k2, "float32")
    gram = ops.matmul(ops.transpose(q32, (0, 2, 1)), k32)
    nq = ops.maximum(ops.sqrt(ops.sum(ops.square(q32), axis=1)), epsilon)
    nk = ops.maximum(ops.sqrt(ops.sum(ops.square(k32), axis=1)), epsilon)
    t = ops.repeat(ops.cast(temperature, "float32"), channels // num_heads)
    # (t_i / nq_i) is a row scale: one (B, C, 1) tensor and one (B, 1, C).
    logits = gram * ops.expand_dims(t / nq, -1) / ops.expand_dims(nk, 1)
    if num_heads > 1:
        logits = logits + _head_mask(channels, num_heads)
    attn = ops.cast(ops.softmax(logits, axis=-1), v.dtype)
    out = ops.matmul(v2, ops.transpose(attn, (0, 2, 1)))
    return ops.reshape(out, shape)
