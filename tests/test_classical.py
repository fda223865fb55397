"""Tests of the classical pan-sharpening baselines (EXP, BT-H, MTF-GLP-HPM-R)."""

import json

import numpy as np
import pytest

from keras_pansharp.signal import (
    CLASSICAL_METHODS,
    bt_h,
    exp_method,
    interp23tap,
    mtf_glp_hpm_r,
)
from tests.test_case import GOLDEN_CASES

METHODS = ["EXP", "BT_H", "MTF_GLP_HPM_R"]


def assert_close_rel(actual, desired, rel):
    """max |actual - desired| <= rel * max |desired| (and same shape)."""
    assert actual.shape == desired.shape
    err = np.max(np.abs(actual - desired)) / np.max(np.abs(desired))
    assert err <= rel, err


@pytest.fixture(scope="module")
def golden(golden_dir):
    meta = json.loads((golden_dir / "golden.json").read_text())
    return {
        c: (np.load(golden_dir / f"{c}.npz"), meta[c]["sensor"]) for c in GOLDEN_CASES
    }


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("case", GOLDEN_CASES)
def test_classical_methods_match_golden(golden, case, method):
    data, sensor = golden[case]
    fuse = CLASSICAL_METHODS[method]
    fused = fuse(data["ms_lr"], data["pan"], sensor)
    assert_close_rel(fused, data[f"fused_{method}"], 1e-10)
    if "wald_ms_lr" in data.files:  # FR cases: the same method on the Wald pair
        fused = fuse(data["wald_ms_lr"], data["wald_pan"], sensor)
        assert_close_rel(fused, data[f"wald_fused_{method}"], 1e-10)


def _pair(rng, bands=4, h=8):
    ms = rng.uniform(100, 1500, (h, h, bands))
    pan = interp23tap(ms).mean(axis=2) + rng.normal(0, 20, (4 * h, 4 * h))
    return ms, pan


def test_exp_is_interp23tap(rng):
    ms, pan = _pair(rng)
    np.testing.assert_array_equal(exp_method(ms, pan), interp23tap(ms))
    np.testing.assert_array_equal(exp_method(ms), interp23tap(ms))


@pytest.mark.parametrize("bands", [4, 8])
def test_bt_h_and_hpm_r_shapes_and_lms_argument(rng, bands):
    ms, pan = _pair(rng, bands)
    lms = interp23tap(ms)
    sensor = "QB" if bands == 4 else "WV3"
    for fused, again in [
        (bt_h(ms, pan), bt_h(ms, pan[:, :, None], lms=lms)),
        (mtf_glp_hpm_r(ms, pan, sensor), mtf_glp_hpm_r(ms, pan, sensor, lms=lms)),
    ]:
        assert fused.shape == (32, 32, bands) and fused.dtype == np.float64
        assert np.isfinite(fused).all()
        np.testing.assert_array_equal(fused, again)


def test_hpm_r_injects_pan_detail(rng):
    # The PAN's high-pass content appears in every fused band.
    ms, pan = _pair(rng)
    fused = mtf_glp_hpm_r(ms, pan, "QB")
    detail = fused - interp23tap(ms)
    for b in range(4):
        assert np.corrcoef(detail[:, :, b].ravel(), pan.ravel())[0, 1] > 0.5


def test_bt_h_8_bands_stays_close_to_lms_when_pan_is_their_mean(rng):
    # Where PAN equals the fitted intensity, BT-H returns the upsampled MS.
    ms, _ = _pair(rng, 8)
    lms = interp23tap(ms)
    out = bt_h(ms, lms.mean(axis=2))
    assert out.shape == lms.shape
    assert np.abs(out - lms).mean() < 0.1 * np.abs(lms).mean()


def test_classical_validation(rng):
    ms, pan = _pair(rng)
    with pytest.raises(ValueError, match="expected pan = 4 x ms"):
        bt_h(ms, pan[:-4])
    with pytest.raises(ValueError, match="8 MTF gains"):
        mtf_glp_hpm_r(ms, pan, "WV3")
    with pytest.raises(ValueError, match=r"\(H, W, C\)"):
        exp_method(ms[:, :, 0])
    bad = pan.copy()
    bad[3, 3] = np.nan
    with pytest.raises(ValueError, match="pan: contains 1 NaN"):
        mtf_glp_hpm_r(ms, bad, "QB")
    with pytest.raises(ValueError, match="lms has shape"):
        bt_h(ms, pan, lms=np.ones((16, 16, 4)))
