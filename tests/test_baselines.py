"""CNN baselines (PNN, PanNet, DiCNN, MSDCNN, FusionNet), their layers and the registry."""

import numpy as np
import pytest
import scipy.ndimage as ndi
from keras import ops

from keras_pansharp.layers.highpass import HighPass
from keras_pansharp.layers.replicate_padding import ReplicatePadding2D
from keras_pansharp.models.dicnn import DiCNN
from keras_pansharp.models.fusionnet import FusionNet
from keras_pansharp.models.msdcnn import MSDCNN
from keras_pansharp.models.pannet import PanNet
from keras_pansharp.models.pnn import PNN
from keras_pansharp.models.registry import (
    BASELINES,
    MODEL_NAMES,
    PAPER_MODELS,
    get_model,
    get_model_class,
)
from keras_pansharp.signal import interp23tap
from tests.test_case import TestCase

# Parameter counts measured with count_params(); the 8-band PNN and FusionNet
# values are the published ones.
PARAMS = {
    PNN: {4: 80_420, 8: 104_360},
    PanNet: {4: 77_640, 8: 83_024},
    DiCNN: {4: 42_180, 8: 46_792},
    MSDCNN: {4: 189_852, 8: 228_556},
    FusionNet: {4: 76_324, 8: 78_632},
}
MODELS = list(PARAMS)
IDS = [cls.__name__ for cls in MODELS]


def make_inputs(bands, h=8, w=8, batch=2, seed=0, with_lms=False):
    rng = np.random.default_rng(seed)
    x = {
        "ms": rng.random((batch, h, w, bands), dtype=np.float32),
        "pan": rng.random((batch, 4 * h, 4 * w, 1), dtype=np.float32),
    }
    if with_lms:
        x["lms"] = rng.random((batch, 4 * h, 4 * w, bands), dtype=np.float32)
    return x


class TestBaselines(TestCase):
    @pytest.mark.parametrize("bands", [4, 8])
    @pytest.mark.parametrize("cls", MODELS, ids=IDS)
    def test_model_basics(self, cls, bands):
        # Shape, exact parameter count, config round trip; one fit step for
        # 4 bands (the training path does not depend on the band count).
        x = make_inputs(bands, 8, 8)
        model = self.run_model_test(
            cls,
            {"bands": bands},
            x,
            expected_output_shape=(2, 32, 32, bands),
            expected_num_params=PARAMS[cls][bands],
            run_training_check=bands == 4,
        )
        # A second spatial size (non-square, with a precomputed lms) through
        # the same model: spatial dims are dynamic.
        if bands == 4:  # one band count keeps JAX's per-shape compiles few
            x2 = make_inputs(bands, 16, 12, batch=1, with_lms=True)
            assert tuple(ops.shape(model(x2))) == (1, 64, 48, bands)

    @pytest.mark.parametrize("cls", MODELS, ids=IDS)
    def test_saving(self, cls):
        self.run_model_saving_test(cls, {"bands": 4}, make_inputs(4, 8, 8))

    @pytest.mark.parametrize("cls", MODELS, ids=IDS)
    def test_config_holds_constructor_args(self, cls):
        model = cls(bands=8, upsampler="bicubic", name="custom")
        config = model.get_config()
        assert config["bands"] == 8
        assert config["upsampler"] == "bicubic"
        assert config["name"] == "custom"
        revived = cls.from_config(config)
        assert revived.get_config() == config
        assert revived.count_params() == PARAMS[cls][8]

    @pytest.mark.parametrize("cls", MODELS, ids=IDS)
    def test_missing_lms_is_interp23tap_of_ms(self, cls):
        model = cls(bands=4)
        x = make_inputs(4, 8, 8)
        lms = np.stack([interp23tap(m) for m in x["ms"].astype(np.float64)])
        with_lms = dict(x, lms=lms.astype(np.float32))
        self.assertAllClose(model(x), model(with_lms), atol=1e-5, rtol=1e-5)

    @pytest.mark.parametrize("cls", MODELS, ids=IDS)
    def test_bad_input(self, cls):
        model = cls(bands=4)
        wrong_bands = make_inputs(8, 8, 8)
        with pytest.raises(ValueError, match="built for 4 bands"):
            model(wrong_bands)
        bad_ratio = make_inputs(4, 8, 8)
        bad_ratio["pan"] = bad_ratio["pan"][:, :16, :16]
        with pytest.raises(ValueError, match="4x the size of 'ms'"):
            model(bad_ratio)
        int_pan = make_inputs(4, 8, 8)
        int_pan["pan"] = (int_pan["pan"] * 255).astype(np.uint8)
        with pytest.raises(ValueError, match="'pan' must be floating point"):
            model(int_pan)

    @pytest.mark.parametrize("cls", MODELS, ids=IDS)
    def test_bad_bands_argument(self, cls):
        with pytest.raises(ValueError, match="bands"):
            cls(bands=0)


