"""Pan-Mamba: selective scan, Mamba mixer, blocks, model, export.

The NumPy references below are written from the authors' PyTorch code
(github.com/alexhe101/Pan-Mamba: `Mamba-block/mamba_simple.py`,
`pan-sharpening/model/panmamba_baseline_finalversion.py`, `refine.py`; and
`selective_scan_ref` of hustvl/Vim `mamba-1p1p1`), in float64, channels
first where the reference is, with a sequential scan.
"""

import functools
import os
import subprocess
import sys

import keras
import numpy as np
import pytest
from keras import ops

from keras_pansharp.export import export_saved_model
from keras_pansharp.layers import selective_scan as selective_scan_module
from keras_pansharp.layers.mamba import Mamba
from keras_pansharp.layers.panmamba_blocks import (
    HalfChannelSwap,
    HinResBlock,
    PatchEmbed,
)
from keras_pansharp.layers.selective_scan import linear_recurrence, selective_scan
from keras_pansharp.models.panmamba import PanMamba
from tests.test_case import TestCase

# Reference parameter count, sum(p.numel() for p in Net().parameters()) of
# panmamba_baseline_finalversion.Net (base_filter 32; bands C: 4 in the
# reference), derived from its module definitions:
#   Mamba(32): d_inner 64, d_state 16, dt_rank ceil(32/16) = 2, d_conv 4
#     in_proj 32*128 + conv1d 64*4+64 + x_proj 64*(2+32) + dt_proj 2*64+64
#     + A_log 64*16 + D 64 + out_proj 64*32                        =  9,920
#   Mamba(32, bimamba_type="v3") adds in_proj_extra 4096, conv1d_b 320,
#     x_proj_b 2176, dt_proj_b 192, A_b_log 1024, D_b 64            = 17,792
#   LayerNorm(32, with bias) 64; HinResBlock(32): 2 * (9*32*32+32) + IN 32
#     + unused identity 1x1 (32*32+32)                              = 19,584
#   encoders: pan conv 9*32+32 = 320, ms conv 9*C*32+32, + 2 * 3 * 19,584
#   PatchEmbed x 2: 2 * (32*32+32 + unused norm 32)                 =  2,176
#   SingleMambaBlock x 16: 16 * (9,920 + 64)                        = 159,744
#   TokenSwapMamba x 2: 2 * (2 * 9,920 + 2 * 64)                    =  39,936
#   shallow_fusion x 2: 2 * (9*64*32+32)                            =  36,928
#   CrossMamba x 5: 5 * (17,792 + 2 * 64 + dwconv 9*32+32)          =  91,200
#   Refine(32, C): conv_in 9,248 + ChannelAttention (2 * 9,248
#     + 32*8+8 + 8*32+32) + conv_last 9*32*C + C
# 4 bands: 320 + 1,184 + 117,504 + 2,176 + 159,744 + 39,936 + 36,928
#   + 91,200 + (9,248 + 19,048 + 1,156)                             = 478,444
# 8 bands: ms conv 2,336 and conv_last 2,312 instead               = 480,752
PARAMS = {4: 478_444, 8: 480_752}
# Weights the reference registers but never uses (6 identity convolutions,
# 2 PatchEmbed norms): non-trainable here.
UNUSED = 6 * (32 * 32 + 32) + 2 * 32

TINY = {
    "filters": 8,
    "encoder_blocks": 1,
    "single_blocks": 2,
    "swap_blocks": 1,
    "cross_blocks": 2,
    "d_state": 4,
}
# Fewer Mamba mixers for the training / saving / export checks (graph
# building time grows with their number, mostly under TensorFlow).
SMALL = dict(TINY, single_blocks=1, cross_blocks=1)


