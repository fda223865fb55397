"""PanFlow (PanFlowNet), its coupling block and sub-network."""

import os
import subprocess
import sys

import keras
import numpy as np
import pytest
from keras import ops

from keras_pansharp.layers.invertible import (
    ConditionalAffineCoupling,
    HinCABlock,
    MeanLatent,
)
from keras_pansharp.models.panflow import PanFlow
from tests.test_case import TestCase, to_numpy

# Reference count, from yggame/PanFlowNet pan_inn9.py (`pan_inn` holds ONE
# `subnet_coupling_layer`, appended T times, so the count is one block's):
#   coupling = s1 + s2, each HIN_CA_Block(cin, cout) with
#   HinResBlock: conv1 cin*64*9 + 64, conv2 64*64*9 + 64 = 36,928,
#                conv3 (64 + cin)*cout*9 + cout, InstanceNorm2d(32, affine) 64;
#   CALayer(cout, 4): cout*(cout//4) + cout//4 + (cout//4)*cout + cout.
# 4 bands (split 2/2, condition 5): s1 = s2 = HIN_CA(7, 4)
#   = 4,096 + 36,928 + 2,560 + 64 + 13 = 43,661 -> 87,322 (PanTiny: 87.3 K).
# 8 bands (split 4/4, condition 9): HIN_CA(13, 8)
#   = 7,552 + 36,928 + 5,552 + 64 + 42 = 50,138 -> 100,276.
PARAMS = {4: 87_322, 8: 100_276}


def make_inputs(bands, h=8, w=8, batch=2, seed=0, with_lms=False):
    rng = np.random.default_rng(seed)
    x = {
        "ms": rng.random((batch, h, w, bands), dtype=np.float32),
        "pan": rng.random((batch, 4 * h, 4 * w, 1), dtype=np.float32),
    }
    if with_lms:
        x["lms"] = rng.random((batch, 4 * h, 4 * w, bands), dtype=np.float32)
    return x


def _randomize(layer, seed=0, scale=0.1):
    rng = np.random.default_rng(seed)
    layer.set_weights(
        [
            rng.normal(scale=scale, size=w.shape).astype("float32")
            for w in layer.get_weights()
        ]
    )


# ---------------------------------------------------------- NumPy reference
def np_conv3x3(x, kernel, bias):
    """'same' zero-padded 3x3 convolution, NHWC, float64."""
    h, w = x.shape[1:3]
    xp = np.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)))
    out = np.zeros(x.shape[:3] + (kernel.shape[-1],))
    for dy in range(3):
        for dx in range(3):
            out += xp[:, dy : dy + h, dx : dx + w] @ kernel[dy, dx]
    return out + bias


def np_lrelu(x):
    return np.where(x > 0, x, 0.2 * x)


def np_sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def np_hinca(block, x):
    """HIN_CA_Block of pan_inn9.py, in float64 from the layer's weights."""
    w = lambda v: np.asarray(to_numpy(v), np.float64)  # noqa: E731
    r = np_lrelu(np_conv3x3(x, w(block.conv1.kernel), w(block.conv1.bias)))
    half = block.features // 2
    a = r[..., :half]
    mean = a.mean(axis=(1, 2), keepdims=True)
    var = a.var(axis=(1, 2), keepdims=True)
    a = (a - mean) / np.sqrt(var + 1e-5) * w(block.norm.gamma) + w(block.norm.beta)
    r = np.concatenate([a, r[..., half:]], axis=-1)
    r = np_lrelu(np_conv3x3(r, w(block.conv2.kernel), w(block.conv2.bias)))
    y = np_conv3x3(
        np.concatenate([x, r], axis=-1), w(block.conv3.kernel), w(block.conv3.bias)
    )
    m = y.mean(axis=(1, 2))
    d = np.maximum(m @ w(block.ca_down.kernel) + w(block.ca_down.bias), 0.0)
    u = np_sigmoid(d @ w(block.ca_up.kernel) + w(block.ca_up.bias))
    return y * u[:, None, None, :]


