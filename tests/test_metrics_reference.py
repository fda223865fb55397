"""Exact NumPy metrics against the reference toolbox's golden values."""

import json

import numpy as np
import pytest

from keras_pansharp.metrics import full_resolution as FR
from keras_pansharp.metrics import q_index as QI
from keras_pansharp.metrics import reduced_resolution as RR
from keras_pansharp.metrics import windowed as W
from keras_pansharp.sensors import generic_sensor
from tests.test_case import GOLDEN_CASES as CASES

METHODS = ["EXP", "BT_H", "MTF_GLP_HPM_R"]
RR_KEYS = {"Q2n": "q2n", "Q": "q_avg", "SAM": "sam", "ERGAS": "ergas", "SCC": "scc"}
RTOL = 1e-6


@pytest.fixture(scope="module")
def golden(golden_dir):
    with open(golden_dir / "golden.json") as fh:
        values = json.load(fh)
    arrays = {c: dict(np.load(golden_dir / f"{c}.npz")) for c in CASES}
    return values, arrays


def _sensor(values, arrays):
    if values["sensor"] == "none":
        return generic_sensor(arrays["ms_lr"].shape[2], bit_depth=values["L"])
    return values["sensor"]


def _close(got, want, what):
    assert np.isfinite(got), what
    assert abs(got - want) <= RTOL * abs(want) + 1e-12, f"{what}: {got!r} != {want!r}"


@pytest.mark.parametrize("case", CASES)
def test_golden_rr(golden, case):
    values, arrays = golden
    v, a = values[case], arrays[case]
    max_value = 2.0 ** v["L"] - 1
    checked = 0
    for key in ("rr_nocut", "rr_cut21", "wald_rr_nocut"):
        if key not in v:
            continue
        for method in METHODS:
            if key == "wald_rr_nocut":
                fused, gt = a[f"wald_fused_{method}"], a["ms_lr"]
            else:
                fused, gt = a[f"fused_{method}"], a["gt"]
            cut = 21 if key == "rr_cut21" else 0
            got = RR.evaluate_rr(fused, gt, max_value=max_value, dim_cut=cut)
            for gkey, mkey in RR_KEYS.items():
                _close(got[mkey], v[key][method][gkey], f"{case}/{key}/{method}/{gkey}")
                checked += 1
            # Normalised inputs give the same numbers (Q2n quantises in DN).
            if cut == 0:
                got_n = QI.q2n(
                    fused / max_value,
                    gt / max_value,
                    max_value=max_value,
                    normalized=True,
                )
                _close(got_n, v[key][method]["Q2n"], f"{case}/{key}/{method}/norm")
    assert checked >= 15


@pytest.mark.parametrize("case", CASES)
def test_golden_fr(golden, case):
    values, arrays = golden
    v, a = values[case], arrays[case]
    sensor = _sensor(v, a)
    for method in METHODS:
        fused = a[f"fused_{method}"]
        got = FR.evaluate_fr(fused, a["ms_lr"], a["pan"], sensor=sensor)
        q, h = v["qnr"][method], v["hqnr"][method]
        _close(got["d_lambda"], q["D_lambda"], f"{case}/{method}/D_lambda")
        _close(got["d_s"], q["D_s"], f"{case}/{method}/D_s")
        _close(got["qnr"], q["QNR"], f"{case}/{method}/QNR")
        _close(got["d_lambda_k"], h["D_lambda_K"], f"{case}/{method}/D_lambda_K")
        _close(got["d_s"], h["D_s"], f"{case}/{method}/D_s (hqnr)")
        _close(got["hqnr"], h["HQNR"], f"{case}/{method}/HQNR")


