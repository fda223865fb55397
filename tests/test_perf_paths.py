"""Optimised PanTiny paths (keras_pansharp.utils.perf) equal the reference maths.

The references below are the paper's formulation written the straightforward
way (per-head reshape/transpose, normalised activations, autodiff LayerNorm).
Outputs and gradients must match; no timing here (see benchmarks/).
"""

from __future__ import annotations

import keras
import numpy as np
import pytest
from keras import ops

from keras_pansharp.utils import perf
from tests.test_case import to_numpy

RNG = np.random.default_rng(7)


def _x(*shape, scale=1.0):
    return (RNG.standard_normal(shape) * scale).astype("float32")


def reference_layer_norm(x, gamma, beta, eps=1e-5):
    mean = ops.mean(x, axis=-1, keepdims=True)
    var = ops.mean(ops.square(x - mean), axis=-1, keepdims=True)
    return (x - mean) / ops.sqrt(var + eps) * gamma + beta


def reference_attention(q, k, v, temperature, heads, eps=1e-12):
    b, h, w, c = q.shape
    d = c // heads

    def split(t):  # (B, H, W, C) -> (B, heads, d, HW), the paper's layout
        return ops.transpose(ops.reshape(t, (b, h * w, heads, d)), (0, 2, 3, 1))

    def l2n(t):
        return t / ops.maximum(ops.sqrt(ops.sum(ops.square(t), -1, keepdims=True)), eps)

    qh, kh, vh = l2n(split(q)), l2n(split(k)), split(v)
    a = ops.matmul(qh, ops.transpose(kh, (0, 1, 3, 2)))
    a = ops.softmax(a * ops.reshape(temperature, (1, heads, 1, 1)), axis=-1)
    out = ops.matmul(a, vh)  # (B, heads, d, HW)
    return ops.reshape(ops.transpose(out, (0, 3, 1, 2)), (b, h, w, c))


def _value_and_grads(fn, *args):
    """Loss value and gradients w.r.t. all args, on the current backend."""
    backend = keras.backend.backend()
    shape = to_numpy(fn(*args)).shape
    weights = np.random.default_rng(0).standard_normal(shape).astype("float32")

    def loss(*a):
        return ops.sum(ops.sin(fn(*a)) * weights)

    if backend == "tensorflow":
        import tensorflow as tf

        ts = [tf.convert_to_tensor(a) for a in args]
        with tf.GradientTape() as tape:
            tape.watch(ts)
            val = loss(*ts)
        return to_numpy(val), [to_numpy(g) for g in tape.gradient(val, ts)]
    if backend == "jax":
        import jax

        vg = jax.jit(jax.value_and_grad(loss, argnums=tuple(range(len(args)))))
        val, grads = vg(*args)
        return np.asarray(val), [np.asarray(g) for g in grads]
    pytest.skip(f"gradient check not written for backend {backend}")


def _close(a, b, rtol=1e-4, atol=1e-5):
    np.testing.assert_allclose(to_numpy(a), to_numpy(b), rtol=rtol, atol=atol)


def test_pointwise_conv_equals_conv2d():
    x, k = _x(2, 5, 6, 7), _x(1, 1, 7, 9)
    ref = ops.conv(x, k, padding="same")
    _close(perf.pointwise_conv(x, k), ref)
    _close(perf.pointwise_conv(x, k[0, 0]), ref)


