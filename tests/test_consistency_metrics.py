"""D_rho and the reprojection indices (Scarpa & Ciotola's fr-pansh-eval-tool).

The references below are loop transcriptions of the MATLAB files of
matciotola/fr-pansh-eval-tool (`local_cross_correlation.m`, `D_rho.m`,
`generate_MTF_variables.m`, `resize_w_mtf.m`, `SAM.m`, `ERGAS.m`), with
explicit per-pixel windows and no helper shared with the library (Q2n is the
library's golden-tested `q2n`; the MTF kernels are the golden-tested toolbox
`genMTF` kernels, clipped and renormalised here as the tool's `genMTF.m`).
"""

import math

import numpy as np
import pytest
from scipy import ndimage

import keras_pansharp as kp
from keras_pansharp.metrics import (
    d_rho,
    local_cross_correlation,
    q2n,
    reproject,
    reprojection,
)

EP = 1e-20


# ------------------------------------------------------------ references
def lcc_loop(img1, img2, half_width):
    """local_cross_correlation.m, pixel by pixel. img1 (H, W, B), img2 (H, W)."""
    w = math.ceil(half_width)
    h, v, nb = img1.shape
    j2 = np.repeat(img2[:, :, None], nb, axis=2) if img2.ndim == 2 else img2
    out = np.zeros((h, v, nb))
    for b in range(nb):
        x = np.zeros((h + 2 * w, v + 2 * w))
        y = np.zeros((h + 2 * w, v + 2 * w))
        x[w : w + h, w : w + v] = img1[:, :, b]
        y[w : w + h, w : w + v] = j2[:, :, b]
        mx = np.zeros((h, v))
        my = np.zeros((h, v))
        for i in range(h):
            for j in range(v):
                # integral-image box: padded rows i+1 .. i+2w (0-based)
                mx[i, j] = np.sum(x[i + 1 : i + 2 * w + 1, j + 1 : j + 2 * w + 1]) / (
                    4 * w**2
                )
                my[i, j] = np.sum(y[i + 1 : i + 2 * w + 1, j + 1 : j + 2 * w + 1]) / (
                    4 * w**2
                )
        xc = np.zeros((h + 2 * w, v + 2 * w))
        yc = np.zeros((h + 2 * w, v + 2 * w))
        xc[w : w + h, w : w + v] = img1[:, :, b] - mx
        yc[w : w + h, w : w + v] = j2[:, :, b] - my
        for i in range(h):
            for j in range(v):
                a = xc[i + 1 : i + 2 * w + 1, j + 1 : j + 2 * w + 1]
                c = yc[i + 1 : i + 2 * w + 1, j + 1 : j + 2 * w + 1]
                sij = np.sum(a * c)
                sii = max(EP, np.sum(a * a))
                sjj = max(EP, np.sum(c * c))
                out[i, j, b] = sij / ((sii * sjj) ** 0.5 + EP)
    return out


def d_rho_loop(fused, pan, ratio=4):
    rho = lcc_loop(fused, pan, ratio / 2)
    rho[rho > 1.0] = 1.0
    rho[rho < -1.0] = -1.0
    return float(np.mean(1.0 - rho))


def reproject_loop(fused, ms, pan, sensor):
    """resize_w_mtf.m with generate_MTF_variables.m (co-registration)."""
    nb = fused.shape[2]
    h = np.stack(
        [kp.mtf_kernels(sensor, 4, num_bands=nb)[:, :, b] for b in range(nb)], -1
    )
    h = np.maximum(0, h)
    h = h / np.sum(np.sum(h, axis=0), axis=0)
    p = ndimage.correlate(pan, h[:, :, 0], mode="nearest")
    rho = np.zeros((4, 4, nb))
    for i in range(4):
        for j in range(4):
            for b in range(nb):
                rho[i, j, b] = np.mean(lcc_loop(ms[:, :, b : b + 1], p[i::4, j::4], 2))
    out = np.zeros(ms.shape)
    for b in range(nb):
        best, rb, cb = -np.inf, 0, 0
        for j in range(4):  # MATLAB max(x(:)): column-major, first maximum
            for i in range(4):
                if rho[i, j, b] > best:
                    best, rb, cb = rho[i, j, b], i, j
        fb = ndimage.correlate(fused[:, :, b], h[:, :, b], mode="nearest")
        out[:, :, b] = fb[rb::4, cb::4]
    return out


def sam_loop(i1, i2):
    num = np.sum(i1 * i2, axis=2).ravel()
    den = np.sqrt(np.sum(i1 * i1, axis=2) * np.sum(i2 * i2, axis=2)).ravel()
    keep = den != 0
    return float(
        np.real(np.sum(np.arccos(num[keep] / den[keep])) / keep.sum()) * 180 / np.pi
    )


def ergas_loop(i1, i2, ratio=4):
    acc = 0.0
    for b in range(i1.shape[2]):
        acc += np.mean((i1[:, :, b] - i2[:, :, b]) ** 2) / np.mean(i1[:, :, b]) ** 2
    return float(100 / ratio * math.sqrt(acc / i1.shape[2]))