def test_golden_fr_single_functions(golden):
    values, arrays = golden
    v, a = values["fr_qb"], arrays["fr_qb"]
    f, ms, pan, lms = a["fused_BT_H"], a["ms_lr"], a["pan"], a["interp23tap_ms"]
    q, h = v["qnr"]["BT_H"], v["hqnr"]["BT_H"]
    _close(FR.d_lambda(f, ms, lms=lms), q["D_lambda"], "d_lambda")
    _close(FR.d_s(f, ms, pan), q["D_s"], "d_s")
    _close(FR.d_s(f, ms, pan, pan_lr=a["wald_pan"]), q["D_s"], "d_s pan_lr")
    _close(FR.qnr(f, ms, pan), q["QNR"], "qnr")
    _close(FR.d_lambda_k(f, ms, sensor="QB"), h["D_lambda_K"], "d_lambda_k")
    _close(FR.hqnr(f, ms, pan, sensor="qb"), h["HQNR"], "hqnr")
    # Normalised inputs: only Q2n's quantisation needs the scale.
    n = 2047.0
    got = FR.evaluate_fr(f / n, ms / n, pan / n, sensor="QB", normalized=True)
    _close(got["hqnr"], h["HQNR"], "hqnr normalised")
    _close(got["qnr"], q["QNR"], "qnr normalised")


# ------------------------------------------------- literal (looped) ports
def _literal_q2n(gt, fused, s=32):
    """Block-by-block port of toolbox q2n/onions_quality (loops, slow)."""
    h, w, c = gt.shape
    eh, ew = (-h) % s, (-w) % s
    gt = np.pad(gt, ((0, eh), (0, ew), (0, 0)), mode="symmetric")
    fused = np.pad(fused, ((0, eh), (0, ew), (0, 0)), mode="symmetric")
    gt, fused = QI.quantize_uint16(gt), QI.quantize_uint16(fused)
    n = 1 << (c - 1).bit_length()
    z = np.zeros(gt.shape[:2] + (n - c,))
    gt, fused = np.concatenate([gt, z], 2), np.concatenate([fused, z], 2)
    vals = []
    for i in range(0, gt.shape[0], s):
        for j in range(0, gt.shape[1], s):
            d1 = gt[i : i + s, j : j + s].copy()
            d2 = fused[i : i + s, j : j + s].copy()
            d2[:, :, 1:] = -d2[:, :, 1:]
            for b in range(n):
                a = d1[:, :, b].mean()
                sd = d1[:, :, b].std(ddof=1)
                sd = np.finfo(float).eps if sd == 0 else sd
                d1[:, :, b] = (d1[:, :, b] - a) / sd + 1
                sign = 1.0 if b == 0 else -1.0
                x = sign * d2[:, :, b]
                x = x - a + 1 if a == 0 else (x - a) / sd + 1
                d2[:, :, b] = sign * x
            npx = s * s
            m1, m2 = d1.mean((0, 1)), d2.mean((0, 1))
            t3 = npx / (npx - 1) * (
                np.sum(d1**2, 2).mean() + np.sum(d2**2, 2).mean()
            ) - npx / (npx - 1) * (np.sum(m1**2) + np.sum(m2**2))
            mb = (
                2
                * np.linalg.norm(m1)
                * np.linalg.norm(m2)
                / (np.sum(m1**2) + np.sum(m2**2))
            )
            if t3 == 0:
                q = np.zeros(n)
                q[-1] = mb
            else:
                qu = QI._onion_mult_literal(d1, d2).mean((0, 1))
                qm = QI._onion_mult_literal(m1, m2)
                q = npx / (npx - 1) * (qu - qm) * mb * 2 / t3
            vals.append(np.linalg.norm(q))
    return float(np.mean(vals))


def _literal_q_avg(gt, fused, k=32):
    out = []
    for b in range(gt.shape[2]):
        qs = []
        for i in range(gt.shape[0] - k + 1):
            for j in range(gt.shape[1] - k + 1):
                x = gt[i : i + k, j : j + k, b].ravel()
                y = fused[i : i + k, j : j + k, b].ravel()
                mx, my = x.mean(), y.mean()
                vx, vy = x.var(), y.var()
                cxy = np.mean((x - mx) * (y - my))
                qs.append(4 * cxy * mx * my / ((vx + vy) * (mx**2 + my**2)))
        out.append(np.mean(qs))
    return float(np.mean(out))


