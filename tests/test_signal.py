"""Tests of the toolbox-exact NumPy signal tools (keras_pansharp.signal)."""

import json

import numpy as np
import pytest
from scipy import ndimage

from keras_pansharp import signal
from keras_pansharp.signal import (
    correlate_nearest,
    imresize_bicubic,
    imresize_nearest,
    interp23tap,
    interp23tap_kernel,
    mtf_filter,
    mtf_kernel,
    mtf_kernels,
    wald_degrade,
)
from tests.test_case import GOLDEN_CASES

FR_CASES = [c for c in GOLDEN_CASES if c.startswith("fr_")]


def assert_close_rel(actual, desired, rel):
    """max |actual - desired| <= rel * max |desired| (and same shape)."""
    actual = np.asarray(actual)
    desired = np.asarray(desired)
    assert actual.shape == desired.shape
    err = np.max(np.abs(actual - desired))
    assert err <= rel * np.max(np.abs(desired)), err / np.max(np.abs(desired))


def load_case(golden_dir, case):
    data = np.load(golden_dir / f"{case}.npz")
    meta = json.loads((golden_dir / "golden.json").read_text())[case]
    return data, meta["sensor"]


def naive_interp23tap(x, ratio):
    """Literal transcription: zero-stuff, then circular 23-tap correlation."""
    k = interp23tap_kernel()
    for stage in range(int(np.log2(ratio))):
        r, c, b = x.shape
        up = np.zeros((2 * r, 2 * c, b))
        if stage == 0:
            up[1::2, 1::2] = x
        else:
            up[0::2, 0::2] = x
        up = ndimage.correlate1d(up, k, axis=0, mode="wrap")
        x = ndimage.correlate1d(up, k, axis=1, mode="wrap")
    return x


# --------------------------------------------------------------- golden values


@pytest.mark.parametrize("case", GOLDEN_CASES)
def test_mtf_kernels_match_golden(golden_dir, case):
    data, sensor = load_case(golden_dir, case)
    k = mtf_kernels(sensor, num_bands=data["ms_lr"].shape[2])
    assert_close_rel(k, data["mtf_kernels"], 1e-8)


@pytest.mark.parametrize("case", GOLDEN_CASES)
def test_interp23tap_matches_golden(golden_dir, case):
    data, _ = load_case(golden_dir, case)
    assert_close_rel(interp23tap(data["ms_lr"]), data["interp23tap_ms"], 1e-9)
    if "wald_ms_lr" in data.files:
        assert_close_rel(
            interp23tap(data["wald_ms_lr"]), data["wald_interp23tap_ms"], 1e-9
        )


@pytest.mark.parametrize("case", FR_CASES)
def test_wald_degrade_matches_golden(golden_dir, case):
    data, sensor = load_case(golden_dir, case)
    ms_lr, pan_lr = wald_degrade(data["ms_lr"], data["pan"], sensor)
    assert_close_rel(ms_lr, data["wald_ms_lr"], 1e-8)
    assert_close_rel(pan_lr, data["wald_pan"], 1e-8)
    # The PAN path is MATLAB's bicubic antialiased imresize by 1/4.
    assert_close_rel(imresize_bicubic(data["pan"], 0.25), data["wald_pan"], 1e-8)


# ----------------------------------------------------------------- interp23tap


@pytest.mark.parametrize("ratio", [2, 4])
def test_interp23tap_equals_literal_zero_stuffing(rng, ratio):
    x = rng.uniform(0, 2047, (7, 9, 3))
    np.testing.assert_allclose(
        interp23tap(x, ratio), naive_interp23tap(x, ratio), rtol=0, atol=1e-9
    )


def test_interp23tap_phase_and_constants(rng):
    x = rng.uniform(0, 1, (6, 5, 2))
    up = interp23tap(x)
    assert up.shape == (24, 20, 2)
    np.testing.assert_array_equal(up[2::4, 2::4], x)
    # The published 4-decimal-digit taps sum to 1 within ~1e-9.
    np.testing.assert_allclose(interp23tap(np.full((4, 4, 1), 7.0)), 7.0, rtol=1e-8)


def test_interp23tap_single_band_2d(rng):
    x = rng.uniform(0, 1, (5, 6))
    up = interp23tap(x)
    assert up.shape == (20, 24)
    np.testing.assert_allclose(up, interp23tap(x[:, :, None])[:, :, 0])


def test_interp23tap_rejects_bad_input():
    with pytest.raises(ValueError, match="power of 2"):
        interp23tap(np.ones((4, 4)), ratio=3)
    with pytest.raises(ValueError, match="NaN"):
        interp23tap(np.array([[1.0, np.nan], [0.0, 1.0]]))
    with pytest.raises(ValueError, match="shape"):
        interp23tap(np.ones(5))
    with pytest.raises(ValueError, match="numeric"):
        interp23tap(np.array([["a", "b"], ["c", "d"]]))