def test_layer_norm_values_and_gradients():
    x, g, b = _x(2, 6, 5, 28, scale=3.0), _x(28) + 1.0, _x(28)
    _close(perf.channel_layer_norm(x, g, b), reference_layer_norm(x, g, b))
    v1, g1 = _value_and_grads(perf.channel_layer_norm, x, g, b)
    v2, g2 = _value_and_grads(reference_layer_norm, x, g, b)
    _close(v1, v2)
    for a, c in zip(g1, g2):
        _close(a, c, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("heads", [1, 4])
def test_channel_attention_values_and_gradients(heads):
    c = 8 * heads if heads > 1 else 12
    q, k, v = _x(2, 6, 7, c), _x(2, 6, 7, c), _x(2, 6, 7, c)
    t = (np.linspace(0.5, 2.0, heads)).astype("float32")
    out = perf.channel_attention(q, k, v, t, heads)
    _close(out, reference_attention(q, k, v, t, heads))
    assert np.isfinite(to_numpy(out)).all()

    def fast(q, k, v, t):
        return perf.channel_attention(q, k, v, t, heads)

    def ref(q, k, v, t):
        return reference_attention(q, k, v, t, heads)

    v1, g1 = _value_and_grads(fast, q, k, v, t)
    v2, g2 = _value_and_grads(ref, q, k, v, t)
    _close(v1, v2)
    for a, b in zip(g1, g2):
        assert np.isfinite(a).all()
        _close(a, b, rtol=1e-4, atol=1e-4)


def test_channel_attention_zero_input_is_finite():
    # Norm clamp at epsilon: an all-zero q/k must not produce NaN.
    z = np.zeros((1, 4, 4, 8), "float32")
    out = perf.channel_attention(z, z, _x(1, 4, 4, 8), np.ones(2, "float32"), 2)
    assert np.isfinite(to_numpy(out)).all()


def test_channel_attention_rejects_bad_heads():
    x = _x(1, 4, 4, 6)
    with pytest.raises(ValueError, match="divisible"):
        perf.channel_attention(x, x, x, np.ones(4, "float32"), 4)


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_half_precision_inputs_stay_close(dtype):
    x, g, b = _x(1, 8, 8, 16, scale=2.0), _x(16) + 1.0, _x(16)
    y = perf.channel_layer_norm(ops.cast(x, dtype), g, b)
    assert keras.backend.standardize_dtype(y.dtype) == dtype
    _close(ops.cast(y, "float32"), reference_layer_norm(x, g, b), rtol=5e-2, atol=5e-2)
    q, k, v = (ops.cast(_x(1, 8, 8, 16), dtype) for _ in range(3))
    t = np.ones(2, "float32")
    out = perf.channel_attention(q, k, v, t, 2)
    assert keras.backend.standardize_dtype(out.dtype) == dtype
    ref = reference_attention(*(ops.cast(a, "float32") for a in (q, k, v)), t, 2)
    _close(ops.cast(out, "float32"), ref, rtol=5e-2, atol=5e-2)


def test_default_jit_compile_per_backend():
    assert perf.default_jit_compile("jax") is True
    assert perf.default_jit_compile("torch") is False
    assert perf.default_jit_compile("tensorflow", accelerator=False) is False
    assert perf.default_jit_compile("tensorflow", accelerator=True) is True
    assert isinstance(perf.default_jit_compile(), bool)


@pytest.mark.parametrize("policy", ["mixed_bfloat16", "mixed_float16"])
def test_pantiny_forward_under_mixed_precision(policy):
    from keras_pansharp.models.pantiny import PanTiny

    rng = np.random.default_rng(3)
    x = {
        "ms": rng.random((1, 8, 8, 4), dtype=np.float32),
        "pan": rng.random((1, 32, 32, 1), dtype=np.float32),
    }
    small = dict(bands=4, dim=8, num_heads=2, encoder_depth=1, body_depth=1)
    ref_model = PanTiny(**small)
    ref = to_numpy(ref_model(x))
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy(policy)
    try:
        model = PanTiny(**small)
        model.set_weights(ref_model.get_weights())
        out = model(x)
    finally:
        keras.config.set_dtype_policy(previous)
    assert all(v.dtype == "float32" for v in model.weights)  # float32 masters
    out = to_numpy(ops.cast(out, "float32"))
    assert out.shape == ref.shape and np.isfinite(out).all()
    # Half-precision activations: close to float32, not equal.
    atol = 0.05 if policy == "mixed_bfloat16" else 0.01
    np.testing.assert_allclose(out, ref, atol=atol)