@pytest.mark.parametrize("shape", [(64, 64, 4), (40, 50, 3), (32, 32, 8)])
def test_q2n_matches_literal_port(rng, shape):
    gt = rng.uniform(50, 1800, shape)
    fused = gt + rng.normal(0, 60, shape)
    got = QI.q2n(fused, gt)
    want = _literal_q2n(gt, fused)
    assert abs(got - want) < 1e-12, (got, want)
    assert 0.0 < got < 1.0


def test_q_avg_matches_literal_port(rng):
    gt = rng.uniform(50, 1800, (36, 35, 2))
    fused = gt + rng.normal(0, 80, gt.shape)
    assert abs(QI.q_avg(fused, gt) - _literal_q_avg(gt, fused)) < 1e-12


def test_structure_tensor_is_complex_product_for_n2():
    t = QI.onion_structure_tensor(2)
    x, y = np.array([1.5, -2.0]), np.array([0.3, 0.7])
    z = complex(*x) * complex(*y)
    np.testing.assert_allclose(np.einsum("kij,i,j->k", t, x, y), [z.real, z.imag])
    for n in (4, 8, 16):
        a, b = np.random.default_rng(n).normal(size=(2, 5, n))
        lit = QI._onion_mult_literal(a, b)
        fast = np.einsum("kij,bi,bj->bk", QI.onion_structure_tensor(n), a, b)
        np.testing.assert_allclose(fast, lit, atol=1e-12)


def test_quantize_rounds_half_away_and_saturates():
    below_half = np.nextafter(0.5, 0.0)
    x = np.array([0.5, 1.5, 2.5, 2.4999999, -0.5, -3.0, 65535.4, 70000.0, below_half])
    want = [1, 2, 3, 2, 0, 0, 65535, 65535, 0]
    np.testing.assert_array_equal(QI.quantize_uint16(x), want)
    y = x.copy()
    QI.quantize_uint16(y, out=y)
    np.testing.assert_array_equal(y, want)
    # Same as floor + (frac >= 0.5) on many values.
    v = np.random.default_rng(3).uniform(-10, 3000, 10000) * 0.25
    fl = np.floor(v)
    np.testing.assert_array_equal(
        QI.quantize_uint16(v), np.clip(fl + (v - fl >= 0.5), 0, 65535)
    )


def test_identity_scores(rng):
    gt = rng.uniform(100, 2000, (64, 64, 4))
    r = RR.evaluate_rr(gt, gt, sensor="qb")
    assert r["q2n"] == pytest.approx(1.0, abs=1e-12)
    assert r["q_avg"] == pytest.approx(1.0, abs=1e-12)
    assert r["sam"] == pytest.approx(0.0, abs=1e-6)
    assert r["ergas"] == 0.0
    assert r["scc"] == pytest.approx(1.0, abs=1e-12)
    assert r["psnr"] == np.inf
    assert r["ssim"] == pytest.approx(1.0, abs=1e-12)


