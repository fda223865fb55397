"""PSCINN, its coupling block, dense sub-network, Haar transform and PAN pyramid."""

import math

import keras
import numpy as np
import pytest
from keras import ops

from keras_pansharp.layers.bicubic_downsample import BicubicDownsample
from keras_pansharp.layers.invertible import (
    ConditionalInvBlockExp,
    DenseSubnet,
    HaarDownsampling,
    LatentPad,
    haar_filters,
)
from keras_pansharp.models.pscinn import PSCINN
from tests.test_case import TestCase, to_numpy
from tests.test_panflow import (
    _randomize,
    make_inputs,
    np_conv3x3,
    np_lrelu,
    np_sigmoid,
    serve_in_tf_only_process,
)

# Reference count, from jiaming-wang/PSCINN psinn.py (= PanTiny model/PSCINN.py),
# as `sum(p.numel() for p in Net(args).parameters())`:
#   FPNBlock(cin, cout), gc = 32: conv1..conv4 (cin + 32 i) * 32 * 9 + 32,
#     conv5 (cin + 128) * cout * 9 + cout
#     = 288 * (4 cin + 192) + 128 + 9 cout (cin + 128) + cout;
#   InvBlockExp(n, n/2): Fs1, Ft1, Fs2, Ft2 = 4 x FPNBlock(n/2 + 1, n/2)
#     (+1: the PAN condition);
#   3 blocks at each of n = C, 4C, 16C; HaarDownsampling(n): a frozen
#     (requires_grad=False) nn.Parameter of 4n x 1 x 2 x 2 = 16 n, n = C, 4C.
# 4 bands: FPN(3, 2) = 61,240, FPN(9, 8) = 75,664, FPN(33, 32) = 139,840
#   -> 12 * (61,240 + 75,664 + 139,840) = 3,320,928 trainable,
#   + Haar 64 + 256 = 3,321,248.
# 8 bands: FPN(5, 4) = 65,976, FPN(17, 16) = 95,904, FPN(65, 64) = 241,536
#   -> 12 * 403,416 = 4,840,992 trainable, + Haar 128 + 512 = 4,841,632.
PARAMS = {4: 3_321_248, 8: 4_841_632}
TRAINABLE = {4: 3_320_928, 8: 4_840_992}


# ---------------------------------------------------------- NumPy reference
def np_dense_subnet(net, x):
    """FPNBlock.forward of psinn.py, float64."""
    w = lambda v: np.asarray(to_numpy(v), np.float64)  # noqa: E731
    feats = [x]
    for conv in net.convs[:4]:
        y = np_conv3x3(np.concatenate(feats, -1), w(conv.kernel), w(conv.bias))
        feats.append(np_lrelu(y))
    last = net.convs[4]
    return np_conv3x3(np.concatenate(feats, -1), w(last.kernel), w(last.bias))


def np_invblock_forward(layer, x, c):
    """InvBlockExp.forward(rev=False) of psinn.py, float64."""
    s = lambda u: layer.clamp * (np_sigmoid(u) * 2 - 1)  # noqa: E731
    p = x.shape[-1] // 2
    x1, x2 = x[..., :p], x[..., p:]
    h = np.concatenate([x2, c], -1)
    v1 = x1 * np.exp(s(np_dense_subnet(layer.fs1, h))) + np_dense_subnet(layer.ft1, h)
    h = np.concatenate([v1, c], -1)
    v2 = x2 * np.exp(s(np_dense_subnet(layer.fs2, h))) + np_dense_subnet(layer.ft2, h)
    return np.concatenate([v1, v2], -1)


