"""The shared model input contract (keras_pansharp.models.base)."""

from __future__ import annotations

import warnings

import keras
import numpy as np
import pytest
from keras import ops

from keras_pansharp.layers.interp23tap import Interp23Tap
from keras_pansharp.models.base import (
    PansharpModel,
    UpsampledMS,
    check_input_values,
    pansharp_inputs,
    skip_value_checks,
    validate_pansharp_inputs,
)
from tests.test_case import TestCase, to_numpy


@keras.saving.register_keras_serializable(package="keras_pansharp_tests")
class ContractModel(PansharpModel):
    """Smallest model on the contract: conv([lms, pan]) + lms."""

    def __init__(self, bands=4, upsampler="interp23tap", **kwargs):
        inputs = pansharp_inputs(bands)
        lms = UpsampledMS(upsampler)(inputs["ms"], inputs["lms"])
        x = keras.layers.Concatenate()([lms, inputs["pan"]])
        x = keras.layers.Conv2D(bands, 3, padding="same", use_bias=False)(x)
        outputs = keras.layers.Add()([x, lms])
        super().__init__(inputs=inputs, outputs=outputs, **kwargs)
        self.bands = bands
        self.upsampler = upsampler

    def get_config(self):
        return {
            "bands": self.bands,
            "upsampler": self.upsampler,
            "name": self.name,
            "trainable": self.trainable,
        }


def _data(rng, bands=4, h=8, w=8, batch=2, lms=False):
    d = {
        "ms": rng.random((batch, h, w, bands)).astype("float32"),
        "pan": rng.random((batch, 4 * h, 4 * w, 1)).astype("float32"),
    }
    if lms:
        d["lms"] = rng.random((batch, 4 * h, 4 * w, bands)).astype("float32")
    return d


def _target(d):
    b, h, w, c = d["ms"].shape
    return np.zeros((b, 4 * h, 4 * w, c), "float32")


class TestInputs(TestCase):
    def test_pansharp_inputs(self):
        inputs = pansharp_inputs(8)
        assert sorted(inputs) == ["lms", "ms", "pan"]
        assert tuple(inputs["ms"].shape) == (None, None, None, 8)
        assert tuple(inputs["pan"].shape) == (None, None, None, 1)
        assert tuple(inputs["lms"].shape) == (None, None, None, 8)
        with pytest.raises(ValueError, match="bands"):
            pansharp_inputs(0)

    def test_upsampled_ms_layer(self, rng):
        ms = rng.random((2, 4, 4, 3)).astype("float32")
        lms = rng.random((2, 16, 16, 3)).astype("float32")
        self.run_layer_test(
            UpsampledMS,
            {"upsampler": "interp23tap"},
            ms,
            expected_output_shape=(2, 16, 16, 3),
            expected_num_trainable_weights=0,
        )
        layer = UpsampledMS()
        self.assertAllClose(layer(ms, lms), lms, atol=0, rtol=0)
        self.assertAllClose(layer(ms, None), Interp23Tap(4)(ms), atol=0, rtol=0)
        with pytest.raises(ValueError, match="upsampler"):
            UpsampledMS("nearest")

    def test_bicubic_upsampler(self, rng):
        ms = rng.random((1, 4, 6, 2)).astype("float32")
        out = UpsampledMS("bicubic")(ms, None)
        ref = ops.image.resize(ms, (16, 24), interpolation="bicubic")
        self.assertAllClose(out, ref, atol=1e-6)
        model = ContractModel(bands=2, upsampler="bicubic")
        y = model({"ms": ms, "pan": np.zeros((1, 16, 24, 1), "float32")})
        assert tuple(y.shape) == (1, 16, 24, 2)

    # The shifted lms (lms + 1) exceeds 1.5: the DN warning is expected.
    @pytest.mark.filterwarnings("ignore:ContractModel. input values above")
    def test_optional_lms_call_predict_fit_and_reload(self, rng, tmp_path):
        model = ContractModel()
        d = _data(rng)
        d_lms = dict(d, lms=to_numpy(Interp23Tap(4)(d["ms"])))
        other = dict(d, lms=d_lms["lms"] + 1.0)
        y = to_numpy(model(d))
        # Without lms the model upsamples ms with interp23tap itself.
        self.assertAllClose(y, model(d_lms), atol=1e-6)
        # A given lms is used (here shifted by one: output shifts by one, as
        # the model is conv(pan, lms) + lms with a linear conv).
        conv = model.layers[-2]
        shift = ops.convert_to_numpy(conv.kernel)[:, :, :4, :].sum(axis=(0, 1, 2))
        y_other = to_numpy(model(other))
        # Interior pixels only (zero padding changes the conv at the border).
        self.assertAllClose(
            y_other[:, 1:-1, 1:-1], y[:, 1:-1, 1:-1] + 1.0 + shift, atol=1e-5
        )
        # predict, with and without lms.
        self.assertAllClose(model.predict(d, verbose=0), y, atol=1e-6)
        self.assertAllClose(model.predict(other, verbose=0), y_other, atol=1e-6)
        # .keras round trip keeps the optional input working.
        path = str(tmp_path / "m.keras")
        model.save(path)
        loaded = keras.saving.load_model(path)
        assert isinstance(loaded, ContractModel)
        self.assertAllClose(loaded(d), y, atol=1e-6)
        self.assertAllClose(loaded.predict(other, verbose=0), y_other, atol=1e-6)
        # fit with and without lms (the reloaded model too).
        for m in (model, loaded):
            m.compile(optimizer="adam", loss="mae")
            h1 = m.fit(d, _target(d), epochs=1, verbose=0)
            h2 = m.fit(d_lms, _target(d), epochs=1, verbose=0)
            assert np.isfinite(h1.history["loss"][0])
            assert np.isfinite(h2.history["loss"][0])

    def test_nested_in_functional_model_without_lms(self, rng, tmp_path):
        inner = ContractModel()
        ms = keras.Input((None, None, 4), name="ms")
        pan = keras.Input((None, None, 1), name="pan")
        outer = keras.Model({"ms": ms, "pan": pan}, inner({"ms": ms, "pan": pan}))
        d = _data(rng)
        ref = to_numpy(inner(d))
        self.assertAllClose(outer.predict(d, verbose=0), ref, atol=1e-6)
        path = str(tmp_path / "outer.keras")
        outer.save(path)
        loaded = keras.saving.load_model(path)
        self.assertAllClose(loaded.predict(d, verbose=0), ref, atol=1e-6)

    def test_dynamic_spatial_sizes_in_fit(self, rng):
        # TF retraces with relaxed (unknown) shapes after a size change.
        model = ContractModel()
        model.compile(optimizer="adam", loss="mae")
        for h, w, lms in ((8, 8, False), (4, 12, True), (8, 8, True), (12, 4, False)):
            d = _data(rng, h=h, w=w, lms=lms)
            hist = model.fit(d, _target(d), batch_size=1, epochs=1, verbose=0)
            assert np.isfinite(hist.history["loss"][0])
            assert model.predict(d, verbose=0).shape == (2, 4 * h, 4 * w, 4)