# ----------------------------------------------------------------- MTF kernels


def test_mtf_kernel_properties():
    k = mtf_kernels("WV3")
    assert k.shape == (41, 41, 8)
    np.testing.assert_allclose(k, k[::-1, :, :], atol=1e-15)
    np.testing.assert_allclose(k, np.transpose(k, (1, 0, 2)), atol=1e-15)
    # Not renormalised: the window-method design sums to ~0.998.
    sums = k.sum(axis=(0, 1))
    assert np.all((sums > 0.99) & (sums < 1.0))
    # Lower Nyquist gain = stronger blur = lower peak.
    qb = mtf_kernels("QB")
    assert qb[20, 20, 3] < qb[20, 20, 0]  # NIR gain 0.22 < blue 0.34


def test_mtf_kernels_sensor_forms():
    np.testing.assert_array_equal(
        mtf_kernels("none", num_bands=3), mtf_kernels([0.3, 0.3, 0.3])
    )
    np.testing.assert_array_equal(mtf_kernels("gf2"), mtf_kernels("none", num_bands=4))
    np.testing.assert_array_equal(
        mtf_kernels("wv3_rgbn"), mtf_kernels("WV3")[:, :, [1, 2, 4, 6]]
    )
    pan = mtf_kernels("WV3", pan=True)
    assert pan.shape == (41, 41, 1)
    np.testing.assert_array_equal(pan[:, :, 0], mtf_kernel(0.14))


def test_mtf_kernels_errors():
    with pytest.raises(ValueError, match="8 MTF gains but the image has 4"):
        mtf_kernels("WV3", num_bands=4)
    with pytest.raises(ValueError, match="number of bands"):
        mtf_kernels("none")
    with pytest.raises(ValueError, match="Unknown sensor"):
        mtf_kernels("landsat99")
    with pytest.raises(ValueError, match=r"\(0, 1\)"):
        mtf_kernel(1.5)
    with pytest.raises(ValueError, match="odd"):
        mtf_kernel(0.3, n=40)


# ------------------------------------------------------------------ MTF filter


def test_mtf_filter_fft_path_equals_direct_correlation(rng):
    # 80 x 70 x 41^2 is above the direct-path threshold: the FFT path runs.
    x = rng.uniform(0, 2047, (80, 70, 4))
    k = mtf_kernels("QB")
    out = mtf_filter(x, "QB")
    for b in range(4):
        ref = ndimage.correlate(x[:, :, b], k[:, :, b], mode="nearest")
        np.testing.assert_allclose(out[:, :, b], ref, rtol=0, atol=1e-9)
    # Small image: direct path, same kernels.
    small = x[:16, :16]
    np.testing.assert_allclose(
        mtf_filter(small, k), mtf_filter(small, "qb"), rtol=0, atol=0
    )


def test_mtf_filter_replicate_border_and_asymmetric_kernel(rng):
    x = rng.uniform(0, 1, (60, 60))
    k = rng.uniform(0, 1, (41, 41))  # asymmetric: checks correlation, not conv
    ref = ndimage.correlate(x, k, mode="nearest")
    np.testing.assert_allclose(mtf_filter(x, k), ref, rtol=1e-12, atol=1e-10)
    const = mtf_filter(np.full((8, 8, 2), 3.0), "none")
    np.testing.assert_allclose(
        const,
        np.broadcast_to(
            3.0 * mtf_kernels("none", num_bands=2).sum((0, 1)), const.shape
        ),
    )


def test_correlate_nearest_many_kernels_one_fft(rng):
    pan = rng.uniform(0, 2047, (72, 72))
    k = np.concatenate([mtf_kernels("WV3"), rng.uniform(0, 1, (41, 41, 1))], axis=2)
    out = correlate_nearest(pan, k)  # FFT path (above the direct threshold)
    assert out.shape == (72, 72, 9)
    for i in range(9):
        ref = ndimage.correlate(pan, k[:, :, i], mode="nearest")
        np.testing.assert_allclose(out[:, :, i], ref, rtol=1e-12, atol=1e-9)
    small = correlate_nearest(pan[:16, :16, None], k)  # direct path
    np.testing.assert_allclose(
        small[:, :, 8], ndimage.correlate(pan[:16, :16], k[:, :, 8], mode="nearest")
    )


def test_mtf_filter_errors():
    with pytest.raises(ValueError, match="8 MTF gains"):
        mtf_filter(np.ones((8, 8, 4)), "WV3")
    with pytest.raises(ValueError, match="band"):
        mtf_filter(np.ones((8, 8, 4)), np.ones((41, 41, 3)))