def make_inputs(bands, h=8, w=8, batch=2, seed=0, with_lms=False):
    rng = np.random.default_rng(seed)
    x = {
        "ms": rng.random((batch, h, w, bands), dtype=np.float32),
        "pan": rng.random((batch, 4 * h, 4 * w, 1), dtype=np.float32),
    }
    if with_lms:
        x["lms"] = rng.random((batch, 4 * h, 4 * w, bands), dtype=np.float32)
    return x


# ----------------------------------------------------------- NumPy references
def np_softplus(x):
    return np.log1p(np.exp(-np.abs(x))) + np.maximum(x, 0)


def np_silu(x):
    return x / (1 + np.exp(-x))


def np_sigmoid(x):
    return 1 / (1 + np.exp(-x))


def np_selective_scan_ref(u, delta, A, B, C, D, z, delta_bias):
    """`selective_scan_ref`, channels first: u, delta, z (b, d, l); B, C (b, n, l)."""
    delta = np_softplus(delta + delta_bias[:, None])
    b, d, length = u.shape
    x = np.zeros((b, d, A.shape[1]))
    ys = []
    for i in range(length):
        delta_a = np.exp(delta[:, :, i, None] * A)
        delta_b_u = delta[:, :, i, None] * B[:, None, :, i] * u[:, :, i, None]
        x = delta_a * x + delta_b_u
        ys.append(np.einsum("bdn,bn->bd", x, C[:, :, i]))
    y = np.stack(ys, axis=2) + u * D[:, None]
    return y * np_silu(z)


def np_mamba_inner(xz, w, suffix, d_conv, rank):
    """`mamba_inner_fn_no_out_proj` on xz (b, 2d, l), weights by name."""
    d = xz.shape[1] // 2
    length = xz.shape[2]
    x, z = xz[:, :d], xz[:, d:]
    # nn.Conv1d(d, d, d_conv, groups=d, padding=d_conv - 1), then [..., :L].
    weight = w[f"conv1d{suffix}_kernel"].T  # (d, d_conv)
    xp = np.pad(x, [(0, 0), (0, 0), (d_conv - 1, d_conv - 1)])
    full = np.stack(
        [np.sum(xp[:, :, t : t + d_conv] * weight, axis=-1) for t in range(length)],
        axis=2,
    )
    x = np_silu(full + w[f"conv1d{suffix}_bias"][:, None])
    x_dbl = np.einsum("bdl,de->ble", x, w[f"x_proj{suffix}_kernel"])
    dt = np.einsum("blr,rd->bdl", x_dbl[..., :rank], w[f"dt_proj{suffix}_kernel"])
    n = w[f"A{suffix}_log"].shape[1]
    B = x_dbl[..., rank : rank + n].transpose(0, 2, 1)
    C = x_dbl[..., rank + n :].transpose(0, 2, 1)
    A = -np.exp(w[f"A{suffix}_log"])
    return np_selective_scan_ref(
        x, dt, A, B, C, w[f"D{suffix}"], z, w[f"dt_proj{suffix}_bias"]
    )


def np_mamba(layer, h, extra=None):
    """`Mamba.forward(h, extra_emb=extra)`, h (b, l, d), with the layer's weights."""
    w = {v.path.split("/")[-1]: np.asarray(v, dtype=np.float64) for v in layer.weights}
    rank = w["dt_proj_kernel"].shape[0]
    xz = np.einsum("bld,de->bel", h, w["in_proj_kernel"])
    out = np_mamba_inner(xz, w, "", layer.d_conv, rank)
    if extra is not None:
        ez = np.einsum("bld,de->bel", extra, w["in_proj_extra_kernel"])
        out = out + np_mamba_inner(ez, w, "_b", layer.d_conv, rank)
    return np.einsum("bdl,de->ble", out, w["out_proj_kernel"])