def np_coupling_forward(layer, x, c):
    """subnet_coupling_layer.forward(rev=False) and its Jacobian, float64."""
    clamp = layer.clamp
    log_e = lambda s: clamp * 0.636 * np.arctan(s / clamp)  # noqa: E731
    p = x.shape[-1] // 2
    q = x.shape[-1] - p
    x1, x2 = x[..., :p], x[..., p:]
    r2 = np_hinca(layer.subnet2, np.concatenate([x2, c], axis=-1))
    s2, t2 = r2[..., :p], r2[..., p:]
    y1 = np.exp(log_e(s2)) * x1 + t2
    r1 = np_hinca(layer.subnet1, np.concatenate([y1, c], axis=-1))
    s1, t1 = r1[..., :q], r1[..., q:]
    y2 = np.exp(log_e(s1)) * x2 + t1
    jac = log_e(s1).sum(axis=(1, 2, 3)) + log_e(s2).sum(axis=(1, 2, 3))
    return np.concatenate([y1, y2], axis=-1), jac


class TestPanFlowLayers(TestCase):
    def test_hinca_block_layer(self):
        x = np.random.default_rng(0).random((2, 8, 8, 7), dtype=np.float32)
        self.run_layer_test(
            HinCABlock,
            {"filters": 4},
            x,
            expected_output_shape=(2, 8, 8, 4),
            # 3 convolutions, the instance norm, 2 attention layers
            expected_num_trainable_weights=12,
        )

    def test_coupling_layer(self):
        rng = np.random.default_rng(1)
        data = {
            "x": rng.random((2, 8, 8, 4), dtype=np.float32),
            "condition": rng.random((2, 8, 8, 5), dtype=np.float32),
        }
        self.run_layer_test(
            ConditionalAffineCoupling,
            {"features": 16},
            data,
            expected_output_shape=(2, 8, 8, 4),
            expected_num_trainable_weights=24,
        )

    def test_mean_latent_layer(self):
        x = np.random.default_rng(2).random((2, 8, 8, 4), dtype=np.float32)
        out = self.run_layer_test(
            MeanLatent,
            {},
            x,
            expected_output_shape=(2, 8, 8, 4),
            expected_num_trainable_weights=0,
        )
        want = np.broadcast_to(x.mean(axis=(1, 2, 3), keepdims=True), x.shape)
        self.assertAllClose(out, want, atol=1e-6)

    def test_mean_latent_temperature_draws_noise(self):
        x = np.random.default_rng(2).random((1, 8, 8, 4), dtype=np.float32)
        z = to_numpy(MeanLatent(temperature=1.0, seed=3)(x))
        assert z.std() > 0.1 * x.std()
        with pytest.raises(ValueError, match="temperature"):
            MeanLatent(temperature=-1.0)

    @pytest.mark.parametrize("channels", [4, 5])
    def test_coupling_is_invertible(self, channels):
        rng = np.random.default_rng(3)
        x = rng.random((2, 8, 8, channels), dtype=np.float32)
        c = rng.random((2, 8, 8, channels + 1), dtype=np.float32)
        layer = ConditionalAffineCoupling(features=16)
        layer(x, c)
        _randomize(layer, seed=4, scale=0.2)
        z, log_det = layer.call_with_log_det(x, c)
        back, inv_log_det = layer.call_with_log_det(z, c, reverse=True)
        self.assertAllClose(back, x, atol=1e-5, rtol=1e-5)
        # x -> z -> x with the inverse first as well.
        self.assertAllClose(layer(layer(x, c, reverse=True), c), x, atol=1e-5)
        # The inverse's log-determinant is minus the forward one (at z).
        self.assertAllClose(inv_log_det, -to_numpy(log_det), atol=1e-4, rtol=1e-5)
        assert float(np.max(np.abs(to_numpy(z) - x))) > 1e-2  # not the identity

    def test_coupling_matches_numpy_reference(self):
        rng = np.random.default_rng(5)
        x = rng.normal(size=(2, 6, 7, 4)).astype(np.float32)
        c = rng.random((2, 6, 7, 5), dtype=np.float32)
        layer = ConditionalAffineCoupling()
        layer(x, c)
        _randomize(layer, seed=6, scale=0.05)
        z, jac = layer.call_with_log_det(x, c)
        want, want_jac = np_coupling_forward(
            layer, x.astype(np.float64), c.astype(np.float64)
        )
        self.assertAllClose(z, want, atol=1e-4, rtol=1e-4)
        self.assertAllClose(jac, want_jac, atol=1e-3, rtol=1e-4)

    def test_coupling_log_det_is_the_jacobian(self):
        # Tiny case: the exact Jacobian by finite differences (float64 NumPy
        # reference of the forward pass) against the reported log-det.
        rng = np.random.default_rng(7)
        x = rng.normal(size=(1, 2, 2, 2))
        c = rng.random((1, 2, 2, 3))
        layer = ConditionalAffineCoupling(features=8)
        layer(x.astype("float32"), c.astype("float32"))
        _randomize(layer, seed=8, scale=0.3)
        f = lambda v: np_coupling_forward(layer, v.reshape(x.shape), c)[0].ravel()  # noqa: E731
        eps = 1e-6
        jac = np.stack(
            [
                (f(x.ravel() + eps * e) - f(x.ravel() - eps * e)) / (2 * eps)
                for e in np.eye(x.size)
            ],
            axis=1,
        )
        _, want = np_coupling_forward(layer, x, c)
        np.testing.assert_allclose(np.linalg.slogdet(jac)[1], want[0], atol=1e-5)


