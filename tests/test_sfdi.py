"""SFDI (SFIIN, ECCV 2022): Fourier layers, blocks, model, export."""

import os
import subprocess
import sys

import keras
import numpy as np
import pytest
from keras import ops

from keras_pansharp.export import export_saved_model
from keras_pansharp.layers.frequency import (
    FourierAmplitudePhase,
    InverseFourierAmplitudePhase,
)
from keras_pansharp.layers.sfdi_blocks import (
    AmplitudePhaseFusion,
    InvertibleConv1x1,
    InvertibleCouplingBlock,
    ResidualDenseSubnet,
    SpatialFrequencyBlock,
)
from keras_pansharp.models.sfdi import SFDI
from tests.test_case import TestCase

EPS = 1e-8


# Reference parameter count, derived from the PyTorch modules of
# manman1995/Awaresome-pansharpening model/SFITNET.py (Net1), refine.py and
# modules.py (LU InvertibleConv1x1: l, u are n x n Parameters, log_s is n;
# p and sign_s are buffers). conv(i, o, k) = i*o*k*k + o.
def _conv(i, o, k):
    return i * o * k * k + o


def _dense_block(i, o, gc=8):  # DenseBlock: 2 UNetConvBlocks + conv3
    def unet(a, b):  # UNetConvBlock: 1x1 identity, two 3x3
        return _conv(a, b, 1) + _conv(a, b, 3) + _conv(b, b, 3)

    return unet(i, gc) + unet(gc, gc) + _conv(i + 2 * gc, o, 3)


def _spafre(c):
    n, h = 2 * c, c // 2
    inv = _dense_block(c, c) * 3 + 2 * n * n + n  # F, G, H + LU 1x1
    fre = (
        2 * _conv(c, c, 1) + 2 * (_conv(2 * c, c, 1) + _conv(c, c, 1)) + _conv(c, c, 1)
    )
    return (
        _conv(c, c, 3)  # panprocess
        + _conv(c, c, 1)  # panpre
        + inv
        + _conv(2 * c, c, 1)  # spa_process 1x1
        + fre
        + _conv(c, h, 3)
        + _conv(h, c, 3)  # spa_att
        + _conv(2 * c, h, 1)
        + _conv(h, 2 * c, 1)  # cha_att
        + _conv(2 * c, c, 3)  # post
    )