def np_conv(x, kernel, bias):
    """Zero-padded 'same' 2-D convolution, (b, h, w, ci) x (k, k, ci, co)."""
    k = kernel.shape[0]
    p = k // 2
    hh, ww = x.shape[1:3]
    xp = np.pad(x, [(0, 0), (p, p), (p, p), (0, 0)])
    out = np.zeros((*x.shape[:3], kernel.shape[-1]))
    for dy in range(k):
        for dx in range(k):
            out += xp[:, dy : dy + hh, dx : dx + ww] @ kernel[dy, dx]
    return out + bias


def np_dwconv(x, kernel, bias):
    hh, ww = x.shape[1:3]
    xp = np.pad(x, [(0, 0), (1, 1), (1, 1), (0, 0)])
    out = np.zeros_like(x)
    for dy in range(3):
        for dx in range(3):
            out += xp[:, dy : dy + hh, dx : dx + ww] * kernel[dy, dx, :, 0]
    return out + bias


def np_layer_norm(x, gamma, beta):
    mu = x.mean(-1, keepdims=True)
    var = x.var(-1, keepdims=True)
    return (x - mu) / np.sqrt(var + 1e-5) * gamma + beta


def np_lrelu(x):
    return np.where(x >= 0, x, 0.2 * x)


def np_hin(layer, x):
    g = lambda name: np.asarray(getattr(layer, name), dtype=np.float64)  # noqa: E731
    r = np_lrelu(np_conv(x, g("conv_1_kernel"), g("conv_1_bias")))
    half = r.shape[-1] // 2
    r1 = r[..., :half]
    mu = r1.mean(axis=(1, 2), keepdims=True)
    var = r1.var(axis=(1, 2), keepdims=True)
    r1 = (r1 - mu) / np.sqrt(var + 1e-5) * g("norm_gamma") + g("norm_beta")
    r = np.concatenate([r1, r[..., half:]], axis=-1)
    return x + np_lrelu(np_conv(r, g("conv_2_kernel"), g("conv_2_bias")))


def np_panmamba(model, x):
    """`Net.forward` of the reference with the Keras model's weights (lms given)."""

    def wts(name):
        return [
            np.asarray(v, dtype=np.float64) for v in model.get_layer(name).get_weights()
        ]

    def conv(name, t):
        return np_conv(t, *wts(name))

    def norm(name, t):
        return np_layer_norm(t, *wts(name))

    def mamba(name, t, extra=None):
        b, h, w, c = t.shape
        seq = lambda a: a.reshape(b, h * w, c)  # noqa: E731 - to_3d
        layer = model.get_layer(name)
        out = np_mamba(layer, seq(t), None if extra is None else seq(extra))
        return out.reshape(b, h, w, c)

    def to_token(name, t):
        kernel, bias = wts(name)[:2]
        return t @ kernel + bias

    cfg = model.get_config()
    lms = x["lms"].astype(np.float64)
    ms_f = conv("ms_encoder_conv", lms)
    pan_f = conv("pan_encoder_conv", x["pan"].astype(np.float64))
    for i in range(cfg["encoder_blocks"]):
        ms_f = np_hin(model.get_layer(f"ms_encoder_hin{i + 1}"), ms_f)
        pan_f = np_hin(model.get_layer(f"pan_encoder_hin{i + 1}"), pan_f)
    ms_f, pan_f = to_token("ms_to_token", ms_f), to_token("pan_to_token", pan_f)

    def single(t, prefix):  # nn.Sequential of SingleMambaBlock, residual 0
        residual = 0
        for i in range(cfg["single_blocks"]):
            residual = t + residual
            t = mamba(f"{prefix}{i + 1}_mamba", norm(f"{prefix}{i + 1}_norm", residual))
        return t, residual

    ms_f, res_ms = single(ms_f, "ms_single")
    pan_f, res_pan = single(pan_f, "pan_single")
    for i in range(cfg["swap_blocks"]):  # TokenSwapMamba
        p = f"swap{i + 1}"
        res_ms, res_pan = ms_f + res_ms, pan_f + res_pan
        ms_n, pan_n = norm(f"{p}_ms_norm", res_ms), norm(f"{p}_pan_norm", res_pan)
        k = ms_n.shape[-1] // 2
        ms_swap = np.concatenate([pan_n[..., :k], ms_n[..., k:]], axis=-1)
        pan_swap = np.concatenate([ms_n[..., :k], pan_n[..., k:]], axis=-1)
        ms_f, pan_f = mamba(f"{p}_ms_mamba", ms_swap), mamba(f"{p}_pan_mamba", pan_swap)
    ms_f = conv("shallow_fusion1", np.concatenate([ms_f, pan_f], -1)) + ms_f
    pan_f = conv("shallow_fusion2", np.concatenate([pan_f, ms_f], -1)) + pan_f
    ms_f, pan_f = to_token("ms_to_token", ms_f), to_token("pan_to_token", pan_f)
    res_ms = 0
    for i in range(cfg["cross_blocks"]):  # CrossMamba
        p = f"cross{i + 1}"
        res_ms = ms_f + res_ms
        ms_n = norm(f"{p}_norm1", res_ms)
        pan_n = norm(f"{p}_norm2", pan_f)
        g = mamba(f"{p}_mamba", norm(f"{p}_norm1", ms_n), norm(f"{p}_norm2", pan_n))
        ms_f = np_dwconv(g, *wts(f"{p}_dwconv")) + g
    # Refine: conv_in, ChannelAttention, conv_last.
    t = conv("refine_conv_in", ms_f)
    res = conv("refine_ca_conv2", np.maximum(conv("refine_ca_conv1", t), 0))
    y = res.mean(axis=(1, 2), keepdims=True)
    z = np_sigmoid(conv("refine_ca_du2", np.maximum(conv("refine_ca_du1", y), 0)))
    t = z * res + t
    return conv("refine_conv_last", t) + lms