def _scene(rng, size=64, bands=4):
    ms = rng.uniform(100, 1500, (size // 4, size // 4, bands))
    lms = kp.interp23tap(ms)
    pan = np.mean(lms, axis=2) + rng.normal(0, 30, (size, size))
    fused = lms + (pan - np.mean(lms, axis=2))[:, :, None] * rng.uniform(
        0.5, 1.5, bands
    )
    return fused, ms, pan


# ------------------------------------------------------------------ D_rho
@pytest.mark.parametrize("ratio", [4, 2, 3])
def test_d_rho_matches_loop_port(rng, ratio):
    fused, _, pan = _scene(rng, 32)
    fused = fused + rng.normal(0, 50, fused.shape)
    assert d_rho(fused, pan, ratio=ratio) == pytest.approx(
        d_rho_loop(fused, pan, ratio), abs=1e-9
    )


def test_local_cross_correlation_matches_loop_port(rng):
    x = rng.normal(size=(20, 24, 3))
    y = rng.normal(size=(20, 24)) + x[:, :, 0]
    np.testing.assert_allclose(
        local_cross_correlation(x, y, 2), lcc_loop(x, y, 2), rtol=0, atol=1e-9
    )
    np.testing.assert_allclose(
        local_cross_correlation(x, y, 1.5), lcc_loop(x, y, 2), rtol=0, atol=1e-9
    )


def test_d_rho_constant_band(rng):
    pan = rng.uniform(0, 2047, (32, 32))
    fused = np.stack([np.full((32, 32), 700.0), pan * 0.7], axis=-1)
    rho = local_cross_correlation(fused, pan, 2)
    # away from the zero padding, the flat band's windows have no energy
    np.testing.assert_array_equal(rho[4:-4, 4:-4, 0], 0.0)
    assert d_rho(fused, pan) == pytest.approx(d_rho_loop(fused, pan), abs=1e-9)
    flat = np.zeros((32, 32, 1))
    assert d_rho(flat, pan) == 1.0  # all-zero band: rho = 0 everywhere


def test_d_rho_clipping(rng):
    pan = rng.uniform(1, 2047, (32, 32))
    same = np.stack([pan, 3 * pan], -1)
    opposite = -same
    rho = local_cross_correlation(same, pan, 2)
    assert d_rho(same, pan) == pytest.approx(0.0, abs=1e-12)
    assert d_rho(same, pan) >= 0.0
    assert d_rho(same, pan) == float(np.mean(1 - np.clip(rho, -1, 1)))
    assert d_rho(opposite, pan) == pytest.approx(2.0, abs=1e-12)
    assert d_rho(opposite, pan) <= 2.0
    # scale invariant, PAN (H, W) or (H, W, 1)
    assert d_rho(same / 2047, pan[:, :, None] / 2047) == pytest.approx(
        d_rho(same, pan), abs=1e-12
    )


def test_d_rho_errors(rng):
    pan = rng.uniform(0, 1, (16, 16))
    fused = rng.uniform(0, 1, (16, 16, 4))
    with pytest.raises(ValueError, match="pan is 16x12"):
        d_rho(fused, pan[:, :12])
    with pytest.raises(ValueError, match="one band"):
        d_rho(fused, fused[:, :, :2])
    for bad in (0, -4, 2.5, True):
        with pytest.raises(ValueError, match="ratio"):
            d_rho(fused, pan, ratio=bad)
    nan = fused.copy()
    nan[3, 4, 1] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        d_rho(nan, pan)
    with pytest.raises(ValueError, match="half_width"):
        local_cross_correlation(fused, pan, 0)
    with pytest.raises(ValueError, match="one band or as many"):
        local_cross_correlation(fused, fused[:, :, :2], 2)


# ------------------------------------------------------------- reprojection
@pytest.mark.parametrize("sensor", ["qb", "wv3"])
def test_reprojection_matches_loop_port(rng, sensor):
    bands = kp.get_sensor(sensor).num_bands
    fused, ms, pan = _scene(rng, 64, bands)
    lr_ref = reproject_loop(fused, ms, pan, sensor)
    lr = reproject(fused, ms, pan, sensor=sensor)
    np.testing.assert_allclose(lr, lr_ref, rtol=1e-12, atol=1e-9)
    scores = reprojection(fused, ms, pan, sensor=sensor)
    assert scores["r_sam"] == pytest.approx(sam_loop(ms, lr_ref), abs=1e-9)
    assert scores["r_ergas"] == pytest.approx(ergas_loop(ms, lr_ref), abs=1e-9)
    assert scores["r_q2n"] == pytest.approx(q2n(lr_ref, ms), abs=1e-9)
    # [0, 1] inputs with normalized=True give the same numbers
    m = kp.get_sensor(sensor).max_value
    norm = reprojection(fused / m, ms / m, pan / m, sensor=sensor, normalized=True)
    for key in scores:
        assert norm[key] == pytest.approx(scores[key], abs=1e-9)


def test_reprojection_offsets_follow_the_pan(rng):
    """A PAN shifted against the MS moves the decimation grid with it."""
    ms = rng.uniform(100, 1500, (16, 16, 4))
    up = kp.interp23tap(ms)
    for shift in (0, 1):
        pan = np.roll(np.mean(up, axis=2), shift, axis=0)
        fused = np.roll(up, shift, axis=0)
        np.testing.assert_allclose(
            reproject(fused, ms, pan, sensor="qb"),
            reproject_loop(fused, ms, pan, "qb"),
            rtol=1e-12,
            atol=1e-9,
        )


def test_reprojection_errors(rng):
    fused, ms, pan = _scene(rng, 64, 4)
    with pytest.raises(ValueError, match="bands"):
        reprojection(fused, ms, pan, sensor="wv3")
    with pytest.raises(ValueError, match="expected fused = 4 x ms_lr"):
        reprojection(fused, ms[:8], pan, sensor="qb")
    with pytest.raises(ValueError, match="pan is"):
        reprojection(fused, ms, pan[:32], sensor="qb")
    with pytest.raises(ValueError, match="ms_lr has 3"):
        reprojection(fused, ms[:, :, :3], pan, sensor="qb")
    bad = fused.copy()
    bad[0, 0, 0] = np.inf
    with pytest.raises(ValueError, match="NaN or infinite"):
        reproject(bad, ms, pan, sensor="qb")
    small = _scene(rng, 32, 4)
    with pytest.raises(ValueError, match="too small for R-Q2n"):
        reprojection(*small, sensor="qb")
    r = kp.evaluate_fr(*small, sensor="qb")  # small patches: NaN R-Q2n only
    assert np.isnan(r["r_q2n"]) and np.isfinite(r["r_sam"]) and np.isfinite(r["hqnr"])
    with pytest.raises(ValueError, match="max_value"):
        reprojection(fused, ms, pan, sensor="qb", normalized=True, max_value=-1)


# --------------------------------------------------------- evaluate_fr keys
def test_evaluate_fr_adds_consistency_keys(rng):
    fused, ms, pan = _scene(rng, 64, 4)
    scores = kp.evaluate_fr(fused, ms, pan, sensor="qb")
    assert scores["d_rho"] == pytest.approx(d_rho(fused, pan), abs=1e-12)
    for key, value in reprojection(fused, ms, pan, sensor="qb").items():
        assert scores[key] == pytest.approx(value, abs=1e-12)


def test_windowed_matches_whole_scene(rng):
    fused, ms, pan = _scene(rng, 256, 4)
    whole = kp.evaluate_fr(fused, ms, pan, sensor="qb")
    for window in (128, 160):
        win = kp.evaluate_fr_windowed(fused, ms, pan, sensor="qb", window=window)
        assert set(win) == set(whole)
        for key in whole:
            assert win[key] == pytest.approx(whole[key], rel=1e-10, abs=1e-12), key


# ------------------------------------------------------------ golden sanity
def test_golden_exp_has_larger_d_rho_than_hpm(shared_path):
    path = shared_path / "golden" / "fr_qb.npz"
    if not path.is_file():
        pytest.skip(f"{path} not found")
    g = np.load(path)
    exp = d_rho(g["fused_EXP"], g["pan"])
    hpm = d_rho(g["fused_MTF_GLP_HPM_R"], g["pan"])
    assert exp > hpm
    r_exp = reprojection(g["fused_EXP"], g["ms_lr"], g["pan"], sensor="qb")
    assert 0.0 < r_exp["r_q2n"] <= 1.0 and r_exp["r_sam"] >= 0.0


def test_consistency_false_keeps_the_toolbox_keys(rng):
    fused, ms, pan = _scene(rng, 128, 4)
    full = kp.evaluate_fr(fused, ms, pan, sensor="qb")
    base = kp.evaluate_fr(fused, ms, pan, sensor="qb", consistency=False)
    win = kp.evaluate_fr_windowed(
        fused, ms, pan, sensor="qb", window=64, consistency=False
    )
    assert set(base) == set(win) == {"d_lambda", "d_s", "qnr", "d_lambda_k", "hqnr"}
    assert all(base[k] == full[k] for k in base)


def test_evaluation_table_and_callback_opt_in():
    from keras_pansharp.callbacks.evaluation import FREvaluation
    from keras_pansharp.evaluation.scoring import DEFAULT_METRICS, FR_METRICS
    from keras_pansharp.evaluation.table import HEADERS, METRIC_COLUMNS

    extra = ("d_rho", "r_q2n", "r_sam", "r_ergas")
    assert FR_METRICS[5:] == extra and not set(extra) & set(DEFAULT_METRICS)
    assert METRIC_COLUMNS[-4:] == tuple(f"fr_{m}" for m in extra)
    assert HEADERS["fr_d_rho"] == "D_rho"
    x = {"ms": np.zeros((1, 8, 8, 4)), "pan": np.zeros((1, 32, 32, 1))}
    cb = FREvaluation(x, sensor="qb", metrics=["hqnr", "d_rho", "r_sam"])
    assert cb.metrics == ("hqnr", "d_rho", "r_sam")
    assert FREvaluation(x, sensor="qb").metrics == (
        "hqnr", "qnr", "d_lambda", "d_s", "d_lambda_k",
    )  # fmt: skip