class TestPanFlowModel(TestCase):
    @pytest.mark.parametrize("bands", [4, 8])
    def test_model_basics(self, bands):
        model = self.run_model_test(
            PanFlow,
            {"bands": bands},
            make_inputs(bands),
            expected_output_shape=(2, 32, 32, bands),
            expected_num_params=PARAMS[bands],
            run_training_check=bands == 4,
        )
        if bands == 4:  # dynamic, non-square size with a precomputed lms
            x2 = make_inputs(bands, 4, 3, batch=1, with_lms=True)
            assert tuple(ops.shape(model(x2))) == (1, 16, 12, bands)

    def test_saving(self):
        self.run_model_saving_test(PanFlow, {"bands": 4}, make_inputs(4))

    def test_config_holds_constructor_args(self):
        model = PanFlow(bands=8, steps=2, upsampler="bicubic", name="custom")
        config = model.get_config()
        assert set(config) == {
            "bands",
            "steps",
            "features",
            "reduction",
            "clamp",
            "temperature",
            "nll_weight",
            "upsampler",
            "name",
            "trainable",
        }
        revived = PanFlow.from_config(config)
        assert revived.get_config() == config
        # Shared coupling weights: the count does not depend on `steps`.
        assert revived.count_params() == PARAMS[8]

    def test_deterministic_and_batch_independent(self):
        model = PanFlow(bands=4)
        x = make_inputs(4)
        y = model.predict(x, verbose=0)
        np.testing.assert_array_equal(y, model.predict(x, verbose=0))
        single = {k: v[:1] for k, v in x.items()}
        self.assertAllClose(model(single), y[:1], atol=1e-5)

    def test_flow_round_trip(self):
        # encode(fused) recovers the latent the fused image was decoded from.
        model = PanFlow(bands=4)
        x = make_inputs(4, with_lms=True)
        fused = to_numpy(model(x))
        z = to_numpy(model.encode(x, fused))
        want = np.broadcast_to(
            x["lms"].mean(axis=(1, 2, 3), keepdims=True), x["lms"].shape
        )
        self.assertAllClose(z, want, atol=1e-5, rtol=1e-5)

    def test_negative_log_likelihood(self):
        model = PanFlow(bands=4, steps=2)
        x = make_inputs(4, with_lms=True)
        target = np.random.default_rng(9).random((2, 32, 32, 4), dtype=np.float32)
        nll = float(to_numpy(model.negative_log_likelihood(x, target)))
        coupling = model.get_layer("coupling")
        cond = np.concatenate([x["lms"], x["pan"]], axis=-1)
        z, total = target, 0.0
        for _ in range(2):
            z, log_det = (to_numpy(t) for t in coupling.call_with_log_det(z, cond))
            total = total + 0.5 * np.sum(z**2, axis=(1, 2, 3)) - log_det
        np.testing.assert_allclose(nll, total.mean() / (2 * 32 * 32), rtol=1e-4)

    def test_fit_with_likelihood_term(self):
        # nll_weight > 0: fit() minimises the pixel loss plus the weighted
        # negative log-likelihood; evaluate() reports that sum.
        model = PanFlow(bands=4, steps=2, nll_weight=0.5)
        x = make_inputs(4, batch=2, with_lms=True)
        y = np.random.default_rng(10).random((2, 32, 32, 4), dtype=np.float32)
        model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="mae")
        pixel = float(np.mean(np.abs(model.predict(x, verbose=0) - y)))
        nll = float(to_numpy(model.negative_log_likelihood(x, y)))
        got = model.evaluate(x, y, batch_size=2, verbose=0)
        np.testing.assert_allclose(got, pixel + 0.5 * nll, rtol=1e-4)
        before = to_numpy(model.trainable_weights)
        history = model.fit(x, y, batch_size=2, epochs=1, verbose=0)
        assert np.isfinite(history.history["loss"][0])
        after = to_numpy(model.trainable_weights)
        assert any(not np.array_equal(b, a) for b, a in zip(before, after))

    def test_bad_arguments(self):
        with pytest.raises(ValueError, match="nll_weight"):
            PanFlow(nll_weight=-1.0)
        with pytest.raises(ValueError, match="bands"):
            PanFlow(bands=1)
        with pytest.raises(ValueError, match="steps"):
            PanFlow(steps=0)
        with pytest.raises(ValueError, match="built for 4 bands"):
            PanFlow(bands=4)(make_inputs(8))