def sequential_recurrence(a, b):
    h = np.zeros_like(b[:, 0])
    out = []
    for t in range(a.shape[1]):
        h = a[:, t] * h + b[:, t]
        out.append(h)
    return np.stack(out, axis=1)


def scan_args(length, b=2, d=6, n=5):
    """Random float64 `u, delta, A, B, C, D, z, delta_bias` of a scan."""
    rng = np.random.default_rng(length)
    return (
        rng.normal(size=(b, length, d)),
        rng.normal(size=(b, length, d)),
        -np.exp(rng.normal(size=(d, n))),
        rng.normal(size=(b, length, n)),
        rng.normal(size=(b, length, n)),
        rng.normal(size=(d,)),
        rng.normal(size=(b, length, d)),
        rng.normal(size=(d,)),
    )


def scan_gradients(args, chunk_size, method):
    """Gradients of `sum(selective_scan(...)**2)` w.r.t. u, delta, A, B, C."""
    u, delta, A, B, C, D, z, bias = args

    def loss(u, delta, A, B, C):
        y = selective_scan(
            u, delta, A, B, C, D, z, bias, chunk_size=chunk_size, method=method
        )
        return ops.sum(y * y)

    if keras.backend.backend() == "jax":
        import jax

        return jax.grad(loss, argnums=(0, 1, 2, 3, 4))(u, delta, A, B, C)
    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        xs = [tf.constant(a) for a in (u, delta, A, B, C)]
        with tf.GradientTape() as tape:
            tape.watch(xs)
            value = loss(*xs)
        return tape.gradient(value, xs)
    pytest.skip(f"no gradient helper for {keras.backend.backend()}")


# ---------------------------------------------------------------------- tests
METHODS = ["sequential", "associative"]


