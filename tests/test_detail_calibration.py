"""In-model detail calibration (keras_pansharp.layers.DetailCalibration)."""

from __future__ import annotations

import keras
import numpy as np
import pytest

import keras_pansharp as kp
from keras_pansharp.calibration import (
    choose_gains,
    detail_gain_layer,
    has_detail_calibration,
    without_detail_calibration,
)
from keras_pansharp.inference import centre_crop
from keras_pansharp.layers.detail_calibration import (
    DetailCalibration,
    imresize_quarter_taps,
)
from keras_pansharp.metrics.full_resolution import pan_lp
from keras_pansharp.models.base import UpsampledMS
from tests.test_case import TestCase


def _images(rng, h=96, w=128, c=4):
    """Correlated float images in [0, 1]: lms, a residual, pan (H, W, .)."""
    from scipy.ndimage import gaussian_filter

    hr = gaussian_filter(rng.random((h, w)), 1.5)
    hr = 0.2 + 0.6 * (hr - hr.min()) / np.ptp(hr)
    ms_hr = hr[..., None] * rng.uniform(0.6, 1.0, c)
    ms_hr = ms_hr + 0.05 * gaussian_filter(rng.random((h, w, c)), (2, 2, 0))
    lms = gaussian_filter(ms_hr, (3, 3, 0))
    resid = (ms_hr - lms) * rng.uniform(0.3, 2.0, c)
    return lms, resid, hr[..., None]


def _tiny(calibrate_details=True, bands=4):
    keras.utils.set_random_seed(5)
    return kp.PanTiny(
        bands=bands,
        dim=8,
        num_heads=1,
        encoder_depth=1,
        body_depth=1,
        calibrate_details=calibrate_details,
    )


def _inputs(rng, b=1, h=24, c=4):
    lms, resid, pan = _images(rng, 4 * h, 4 * h, c)
    ms = lms[2::4, 2::4]
    return {
        "ms": np.repeat(ms[None], b, 0).astype("float32"),
        "pan": np.repeat(pan[None], b, 0).astype("float32"),
    }


class TestDetailCalibrationLayer(TestCase):
    def test_layer_basics(self):
        rng = np.random.default_rng(0)
        lms, resid, pan = _images(rng, 64, 64, 3)
        data = [
            lms[None].astype("float32"),
            (lms + resid)[None].astype("float32"),
            pan[None].astype("float32"),
        ]
        layer = DetailCalibration(max_gain=2.0, step=0.25)
        config = layer.get_config()
        assert config["max_gain"] == 2.0 and config["step"] == 0.25
        assert DetailCalibration.from_config(config).get_config() == config
        out = layer(data)
        assert tuple(out.shape) == (1, 64, 64, 3)
        assert layer.compute_output_shape([d.shape for d in data]) == (1, 64, 64, 3)
        assert not layer.weights
        # Training returns the input untouched.
        np.testing.assert_array_equal(np.asarray(layer(data, training=True)), data[1])

    def test_pan_lp_equals_toolbox(self):
        rng = np.random.default_rng(1)
        pan = rng.random((64, 96, 1))
        ref = pan_lp(pan)
        got = DetailCalibration()._pan_lp(pan[None].astype("float32"))
        np.testing.assert_allclose(np.asarray(got)[0], ref, atol=2e-6)
        taps = imresize_quarter_taps()
        assert taps.shape == (16,) and abs(taps.sum() - 1) < 1e-12
        # imresize(x, 1/4) of a single impulse column: the taps themselves.
        impulse = np.zeros((64, 1))
        impulse[30] = 1.0
        col = kp.imresize_bicubic(np.repeat(impulse, 4, 1), 0.25)[:, 0]
        np.testing.assert_allclose(col[6:10], taps[[12, 8, 4, 0]], atol=1e-12)

    def test_gains_equal_numpy_reference(self):
        layer = DetailCalibration()
        for seed, (h, w) in enumerate([(96, 128), (128, 128), (100, 70)]):
            rng = np.random.default_rng(10 + seed)
            lms, resid, pan = _images(rng, h, w)
            r0, c0, ch, cw = centre_crop((h, w), None)
            crop = (slice(r0, r0 + ch), slice(c0, c0 + cw))
            ref, _, _ = choose_gains(lms[crop], resid[crop], pan[crop])
            got = layer.gains(
                lms[None].astype("float32"),
                resid[None].astype("float32"),
                pan[None].astype("float32"),
            )
            np.testing.assert_array_equal(np.asarray(got)[0], ref)
            assert len(set(ref.tolist())) > 1  # bands get different gains
            out = layer(
                [
                    lms[None].astype("float32"),
                    (lms + resid)[None].astype("float32"),
                    pan[None].astype("float32"),
                ]
            )
            np.testing.assert_allclose(np.asarray(out)[0], lms + ref * resid, atol=1e-5)

    def test_per_image_gains_in_a_batch(self):
        rng = np.random.default_rng(3)
        a, b = _images(rng, 64, 64), _images(rng, 64, 64)
        lms, resid, pan = (np.stack([x, y]).astype("float32") for x, y in zip(a, b))
        layer = DetailCalibration()
        both = np.asarray(layer.gains(lms, resid, pan))
        for i in range(2):
            one = np.asarray(
                layer.gains(lms[i : i + 1], resid[i : i + 1], pan[i : i + 1])
            )
            np.testing.assert_array_equal(both[i], one[0])

    def test_small_images_keep_gain_one(self):
        rng = np.random.default_rng(4)
        lms, resid, pan = _images(rng, 16, 24)
        fused = (lms + resid)[None].astype("float32")
        out = DetailCalibration()(
            [lms[None].astype("float32"), fused, pan[None].astype("float32")]
        )
        np.testing.assert_array_equal(np.asarray(out), fused)
        gains = DetailCalibration().gains(
            lms[None].astype("float32"),
            resid[None].astype("float32"),
            pan[None].astype("float32"),
        )
        np.testing.assert_array_equal(np.asarray(gains), np.ones((1, 4), "float32"))

    def test_bad_arguments(self):
        with pytest.raises(ValueError, match="step"):
            DetailCalibration(step=0)
        with pytest.raises(ValueError, match="max_gain"):
            DetailCalibration(max_gain=0.01, step=0.1)
        layer = DetailCalibration()
        with pytest.raises(ValueError, match="three inputs"):
            layer.build([(1, 8, 8, 3), (1, 8, 8, 3)])
        with pytest.raises(ValueError, match="pan"):
            layer.build([(1, 8, 8, 3), (1, 8, 8, 3), (1, 8, 8, 2)])
        with pytest.raises(ValueError, match="same known C"):
            layer.build([(1, 8, 8, 3), (1, 8, 8, 4), (1, 8, 8, 1)])