def reference_params(bands, c):
    refine = (
        _conv(c, c, 3)  # conv_in
        + 2 * _conv(c, c, 3)  # CALayer.process
        + _conv(c, c // 4, 1)
        + _conv(c // 4, c, 1)  # CALayer.conv_du
        + _conv(c, bands, 3)  # conv_last
    )
    return (
        _conv(bands, c, 3)  # conv_p
        + _conv(1, c, 3)  # conv_p1
        + 5 * _spafre(c)
        + _conv(5 * c, c, 1)  # fuse
        + refine
    )


# 4 bands is the configuration of PanTiny's sfdi.yml (num_channels: 4, which
# Net1 uses as the feature width); 49,117 = the 49.1 K of PanTiny's table.
PARAMS = {4: 49_117, 8: 85_850}


def make_inputs(bands, h=8, w=8, batch=2, seed=0, with_lms=False):
    rng = np.random.default_rng(seed)
    x = {
        "ms": rng.random((batch, h, w, bands), dtype=np.float32),
        "pan": rng.random((batch, 4 * h, 4 * w, 1), dtype=np.float32),
    }
    if with_lms:
        x["lms"] = rng.random((batch, 4 * h, 4 * w, bands), dtype=np.float32)
    return x


# ----------------------------------------------------- NumPy float64 reference
def np_conv(x, layer, act=None):
    kernel, bias = (np.asarray(w, np.float64) for w in layer.get_weights())
    kh, kw = kernel.shape[:2]
    ph, pw = kh // 2, kw // 2
    xp = np.pad(x, [(0, 0), (ph, ph), (pw, pw), (0, 0)])
    h, w = x.shape[1:3]
    out = np.zeros((*x.shape[:3], kernel.shape[-1])) + bias
    for i in range(kh):
        for j in range(kw):
            out += np.einsum("bhwc,co->bhwo", xp[:, i : i + h, j : j + w], kernel[i, j])
    return out if act is None else act(out)


def lrelu(slope):
    return lambda x: np.where(x > 0, x, slope * x)


def sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def np_invconv(layer, x):
    w = np.asarray(ops.convert_to_numpy(layer.weight_matrix()), np.float64)
    return np.einsum("bhwi,oi->bhwo", x, w)


def np_dense(sub, x):
    def pair(p, v):
        out = np_conv(v, p.conv_1, lrelu(0.1))
        out = np_conv(out, p.conv_2, lrelu(0.1))
        return out + np_conv(v, p.identity)

    x1 = lrelu(0.2)(pair(sub.block1, x))
    x2 = lrelu(0.2)(pair(sub.block2, x1))
    return np_conv(np.concatenate([x, x1, x2], -1), sub.conv3, lrelu(0.2))


def np_coupling(blk, x):
    x = np_invconv(blk.invconv, x)
    x1, x2 = x[..., : blk.split], x[..., blk.split :]
    y1 = x1 + np_dense(blk.f, x2)
    s = blk.clamp * (sigmoid(np_dense(blk.h, y1)) * 2 - 1)
    return np.concatenate([y1, x2 * np.exp(s) + np_dense(blk.g, y1)], -1)


def np_freq(layer, ms, pan):
    h, w = ms.shape[1:3]
    a = np.fft.rfft2(np_conv(ms, layer.pre1) + EPS, axes=(1, 2))
    b = np.fft.rfft2(np_conv(pan, layer.pre2) + EPS, axes=(1, 2))
    amp = np.concatenate([np.abs(a), np.abs(b)], -1)
    pha = np.concatenate([np.angle(a), np.angle(b)], -1)
    amp = np_conv(np_conv(amp, layer.amp_fuse1, lrelu(0.1)), layer.amp_fuse2)
    pha = np_conv(np_conv(pha, layer.pha_fuse1, lrelu(0.1)), layer.pha_fuse2)
    z = (amp * np.cos(pha) + EPS) + 1j * (amp * np.sin(pha) + EPS) + EPS
    out = np.abs(np.fft.irfft2(z, s=(h, w), axes=(1, 2)))
    return np_conv(out, layer.post)


def np_spafre(blk, ms, pan):
    panpre = np_conv(pan, blk.panprocess)
    panf = np_conv(panpre, blk.panpre)
    spafuse = np_conv(
        np_coupling(blk.spa_coupling, np.concatenate([ms, panf], -1)), blk.spa_conv
    )
    frefuse = np_freq(blk.fre_process, ms, panf)
    att = np_conv(np_conv(spafuse - frefuse, blk.spa_att1, lrelu(0.1)), blk.spa_att2)
    spa_res = frefuse * sigmoid(att) + spafuse
    cat = np.concatenate([spa_res, frefuse], -1)
    pooled = cat.std(axis=(1, 2), keepdims=True) + cat.mean(axis=(1, 2), keepdims=True)
    weights = sigmoid(np_conv(np_conv(pooled, blk.cha_att1, lrelu(0.1)), blk.cha_att2))
    return np_conv(weights * cat, blk.post) + ms, panpre


# `run_layer_test` takes layers with one output tensor (it calls
# `ops.shape(output)`), so the two-output layers go through it with their
# outputs concatenated on channels; everything else (config round trip,
# rebuilt clone with the same weights) runs the layers' own code.
class _FourierAmplitudePhaseCat(FourierAmplitudePhase):
    def call(self, inputs):
        return ops.concatenate(super().call(inputs), axis=-1)

    def compute_output_shape(self, input_shape):
        first = super().compute_output_shape(input_shape)[0]
        return (*first[:-1], 2 * first[-1])


class _SpatialFrequencyBlockCat(SpatialFrequencyBlock):
    def call(self, ms, pan):
        return ops.concatenate(super().call(ms, pan), axis=-1)

    def compute_output_shape(self, ms_shape, pan_shape=None):
        return (*ms_shape[:-1], 2 * self.channels)


# ---------------------------------------------------------- frequency layers
class TestFourierLayers(TestCase):
    @pytest.mark.parametrize("width", [8, 7])
    def test_forward_matches_numpy_rfft2(self, width):
        x = np.random.default_rng(0).normal(size=(2, 6, width, 3)).astype("float32")
        amp, pha = FourierAmplitudePhase()(x)
        ref = np.fft.rfft2(x.astype(np.float64) + EPS, axes=(1, 2))  # "backward"
        amp, pha = ops.convert_to_numpy(amp), ops.convert_to_numpy(pha)
        assert amp.shape == ref.shape == (2, 6, width // 2 + 1, 3)
        np.testing.assert_allclose(amp, np.abs(ref), atol=2e-5, rtol=1e-5)
        # Phase compared on the unit circle (no +-pi wrap ambiguity).
        np.testing.assert_allclose(
            np.exp(1j * pha), np.exp(1j * np.angle(ref)), atol=2e-5
        )

    @pytest.mark.parametrize("width", [8, 7])
    def test_inverse_matches_numpy_irfft2(self, width):
        # Arbitrary (non-Hermitian) spectra: the zero / Nyquist columns'
        # imaginary parts must be dropped as torch.fft.irfft2 does.
        rng = np.random.default_rng(1)
        shape = (2, 6, width // 2 + 1, 3)
        amp = rng.random(shape).astype("float32")
        pha = rng.uniform(-np.pi, np.pi, shape).astype("float32")
        like = np.zeros((2, 6, width, 1), "float32")
        got = ops.convert_to_numpy(InverseFourierAmplitudePhase()(amp, pha, like))
        a, p = amp.astype(np.float64), pha.astype(np.float64)
        z = (a * np.cos(p) + EPS) + 1j * (a * np.sin(p) + EPS) + EPS
        ref = np.abs(np.fft.irfft2(z, s=(6, width), axes=(1, 2)))
        np.testing.assert_allclose(got, ref, atol=1e-6, rtol=1e-5)

    def test_round_trip(self):
        x = np.random.default_rng(2).random((1, 8, 6, 2)).astype("float32")
        amp, pha = FourierAmplitudePhase(0.0)(x)
        y = InverseFourierAmplitudePhase(0.0)(amp, pha, x)
        np.testing.assert_allclose(ops.convert_to_numpy(y), x, atol=1e-5)

    def test_zero_input_has_finite_gradient(self):
        # |z| and angle(z) at z = 0 must not give NaN gradients.
        dense_in = keras.Input((4, 4, 1))
        scaled = keras.layers.Dense(1, use_bias=False, kernel_initializer="zeros")(
            dense_in
        )
        amp2, pha2 = FourierAmplitudePhase(0.0)(scaled)
        net = keras.Model(dense_in, keras.layers.Add()([amp2, pha2]))
        net.compile(optimizer="sgd", loss="mse")
        net.fit(np.ones((1, 4, 4, 1)), np.ones((1, 4, 3, 1)), verbose=0)
        assert np.all(np.isfinite(net.get_weights()[0]))

    def test_mixed_precision(self):
        # The transforms run in float32 when the compute dtype is float16.
        x = np.random.default_rng(5).random((1, 6, 8, 2)).astype("float32")
        amp, pha = FourierAmplitudePhase(dtype="mixed_float16")(x)
        assert keras.backend.standardize_dtype(amp.dtype) == "float16"
        y = InverseFourierAmplitudePhase(dtype="mixed_float16")(amp, pha, x)
        assert keras.backend.standardize_dtype(y.dtype) == "float16"
        np.testing.assert_allclose(ops.convert_to_numpy(y), x, atol=2e-2)

    def test_layer_tests(self):
        x = np.random.default_rng(3).random((2, 6, 8, 3)).astype("float32")
        self.run_layer_test(_FourierAmplitudePhaseCat, {"epsilon": 1e-8}, {"inputs": x})
        amp = np.random.default_rng(4).random((2, 6, 5, 3)).astype("float32")
        self.run_layer_test(
            InverseFourierAmplitudePhase,
            {},
            {"amplitude": amp, "phase": amp - 0.5, "like": x},
        )
        layer = InverseFourierAmplitudePhase()
        assert layer.compute_output_shape((2, 6, 5, 3), (2, 6, 5, 3), x.shape) == (
            2,
            6,
            8,
            3,
        )


# -------------------------------------------------------------- SFDI blocks
class TestSFDIBlocks(TestCase):
    def test_invertible_conv(self):
        x = np.random.default_rng(0).random((2, 5, 5, 6)).astype("float32")
        out = self.run_layer_test(
            InvertibleConv1x1, {}, x, (2, 5, 5, 6), expected_num_trainable_weights=3
        )
        layer = InvertibleConv1x1()
        layer(x)
        assert layer.count_params() == 2 * 36 + 6  # l, u (n x n), log_s (n)
        w = ops.convert_to_numpy(layer.weight_matrix())
        # Initialised to a random orthogonal matrix.
        np.testing.assert_allclose(w @ w.T, np.eye(6), atol=1e-5)
        assert out.shape == (2, 5, 5, 6)

    def test_dense_subnet(self):
        x = np.random.default_rng(1).random((2, 6, 6, 4)).astype("float32")
        self.run_layer_test(
            ResidualDenseSubnet, {"filters": 3, "growth": 8}, x, (2, 6, 6, 3)
        )
        layer = ResidualDenseSubnet(3)
        layer(x)
        assert layer.count_params() == _dense_block(4, 3)

    def test_coupling_block_matches_numpy(self):
        x = np.random.default_rng(2).random((2, 6, 6, 8)).astype("float32")
        self.run_layer_test(InvertibleCouplingBlock, {"split": 4}, x, (2, 6, 6, 8))
        blk = InvertibleCouplingBlock(4)
        out = ops.convert_to_numpy(blk(x))
        for sub in (blk.f, blk.g, blk.h):  # non-trivial weights
            sub.set_weights([w * 10 for w in sub.get_weights()])
        out = ops.convert_to_numpy(blk(x))
        ref = np_coupling(blk, x.astype(np.float64))
        np.testing.assert_allclose(out, ref, atol=1e-4, rtol=1e-4)

    def test_amplitude_phase_fusion_matches_numpy(self):
        rng = np.random.default_rng(3)
        ms = rng.random((2, 8, 6, 4)).astype("float32")
        pan = rng.random((2, 8, 6, 4)).astype("float32")
        self.run_layer_test(
            AmplitudePhaseFusion, {"channels": 4}, {"ms": ms, "pan": pan}
        )
        layer = AmplitudePhaseFusion(4)
        out = ops.convert_to_numpy(layer(ms, pan))
        ref = np_freq(layer, ms.astype(np.float64), pan.astype(np.float64))
        np.testing.assert_allclose(out, ref, atol=1e-4, rtol=1e-4)

    def test_spatial_frequency_block_matches_numpy(self):
        # The model's novel block, against a float64 NumPy forward of SpaFre.
        rng = np.random.default_rng(4)
        ms = rng.random((2, 8, 8, 4)).astype("float32")
        pan = rng.random((2, 8, 8, 4)).astype("float32")
        self.run_layer_test(
            _SpatialFrequencyBlockCat,
            {"channels": 4},
            {"ms": ms, "pan": pan},
        )
        blk = SpatialFrequencyBlock(4)
        out, panout = (ops.convert_to_numpy(t) for t in blk(ms, pan))
        ref, panref = np_spafre(blk, ms.astype(np.float64), pan.astype(np.float64))
        np.testing.assert_allclose(out, ref, atol=1e-4, rtol=1e-4)
        np.testing.assert_allclose(panout, panref, atol=1e-5, rtol=1e-5)

    def test_bad_arguments(self):
        with pytest.raises(ValueError, match="split"):
            InvertibleCouplingBlock(4)(np.zeros((1, 4, 4, 4), "float32"))
        with pytest.raises(ValueError, match="channels"):
            SpatialFrequencyBlock(1)


# -------------------------------------------------------------------- model
class TestSFDI(TestCase):
    @pytest.mark.parametrize("bands", [4, 8])
    def test_param_count_equals_reference(self, bands):
        width = max(bands, 4)
        assert reference_params(bands, width) == PARAMS[bands]
        assert SFDI(bands=bands).count_params() == PARAMS[bands]

    def test_model_basics(self):
        model = self.run_model_test(
            SFDI,
            {"bands": 4},
            make_inputs(4),
            expected_output_shape=(2, 32, 32, 4),
            expected_num_params=PARAMS[4],
        )
        x2 = make_inputs(4, 4, 6, batch=1, with_lms=True)  # non-square, odd W/2
        assert tuple(ops.shape(model(x2))) == (1, 16, 24, 4)

    def test_eight_bands(self):
        self.run_model_test(
            SFDI,
            {"bands": 8, "upsampler": "bicubic"},
            make_inputs(8, batch=1),
            expected_output_shape=(1, 32, 32, 8),
            expected_num_params=PARAMS[8],
            run_training_check=False,
        )

    def test_saving(self):
        self.run_model_saving_test(SFDI, {"bands": 4}, make_inputs(4, batch=1))

    def test_config(self):
        model = SFDI(bands=4, channels=6, num_blocks=2, name="custom")
        config = model.get_config()
        assert config == {
            "bands": 4,
            "channels": 6,
            "num_blocks": 2,
            "upsampler": "interp23tap",
            "name": "custom",
            "trainable": True,
        }
        assert SFDI.from_config(config).count_params() == model.count_params()

    def test_zero_refine_returns_lms(self):
        x = make_inputs(4, batch=1, with_lms=True)
        model = SFDI(bands=4)
        last = model.get_layer("refine_conv_last")
        last.set_weights([np.zeros_like(w) for w in last.get_weights()])
        np.testing.assert_allclose(ops.convert_to_numpy(model(x)), x["lms"], atol=1e-6)

    def test_bad_arguments(self):
        with pytest.raises(ValueError, match="bands"):
            SFDI(bands=0)
        with pytest.raises(ValueError, match="channels"):
            SFDI(bands=4, channels=2)
        with pytest.raises(ValueError, match="built for 4 bands"):
            SFDI(bands=4)(make_inputs(8, batch=1))


_SERVE = r"""
import sys
import numpy as np
import tensorflow as tf
path, inp, out = sys.argv[1:4]
data = np.load(inp)
served = tf.saved_model.load(path)
fused = served.signatures["serving_default"](
    ms=tf.constant(data["ms"]), pan=tf.constant(data["pan"])
)["fused"].numpy()
assert "keras_pansharp" not in sys.modules
np.save(out, fused)
"""


def test_saved_model_export(tmp_path):
    if keras.backend.backend() != "tensorflow":
        pytest.skip("SavedModel export is exercised under the TensorFlow backend")
    model = SFDI(bands=4)
    x = make_inputs(4, 8, 12, batch=2)
    expected = model.predict(x, verbose=0)
    path = tmp_path / "served"
    export_saved_model(model, path)
    inp, out = tmp_path / "inputs.npz", tmp_path / "fused.npy"
    np.savez(inp, **x)
    env = {k: v for k, v in os.environ.items() if k != "KERAS_BACKEND"}
    env["TF_CPP_MIN_LOG_LEVEL"] = "2"
    proc = subprocess.run(
        [sys.executable, "-c", _SERVE, str(path), str(inp), str(out)],
        env=env,
        capture_output=True,
        text=True,
        cwd=str(tmp_path),
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    np.testing.assert_allclose(np.load(out), expected, atol=1e-5)