class TestSelectiveScan(TestCase):
    @pytest.mark.parametrize("method", METHODS)
    @pytest.mark.parametrize("length", [1, 2, 3, 5, 16, 37])
    def test_linear_recurrence_matches_sequential(self, length, method):
        rng = np.random.default_rng(length)
        a = rng.uniform(0.2, 1.0, (2, length, 3, 4))
        b = rng.normal(size=(2, length, 3, 4))
        got = linear_recurrence(a.astype("float32"), b.astype("float32"), method)
        self.assertAllClose(got, sequential_recurrence(a, b), atol=1e-5, rtol=1e-5)

    @pytest.mark.parametrize("method", METHODS)
    @pytest.mark.parametrize("length,chunk_size", [(23, 0), (23, 8), (24, 8)])
    def test_selective_scan_matches_numpy_reference(self, length, chunk_size, method):
        # chunk_size 8: scanned chunk by chunk, the state carried across
        # chunks (length 23: the last chunk is padded); 0: the whole sequence.
        args = scan_args(length)
        got = selective_scan(
            *(a.astype("float32") for a in args), chunk_size=chunk_size, method=method
        )
        t = lambda v: v.transpose(0, 2, 1)  # noqa: E731 - to (b, d, l)
        u, delta, A, B, C, D, z, bias = args
        ref = np_selective_scan_ref(t(u), t(delta), A, t(B), t(C), D, t(z), bias)
        self.assertAllClose(got, t(ref), atol=1e-5, rtol=1e-4)

    def test_scan_gradients_agree_across_methods_and_chunking(self):
        args = [a.astype("float32") for a in scan_args(21)]
        # Gradients with respect to u, delta, A, B and C, all against the
        # whole associative scan.
        whole = scan_gradients(args, chunk_size=0, method="associative")
        for chunk_size, method in [
            (8, "associative"),
            (0, "sequential"),
            (8, "sequential"),
        ]:
            other = scan_gradients(args, chunk_size=chunk_size, method=method)
            for got, ref in zip(other, whole):
                self.assertAllClose(got, ref, atol=1e-5, rtol=1e-4)

    @pytest.mark.skipif(
        keras.backend.backend() != "tensorflow",
        reason="unknown batch sizes exist only in TensorFlow graphs",
    )
    @pytest.mark.parametrize("method", METHODS)
    def test_chunked_scan_with_unknown_batch_in_tf_graph(self, method):
        import tensorflow as tf

        args = [a.astype("float32") for a in scan_args(19)]
        specs = [tf.TensorSpec((None,) + a.shape[1:]) for a in args[:2]]
        specs += [tf.TensorSpec(args[2].shape)]
        specs += [tf.TensorSpec((None,) + a.shape[1:]) for a in args[3:5]]
        fn = tf.function(
            lambda *a: selective_scan(*a, chunk_size=8, method=method),
            input_signature=specs,
        )
        got = fn(*args[:5])
        whole = selective_scan(*args[:5], chunk_size=0, method="associative")
        self.assertAllClose(got, whole, atol=1e-5, rtol=1e-5)

    def test_chunk_size_and_method_are_checked(self):
        args = [a.astype("float32") for a in scan_args(5)]
        for bad in (-1, 2.5):
            with pytest.raises(ValueError, match="chunk_size"):
                selective_scan(*args[:5], chunk_size=bad)
        with pytest.raises(ValueError, match="method must be one of"):
            selective_scan(*args[:5], method="parallel")
        with pytest.raises(ValueError, match="method must be one of"):
            linear_recurrence(args[0], args[0], method="loop")

    def test_default_method_by_device(self, monkeypatch):
        monkeypatch.setattr(selective_scan_module, "_accelerator", lambda b: False)
        assert selective_scan_module.default_method() == "sequential"
        monkeypatch.setattr(selective_scan_module, "_accelerator", lambda b: True)
        assert selective_scan_module.default_method() == "associative"

    def test_default_chunking_by_method_and_backend(self, monkeypatch):
        # Associative: JAX chunks above CHUNK steps by default; TensorFlow
        # scans whole up to TF_WHOLE_MAX steps and chunks longer sequences.
        # Sequential: chunks above SEQUENTIAL_CHUNK on every backend.
        calls = []
        real = selective_scan_module._chunked_scan
        monkeypatch.setattr(
            selective_scan_module,
            "_chunked_scan",
            lambda *a: calls.append(a[-2:]) or real(*a),
        )
        monkeypatch.setattr(selective_scan_module, "CHUNK", 8)
        monkeypatch.setattr(selective_scan_module, "SEQUENTIAL_CHUNK", 6)
        monkeypatch.setattr(selective_scan_module, "TF_WHOLE_MAX", 19)
        args = [a.astype("float32") for a in scan_args(19)]
        selective_scan(*args[:5], method="associative")
        jax = keras.backend.backend() == "jax"
        assert calls == ([(8, "associative")] if jax else [])
        calls.clear()
        selective_scan(*args[:5], method="sequential")
        assert calls == [(6, "sequential")]
        calls.clear()
        args = [a.astype("float32") for a in scan_args(20)]
        want = selective_scan(*args[:5], chunk_size=0, method="associative")
        assert calls == []
        got = selective_scan(*args[:5], method="associative")
        assert calls == [(8, "associative")]  # both backends chunk above TF_WHOLE_MAX
        self.assertAllClose(got, want, atol=1e-5, rtol=1e-5)

    @pytest.mark.skipif(
        keras.backend.backend() != "tensorflow",
        reason="unknown sequence lengths exist only in TensorFlow graphs",
    )
    def test_dynamic_length_scan_in_tf_graph(self):
        import tensorflow as tf

        spec = tf.TensorSpec((None, None, 3), tf.float32)
        rng = np.random.default_rng(1)
        for method in METHODS:
            fn = tf.function(
                functools.partial(linear_recurrence, method=method),
                input_signature=[spec, spec],
            )
            for length in (1, 2, 7, 64):
                a = rng.uniform(0.2, 1.0, (2, length, 3))
                b = rng.normal(size=(2, length, 3))
                got = fn(a.astype("float32"), b.astype("float32"))
                self.assertAllClose(
                    got, sequential_recurrence(a, b), atol=1e-5, rtol=1e-5
                )


