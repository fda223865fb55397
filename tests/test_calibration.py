"""Per-scene detail-gain calibration (keras_pansharp.calibration)."""

from __future__ import annotations

import keras
import numpy as np
import pytest

import keras_pansharp as kp
from keras_pansharp.calibration import _gain_curves, detail_gain_layer
from keras_pansharp.metrics.full_resolution import pan_lp
from keras_pansharp.metrics.q_index import _block_q_bands
from keras_pansharp.models.base import UpsampledMS


def _scene(rng, h=24, c=4, max_dn=2047.0):
    """A smooth random DN scene: ms (h, h, c), pan (4h, 4h) correlated."""
    from scipy.ndimage import gaussian_filter

    pan = gaussian_filter(rng.random((4 * h, 4 * h)), 3.0)
    pan = (pan - pan.min()) / np.ptp(pan)
    ms_hr = pan[..., None] * rng.uniform(0.5, 1.0, c) + 0.1 * gaussian_filter(
        rng.random((4 * h, 4 * h, c)), (6.0, 6.0, 0)
    )
    return ms_hr[2::4, 2::4] * 0.6 * max_dn, pan * 0.6 * max_dn


def _tiny_pantiny(bands=4):
    keras.utils.set_random_seed(3)
    return kp.PanTiny(bands=bands, dim=8, num_heads=1, encoder_depth=1, body_depth=1)


def _lms(ms_n):
    return np.asarray(UpsampledMS("interp23tap")(ms_n[None].astype("float32")))[0]


def _reference_dev(lms, resid, pan, pan_lp, g):
    """float64: per band |Q(lms + g resid, pan) - Q(lms, pan_lp)| with the
    toolbox's block Q (the per-band terms of D_s)."""
    from keras_pansharp.metrics.q_index import _block_groups

    q_full = _block_q_bands(_block_groups(lms + g * resid, 32), _block_groups(pan, 32))
    q_low = _block_q_bands(_block_groups(lms, 32), _block_groups(pan_lp, 32))
    return np.abs(q_full - q_low)


def test_gain_curves_equal_block_q_reference():
    rng = np.random.default_rng(0)
    lms = rng.random((64, 96, 3)) + 0.5
    resid = 0.1 * rng.standard_normal((64, 96, 3))
    pan = lms.mean(-1, keepdims=True) + resid.mean(-1, keepdims=True)
    low = pan_lp(pan)
    gains = np.array([0.0, 0.3, 1.0, 2.5])
    dev, target = _gain_curves(lms, resid, pan, low, gains)
    assert dev.shape == (4, 3) and target.shape == (3,)
    for i, g in enumerate(gains):
        np.testing.assert_allclose(
            dev[i], _reference_dev(lms, resid, pan, low, g), atol=1e-12
        )


def test_calibrate_pantiny_folds_gains_and_lowers_d_s():
    rng = np.random.default_rng(1)
    ms, pan = _scene(rng, h=32)  # PAN 128
    model = _tiny_pantiny()
    weights = [w.copy() for w in model.get_weights()]
    # The global rule (1 is on the grid): D_s can only fall.
    res = kp.calibrate_detail_gain(
        model, ms, pan, sensor="qb", step=1 / 16, rule="global"
    )
    assert res.gains.shape == (4,)
    assert np.all((res.gains >= 0) & (res.gains <= 4.0))
    np.testing.assert_allclose(res.gains * 16, np.round(res.gains * 16))  # grid
    assert res.crop == (0, 0, 128, 128)
    assert res.d_s_after <= res.d_s_before
    # D_s after equals the metric on the calibrated image.
    d_s = kp.metrics.d_s(res.fused, ms, pan)
    np.testing.assert_allclose(res.d_s_after, d_s, atol=1e-6)
    # The input model is untouched; the copy returns LMS + g (model - LMS).
    for a, b in zip(model.get_weights(), weights):
        np.testing.assert_array_equal(a, b)
    assert isinstance(res.model, kp.PanTiny) and res.model is not model
    x = {
        "ms": (ms / 2047.0)[None].astype("float32"),
        "pan": (pan / 2047.0)[None, ..., None],
    }
    f = np.asarray(model.predict_on_batch(x))[0]
    lms = _lms(ms / 2047.0)
    expect = lms + res.gains * (f - lms)
    got = np.asarray(res.model.predict_on_batch(x))[0]
    np.testing.assert_allclose(got, expect, atol=2e-5)
    np.testing.assert_allclose(res.fused / 2047.0, expect, atol=2e-5)
    # DN in, DN out.
    assert 0.5 < res.fused.mean() / ms.mean() < 1.5