def test_flat_blocks_and_zero_pixels_have_no_nan(rng):
    gt = rng.uniform(100, 2000, (64, 64, 4)).round()
    gt[:32, :32] = 700.0  # flat block in every band
    gt[32:, 32:, 1] = 0.0  # zero block in one band
    gt[5, 40] = 0.0  # a zero pixel (SAM excludes it)
    fused = gt.copy()
    fused[40:, :32] += rng.normal(0, 20, (24, 32, 4))
    r = RR.evaluate_rr(fused, gt, sensor="qb")
    assert all(np.isfinite(v) for k, v in r.items() if k != "psnr"), r
    assert 0.5 < r["q2n"] <= 1.0
    # The flat, identical block scores exactly 1 (toolbox: q = mean bias).
    q_flat = QI.q2n(gt[:32, :32], gt[:32, :32])
    assert q_flat == pytest.approx(1.0, abs=1e-15)
    assert QI.q_avg(gt[:32, :32], gt[:32, :32]) == 1.0
    # Flat blocks against a different constant: defined, below 1.
    q = QI.q_avg(gt[:32, :32] * 0.5, gt[:32, :32])
    assert q == pytest.approx(2 * 0.5 / 1.25)
    # Block Q of QNR on flat data: our documented convention, no NaN.
    flat = gt[:32, :32]
    q = QI._block_q_bands(QI._block_groups(flat, 32), QI._block_groups(flat * 0.5, 32))
    assert np.allclose(q, 0.8)
    # Partial edge blocks (blockproc) including 1-pixel blocks: finite.
    x = rng.uniform(100, 2000, (65, 33, 3))
    qp = QI._block_q_pairs(QI._block_groups(x, 32))
    assert qp.shape == (3, 3) and np.all(np.isfinite(qp))
    # All-zero spectra in SAM.
    assert RR.sam(np.zeros((4, 4, 3)), np.zeros((4, 4, 3))) == 0.0


def test_psnr_ssim_match_scikit_image(rng):
    from skimage.metrics import peak_signal_noise_ratio, structural_similarity

    gt = rng.uniform(0, 1023, (48, 40, 4))
    fused = np.clip(gt + rng.normal(0, 30, gt.shape), 0, 1023)
    want_p = np.mean(
        [
            peak_signal_noise_ratio(
                gt[..., b] / 1023, fused[..., b] / 1023, data_range=1
            )
            for b in range(4)
        ]
    )
    want_s = np.mean(
        [
            structural_similarity(
                gt[..., b] / 1023,
                fused[..., b] / 1023,
                data_range=1,
                gaussian_weights=True,
                sigma=1.5,
                use_sample_covariance=False,
            )
            for b in range(4)
        ]
    )
    assert RR.psnr(fused, gt, sensor="gf2") == pytest.approx(want_p, rel=1e-12)
    assert RR.ssim(fused, gt, max_value=1023) == pytest.approx(want_s, rel=1e-12)
    assert RR.ssim(fused / 1023, gt / 1023, normalized=True) == pytest.approx(want_s)


def test_border_cut_indices(rng):
    gt = rng.uniform(100, 2000, (256, 256, 4))
    fused = gt + rng.normal(0, 30, gt.shape)
    got = RR.evaluate_rr(fused, gt, sensor="qb", dim_cut=21)
    assert got["ergas"] == pytest.approx(
        RR.ergas(fused[20:235, 20:235], gt[20:235, 20:235])
    )


