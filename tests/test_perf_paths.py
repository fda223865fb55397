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


def _check_values_and_grads(fast, ref, *args, atol=1e-4):
    """`fast` and `ref` agree in value and in the gradients w.r.t. all args."""
    _close(fast(*args), ref(*args), atol=atol)
    v1, g1 = _value_and_grads(fast, *args)
    v2, g2 = _value_and_grads(ref, *args)
    _close(v1, v2, atol=atol)
    for a, b in zip(g1, g2):
        assert np.isfinite(a).all()
        _close(a, b, rtol=1e-4, atol=atol)


def reference_depthwise(x, k):
    return ops.depthwise_conv(x, ops.reshape(k, (3, 3, -1, 1)), padding="same")


def reference_conv3x3(x, k):
    return ops.conv(x, k, padding="same")


def reference_gelu_gate(a, b):
    return ops.gelu(a, approximate=False) * b


@pytest.fixture
def plain_paths():
    """Switch every JAX fast path off for the test (restored afterwards)."""
    saved = dict(perf.JAX_FAST_PATHS)
    for key in perf.JAX_FAST_PATHS:
        perf.JAX_FAST_PATHS[key] = False
    yield
    perf.JAX_FAST_PATHS.update(saved)


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


@pytest.mark.parametrize("shape", [(2, 6, 7, 5), (1, 9, 4, 12)])
def test_depthwise_conv3x3_values_and_gradients(shape):
    x, k = _x(*shape), _x(3, 3, shape[-1])
    _check_values_and_grads(perf.depthwise_conv3x3, reference_depthwise, x, k)
    # Keras' (3, 3, C, 1) depthwise layout is accepted as well.
    _close(perf.depthwise_conv3x3(x, k[..., None]), reference_depthwise(x, k))