def _bad_cases(rng):
    d = _data(rng, lms=True)
    ms, pan, lms = d["ms"], d["pan"], d["lms"]
    return {
        "bands": ({"ms": ms[..., :3], "pan": pan}, r"'ms'.*\(batch, h, w, 4\)"),
        "pan_bands": ({"ms": ms, "pan": np.repeat(pan, 2, -1)}, r"'pan'.*single"),
        "pan_not_mult4": ({"ms": ms, "pan": pan[:, :30]}, r"'pan'.*multiple of 4"),
        "pan_not_4x": (
            {"ms": ms, "pan": pan[:, :28, :28]},
            r"'pan' must be 4x.*\(2, 32, 32, 1\)",
        ),
        "odd_ms": (
            {"ms": ms[:, :7, :7], "pan": pan},
            r"'pan' must be 4x.*\(2, 28, 28, 1\)",
        ),
        "lms_size": (
            {"ms": ms, "pan": pan, "lms": lms[:, :16]},
            r"'lms'.*\(2, 32, 32, 4\)",
        ),
        "lms_bands": (
            {"ms": ms, "pan": pan, "lms": lms[..., :3]},
            r"'lms'.*\(2, 32, 32, 4\)",
        ),
        "int_ms": ({"ms": (ms * 2047).astype("int32"), "pan": pan}, r"'ms'.*float"),
        "uint8_pan": ({"ms": ms, "pan": (pan * 255).astype("uint8")}, r"'pan'.*float"),
        "rank3_pan": ({"ms": ms, "pan": pan[..., 0]}, r"'pan'.*batch dimension"),
        "batch": ({"ms": ms, "pan": pan[:1]}, r"same batch size"),
        "missing_pan": ({"ms": ms}, r"missing input.*pan"),
        "unknown_key": ({"ms": ms, "pan": pan, "gt": lms}, r"unexpected key.*gt"),
    }


BAD = sorted(_bad_cases(np.random.default_rng(0)))