class TestMamba(TestCase):
    def test_counts_match_reference(self):
        x = np.zeros((1, 4, 32), "float32")
        plain, cross = Mamba(), Mamba(cross=True)
        plain(x)
        cross(x, x)
        assert plain.count_params() == 9_920
        assert cross.count_params() == 17_792

    @pytest.mark.parametrize("cross", [False, True], ids=["single", "cross_v3"])
    def test_matches_numpy_reference(self, cross):
        rng = np.random.default_rng(2)
        h = rng.normal(size=(2, 19, 16))
        extra = rng.normal(size=(2, 19, 16)) if cross else None
        layer = Mamba(d_state=4, cross=cross)
        args = [h.astype("float32")] + ([extra.astype("float32")] if cross else [])
        out = layer(*args)
        self.assertAllClose(out, np_mamba(layer, h, extra), atol=1e-5, rtol=1e-4)

    def test_image_is_scanned_row_major(self):
        rng = np.random.default_rng(3)
        img = rng.normal(size=(1, 3, 5, 8)).astype("float32")
        layer = Mamba(d_state=4)
        out = ops.convert_to_numpy(layer(img))
        seq = ops.convert_to_numpy(layer(img.reshape(1, 15, 8)))
        np.testing.assert_allclose(out.reshape(1, 15, 8), seq, atol=1e-6)

    def test_layer(self):
        x = np.random.default_rng(0).normal(size=(2, 6, 8)).astype("float32")
        self.run_layer_test(
            Mamba,
            {"d_state": 4, "expand": 2},
            x,
            expected_output_shape=(2, 6, 8),
            expected_num_trainable_weights=9,
        )

    def test_cross_layer(self):
        rng = np.random.default_rng(0)
        x = rng.normal(size=(2, 3, 4, 8)).astype("float32")
        extra = rng.normal(size=(2, 3, 4, 8)).astype("float32")
        self.run_layer_test(
            Mamba,
            {"d_state": 4, "cross": True},
            {"x": x, "extra": extra},
            expected_output_shape=(2, 3, 4, 8),
            expected_num_trainable_weights=17,
        )

    def test_bad_arguments(self):
        with pytest.raises(ValueError, match="d_state"):
            Mamba(d_state=0)
        with pytest.raises(ValueError, match="extra"):
            Mamba(cross=True)(np.zeros((1, 4, 8), "float32"))