@pytest.mark.parametrize("splits", [1, 2, 3])
def test_pointwise_depthwise_values_and_gradients(splits):
    c_in, c_out = 5, 6 * splits
    x, k, dk = _x(2, 7, 6, c_in), _x(1, 1, c_in, c_out), _x(3, 3, c_out, 1)

    def fast(x, k, dk):
        return ops.concatenate(perf.pointwise_depthwise(x, k, dk, splits), axis=-1)

    def ref(x, k, dk):
        return reference_depthwise(ops.conv(x, k, padding="same"), dk)

    parts = perf.pointwise_depthwise(x, k, dk, splits)
    assert len(parts) == splits
    assert all(tuple(p.shape) == (2, 7, 6, c_out // splits) for p in parts)
    _check_values_and_grads(fast, ref, x, k, dk)


@pytest.mark.parametrize("c_in,c_out", [(5, 7), (4, 3)])
def test_conv3x3_values_and_gradients(c_in, c_out):
    x, k = _x(2, 6, 5, c_in), _x(3, 3, c_in, c_out)
    _check_values_and_grads(perf.conv3x3, reference_conv3x3, x, k)


def test_gelu_gate_values_and_gradients():
    a, b = _x(2, 5, 4, 6, scale=3.0), _x(2, 5, 4, 6)
    _check_values_and_grads(perf.gelu_gate, reference_gelu_gate, a, b)


def test_jax_fast_paths_selected_on_cpu():
    """Under JAX on CPU every fast path is on by default, elsewhere none is."""
    on_jax_cpu = keras.backend.backend() == "jax"
    if on_jax_cpu:
        import jax

        on_jax_cpu = jax.default_backend() == "cpu"
    for key in perf.JAX_FAST_PATHS:
        assert perf._jax_cpu(key) is on_jax_cpu


def test_pantiny_same_outputs_and_gradients_with_plain_paths(plain_paths):
    """The whole model: fast paths (default) vs every JAX path switched off."""
    from keras_pansharp.models.pantiny import PanTiny

    if keras.backend.backend() != "jax":
        pytest.skip("the switches select JAX paths only")
    import jax

    rng = np.random.default_rng(5)
    x = {
        "ms": rng.random((2, 6, 5, 4), dtype=np.float32),
        "pan": rng.random((2, 24, 20, 1), dtype=np.float32),
    }
    small = dict(bands=4, dim=8, num_heads=2, encoder_depth=1, body_depth=1)

    def value_and_grads(model):
        def loss(ws):
            fixed = [v.value for v in model.non_trainable_weights]
            out, _ = model.stateless_call(ws, fixed, x)
            return ops.sum(ops.sin(out))

        weights = [v.value for v in model.trainable_weights]
        return jax.jit(jax.value_and_grad(loss))(weights)

    plain = PanTiny(**small)  # traced with the plain paths (fixture)
    v_plain, g_plain = value_and_grads(plain)
    perf.JAX_FAST_PATHS.update({k: True for k in perf.JAX_FAST_PATHS})
    fast = PanTiny(**small)
    fast.set_weights(plain.get_weights())
    v_fast, g_fast = value_and_grads(fast)
    _close(v_fast, v_plain)
    for a, b in zip(g_fast, g_plain):
        _close(a, b, rtol=1e-4, atol=1e-4)


def test_pantiny_conv3x3_fast_path_keeps_saved_weight_layout(tmp_path):
    """PanTiny's 3x3 convolutions run through `perf.conv3x3` but stay
    `keras.layers.Conv2D` (Keras keys saved weights by layer class), also
    after a config round trip, so weights saved before load unchanged."""
    import h5py

    from keras_pansharp.models.pantiny import PanTiny

    small = dict(bands=4, dim=8, num_heads=2, encoder_depth=1, body_depth=1)
    model = PanTiny(**small)
    convs = [
        layer
        for layer in model.layers
        if isinstance(layer, keras.layers.Conv2D) and layer.kernel_size == (3, 3)
    ]
    assert convs and all(type(c) is keras.layers.Conv2D for c in convs)
    assert all(c.convolution_op is perf.conv3x3 for c in convs)
    rebuilt = PanTiny.from_config(model.get_config())
    assert all(rebuilt.get_layer(c.name).convolution_op is perf.conv3x3 for c in convs)
    path = tmp_path / "w.weights.h5"
    model.save_weights(path)
    with h5py.File(path) as f:
        names = set(f["layers"])
    assert "conv2d" in names and not any(n.startswith("conv3x3") for n in names)
    rebuilt.load_weights(path)
    x = {
        "ms": np.random.default_rng(1).random((1, 6, 5, 4), dtype=np.float32),
        "pan": np.random.default_rng(2).random((1, 24, 20, 1), dtype=np.float32),
    }
    _close(rebuilt.predict_on_batch(x), model.predict_on_batch(x))


def test_retain_freed_host_memory_applies_on_linux():
    # In a subprocess: the setting is process-wide and irreversible.
    import subprocess
    import sys

    code = (
        "from keras_pansharp.utils import perf; print(perf.retain_freed_host_memory())"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout.split()
    expected = "True" if sys.platform.startswith("linux") else "False"  # glibc
    assert out[-1] == expected


def test_retain_freed_host_memory_jax_only_skips_other_backends():
    import os
    import subprocess
    import sys

    code = (
        "from keras_pansharp.utils import perf; "
        "print(perf.retain_freed_host_memory(jax_only=True))"
    )
    env = {**os.environ, "KERAS_BACKEND": "tensorflow"}
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        env=env,
    ).stdout.split()
    assert out[-1] == "False"


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
def test_half_precision_conv_paths_stay_close(dtype):
    x, y = _x(1, 6, 7, 8), _x(1, 6, 7, 8)
    k_dw, k = _x(3, 3, 8), _x(3, 3, 8, 5) * 0.3
    half = ops.cast(x, dtype)
    for out, ref in (
        (perf.depthwise_conv3x3(half, k_dw), reference_depthwise(x, k_dw)),
        (perf.conv3x3(half, k), reference_conv3x3(x, k)),
        (perf.gelu_gate(half, ops.cast(y, dtype)), reference_gelu_gate(x, y)),
    ):
        assert keras.backend.standardize_dtype(out.dtype) == dtype
        _close(ops.cast(out, "float32"), ref, rtol=5e-2, atol=1e-1)


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
