"""Layers of keras_pansharp (upsamplers and PanTiny's building blocks)."""

from __future__ import annotations

import contextlib

import keras
import numpy as np
import pytest
from keras import ops

from keras_pansharp.layers import (
    BicubicUpsample,
    ChannelAttention,
    ChannelLayerNorm,
    GatedDepthwiseFFN,
    Interp23Tap,
    TransformerBlock,
)
from keras_pansharp.signal.kernels import interp23tap_kernel
from tests.test_case import GOLDEN_CASES, TestCase, to_numpy


def _x64():
    """float64 needs `jax_enable_x64` on JAX; a no-op on other backends."""
    if keras.backend.backend() == "jax":
        import jax

        return jax.enable_x64(True)
    return contextlib.nullcontext()


def interp23tap_reference(x: np.ndarray, ratio: int = 4) -> np.ndarray:
    """Literal NumPy port of the toolbox algorithm (zero insertion + circular
    correlation with the 23-tap kernel), (H, W, C) float64."""
    h = interp23tap_kernel()
    out = np.asarray(x, np.float64)
    for stage in range(ratio // 2):
        r, c, b = out.shape
        up = np.zeros((2 * r, 2 * c, b))
        if stage == 0:
            up[1::2, 1::2] = out
        else:
            up[0::2, 0::2] = out
        for axis in (0, 1):
            n = up.shape[axis]
            acc = np.zeros_like(up)
            for k in range(23):
                acc += h[k] * np.take(up, (np.arange(n) + k - 11) % n, axis=axis)
            up = acc
        out = up
    return out


class TestInterp23Tap(TestCase):
    def test_layer_contract(self, rng):
        self.run_layer_test(
            Interp23Tap,
            {"ratio": 4},
            rng.random((2, 8, 6, 3)).astype("float32"),
            expected_output_shape=(2, 32, 24, 3),
            expected_num_trainable_weights=0,
        )
        self.run_layer_test(
            Interp23Tap,
            {"ratio": 2},
            rng.random((1, 5, 7, 2)).astype("float32"),
            expected_output_shape=(1, 10, 14, 2),
        )
        with pytest.raises(ValueError, match="ratio"):
            Interp23Tap(ratio=3)

    @pytest.mark.parametrize("ratio", [2, 4])
    @pytest.mark.parametrize("size", [(1, 1), (3, 5), (13, 8)])
    def test_matches_literal_reference_any_size(self, ratio, size):
        # Tiny sizes exercise the circular wrap beyond one period.
        x = np.random.default_rng(3).normal(size=(2, *size, 3))
        with _x64():
            y = to_numpy(Interp23Tap(ratio, dtype="float64")(x))
        assert y.dtype == np.float64
        for i in range(2):
            np.testing.assert_allclose(
                y[i], interp23tap_reference(x[i], ratio), rtol=1e-12, atol=1e-12
            )
        if ratio == 4:
            np.testing.assert_array_equal(y[:, 2::4, 2::4], x)
        else:
            np.testing.assert_array_equal(y[:, 1::2, 1::2], x)

    @pytest.mark.parametrize("case", GOLDEN_CASES)
    def test_matches_golden(self, golden_dir, case):
        data = np.load(golden_dir / f"{case}.npz")
        pairs = [("ms_lr", "interp23tap_ms")]
        if "wald_ms_lr" in data.files:
            pairs.append(("wald_ms_lr", "wald_interp23tap_ms"))
        for src, ref_key in pairs:
            x, ref = data[src][None], data[ref_key]
            scale = np.abs(ref).max()
            with _x64():
                y64 = to_numpy(Interp23Tap(4, dtype="float64")(x))[0]
            assert y64.dtype == np.float64
            np.testing.assert_allclose(y64, ref, rtol=1e-9, atol=1e-9 * scale)
            y32 = to_numpy(Interp23Tap(4)(x.astype("float32")))[0]
            assert y32.dtype == np.float32
            np.testing.assert_allclose(y32, ref, rtol=1e-5, atol=1e-5 * scale)

    def test_dynamic_spatial_size_in_model(self, rng):
        inp = keras.Input((None, None, 4))
        model = keras.Model(inp, Interp23Tap(4)(inp))
        for shape in ((1, 4, 4, 4), (2, 6, 10, 4)):
            x = rng.random(shape).astype("float32")
            y = model.predict(x, verbose=0)
            assert y.shape == (shape[0], 4 * shape[1], 4 * shape[2], 4)
            self.assertAllClose(y[:, 2::4, 2::4], x, atol=1e-6)

    def test_rejects_integer_input(self):
        with pytest.raises(ValueError, match="floating"):
            Interp23Tap(4)(np.ones((1, 4, 4, 2), "int32"))


class TestBicubicUpsample(TestCase):
    def test_layer_contract(self, rng):
        x = rng.random((2, 4, 6, 3)).astype("float32")
        out = self.run_layer_test(
            BicubicUpsample,
            {"ratio": 4},
            x,
            expected_output_shape=(2, 16, 24, 3),
            expected_num_trainable_weights=0,
        )
        ref = ops.image.resize(x, (16, 24), interpolation="bicubic")
        self.assertAllClose(out, ref, atol=1e-6)
        # Constant images stay constant (interpolating kernel sums to one).
        const = BicubicUpsample(4)(np.full((1, 3, 3, 1), 0.25, "float32"))
        self.assertAllClose(const, np.full((1, 12, 12, 1), 0.25), atol=1e-6)


# --------------------------------------------------------------------------
# PanTiny building blocks against a literal NumPy transcription of REFERENCE §7
# (channels-last, float64). These protect correctness under optimisation.
# --------------------------------------------------------------------------
def np_conv(x, kernel):
    """'same' zero-padded correlation, x (H, W, Cin), kernel (k, k, Cin, Cout)."""
    k = kernel.shape[0]
    p = k // 2
    xp = np.pad(x, ((p, p), (p, p), (0, 0)))
    h, w = x.shape[:2]
    out = np.zeros((h, w, kernel.shape[-1]))
    for a in range(k):
        for b in range(k):
            out += xp[a : a + h, b : b + w] @ kernel[a, b]
    return out


def np_depthwise(x, kernel):
    """3x3 depthwise 'same' correlation, kernel (3, 3, C, 1)."""
    xp = np.pad(x, ((1, 1), (1, 1), (0, 0)))
    h, w = x.shape[:2]
    out = np.zeros_like(x, dtype=np.float64)
    for a in range(3):
        for b in range(3):
            out += xp[a : a + h, b : b + w] * kernel[a, b, :, 0]
    return out


def np_layer_norm(x, gamma, beta, eps=1e-5):
    mu = x.mean(-1, keepdims=True)
    var = ((x - mu) ** 2).mean(-1, keepdims=True)
    return (x - mu) / np.sqrt(var + eps) * gamma + beta


def np_attention(x, w_qkv, w_dw, w_proj, temperature):
    """Restormer MDTA on one image x (H, W, dim), as written in REFERENCE §7."""
    h, w, dim = x.shape
    heads = temperature.shape[0]
    d = dim // heads
    qkv = np_depthwise(x @ w_qkv[0, 0], w_dw)
    q, k, v = qkv[..., :dim], qkv[..., dim : 2 * dim], qkv[..., 2 * dim :]
    outs = []
    for head in range(heads):
        sl = slice(head * d, (head + 1) * d)
        qh = q[..., sl].reshape(h * w, d).T  # (d, pixels)
        kh = k[..., sl].reshape(h * w, d).T
        vh = v[..., sl].reshape(h * w, d).T
        qh = qh / np.maximum(np.linalg.norm(qh, axis=1, keepdims=True), 1e-12)
        kh = kh / np.maximum(np.linalg.norm(kh, axis=1, keepdims=True), 1e-12)
        logits = qh @ kh.T * temperature[head]
        logits = logits - logits.max(axis=1, keepdims=True)
        attn = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
        outs.append((attn @ vh).T.reshape(h, w, d))
    return np.concatenate(outs, axis=-1) @ w_proj[0, 0]


def np_ffn(x, w_in, w_dw, w_out):
    from scipy.special import erf

    y = np_depthwise(x @ w_in[0, 0], w_dw)
    hidden = y.shape[-1] // 2
    x1, x2 = y[..., :hidden], y[..., hidden:]
    gelu = 0.5 * x1 * (1.0 + erf(x1 / np.sqrt(2.0)))
    return (gelu * x2) @ w_out[0, 0]


def np_block(x, weights):
    """weights: dict of float64 arrays named as in `block_weights`."""
    x = x + np_attention(
        np_layer_norm(x, weights["norm1_gamma"], weights["norm1_beta"]),
        weights["qkv"],
        weights["qkv_dw"],
        weights["attn_proj"],
        weights["temperature"],
    )
    return x + np_ffn(
        np_layer_norm(x, weights["norm2_gamma"], weights["norm2_beta"]),
        weights["ffn_in"],
        weights["ffn_dw"],
        weights["ffn_out"],
    )


def attention_weights(layer):
    return {
        "w_qkv": to_numpy(layer.qkv.kernel).astype(np.float64),
        "w_dw": to_numpy(layer.qkv_dwconv.kernel).astype(np.float64),
        "w_proj": to_numpy(layer.project_out.kernel).astype(np.float64),
        "temperature": to_numpy(layer.temperature).astype(np.float64),
    }


def ffn_weights(layer):
    return {
        "w_in": to_numpy(layer.project_in.kernel).astype(np.float64),
        "w_dw": to_numpy(layer.dwconv.kernel).astype(np.float64),
        "w_out": to_numpy(layer.project_out.kernel).astype(np.float64),
    }


def block_weights(block):
    a, f = attention_weights(block.attn), ffn_weights(block.ffn)
    return {
        "norm1_gamma": to_numpy(block.norm1.gamma).astype(np.float64),
        "norm1_beta": to_numpy(block.norm1.beta).astype(np.float64),
        "norm2_gamma": to_numpy(block.norm2.gamma).astype(np.float64),
        "norm2_beta": to_numpy(block.norm2.beta).astype(np.float64),
        "qkv": a["w_qkv"],
        "qkv_dw": a["w_dw"],
        "attn_proj": a["w_proj"],
        "temperature": a["temperature"],
        "ffn_in": f["w_in"],
        "ffn_dw": f["w_dw"],
        "ffn_out": f["w_out"],
    }


def randomise_weights(layer, seed=0, scale=0.5):
    """Give every weight random values (so that ones/zeros inits and a unit
    temperature cannot hide a bug)."""
    rng = np.random.default_rng(seed)
    for var in layer.weights:
        value = rng.normal(scale=scale, size=tuple(var.shape))
        if "temperature" in var.path:
            value = rng.uniform(0.5, 3.0, size=tuple(var.shape))
        if "gamma" in var.path:
            value = 1.0 + value
        var.assign(value.astype(var.dtype))


def _imgs(rng, shape=(2, 6, 5, 8)):
    return rng.normal(size=shape).astype("float32")


class TestChannelLayerNorm(TestCase):
    def test_layer_contract(self, rng):
        self.run_layer_test(
            ChannelLayerNorm,
            {"epsilon": 1e-5},
            _imgs(rng),
            expected_output_shape=(2, 6, 5, 8),
            expected_num_trainable_weights=2,
        )

    def test_matches_numpy(self, rng):
        x = _imgs(rng) * 3.0 + 1.5
        layer = ChannelLayerNorm()
        layer(x)
        randomise_weights(layer)
        ref = np_layer_norm(
            x.astype(np.float64), to_numpy(layer.gamma), to_numpy(layer.beta)
        )
        self.assertAllClose(layer(x), ref, atol=2e-5, rtol=1e-5)
        # Normalises over channels only: a per-pixel offset and scale vanish.
        plain = ChannelLayerNorm()
        shifted = x * 4.0 + rng.normal(size=x.shape[:-1] + (1,)).astype("float32")
        self.assertAllClose(plain(shifted), plain(x), atol=1e-4)
        assert plain.count_params() == 16


class TestChannelAttention(TestCase):
    def test_layer_contract(self, rng):
        self.run_layer_test(
            ChannelAttention,
            {"num_heads": 2},
            _imgs(rng),
            expected_output_shape=(2, 6, 5, 8),
            expected_num_trainable_weights=4,
        )
        with pytest.raises(ValueError, match="divisible"):
            ChannelAttention(num_heads=3)(_imgs(rng))

    @pytest.mark.parametrize("num_heads", [1, 2, 4])
    def test_matches_numpy_reference(self, rng, num_heads):
        x = _imgs(rng, (2, 7, 6, 8))
        layer = ChannelAttention(num_heads=num_heads)
        layer(x)
        randomise_weights(layer, seed=num_heads)
        w = attention_weights(layer)
        assert tuple(w["temperature"].shape) == (num_heads,)
        out = to_numpy(layer(x))
        for i in range(2):
            ref = np_attention(x[i].astype(np.float64), **w)
            np.testing.assert_allclose(out[i], ref, atol=1e-4, rtol=1e-4)

    def test_pantiny_sizes_and_params(self, rng):
        layer = ChannelAttention(num_heads=2)
        layer(rng.normal(size=(1, 4, 4, 28)).astype("float32"))
        # 28*84 (qkv) + 9*84 (depthwise) + 28*28 (proj) + 2 (temperature)
        assert layer.count_params() == 2352 + 756 + 784 + 2
        np.testing.assert_array_equal(to_numpy(layer.temperature), [1.0, 1.0])

    def test_pixel_order_invariance(self, rng):
        # Channel attention mixes channels with weights pooled over all
        # pixels: permuting pixels (away from the 3x3 depthwise conv, i.e. a
        # 1x1 input) permutes the output identically.
        x = _imgs(rng, (1, 1, 12, 8))
        layer = ChannelAttention(num_heads=2)
        layer(x)
        randomise_weights(layer, seed=5)
        # Kill the depthwise conv's spatial taps so pixels do not interact.
        k = np.zeros(tuple(layer.qkv_dwconv.kernel.shape), "float32")
        k[1, 1] = 1.0
        layer.qkv_dwconv.kernel.assign(k)
        perm = rng.permutation(12)
        out = to_numpy(layer(x))
        self.assertAllClose(layer(x[:, :, perm]), out[:, :, perm], atol=1e-5)


class TestGatedDepthwiseFFN(TestCase):
    def test_layer_contract(self, rng):
        self.run_layer_test(
            GatedDepthwiseFFN,
            {"expansion_factor": 2.0},
            _imgs(rng),
            expected_output_shape=(2, 6, 5, 8),
            expected_num_trainable_weights=3,
        )

    def test_matches_numpy_reference(self, rng):
        x = _imgs(rng, (2, 5, 7, 8))
        layer = GatedDepthwiseFFN()
        layer(x)
        randomise_weights(layer, seed=7)
        out = to_numpy(layer(x))
        w = ffn_weights(layer)
        for i in range(2):
            ref = np_ffn(x[i].astype(np.float64), **w)
            np.testing.assert_allclose(out[i], ref, atol=2e-4, rtol=1e-4)

    def test_pantiny_sizes_and_params(self, rng):
        layer = GatedDepthwiseFFN()
        layer(rng.normal(size=(1, 4, 4, 28)).astype("float32"))
        assert tuple(layer.project_in.kernel.shape) == (1, 1, 28, 112)
        assert tuple(layer.dwconv.kernel.shape) == (3, 3, 112, 1)
        assert tuple(layer.project_out.kernel.shape) == (1, 1, 56, 28)
        assert layer.count_params() == 3136 + 1008 + 1568


class TestTransformerBlock(TestCase):
    def test_layer_contract(self, rng):
        self.run_layer_test(
            TransformerBlock,
            {"num_heads": 2, "expansion_factor": 2.0, "epsilon": 1e-5},
            _imgs(rng),
            expected_output_shape=(2, 6, 5, 8),
            expected_num_trainable_weights=4 + 4 + 3,
        )

    def test_matches_numpy_reference(self, rng):
        x = _imgs(rng, (2, 6, 6, 8))
        block = TransformerBlock(num_heads=2)
        block(x)
        randomise_weights(block, seed=11, scale=0.3)
        out = to_numpy(block(x))
        w = block_weights(block)
        for i in range(2):
            ref = np_block(x[i].astype(np.float64), w)
            np.testing.assert_allclose(out[i], ref, atol=5e-4, rtol=1e-4)

    def test_pantiny_block_params(self, rng):
        block = TransformerBlock(num_heads=2)
        block(rng.normal(size=(1, 4, 4, 28)).astype("float32"))
        # LN 2*56 + attention 3,894 + FFN 5,712 (REFERENCE §7).
        assert block.count_params() == 9718
        assert all("bias" not in v.path or "norm" in v.path for v in block.weights)