# -------------------------------------------------------------------- imresize


def test_imresize_bicubic_linear_ramp_and_constant():
    # MATLAB maps output u (0-based) to input 4u + 1.5; a symmetric normalised
    # kernel reproduces a linear ramp exactly away from the borders.
    ramp = np.tile(np.arange(64.0), (64, 1))
    out = imresize_bicubic(ramp, 0.25)
    assert out.shape == (16, 16)
    np.testing.assert_allclose(
        out[:, 2:-2], np.tile(4 * np.arange(16.0) + 1.5, (16, 1))[:, 2:-2], atol=1e-12
    )
    np.testing.assert_allclose(
        imresize_bicubic(np.full((12, 20, 3), 5.0)), 5.0, atol=1e-12
    )


def test_imresize_bicubic_against_literal_matlab_contributions(rng):
    def matlab_resize_1d(v, scale):
        n = v.size
        width = 4.0 / scale
        out = []
        for u in range(1, int(np.ceil(n * scale)) + 1):
            centre = u / scale + 0.5 * (1 - 1 / scale)
            left = int(np.floor(centre - width / 2))
            acc, wsum = 0.0, 0.0
            for i in range(left, left + int(np.ceil(width)) + 2):
                d = abs(scale * (centre - i))
                w = scale * (
                    (1.5 * d**3 - 2.5 * d**2 + 1)
                    if d <= 1
                    else (-0.5 * d**3 + 2.5 * d**2 - 4 * d + 2)
                    if d <= 2
                    else 0.0
                )
                j = (i - 1) % (2 * n)
                j = j if j < n else 2 * n - 1 - j  # symmetric mirror
                acc += w * v[j]
                wsum += w
            out.append(acc / wsum)
        return np.array(out)

    x = rng.uniform(0, 1, (13, 10))
    cols = np.stack([matlab_resize_1d(x[:, j], 0.25) for j in range(10)], axis=1)
    ref = np.stack([matlab_resize_1d(cols[i], 0.25) for i in range(cols.shape[0])])
    np.testing.assert_allclose(imresize_bicubic(x, 0.25), ref, rtol=0, atol=1e-12)


def test_imresize_nearest_keeps_index_2_mod_4(rng):
    x = rng.uniform(0, 1, (16, 12, 2))
    np.testing.assert_array_equal(imresize_nearest(x, 0.25), x[2::4, 2::4])
    assert imresize_nearest(np.ones((17, 13)), 0.25).shape == (5, 4)


# ------------------------------------------------------------------------ Wald


def test_wald_degrade_shapes_and_definition(rng):
    ms = rng.uniform(0, 2047, (16, 20, 4))
    pan = rng.uniform(0, 2047, (64, 80, 1))
    ms_lr, pan_lr = wald_degrade(ms, pan, "QB")
    assert ms_lr.shape == (4, 5, 4) and pan_lr.shape == (16, 20, 1)
    np.testing.assert_allclose(ms_lr, mtf_filter(ms, "QB")[2::4, 2::4], atol=1e-9)
    np.testing.assert_allclose(pan_lr[:, :, 0], imresize_bicubic(pan[:, :, 0]))
    assert wald_degrade(ms, pan[:, :, 0], "qb")[1].shape == (16, 20)


def test_wald_degrade_errors(rng):
    ms = rng.uniform(0, 1, (16, 16, 4))
    pan = rng.uniform(0, 1, (64, 64))
    with pytest.raises(ValueError, match="expected pan = 4 x ms"):
        wald_degrade(ms, pan[:60], "QB")
    with pytest.raises(ValueError, match="8 MTF gains"):
        wald_degrade(ms, pan, "WV3")
    with pytest.raises(ValueError, match="multiple of ratio"):
        wald_degrade(ms[:14, :14], pan[:56, :56], "QB")
    bad = ms.copy()
    bad[0, 0, 0] = np.inf
    with pytest.raises(ValueError, match="ms: contains 1 NaN or infinite"):
        wald_degrade(bad, pan, "QB")
    with pytest.raises(ValueError, match=r"\(H, W, C\)"):
        wald_degrade(ms[:, :, 0], pan, "QB")
    with pytest.raises(ValueError, match="single band"):
        wald_degrade(ms, np.ones((64, 64, 2)), "QB")


def test_public_exports():
    import keras_pansharp

    assert keras_pansharp.signal is signal
    assert keras_pansharp.wald_degrade is wald_degrade
    assert keras_pansharp.interp23tap is interp23tap
    assert keras_pansharp.mtf_kernels is mtf_kernels