class TestArchitectureDetails:
    def test_pnn_is_valid_convs_on_replicate_padded_input(self):
        # The output at interior pixels does not depend on the padding, and
        # equals the valid-conv network on the unpadded input (PanCollection
        # training path) there.
        model = PNN(bands=4)
        x = make_inputs(4, 8, 8, batch=1, with_lms=True)
        out = ops.convert_to_numpy(model(x))
        padded = model.get_layer("replicate_pad")
        assert padded.padding == 8
        inner = np.concatenate([x["lms"], x["pan"]], axis=-1)
        y = inner
        for name in ("conv1", "conv2", "conv3"):
            y = model.get_layer(name)(y)
        y = ops.convert_to_numpy(y)
        assert y.shape == (1, 16, 16, 4)
        np.testing.assert_allclose(out[:, 8:-8, 8:-8], y, atol=1e-5, rtol=1e-5)

    def test_pannet_deconv_matches_pytorch_conv_transpose(self):
        # PyTorch ConvTranspose2d(C, C, 8, stride=4, padding=2):
        # full[4i + ky, 4j + kx] += x[i, j] @ W[ky, kx], then crop 2 a side.
        model = PanNet(bands=4)
        layer = model.get_layer("deconv")
        kernel, bias = (ops.convert_to_numpy(w) for w in layer.weights)
        x = np.random.default_rng(3).random((1, 5, 6, 4), dtype=np.float32)
        full = np.zeros((1, 4 * 5 + 4, 4 * 6 + 4, 4))
        for i in range(5):
            for j in range(6):
                # kernel: (kh, kw, out, in)
                full[0, 4 * i : 4 * i + 8, 4 * j : 4 * j + 8] += np.einsum(
                    "c,hwoc->hwo", x[0, i, j], kernel
                )
        ref = full[:, 2:-2, 2:-2] + bias
        out = ops.convert_to_numpy(layer(x))
        np.testing.assert_allclose(out, ref, atol=1e-5, rtol=1e-5)

    def test_fusionnet_first_conv_sees_pan_minus_lms(self):
        model = FusionNet(bands=4)
        x = make_inputs(4, 8, 8, batch=1, with_lms=True)
        diff = model.get_layer("pan_minus_lms")
        import keras

        probe = keras.Model(model.inputs, diff.output)
        got = ops.convert_to_numpy(probe(x))
        np.testing.assert_allclose(got, x["pan"] - x["lms"], atol=1e-6)

    def test_residual_models_add_lms(self):
        # With the last convolution zeroed, DiCNN/FusionNet/PanNet return LMS.
        x = make_inputs(4, 8, 8, batch=1, with_lms=True)
        for cls in (DiCNN, FusionNet, PanNet):
            model = cls(bands=4)
            last = model.get_layer("conv3")
            last.set_weights([np.zeros_like(w) for w in last.get_weights()])
            np.testing.assert_allclose(
                ops.convert_to_numpy(model(x)), x["lms"], atol=1e-6
            )