class TestValidation(TestCase):
    @pytest.mark.parametrize("case", BAD)
    def test_bad_inputs_raise_on_call_predict_fit(self, case, rng):
        data, pattern = _bad_cases(rng)[case]
        model = ContractModel()
        model.compile(optimizer="adam", loss="mae")
        y = np.zeros((2, 32, 32, 4), "float32")
        with pytest.raises(ValueError, match=pattern):
            model(data)
        with pytest.raises(ValueError, match=pattern):
            model.predict(data, verbose=0)
        with pytest.raises(ValueError, match=pattern):
            model.fit(data, y, epochs=1, verbose=0)
        with pytest.raises(ValueError, match=pattern):
            model.evaluate(data, y, verbose=0)
        with pytest.raises(ValueError, match=pattern):
            model.train_on_batch(data, y)

    def test_non_dict_input(self, rng):
        d = _data(rng)
        model = ContractModel()
        with pytest.raises(ValueError, match="expects a dict"):
            model([d["ms"], d["pan"]])

    def test_errors_after_a_successful_fit_and_reload(self, rng, tmp_path):
        # TF relaxes traced shapes once a step was traced; data are still
        # checked eagerly, and the reloaded model keeps the checks.
        model = ContractModel()
        model.compile(optimizer="adam", loss="mae")
        d = _data(rng)
        model.fit(d, _target(d), epochs=1, verbose=0)
        path = str(tmp_path / "m.keras")
        model.save(path)
        loaded = keras.saving.load_model(path)
        loaded.compile(optimizer="adam", loss="mae")
        bad = {"ms": d["ms"][..., :3], "pan": d["pan"]}
        for m in (model, loaded):
            with pytest.raises(ValueError, match="4 bands"):
                m.fit(bad, _target(d), epochs=1, verbose=0)
            with pytest.raises(ValueError, match="4 bands"):
                m(bad)

    def test_tf_dataset_is_checked(self, rng):
        tf = pytest.importorskip("tensorflow")
        d = _data(rng)
        bad = {"ms": d["ms"][:, :7, :7], "pan": d["pan"]}
        ds = tf.data.Dataset.from_tensor_slices((bad, _target(d))).batch(2)
        model = ContractModel()
        model.compile(optimizer="adam", loss="mae")
        with pytest.raises(ValueError, match="4x"):
            model.fit(ds, epochs=1, verbose=0)

    def test_validate_fills_lms_and_skips_unknown_dims(self, rng):
        d = _data(rng)
        out = validate_pansharp_inputs(d, 4)
        assert out["lms"] is None and out["ms"] is d["ms"]
        symbolic = pansharp_inputs(4)
        out = validate_pansharp_inputs(symbolic, 4)
        assert out["lms"] is symbolic["lms"]
        with pytest.raises(ValueError, match="8 bands"):
            validate_pansharp_inputs(symbolic, 8, model_name="X")


class TestValueChecks(TestCase):
    """Host-side checks of NumPy inputs: NaN/inf raise, DN values warn."""

    @pytest.mark.parametrize(
        "key,value", [("ms", np.nan), ("pan", np.inf), ("lms", -np.inf)]
    )
    def test_non_finite_raises_before_the_model_runs(self, rng, key, value):
        d = _data(rng, lms=True)
        d[key][1, 5, 6, 0] = value
        model = ContractModel()
        model.compile(optimizer="adam", loss="mae")
        pattern = rf"ContractModel: input '{key}' contains 1 non-finite.*\(1, 5, 6, 0\)"
        with pytest.raises(ValueError, match=pattern):
            model(d)
        with pytest.raises(ValueError, match=pattern):
            model.predict(d, verbose=0)
        with pytest.raises(ValueError, match=pattern):
            model.predict_on_batch(d)
        with pytest.raises(ValueError, match=pattern):
            model.fit(d, _target(d), epochs=1, verbose=0)
        with pytest.raises(ValueError, match=pattern):
            model.evaluate(d, _target(d), verbose=0)

    def test_digital_numbers_warn_and_are_not_rescaled(self, rng):
        d = _data(rng)
        dn = {k: np.round(v * 2047).astype("float32") for k, v in d.items()}
        kept = {k: v.copy() for k, v in dn.items()}
        model = ContractModel()
        pattern = r"'ms' max 20\d\d.*'pan' max 20\d\d.*sensor's maximum DN"
        with pytest.warns(UserWarning, match=pattern) as rec:
            y_call = to_numpy(model(dn))
        assert rec[0].filename == __file__  # points at the caller
        with pytest.warns(UserWarning, match=pattern):
            y_pred = model.predict(dn, verbose=0)
        with pytest.warns(UserWarning, match=r"max_value="):
            y_batch = to_numpy(model.predict_on_batch(dn))
        for k in dn:  # never altered
            np.testing.assert_array_equal(dn[k], kept[k])
        # The model ran on the data as given (linear model: y(DN) = 2047 y).
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            y = to_numpy(model(d))
        scale = dn["ms"].max() / d["ms"].max()
        assert scale > 2000
        self.assertAllClose(y_call, y_pred, atol=1e-2)
        self.assertAllClose(y_call, y_batch, atol=1e-2)
        assert np.abs(y_call).max() > 100 * np.abs(y).max()

    def test_normalised_data_with_overshoot_do_not_warn(self, rng):
        d = _data(rng, lms=True)
        d["lms"] = d["lms"] * 1.2 - 0.1  # interpolation/augmentation overshoot
        model = ContractModel()
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            model(d)
            model.predict(d, verbose=0)
            model.predict_on_batch(d)

    def test_tensors_are_not_checked_and_context_disables(self, rng):
        d = _data(rng)
        d["ms"][0, 0, 0, 0] = np.nan
        # Tensors (possibly on an accelerator, possibly traced) are skipped:
        # no host copy, no extra graph op; the model propagates the NaN.
        t = {k: ops.convert_to_tensor(v) for k, v in d.items()}
        model = ContractModel()
        assert np.isnan(to_numpy(model(t))).any()
        with skip_value_checks():
            check_input_values(d, "X")  # disabled
        with pytest.raises(ValueError, match="X: input 'ms'"):
            check_input_values(d, "X")