def test_calibrate_rules():
    rng = np.random.default_rng(2)
    ms, pan = _scene(rng, h=16)
    model = _tiny_pantiny()
    kw = {"sensor": "qb", "step": 0.25}
    shared = kp.calibrate_detail_gain(
        model, ms, pan, per_band=False, rule="global", **kw
    )
    assert np.all(shared.gains == shared.gains[0])
    per_band = kp.calibrate_detail_gain(model, ms, pan, rule="global", **kw)
    # The global rule minimises each band's term: D_s at most the shared gain's.
    assert per_band.d_s_after <= shared.d_s_after + 1e-12
    # The first rule: the deviation falls (or stays) up to the chosen gain and
    # rises right after it.
    first = kp.calibrate_detail_gain(model, ms, pan, **kw)
    lms = _lms(ms / 2047.0)
    x = {
        "ms": (ms / 2047.0)[None].astype("float32"),
        "pan": (pan / 2047.0)[None, ..., None],
    }
    resid = np.asarray(model.predict_on_batch(x), np.float64)[0] - lms
    pan_n = (pan / 2047.0)[..., None]
    grid = np.arange(17) * 0.25
    dev, _ = _gain_curves(lms, resid, pan_n, pan_lp(pan_n), grid)
    for b, g in enumerate(first.gains):
        i = int(np.searchsorted(grid, g))
        assert np.all(np.diff(dev[: i + 1, b]) <= 1e-9)
        assert i == len(grid) - 1 or dev[i + 1, b] > dev[i, b]
    with pytest.raises(ValueError, match="rule"):
        kp.calibrate_detail_gain(model, ms, pan, rule="best", **kw)


def test_calibrate_centre_crop_of_a_larger_scene():
    rng = np.random.default_rng(3)
    ms, pan = _scene(rng, h=40)  # PAN 160
    res = kp.calibrate_detail_gain(_tiny_pantiny(), ms, pan, sensor="qb", crop=64)
    assert res.crop == (48, 48, 64, 64)
    assert res.fused.shape == (64, 64, 4)


def test_apply_detail_gain_to_a_biased_residual_model():
    model = kp.PanNet(bands=4)
    rng = np.random.default_rng(4)
    ms, pan = _scene(rng, h=8)
    x = {
        "ms": (ms / 2047.0)[None].astype("float32"),
        "pan": (pan / 2047.0)[None, ..., None],
    }
    f = np.asarray(model.predict_on_batch(x))[0]
    lms = _lms(ms / 2047.0)
    g = np.array([0.0, 0.5, 1.0, 2.0])
    assert detail_gain_layer(model).name == "conv3"
    kp.apply_detail_gain(model, g)
    np.testing.assert_allclose(
        np.asarray(model.predict_on_batch(x))[0], lms + g * (f - lms), atol=2e-5
    )
    with pytest.raises(ValueError, match="4 finite gains"):
        kp.apply_detail_gain(model, [1.0, 2.0])
    with pytest.raises(ValueError, match="4 finite gains"):
        kp.apply_detail_gain(model, [1.0, np.nan, 1.0, 1.0])


def test_models_without_a_residual_convolution():
    model = kp.PNN(bands=4)
    with pytest.raises(ValueError, match="cannot fold a detail gain.*not Add"):
        kp.apply_detail_gain(model, 0.5)
    rng = np.random.default_rng(5)
    ms, pan = _scene(rng, h=8)
    res = kp.calibrate_detail_gain(model, ms, pan, sensor="qb")
    assert res.model is None and res.fused.shape == (32, 32, 4)


def test_calibrate_errors():
    rng = np.random.default_rng(6)
    ms, pan = _scene(rng, h=12)
    model = _tiny_pantiny()
    with pytest.raises(ValueError, match="calibrate_detail_gain: .* normalised"):
        kp.calibrate_detail_gain(model, ms / 2047, pan / 2047, sensor="qb")
    with pytest.raises(ValueError, match="exceed the max DN"):
        kp.calibrate_detail_gain(model, ms * 4, pan * 4, sensor="qb")
    with pytest.raises(ValueError, match="rgbn_indices"):
        kp.calibrate_detail_gain(model, np.concatenate([ms, ms], -1), pan, sensor="wv3")
    with pytest.raises(ValueError, match="sensor WV3 has 8"):
        kp.calibrate_detail_gain(model, ms, pan, sensor="wv3")
    bad = ms.copy()
    bad[0, 0, 0] = np.inf
    with pytest.raises(ValueError, match="inf"):
        kp.calibrate_detail_gain(model, bad, pan, sensor="qb")
    with pytest.raises(ValueError, match="pan"):
        kp.calibrate_detail_gain(model, ms, pan[:-4], sensor="qb")
    with pytest.raises(ValueError, match="too small"):
        kp.calibrate_detail_gain(model, ms[:7, :7], pan[:28, :28], sensor="qb")
    with pytest.raises(ValueError, match="max_gain"):
        kp.calibrate_detail_gain(model, ms, pan, sensor="qb", max_gain=0)
    with pytest.raises(ValueError, match="step"):
        kp.calibrate_detail_gain(model, ms, pan, sensor="qb", step=5.0)
    with pytest.raises(ValueError, match="keras.Model"):
        kp.calibrate_detail_gain(lambda x: x, ms, pan, sensor="qb")


@pytest.mark.large
def test_calibrate_pretrained_on_real_crop(shared_path):
    data = shared_path / "data"
    scene = kp.data.read_scene(
        data / "qb_abfnet" / "fr_ms.tif", data / "qb_abfnet" / "fr_pan.tif", sensor="qb"
    )
    ms, pan = scene.ms[:64, :64], scene.pan[:256, :256]
    model = kp.PanTiny.from_preset("pantiny_multisensor")
    res = kp.calibrate_detail_gain(model, ms, pan, sensor="qb")
    assert res.d_s_after < res.d_s_before
    fused = kp.predict_scene(res.model, ms, pan, max_value=2047.0, verbose=0)
    np.testing.assert_allclose(fused, res.fused, atol=0.05)  # DN