class TestPanMambaBlocks(TestCase):
    def test_hin_res_block_layer(self):
        x = np.random.default_rng(0).normal(size=(2, 5, 6, 8)).astype("float32")
        out = self.run_layer_test(
            HinResBlock,
            {"relu_slope": 0.2},
            x,
            expected_output_shape=(2, 5, 6, 8),
            expected_num_trainable_weights=6,
        )
        layer = HinResBlock()
        layer(x)
        assert layer.count_params() == 2 * (9 * 64 + 8) + 8 + (64 + 8)
        self.assertAllClose(layer(x), np_hin(layer, x.astype(np.float64)))
        assert out.shape == x.shape

    def test_hin_res_block_rejects_odd_channels(self):
        with pytest.raises(ValueError, match="even"):
            HinResBlock()(np.zeros((1, 4, 4, 5), "float32"))

    def test_patch_embed_layer(self):
        x = np.random.default_rng(0).normal(size=(2, 3, 4, 6)).astype("float32")
        self.run_layer_test(
            PatchEmbed,
            {"embed_dim": 8},
            x,
            expected_output_shape=(2, 3, 4, 8),
            expected_num_trainable_weights=2,
        )

    def test_half_channel_swap_layer(self):
        rng = np.random.default_rng(0)
        a = rng.normal(size=(2, 3, 4, 6)).astype("float32")
        b = rng.normal(size=(2, 3, 4, 6)).astype("float32")
        out = self.run_layer_test(
            HalfChannelSwap,
            {},
            {"x": a, "other": b},
            expected_output_shape=(2, 3, 4, 6),
            expected_num_trainable_weights=0,
        )
        np.testing.assert_array_equal(
            ops.convert_to_numpy(out), np.concatenate([b[..., :3], a[..., 3:]], -1)
        )


class TestPanMambaModel(TestCase):
    @pytest.mark.parametrize("bands", [4, 8])
    def test_parameter_count(self, bands):
        model = PanMamba(bands=bands)
        assert model.count_params() == PARAMS[bands]
        unused = sum(int(np.prod(w.shape)) for w in model.non_trainable_weights)
        assert unused == UNUSED

    def test_matches_numpy_reference(self):
        model = PanMamba(bands=4, **TINY)
        x = make_inputs(4, 4, 4, batch=2, with_lms=True)
        self.assertAllClose(model(x), np_panmamba(model, x), atol=1e-4, rtol=1e-4)

    def test_model(self):
        x = make_inputs(4, 4, 4)
        model = self.run_model_test(
            PanMamba,
            {"bands": 4, **SMALL},
            x,
            expected_output_shape=(2, 16, 16, 4),
        )
        # Non-square, with a precomputed lms: spatial size is dynamic.
        x2 = make_inputs(4, 3, 5, batch=1, with_lms=True)
        assert tuple(ops.shape(model(x2))) == (1, 12, 20, 4)

    def test_eight_bands(self):
        model = PanMamba(bands=8, **SMALL)
        out = model(make_inputs(8, 4, 4, batch=1))
        assert tuple(ops.shape(out)) == (1, 16, 16, 8)

    def test_saving(self):
        self.run_model_saving_test(
            PanMamba, {"bands": 4, **SMALL}, make_inputs(4, 4, 4)
        )

    def test_config_holds_constructor_args(self):
        model = PanMamba(bands=8, upsampler="bicubic", name="custom", **TINY)
        config = model.get_config()
        assert config["bands"] == 8 and config["upsampler"] == "bicubic"
        assert config["name"] == "custom"
        assert {k: config[k] for k in TINY} == TINY
        revived = PanMamba.from_config(config)
        assert revived.get_config() == config
        assert revived.count_params() == model.count_params()

    def test_residual_adds_lms(self):
        model = PanMamba(bands=4, **SMALL)
        last = model.get_layer("refine_conv_last")
        last.set_weights([np.zeros_like(w) for w in last.get_weights()])
        x = make_inputs(4, 4, 4, batch=1, with_lms=True)
        np.testing.assert_allclose(ops.convert_to_numpy(model(x)), x["lms"], atol=1e-6)

    def test_bad_arguments(self):
        with pytest.raises(ValueError, match="bands"):
            PanMamba(bands=0)
        with pytest.raises(ValueError, match="even"):
            PanMamba(filters=6 + 1)
        with pytest.raises(ValueError, match="cross_blocks"):
            PanMamba(cross_blocks=-1)


