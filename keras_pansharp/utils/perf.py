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

JAX on CPU (`keras.backend.backend() == "jax"` and `jax.default_backend() ==
"cpu"`; GPUs/TPUs keep the plain ops, which XLA fuses well there). XLA:CPU
compiles a grouped (depthwise) convolution and the kernel gradient of a 3x3
convolution into slow code, and fuses cheap producers into every consumer.
Measured on the 2-core development machine (`benchmarks/profile_jax.py`), a
PanTiny training step was 5-14x slower than with TensorFlow. Fast paths, each
switchable in `JAX_FAST_PATHS`:

- `depthwise_conv3x3` / `pointwise_depthwise` (`"depthwise"`,
  `"pointwise_depthwise"`): nine shifted multiply-adds (one fused loop,
  ~5-20x faster than XLA's grouped convolution), written out once (a
  conditional keeps XLA from recomputing them in every consumer), the 1x1
  conv applied to the zero-padded input (no padded copy of the wide
  activation), and a hand-written backward pass: the depthwise kernel
  gradient as one 9-output reduction over image columns, the 1x1 kernel
  gradient as one 2-D matmul.
- `conv3x3` (`"conv3x3"`): the kernel gradient as nine matmuls against one
  transposed copy of the input (XLA's own is slower on CPU).
- `gelu_gate` (`"gelu_gate"`): `gelu(a) * b` with the erf form and a
  one-pass backward (autodiff splits it over several passes around `erfc`).

`retain_freed_host_memory` (opt-in, process-wide) addresses the other half of
the gap on Linux: glibc hands XLA fresh pages for every step.

Mixed precision: all of them accept `float16`/`bfloat16` activations (Keras
`mixed_float16` / `mixed_bfloat16` policies); normalisations, the Gram scaling,
the softmax, the depthwise sums and the kernel gradients of the JAX paths run
in float32 and the result is cast back.
"""

from __future__ import annotations

import functools

import keras
import numpy as np
from keras import ops

__all__ = [
    "JAX_FAST_PATHS",
    "channel_attention",
    "channel_layer_norm",
    "conv3x3",
    "default_jit_compile",
    "depthwise_conv3x3",
    "gelu_gate",
    "has_accelerator",
    "pointwise_conv",
    "pointwise_depthwise",
    "retain_freed_host_memory",
]


#: JAX-on-CPU fast paths in use (all on; `benchmarks/profile_jax.py` and the
#: tests switch them off to compare against the plain formulation). Read when
#: a function is traced: set before the first call of a model.
JAX_FAST_PATHS: dict[str, bool] = {
    "depthwise": True,
    "pointwise_depthwise": True,
    "gelu_gate": True,
    "conv3x3": True,
}


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


# ------------------------------------------------------------- host memory
def retain_freed_host_memory(jax_only: bool = False) -> bool:
    """Let glibc keep freed memory for reuse instead of returning it (opt-in).

    XLA on CPU (JAX) allocates the temporary buffers of a compiled step anew
    at every execution. glibc serves such large blocks with fresh pages
    (`mmap`, or heap growth from worker-thread arenas) and gives them back to
    the OS when they are freed, so every training step page-faults its whole
    working set in again: measured 1.4-1.6 M minor faults and several seconds
    of system time per PanTiny step (batch 16, 128^2) on the 2-core
    development VM. TensorFlow's allocator keeps its memory and is not
    affected.

    This sets `M_ARENA_MAX=1`, `M_MMAP_MAX=0` and `M_TRIM_THRESHOLD=-1` with
    `mallopt`, process-wide: freed memory stays with the process (its
    resident size stays at its peak). It only helps when called before JAX
    runs anything (threads keep the malloc arenas they have); the same
    settings from the environment, for any program::

        MALLOC_ARENA_MAX=1 MALLOC_MMAP_MAX_=0 MALLOC_TRIM_THRESHOLD_=1000000000000

    Args:
        jax_only: apply the settings only when the Keras backend is JAX (what
            the examples use; TensorFlow's allocator does not need them).

    Returns:
        `True` if the settings were applied (Linux with glibc), else `False`.
    """
    if jax_only and keras.backend.backend() != "jax":
        return False
    import ctypes
    import ctypes.util
    import sys

    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # pragma: no cover - musl, no libc
        return False
    m_trim_threshold, m_mmap_max, m_arena_max = -1, -4, -8
    settings = ((m_arena_max, 1), (m_mmap_max, 0), (m_trim_threshold, -1))
    return all(mallopt(option, value) == 1 for option, value in settings)


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
    # One 2-D matmul on every backend (under JAX alone, a dot over the last
    # axis of the 4-D tensor measured up to ~3x slower forward+backward in
    # `benchmarks/profile_jax.py ops`; the same in the whole PanTiny step).
    shape = ops.shape(x)
    y = ops.matmul(ops.reshape(x, (-1, c_in)), kernel)
    return ops.reshape(y, (*shape[:-1], c_out))


# ------------------------------------------------------------ JAX on CPU
def _jax_cpu(path: str) -> bool:
    """Whether the JAX-on-CPU fast path `path` is used for the next trace."""
    if keras.backend.backend() != "jax" or not JAX_FAST_PATHS.get(path, False):
        return False
    import jax

    return jax.default_backend() == "cpu"


def _pad_hw(x):
    import jax.numpy as jnp

    return jnp.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)))


def _shifted_sum(xp, kernel, height, width, flip=False):
    """`sum_ij xp[:, i:i+H, j:j+W] * k[i, j]` (`k` flipped when `flip`).

    Accumulated in float32 (also for half-precision inputs), returned in the
    dtype of `xp`.
    """
    out = None
    for i in range(3):
        for j in range(3):
            w = kernel[2 - i, 2 - j] if flip else kernel[i, j]
            t = xp[:, i : i + height, j : j + width, :].astype("float32")
            t = t * w.astype("float32")
            out = t if out is None else out + t
    return out.astype(xp.dtype)


def _pixels_matmul_tn(a, b):
    """`a^T b` over all pixels: `(..., C) x (..., D) -> (C, D)` in float32.

    As one 2-D matmul (XLA on CPU can be several times slower contracting the
    three pixel axes of 4-D tensors in isolation; the same in PanTiny).
    """
    import jax.numpy as jnp

    a2 = a.reshape(-1, a.shape[-1])
    b2 = b.reshape(-1, b.shape[-1])
    return jnp.matmul(a2.T, b2, preferred_element_type="float32")


def _depthwise_valid(xp, kernel, flip=False, splits=1):
    """3x3 depthwise correlation of the padded `xp` ("valid"), written out.

    Nine shifted multiply-adds, computed inside a conditional. XLA on CPU
    otherwise fuses this cheap-looking producer into each of its consumers:
    it is recomputed once per consumer, and a consumer that XLA hands to a
    library kernel (dot, reduction) first copies out all nine shifted views
    (`lax.optimization_barrier` is dropped before fusion on CPU, and a
    conditional that only forwards its operand is removed by JAX). The
    predicate is true unless the kernel holds a NaN; the other branch computes
    the same function with XLA's grouped convolution.

    Args:
        xp: `(B, H+2, W+2, C)` zero-padded input.
        kernel: `(3, 3, C)`; flipped (the transposed convolution) if `flip`.
        flip: correlate with the flipped kernel.
        splits: the result is returned as a tuple of `splits` channel groups,
            each written by the fusion that computes it.

    Returns:
        Tuple of `splits` tensors `(B, H, W, C / splits)` (dtype of `xp`).
    """
    from jax import lax

    h, w, c = xp.shape[1] - 2, xp.shape[2] - 2, xp.shape[3]
    part = c // splits

    def split(y):
        return tuple(y[..., i * part : (i + 1) * part] for i in range(splits))

    def fast(xp, kernel):
        return split(_shifted_sum(xp, kernel, h, w, flip))

    def grouped_conv(xp, kernel):
        k = kernel[::-1, ::-1] if flip else kernel
        y = lax.conv_general_dilated(
            xp,
            k[:, :, None, :],
            (1, 1),
            "VALID",
            dimension_numbers=("NHWC", "HWIO", "NHWC"),
            feature_group_count=c,
        )
        return split(y.astype(xp.dtype))

    first = kernel.reshape(-1)[:1]
    return lax.cond((first == first)[0], fast, grouped_conv, xp, kernel)


def _depthwise_kernel_grad(xp, dy):
    """`dk[i, j, c] = sum_{b,h,w} xp[b, h+i, w+j, c] dy[b, h, w, c]` in float32.

    `xp` is the zero-padded input `(B, H+2, W+2, C)`. One pass: a single
    9-output reduction over the image columns (XLA's own multi-output
    reduction; a plain `sum` would go to a library kernel that first copies
    out nine shifted images), then a small reduction over batch and rows.
    """
    import jax.numpy as jnp
    from jax import lax

    h, w = dy.shape[1], dy.shape[2]
    dy = dy.astype("float32")
    prods = tuple(
        xp[:, i : i + h, j : j + w, :].astype("float32") * dy
        for i in range(3)
        for j in range(3)
    )
    zeros = tuple(jnp.zeros((), "float32") for _ in prods)
    rows = lax.reduce(
        prods, zeros, lambda a, b: tuple(u + v for u, v in zip(a, b)), (2,)
    )
    return jnp.stack([jnp.sum(r, axis=(0, 1)) for r in rows]).reshape(3, 3, -1)


@functools.cache
def _jax_depthwise3x3_fn():
    import jax

    @jax.custom_vjp
    def dwconv(x, kernel):
        return _depthwise_valid(_pad_hw(x), kernel)[0]

    def fwd(x, kernel):
        return dwconv(x, kernel), (x, kernel)

    def bwd(res, dy):
        x, kernel = res
        dx = _depthwise_valid(_pad_hw(dy), kernel, flip=True)[0]
        dk = _depthwise_kernel_grad(_pad_hw(x), dy)
        return dx, dk.astype(kernel.dtype)

    dwconv.defvjp(fwd, bwd)
    return dwconv


def depthwise_conv3x3(x, kernel):
    """3x3 depthwise convolution, stride 1, "same" zero padding, no bias.

    On JAX with a CPU, nine shifted multiply-adds (one fused loop; XLA's
    grouped convolution is ~20x slower there) with a hand-written backward
    pass; elsewhere `keras.ops.depthwise_conv`.

    Args:
        x: `(B, H, W, C)` channels-last tensor.
        kernel: `(3, 3, C)` or `(3, 3, C, 1)` kernel (Keras' depthwise layout).

    Returns:
        `(B, H, W, C)` tensor in the dtype of `x`.
    """
    kernel = ops.cast(kernel, x.dtype)
    if len(kernel.shape) == 4:
        kernel = ops.reshape(kernel, kernel.shape[:3])
    if _jax_cpu("depthwise"):
        return _jax_depthwise3x3_fn()(x, kernel)
    return ops.depthwise_conv(x, ops.expand_dims(kernel, -1), padding="same")


@functools.cache
def _jax_pointwise_depthwise_fn(splits: int):
    import jax
    import jax.numpy as jnp

    def forward(x, kernel, dw_kernel):
        # 1x1 conv of the zero-padded input == zero-padded 1x1 conv output
        # (no bias): the wide activation is never padded (copied) itself.
        ap = jnp.matmul(_pad_hw(x), kernel)
        return _depthwise_valid(ap, dw_kernel, splits=splits), ap

    @jax.custom_vjp
    def pwdw(x, kernel, dw_kernel):
        return forward(x, kernel, dw_kernel)[0]

    def fwd(x, kernel, dw_kernel):
        parts, ap = forward(x, kernel, dw_kernel)
        return parts, (x, ap, kernel, dw_kernel)

    def bwd(res, dparts):
        x, ap, kernel, dw_kernel = res
        dy = jnp.concatenate(dparts, axis=-1)
        da = _depthwise_valid(_pad_hw(dy), dw_kernel, flip=True)[0]
        ddw = _depthwise_kernel_grad(ap, dy).astype(dw_kernel.dtype)
        dx = jnp.matmul(da, kernel.T)
        dk = _pixels_matmul_tn(x, da)
        return dx, dk.astype(kernel.dtype), ddw

    pwdw.defvjp(fwd, bwd)
    return pwdw


def pointwise_depthwise(x, kernel, dw_kernel, splits: int = 1):
    """`depthwise_conv3x3(pointwise_conv(x, kernel), dw_kernel)`, split in parts.

    The 1x1 conv + 3x3 depthwise conv of Restormer's attention (`qkv`) and
    gated FFN (`project_in`), its output split along channels into `splits`
    equal parts. On TensorFlow/PyTorch each part is computed with its slice of
    the kernels (no wide activation is materialised and sliced); on JAX with
    a CPU the whole op is one custom-gradient function (the 1x1 conv applied to
    the zero-padded input, shifted multiply-adds, hand-written backward pass).

    Args:
        x: `(B, H, W, C_in)`.
        kernel: `(C_in, C_out)` or `(1, 1, C_in, C_out)` 1x1 kernel.
        dw_kernel: `(3, 3, C_out)` or `(3, 3, C_out, 1)` depthwise kernel.
        splits: number of equal channel groups returned.

    Returns:
        A list of `splits` tensors `(B, H, W, C_out / splits)` (dtype of `x`).
    """
    kernel = ops.cast(kernel, x.dtype)
    if len(kernel.shape) == 4:
        kernel = ops.reshape(kernel, kernel.shape[2:])
    dw_kernel = ops.cast(dw_kernel, x.dtype)
    if len(dw_kernel.shape) == 4:
        dw_kernel = ops.reshape(dw_kernel, dw_kernel.shape[:3])
    c_out = kernel.shape[-1]
    part = c_out // splits
    if _jax_cpu("pointwise_depthwise"):
        return list(_jax_pointwise_depthwise_fn(splits)(x, kernel, dw_kernel))
    return [
        depthwise_conv3x3(
            pointwise_conv(x, kernel[:, i * part : (i + 1) * part]),
            dw_kernel[:, :, i * part : (i + 1) * part],
        )
        for i in range(splits)
    ]


@functools.cache
def _jax_conv3x3_fn():
    import jax
    import jax.numpy as jnp
    from jax import lax

    dims = ("NHWC", "HWIO", "NHWC")

    def conv(x, kernel):
        return lax.conv_general_dilated(
            x, kernel, (1, 1), "SAME", dimension_numbers=dims
        )

    @jax.custom_vjp
    def conv3x3(x, kernel):
        return conv(x, kernel)

    def fwd(x, kernel):
        return conv(x, kernel), (x, kernel)

    def bwd(res, dy):
        x, kernel = res
        h, w = x.shape[1], x.shape[2]
        # dx: the transposed convolution (flipped kernel, in/out swapped).
        dx = conv(dy, jnp.flip(kernel, (0, 1)).transpose(0, 1, 3, 2))
        # dk[i, j] = x^T shift_ij(dy): nine matmuls over the pixels against
        # one transposed copy of x (XLA's kernel-gradient convolution is ~4x
        # slower on CPU).
        dyp = _pad_hw(dy)
        dk = jnp.stack(
            [
                _pixels_matmul_tn(x, dyp[:, 2 - i : 2 - i + h, 2 - j : 2 - j + w, :])
                for i in range(3)
                for j in range(3)
            ]
        )
        return dx, dk.reshape(kernel.shape).astype(kernel.dtype)

    conv3x3.defvjp(fwd, bwd)
    return conv3x3


def conv3x3(x, kernel):
    """3x3 convolution, stride 1, "same" zero padding, no bias.

    On JAX with a CPU the kernel gradient is computed as nine matmuls (XLA's
    own is ~4x slower there); elsewhere `keras.ops.conv`.

    Args:
        x: `(B, H, W, C_in)` channels-last tensor.
        kernel: `(3, 3, C_in, C_out)` kernel.

    Returns:
        `(B, H, W, C_out)` tensor in the dtype of `x`.
    """
    kernel = ops.cast(kernel, x.dtype)
    if _jax_cpu("conv3x3"):
        return _jax_conv3x3_fn()(x, kernel)
    return ops.conv(x, kernel, padding="same")


@functools.cache
def _jax_gelu_gate_fn():
    import jax
    import jax.numpy as jnp
    from jax import lax

    def cdf(a):  # Phi(a) = (1 + erf(a / sqrt(2))) / 2
        return 0.5 * (1.0 + lax.erf(a * np.asarray(np.sqrt(0.5), a.dtype)))

    @jax.custom_vjp
    def gate(a, b):
        return a * cdf(a) * b

    def fwd(a, b):
        return gate(a, b), (a, b)

    def bwd(res, d):
        a, b = res
        # gelu(a) = a Phi(a), gelu'(a) = Phi(a) + a phi(a): one fused pass.
        phi = cdf(a)
        pdf = jnp.exp(-0.5 * a * a) * np.asarray(1 / np.sqrt(2 * np.pi), a.dtype)
        return d * b * (phi + a * pdf), d * (a * phi)

    gate.defvjp(fwd, bwd)
    return gate


def gelu_gate(a, b):
    """`gelu(a) * b` with the exact (erf) GELU: Restormer's FFN gate.

    On JAX with a CPU: `a * (1 + erf(a / sqrt 2)) / 2 * b` (as PyTorch's
    `gelu`; `jax.nn.gelu` uses the slower `erfc`) with a one-pass
    hand-written backward (autodiff splits it over several passes that
    recompute the error function).

    Args:
        a: gate input.
        b: values, same shape as `a`.

    Returns:
        Tensor of the shape and dtype of `a`.
    """
    if _jax_cpu("gelu_gate"):
        return _jax_gelu_gate_fn()(a, b)
    return ops.gelu(a, approximate=False) * b


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