class TestBaselineLayers(TestCase):
    def test_highpass_layer(self):
        x = np.random.default_rng(0).random((2, 9, 11, 3), dtype=np.float32)
        self.run_layer_test(
            HighPass,
            {"size": 5},
            x,
            expected_output_shape=(2, 9, 11, 3),
            expected_num_trainable_weights=0,
        )

    def test_highpass_matches_opencv_boxfilter_semantics(self):
        # cv2.boxFilter(x, -1, (5, 5)) with BORDER_REFLECT_101 == SciPy "mirror".
        x = np.random.default_rng(1).random((2, 9, 11, 3), dtype=np.float32)
        ref = x - ndi.uniform_filter(
            x.astype(np.float64), size=(1, 5, 5, 1), mode="mirror"
        )
        np.testing.assert_allclose(ops.convert_to_numpy(HighPass(5)(x)), ref, atol=1e-6)
        # A constant image has no high-pass content.
        np.testing.assert_allclose(
            ops.convert_to_numpy(HighPass(5)(np.ones((1, 8, 8, 2), "float32"))),
            0.0,
            atol=1e-6,
        )

    def test_highpass_rejects_even_size(self):
        with pytest.raises(ValueError, match="odd"):
            HighPass(4)

    def test_replicate_padding_layer(self):
        x = np.random.default_rng(0).random((2, 5, 7, 3), dtype=np.float32)
        out = self.run_layer_test(
            ReplicatePadding2D,
            {"padding": 3},
            x,
            expected_output_shape=(2, 11, 13, 3),
            expected_num_trainable_weights=0,
        )
        ref = np.pad(x, [(0, 0), (3, 3), (3, 3), (0, 0)], mode="edge")
        np.testing.assert_array_equal(ops.convert_to_numpy(out), ref)

    def test_replicate_padding_rejects_negative(self):
        with pytest.raises(ValueError, match="padding"):
            ReplicatePadding2D(-1)


class TestRegistry:
    def test_names(self):
        assert set(BASELINES) <= set(MODEL_NAMES)
        assert "pantiny" in MODEL_NAMES
        assert get_model_class("FusionNet") is FusionNet
        assert get_model_class("ms-dcnn".replace("-", "")) is MSDCNN

    @pytest.mark.parametrize("name", sorted(BASELINES))
    def test_get_model_bands(self, name):
        model = get_model(name, bands=8)
        assert model.count_params() == PARAMS[BASELINES[name]][8]

    def test_paper_models_by_name(self):
        # Counts: derived in tests/test_panflow.py, test_panmamba.py, test_pscinn.py
        # and test_sfdi.py from the reference modules.
        counts = {
            "panflow": 100_276,
            "panmamba": 480_752,
            "pscinn": 4_841_632,
            "sfdi": 85_850,
        }
        assert set(PAPER_MODELS) == set(counts)
        assert set(PAPER_MODELS) <= set(MODEL_NAMES)
        for name, params in counts.items():
            model = get_model(name.upper(), bands=8)
            assert type(model) is PAPER_MODELS[name]
            assert model.count_params() == params

    def test_kwargs_forwarded(self):
        model = get_model("fusionnet", bands=4, num_blocks=1, upsampler="bicubic")
        assert model.get_config()["num_blocks"] == 1
        assert model.get_config()["upsampler"] == "bicubic"
        assert model.count_params() == PARAMS[FusionNet][4] - 3 * 2 * (9 * 32 * 32 + 32)

    def test_pantiny_names(self):
        model = get_model("PanTiny")
        assert type(model).__name__ == "PanTiny"
        assert model.count_params() == 81_744
        large = get_model("pantiny_large", bands=4)
        assert large.get_config()["dim"] == 40
        assert large.get_config()["bands"] == 4

    def test_unknown_name(self):
        with pytest.raises(ValueError, match="Unknown model 'resnet'.*fusionnet"):
            get_model("resnet")