class TestPanTinyCalibrateDetails(TestCase):
    def test_model_base(self):
        rng = np.random.default_rng(0)
        x = _inputs(rng, b=2)
        model = self.run_model_test(
            kp.PanTiny,
            {
                "bands": 4,
                "dim": 8,
                "num_heads": 1,
                "encoder_depth": 1,
                "body_depth": 1,
                "calibrate_details": True,
            },
            x,
            expected_output_shape=(2, 96, 96, 4),
        )
        assert model.get_config()["calibrate_details"] is True
        self.run_model_saving_test(
            kp.PanTiny,
            {
                "dim": 8,
                "num_heads": 1,
                "encoder_depth": 1,
                "body_depth": 1,
                "calibrate_details": True,
            },
            x,
        )

    def test_prediction_is_calibrated_raw_output(self):
        rng = np.random.default_rng(1)
        x = _inputs(rng, h=32)
        model = _tiny()
        raw = without_detail_calibration(model)
        assert has_detail_calibration(model) and not has_detail_calibration(raw)
        assert type(raw) is kp.PanTiny and raw.count_params() == model.count_params()
        fused_raw = np.asarray(raw.predict(x, verbose=0), np.float64)[0]
        lms = np.asarray(UpsampledMS("interp23tap")(x["ms"]), np.float64)[0]
        gains, _, _ = choose_gains(lms, fused_raw - lms, x["pan"][0].astype(np.float64))
        got = np.asarray(model.predict(x, verbose=0))[0]
        np.testing.assert_allclose(got, lms + gains * (fused_raw - lms), atol=2e-5)
        # Training sees the raw network.
        np.testing.assert_allclose(
            np.asarray(model(x, training=True))[0], fused_raw, atol=1e-6
        )

    def test_fit_trains_the_raw_output(self):
        rng = np.random.default_rng(2)
        x = _inputs(rng, b=2, h=16)
        model, raw = _tiny(), _tiny(calibrate_details=False)
        y = np.asarray(raw.predict(x, verbose=0)) + 0.05
        for m in (model, raw):
            keras.utils.set_random_seed(0)
            m.compile(optimizer=keras.optimizers.SGD(0.1), loss="mae")
        h1 = model.fit(x, y, epochs=1, batch_size=2, verbose=0).history["loss"][0]
        h2 = raw.fit(x, y, epochs=1, batch_size=2, verbose=0).history["loss"][0]
        np.testing.assert_allclose(h1, h2, rtol=1e-5)

    def test_predict_on_several_sizes(self):
        # TensorFlow relaxes to dynamic sides after several shapes: images
        # below one 32 x 32 block must still come back unchanged.
        rng = np.random.default_rng(3)
        model, raw = _tiny(), _tiny(calibrate_details=False)
        for h in (4, 12, 8, 16, 6):
            x = _inputs(rng, h=h)
            got = np.asarray(model.predict_on_batch(x))
            assert got.shape == (1, 4 * h, 4 * h, 4)
            if 4 * h < 32:
                np.testing.assert_allclose(
                    got, np.asarray(raw.predict_on_batch(x)), atol=1e-6
                )

    def test_predict_scene_uses_one_set_of_gains(self):
        rng = np.random.default_rng(4)
        x = _inputs(rng, h=32)
        model = _tiny()
        whole = np.asarray(model.predict(x, verbose=0))[0]
        tiled = kp.predict_scene(model, x["ms"][0], x["pan"][0], tile=64, verbose=0)
        np.testing.assert_allclose(tiled, whole, atol=2e-5)
        dn = kp.predict_scene(
            model,
            x["ms"][0] * 2047,
            x["pan"][0] * 2047,
            tile=64,
            max_value=2047,
            verbose=0,
        )
        np.testing.assert_allclose(dn / 2047, whole, atol=2e-5)
        with pytest.raises(ValueError, match="too small"):
            kp.predict_scene(
                model, x["ms"][0][:4, :4], x["pan"][0][:16, :16], verbose=0
            )

    def test_tiled_engine_refuses_per_tile_gains(self):
        # predict_tiled runs a model as given: a self-calibrating model would
        # choose gains per tile, so it is refused; scene_model folds one set.
        rng = np.random.default_rng(6)
        x = _inputs(rng, h=32)
        model = _tiny()
        ms, pan = x["ms"][0], x["pan"][0]
        with pytest.raises(ValueError, match="chooses its detail gains on each image"):
            kp.predict_tiled(model, ms, pan, tile=64, verbose=0)
        fixed = kp.calibration.scene_model(model, ms, pan)
        assert not has_detail_calibration(fixed)
        np.testing.assert_allclose(
            kp.predict_tiled(fixed, ms, pan, tile=64, verbose=0),
            kp.predict_scene(model, ms, pan, tile=64, verbose=0),
            atol=1e-6,
        )
        raw = without_detail_calibration(model)
        assert kp.calibration.scene_model(raw, ms, pan) is raw

    def test_fold_and_calibrate(self):
        rng = np.random.default_rng(5)
        x = _inputs(rng, h=32)
        model = _tiny()
        with pytest.raises(ValueError, match="calibrates its own details"):
            detail_gain_layer(model)
        res = kp.calibrate_detail_gain(
            model, x["ms"][0] * 2047, x["pan"][0][..., 0] * 2047, sensor="qb"
        )
        assert res.model is not None and not has_detail_calibration(res.model)
        np.testing.assert_allclose(
            np.asarray(res.model.predict(x, verbose=0))[0],
            np.asarray(model.predict(x, verbose=0))[0],
            atol=2e-5,
        )

    def test_raw_network_needs_the_config_argument(self):
        inputs = kp.models.base.pansharp_inputs(4)
        lms = kp.models.base.UpsampledMS(name="up")(inputs["ms"], inputs["lms"])
        out = DetailCalibration()([lms, lms, inputs["pan"]])
        custom = keras.Model(inputs, out)
        assert has_detail_calibration(custom)
        with pytest.raises(ValueError, match="calibrate_details"):
            without_detail_calibration(custom)


def test_preset_calibrates_and_can_be_raw():
    model = kp.PanTiny.from_preset("pantiny_multisensor")
    assert model.calibrate_details and has_detail_calibration(model)
    raw = kp.PanTiny.from_preset("pantiny_multisensor", calibrate_details=False)
    assert not has_detail_calibration(raw)
    for a, b in zip(model.get_weights(), raw.get_weights()):
        np.testing.assert_array_equal(a, b)
    with pytest.raises(ValueError, match="cannot override"):
        kp.PanTiny.from_preset("pantiny_multisensor", dim=16)