def test_errors(rng):
    a = rng.uniform(0, 1, (32, 32, 4))
    with pytest.raises(ValueError, match="shape"):
        RR.sam(a, a[:16])
    bad = a.copy()
    bad[0, 0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        RR.ergas(bad, a)
    bad[0, 0, 0] = np.inf
    with pytest.raises(ValueError, match="NaN or infinite"):
        QI.q2n(a, bad, max_value=2047, normalized=True)
    with pytest.raises(ValueError, match="bands"):
        RR.evaluate_rr(a, a, sensor="wv3")
    with pytest.raises(ValueError, match="max_value"):
        RR.evaluate_rr(a, a)
    with pytest.raises(ValueError, match="normalized=True"):
        QI.q2n(a, a, normalized=True)
    with pytest.raises(ValueError, match="H, W, C"):
        RR.scc(a[None], a[None])
    with pytest.raises(ValueError, match="numeric"):
        RR.sam(np.array([["a"]]), np.array([["a"]]))
    ms = rng.uniform(0, 1, (8, 8, 4))
    with pytest.raises(ValueError, match="4 x ms_lr"):
        FR.evaluate_fr(a[:30], ms, a[:30, :, 0], sensor="qb")
    with pytest.raises(ValueError, match="bands"):
        FR.d_lambda(a, ms[..., :3])
    with pytest.raises(ValueError, match="pan"):
        FR.d_s(a, ms, a[:16, :16, 0])
    with pytest.raises(ValueError, match="one band"):
        FR.d_s(a, ms, a)
    with pytest.raises(ValueError, match="multiples of 32"):
        FR.d_lambda_k(a[:, :28], ms[:, :7], sensor="qb")


def test_block_q_matches_blockproc_loop(rng):
    """Distinct blocks incl. partial edge blocks, as MATLAB blockproc."""
    x = rng.uniform(100, 2000, (70, 45, 3))
    y = x + rng.normal(0, 90, x.shape)
    want = np.zeros(3)
    nblocks = 0
    for i in range(0, 70, 32):
        for j in range(0, 45, 32):
            for b in range(3):
                u = x[i : i + 32, j : j + 32, b].ravel()
                v = y[i : i + 32, j : j + 32, b].ravel()
                c = np.cov(u, v)
                mu, mv = u.mean(), v.mean()
                want[b] += (
                    4 * c[0, 1] * mu * mv / ((c[0, 0] + c[1, 1]) * (mu**2 + mv**2))
                )
            nblocks += 1
    want /= nblocks
    got = QI._block_q_bands(QI._block_groups(x, 32), QI._block_groups(y, 32))
    np.testing.assert_allclose(got, want, rtol=1e-12)
    pairs = QI._block_q_pairs(
        QI._block_groups(np.stack([x[..., 0], y[..., 0]], -1), 32)
    )
    assert pairs[0, 1] == pytest.approx(want[0], rel=1e-12)


# ------------------------------------------ inputs on different scales
@pytest.fixture(scope="module")
def small_scene():
    import keras_pansharp as kp
    from keras_pansharp.data.synthetic import make_scene

    scene, truth = make_scene("qb", size=128, return_truth=True)
    fused = kp.mtf_glp_hpm_r(scene.ms, scene.pan, "qb")
    return fused, scene.ms, scene.pan, truth


def test_fr_scale_mismatch_names_the_arguments(small_scene):
    import warnings

    f, ms, pan, _ = small_scene
    n = 2047.0
    fr = FR.evaluate_fr
    unit_fused = r"'fused' looks normalised to \[0, 1\].*'ms_lr' looks like digital"
    with pytest.raises(ValueError, match=unit_fused + r".*normalized=True"):
        fr(f / n, ms, pan, sensor="qb")
    with pytest.raises(ValueError, match=r"'ms_lr' looks normalised.*'fused' looks"):
        fr(f, ms / n, pan / n, sensor="qb")
    with pytest.raises(ValueError, match=r"'pan' looks normalised.*'ms_lr' looks"):
        fr(f, ms, pan / n, sensor="qb")
    with pytest.raises(ValueError, match=r"'ms_lr' looks normalised.*multiply"):
        fr(f / n, ms / n, pan, sensor="qb", normalized=True)
    with pytest.raises(ValueError, match=r"'lms' looks like digital"):
        fr(
            f / n,
            ms / n,
            pan / n,
            sensor="qb",
            normalized=True,
            lms=np.ones_like(f) * 900,
        )
    with pytest.raises(
        ValueError, match=r"normalized=True but the inputs look like digital numbers"
    ):
        fr(f, ms, pan, sensor="qb", normalized=True)
    # hqnr goes through evaluate_fr.
    with pytest.raises(ValueError, match=unit_fused):
        FR.hqnr(f / n, ms, pan, sensor="qb")
    # All in [0, 1] without normalized=True: warns (D_lambda^K meaningless).
    with pytest.warns(UserWarning, match=r"look.*normalised.*normalized=True"):
        fr(f / n, ms / n, pan / n, sensor="qb")
    # A near-black fused image is a poor but legitimate input: warns only.
    with pytest.warns(UserWarning, match="different scales"):
        fr(f / 40, ms, pan, sensor="qb")
    # Consistent inputs, in DN or normalised, neither raise nor warn.
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        a = fr(f, ms, pan, sensor="qb")
        b = fr(f / n, ms / n, pan / n, sensor="qb", normalized=True)
        fr(f * 1.5, ms, pan, sensor="qb")  # a brighter, still same-scale image
    assert a["hqnr"] == pytest.approx(b["hqnr"], abs=1e-9)


def test_rr_scale_mismatch_names_the_arguments(small_scene):
    import warnings

    f, _, _, gt = small_scene
    n = 2047.0
    with pytest.raises(ValueError, match=r"'fused' looks normalised.*'gt' looks like"):
        RR.evaluate_rr(f / n, gt, sensor="qb")
    with pytest.raises(ValueError, match=r"'gt' looks normalised.*'fused' looks like"):
        RR.evaluate_rr(f, gt / n, sensor="qb", normalized=True)
    with pytest.raises(ValueError, match="normalized=True but"):
        RR.evaluate_rr(f, gt, sensor="qb", normalized=True)
    with pytest.warns(UserWarning, match="normalized=True"):
        RR.evaluate_rr(f / n, gt / n, sensor="qb")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        RR.evaluate_rr(f, gt, sensor="qb")
        RR.evaluate_rr(f / n, gt / n, sensor="qb", normalized=True)


# -------------------------------- windowed (scene-level) evaluation
class _Reads:
    """An array-like (shape, dtype, 2-D slicing) recording every read."""

    def __init__(self, a):
        self.a, self.shape, self.dtype, self.reads = a, a.shape, a.dtype, []

    def __getitem__(self, key):
        out = self.a[key]
        self.reads.append(out.shape[:2])
        return out


@pytest.fixture(scope="module")
def scene_512():
    import keras_pansharp as kp
    from keras_pansharp.data.synthetic import make_scene

    scene, truth = make_scene("wv3", size=512, return_truth=True)
    fused = kp.mtf_glp_hpm_r(scene.ms, scene.pan, "wv3")
    return fused, scene.ms, scene.pan, truth


def _max_abs_diff(got, want):
    assert set(got) == set(want)
    return max(abs(got[k] - want[k]) for k in want)


def test_windowed_fr_equals_in_memory(scene_512):
    f, ms, pan, _ = scene_512
    want = FR.evaluate_fr(f, ms, pan, sensor="wv3")
    # 160 and 384 do not divide 512; 1024 is larger than the scene.
    for window in (160, 384, 1024):
        got = W.evaluate_fr_windowed(f, ms, pan, sensor="wv3", window=window)
        assert _max_abs_diff(got, want) < 1e-10, (window, got, want)
    assert 0.0 < want["d_lambda_k"] < 0.2 and 0.0 < want["d_s"] < 0.3


def test_windowed_fr_memmap_bounded_reads(scene_512, tmp_path):
    f, ms, pan, _ = scene_512
    arrays = {}
    for name, a in (
        ("f", f[:384, :448]),
        ("ms", ms[:96, :112]),
        ("pan", pan[:384, :448]),
    ):
        mm = np.lib.format.open_memmap(
            tmp_path / f"{name}.npy", mode="w+", dtype=np.uint16, shape=a.shape
        )
        mm[:] = np.round(a)
        mm.flush()
        arrays[name] = np.load(tmp_path / f"{name}.npy", mmap_mode="r")
    want = FR.evaluate_fr(
        *(np.asarray(arrays[k]) for k in ("f", "ms", "pan")), sensor="wv3"
    )
    src = {k: _Reads(v) for k, v in arrays.items()}
    got = W.evaluate_fr_windowed(
        src["f"], src["ms"], src["pan"], sensor="wv3", window=128
    )
    assert _max_abs_diff(got, want) < 1e-10
    # Window 128 + halos: no read is near the scene size (384 x 448).
    for k, unit in (("f", 1), ("ms", 4), ("pan", 1)):
        assert max(max(r) for r in src[k].reads) * unit <= 128 + 2 * 60, k
    # Normalised inputs and precomputed lms / pan_lr, as evaluate_fr.
    from keras_pansharp.signal import imresize_bicubic, interp23tap

    n = 2047.0
    fa, ma, pa = (np.asarray(arrays[k]) / n for k in ("f", "ms", "pan"))
    lms, plr = interp23tap(ma, 4), imresize_bicubic(pa, 0.25)
    kw = dict(sensor="wv3", normalized=True, lms=lms, pan_lr=plr)
    want = FR.evaluate_fr(fa, ma, pa, **kw)
    assert (
        _max_abs_diff(W.evaluate_fr_windowed(fa, ma, pa, window=96, **kw), want) < 1e-10
    )


@pytest.mark.parametrize("shape,cut", [((512, 512), 0), ((300, 270), 21)])
def test_windowed_rr_equals_in_memory(scene_512, shape, cut):
    f, _, _, gt = scene_512
    f, gt = f[: shape[0], : shape[1]], gt[: shape[0], : shape[1]]
    want = RR.evaluate_rr(f, gt, sensor="wv3", dim_cut=cut)
    for window in (96, 160, 1024):
        got = W.evaluate_rr_windowed(f, gt, sensor="wv3", dim_cut=cut, window=window)
        assert _max_abs_diff(got, want) < 1e-10, (window, got, want)


def test_windowed_golden(golden):
    values, arrays = golden
    for case in CASES:
        v, a = values[case], arrays[case]
        for method in METHODS:
            fused = a[f"fused_{method}"]
            if case.startswith("fr_"):
                got = W.evaluate_fr_windowed(
                    fused, a["ms_lr"], a["pan"], sensor=_sensor(v, a), window=96
                )
                _close(got["hqnr"], v["hqnr"][method]["HQNR"], f"{case}/{method}")
                _close(got["qnr"], v["qnr"][method]["QNR"], f"{case}/{method}")
            if "rr_cut21" in v:
                got = W.evaluate_rr_windowed(
                    fused, a["gt"], max_value=2.0 ** v["L"] - 1, dim_cut=21, window=64
                )
                for gkey, mkey in RR_KEYS.items():
                    _close(got[mkey], v["rr_cut21"][method][gkey], f"{case}/{gkey}")


def test_windowed_errors(scene_512):
    f, ms, pan, gt = scene_512
    f, ms, pan, gt = f[:128, :128], ms[:32, :32], pan[:128, :128], gt[:128, :128]
    bad = f.copy()
    bad[100, 17, 3] = np.nan
    with pytest.raises(
        ValueError, match=r"fused: contains 1 NaN.*first at row 100, col 17"
    ):
        W.evaluate_fr_windowed(bad, ms, pan, sensor="wv3", window=64)
    with pytest.raises(ValueError, match=r"gt: contains 1 NaN.*row 100, col 17"):
        W.evaluate_rr_windowed(gt, bad, sensor="wv3", window=64)
    with pytest.raises(
        ValueError, match=r"'fused' looks normalised.*'ms_lr' looks like"
    ):
        W.evaluate_fr_windowed(f / 2047, ms, pan, sensor="wv3", window=64)
    with pytest.raises(ValueError, match=r"'gt' looks normalised.*'fused' looks like"):
        W.evaluate_rr_windowed(f, gt / 2047, sensor="wv3", window=64)
    with pytest.raises(ValueError, match="4 x ms_lr"):
        W.evaluate_fr_windowed(f[:96], ms, pan[:96], sensor="wv3")
    with pytest.raises(ValueError, match="multiples of 32"):
        W.evaluate_fr_windowed(f[:, :112], ms[:, :28], pan[:, :112], sensor="wv3")
    with pytest.raises(ValueError, match="window must be at least 32"):
        W.evaluate_fr_windowed(f, ms, pan, sensor="wv3", window=16)
    with pytest.raises(ValueError, match="max_value"):
        W.evaluate_rr_windowed(f, gt)