_SERVE = r"""
import sys
import numpy as np
import tensorflow as tf
path, inp, out = sys.argv[1:4]
data = np.load(inp)
sig = tf.saved_model.load(path).signatures["serving_default"]
res = {"y": sig(ms=tf.constant(data["ms"]), pan=tf.constant(data["pan"]))["fused"].numpy()}
assert "keras_pansharp" not in sys.modules
np.savez(out, **res)
"""


def serve_in_tf_only_process(path, inputs, tmp_path):
    """Load a SavedModel in a TensorFlow-only interpreter and run it."""
    inp, out = tmp_path / "inputs.npz", tmp_path / "outputs.npz"
    np.savez(inp, **inputs)
    env = {k: v for k, v in os.environ.items() if k != "KERAS_BACKEND"}
    env["TF_CPP_MIN_LOG_LEVEL"] = "3"
    proc = subprocess.run(
        [sys.executable, "-c", _SERVE, str(path), str(inp), str(out)],
        env=env,
        capture_output=True,
        text=True,
        cwd=str(tmp_path),
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return dict(np.load(out))


@pytest.mark.skipif(
    keras.backend.backend() != "tensorflow",
    reason="same export code path (a TF child process); run under TensorFlow",
)
def test_saved_model_export(tmp_path):
    from keras_pansharp.export import export_saved_model

    model = PanFlow(bands=4)
    x = make_inputs(4, 4, 5, batch=1)
    expected = model.predict(x, verbose=0)
    path = export_saved_model(model, tmp_path / "served")
    got = serve_in_tf_only_process(path, x, tmp_path)
    np.testing.assert_allclose(got["y"], expected, atol=1e-5)