# Runs in a fresh interpreter that imports TensorFlow only.
_SERVE = r"""
import sys
import numpy as np
import tensorflow as tf
path, inp, out = sys.argv[1:4]
data = np.load(inp)
sig = tf.saved_model.load(path).signatures
res = {}
for name in ("a", "b"):
    res[name] = sig["serving_default"](
        ms=tf.constant(data[name + "_ms"]), pan=tf.constant(data[name + "_pan"])
    )["fused"].numpy()
res["lms"] = sig["serving_with_lms"](
    ms=tf.constant(data["a_ms"]), pan=tf.constant(data["a_pan"]),
    lms=tf.constant(data["a_lms"]),
)["fused"].numpy()
assert "keras_pansharp" not in sys.modules
np.savez(out, **res)
"""


@pytest.mark.skipif(
    keras.backend.backend() != "tensorflow",
    reason="export from other backends rebuilds the model under TensorFlow "
    "(tests/test_export.py covers that path)",
)
def test_saved_model_export(tmp_path):
    # Dynamic spatial size in the served graph: the scan length is unknown at
    # trace time and the doubling scan (while_loop) is used.
    model = PanMamba(bands=4, **SMALL)
    inputs, expected = {}, {}
    for name, (b, h, w) in {"a": (2, 4, 4), "b": (1, 3, 5)}.items():
        x = make_inputs(4, h, w, batch=b, seed=len(name) + h)
        inputs[name + "_ms"], inputs[name + "_pan"] = x["ms"], x["pan"]
        expected[name] = model.predict(x, verbose=0)
    inputs["a_lms"] = make_inputs(4, 4, 4, batch=2, seed=9, with_lms=True)["lms"]
    with_lms = model.predict(
        {"ms": inputs["a_ms"], "pan": inputs["a_pan"], "lms": inputs["a_lms"]},
        verbose=0,
    )
    path = tmp_path / "served"
    export_saved_model(model, path)
    np.savez(tmp_path / "in.npz", **inputs)
    env = {k: v for k, v in os.environ.items() if k != "KERAS_BACKEND"}
    env["TF_CPP_MIN_LOG_LEVEL"] = "2"
    proc = subprocess.run(
        [
            sys.executable,
            "-c",
            _SERVE,
            str(path),
            str(tmp_path / "in.npz"),
            str(tmp_path / "out.npz"),
        ],
        env=env,
        capture_output=True,
        text=True,
        cwd=str(tmp_path),
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    got = dict(np.load(tmp_path / "out.npz"))
    for name in ("a", "b"):
        assert got[name].shape == expected[name].shape
        np.testing.assert_allclose(got[name], expected[name], atol=1e-5)
    np.testing.assert_allclose(got["lms"], with_lms, atol=1e-5)