def np_haar(x):
    """HaarDownsampling.forward: conv2d(stride 2, groups C) / 4, then the
    (B, C, 4, ...) -> (B, 4, C, ...) transpose: sub-band k of channel c at
    channel k * C + c."""
    b, h, w, c = x.shape
    f = haar_filters()
    out = np.zeros((b, h // 2, w // 2, 4 * c))
    for k in range(4):
        for a in range(2):
            for d in range(2):
                out[..., k * c : (k + 1) * c] += f[k, a, d] * x[:, a::2, d::2, :]
    return out / 4.0


def np_torch_bicubic_down(x, factor):
    """F.interpolate(scale_factor=1/factor, mode="bicubic",
    align_corners=False), written from PyTorch's definition: source
    coordinate (i + 0.5) * factor - 0.5, Keys' kernel a = -0.75, indices
    clamped to the border."""

    def cubic(t, a=-0.75):
        t = abs(t)
        if t <= 1:
            return (a + 2) * t**3 - (a + 3) * t**2 + 1
        if t < 2:
            return a * t**3 - 5 * a * t**2 + 8 * a * t - 4 * a
        return 0.0

    def along(v, axis):
        n = v.shape[axis]
        rows = []
        for i in range(n // factor):
            src = (i + 0.5) * factor - 0.5
            i0 = math.floor(src)
            t = src - i0
            acc = 0.0
            for m in range(-1, 3):
                idx = min(max(i0 + m, 0), n - 1)
                acc = acc + cubic(m - t) * np.take(v, idx, axis=axis)
            rows.append(acc)
        return np.stack(rows, axis=axis)

    return along(along(x.astype(np.float64), 1), 2)


class TestPSCINNLayers(TestCase):
    def test_dense_subnet_layer(self):
        x = np.random.default_rng(0).random((2, 8, 8, 3), dtype=np.float32)
        self.run_layer_test(
            DenseSubnet,
            {"filters": 2, "growth": 8},
            x,
            expected_output_shape=(2, 8, 8, 2),
            expected_num_trainable_weights=10,
        )

    def test_invblock_layer(self):
        rng = np.random.default_rng(1)
        data = {
            "x": rng.random((2, 8, 8, 4), dtype=np.float32),
            "condition": rng.random((2, 8, 8, 1), dtype=np.float32),
        }
        self.run_layer_test(
            ConditionalInvBlockExp,
            {"growth": 8},
            data,
            expected_output_shape=(2, 8, 8, 4),
            expected_num_trainable_weights=40,
        )

    def test_haar_layer(self):
        x = np.random.default_rng(2).random((2, 8, 6, 3), dtype=np.float32)
        out = self.run_layer_test(
            HaarDownsampling,
            {},
            x,
            expected_output_shape=(2, 4, 3, 12),
            expected_num_trainable_weights=0,
        )
        self.assertAllClose(out, np_haar(x.astype(np.float64)), atol=1e-6)
        layer = HaarDownsampling()
        layer(x)
        assert layer.count_params() == 16 * 3  # the reference's frozen filters
        back = layer(out, reverse=True)
        self.assertAllClose(back, x, atol=1e-6)
        assert layer.compute_output_shape((None, 4, 3, 12), reverse=True) == (
            None,
            8,
            6,
            3,
        )
        with pytest.raises(ValueError, match="forward"):
            HaarDownsampling()(out, reverse=True)

    def test_latent_pad_layer(self):
        x = np.random.default_rng(3).random((2, 4, 4, 4), dtype=np.float32)
        out = self.run_layer_test(
            LatentPad,
            {"channels": 64},
            x,
            expected_output_shape=(2, 4, 4, 64),
            expected_num_trainable_weights=0,
        )
        out = to_numpy(out)
        np.testing.assert_array_equal(out[..., :4], x)
        np.testing.assert_array_equal(out[..., 4:], 0.0)

    @pytest.mark.parametrize("factor", [2, 4])
    def test_bicubic_downsample_layer(self, factor):
        x = np.random.default_rng(4).random((2, 16, 8, 2), dtype=np.float32)
        out = self.run_layer_test(
            BicubicDownsample,
            {"factor": factor},
            x,
            expected_output_shape=(2, 16 // factor, 8 // factor, 2),
            expected_num_trainable_weights=0,
        )
        self.assertAllClose(out, np_torch_bicubic_down(x, factor), atol=1e-6)

    def test_bicubic_downsample_bad_factor(self):
        with pytest.raises(ValueError, match="even"):
            BicubicDownsample(3)

    @pytest.mark.parametrize("channels", [4, 5])
    def test_invblock_is_invertible(self, channels):
        rng = np.random.default_rng(5)
        x = rng.normal(size=(2, 8, 8, channels)).astype(np.float32)
        c = rng.random((2, 8, 8, 1), dtype=np.float32)
        layer = ConditionalInvBlockExp(growth=8)
        layer(x, c)
        _randomize(layer, seed=6, scale=0.05)
        z, log_det = layer.call_with_log_det(x, c)
        back, inv_log_det = layer.call_with_log_det(z, c, reverse=True)
        self.assertAllClose(back, x, atol=1e-5, rtol=1e-5)
        self.assertAllClose(layer(layer(x, c, reverse=True), c), x, atol=1e-5)
        self.assertAllClose(inv_log_det, -to_numpy(log_det), atol=1e-4, rtol=1e-5)
        assert float(np.max(np.abs(to_numpy(z) - x))) > 1e-2

    def test_invblock_matches_numpy_reference(self):
        rng = np.random.default_rng(7)
        x = rng.normal(size=(2, 6, 5, 4)).astype(np.float32)
        c = rng.random((2, 6, 5, 1), dtype=np.float32)
        layer = ConditionalInvBlockExp()
        layer(x, c)
        _randomize(layer, seed=8, scale=0.05)
        want = np_invblock_forward(layer, x.astype(np.float64), c.astype(np.float64))
        self.assertAllClose(layer(x, c), want, atol=1e-4, rtol=1e-4)


class TestPSCINNModel(TestCase):
    @pytest.mark.parametrize("bands", [4, 8])
    def test_model_basics(self, bands):
        model = self.run_model_test(
            PSCINN,
            {"bands": bands},
            make_inputs(bands, batch=1 if bands == 8 else 2),
            expected_output_shape=(1 if bands == 8 else 2, 32, 32, bands),
            expected_num_params=PARAMS[bands],
            run_training_check=bands == 4,
        )
        trainable = sum(int(np.prod(w.shape)) for w in model.trainable_weights)
        assert trainable == TRAINABLE[bands]
        if bands == 4:  # dynamic, non-square size
            x2 = make_inputs(bands, 4, 3, batch=1)
            assert tuple(ops.shape(model(x2))) == (1, 16, 12, bands)

    def test_saving(self):
        self.run_model_saving_test(PSCINN, {"bands": 4}, make_inputs(4, batch=1))

    def test_config_holds_constructor_args(self):
        model = PSCINN(bands=8, blocks_per_level=1, growth=8, name="custom")
        config = model.get_config()
        assert set(config) == {
            "bands",
            "blocks_per_level",
            "growth",
            "clamp",
            "name",
            "trainable",
        }
        revived = PSCINN.from_config(config)
        assert revived.get_config() == config
        assert revived.count_params() == model.count_params()

    def test_network_round_trip_and_lms_ignored(self):
        # The whole network is invertible: encoding the fused image gives back
        # the inverse pass's input, concat(MS, 0).
        model = PSCINN(bands=4, blocks_per_level=2, growth=8)
        x = make_inputs(4, batch=1, with_lms=True)
        fused = to_numpy(model(x))
        code = to_numpy(model.encode(x, fused))
        assert code.shape == (1, 8, 8, 64)
        self.assertAllClose(code[..., :4], x["ms"], atol=1e-5, rtol=1e-5)
        self.assertAllClose(code[..., 4:], np.zeros_like(code[..., 4:]), atol=1e-5)
        no_lms = {"ms": x["ms"], "pan": x["pan"]}
        np.testing.assert_array_equal(fused, to_numpy(model(no_lms)))

    def test_deterministic(self):
        model = PSCINN(bands=4, blocks_per_level=1, growth=8)
        x = make_inputs(4)
        y = model.predict(x, verbose=0)
        np.testing.assert_array_equal(y, model.predict(x, verbose=0))
        self.assertAllClose(model({k: v[1:] for k, v in x.items()}), y[1:], atol=1e-5)

    def test_bad_arguments(self):
        with pytest.raises(ValueError, match="bands"):
            PSCINN(bands=0)
        with pytest.raises(ValueError, match="blocks_per_level"):
            PSCINN(blocks_per_level=0)


@pytest.mark.skipif(
    keras.backend.backend() != "tensorflow",
    reason="same export code path (a TF child process); run under TensorFlow",
)
def test_saved_model_export(tmp_path):
    from keras_pansharp.export import export_saved_model

    model = PSCINN(bands=4)
    x = make_inputs(4, 4, 5, batch=1)
    expected = model.predict(x, verbose=0)
    path = export_saved_model(model, tmp_path / "served")
    got = serve_in_tf_only_process(path, x, tmp_path)
    np.testing.assert_allclose(got["y"], expected, atol=1e-5)
