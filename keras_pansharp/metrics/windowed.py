"""Scene-level toolbox-exact metrics in bounded memory, window by window.

`evaluate_fr_windowed` and `evaluate_rr_windowed` give the numbers of
`evaluate_fr` / `evaluate_rr` (to float rounding, ~1e-13) for scenes that
do not fit in memory. The inputs are array-likes read by rectangular slices
(`np.memmap`, h5py datasets, a GeoTIFF window reader: anything with `shape`,
`dtype` and 2-D slicing `x[r0:r1, c0:c1]`); memory is bounded by a few
`window x window x C` float64 buffers, whatever the scene size.

Why this is exact. Every score is a mean or a ratio of sums of local terms,
so it is accumulated as sums over windows aligned to the 32-pixel block grid:

- Q of D_λ / D_s and Q2n of D_λ^K (and RR's Q2n): distinct 32 x 32 blocks
  (blockproc / q2n); a window holds whole blocks, the partial blocks of the
  scene's last row / column are the window's own. The block values are
  summed and divided by the block count at the end. RR's Q2n pads the image
  by mirroring its last rows / columns: those rows are read with the window.
- Q_avg: sliding 32 x 32 windows; a window of map positions reads 31 more
  rows / columns of image (per-window mean shift, see `q_index._q_map`).
- SAM, ERGAS, PSNR: sums over pixels. SCC: Sobel with a 1-pixel halo (zero
  padding where the toolbox pads, at the cut image's border). SSIM: the
  Gaussian 11 x 11 map with a 5-pixel halo (the map's 5-pixel border, the only
  place its reflect padding acts, is excluded from the mean by scikit-image).
- D_λ^K's MTF filtering (41 x 41 kernels, replicate borders): a 20-pixel halo,
  clipped at the scene border, where the filter's own replicate padding then
  acts exactly as on the whole scene.
- LMS = interp23tap(MS): circular boundaries at MS scale, so each window reads
  its MS with a 12-pixel halo taken circularly from the whole scene (the two
  x2 stages reach about 9 MS pixels), as `predict_scene` does.
- PAN_LP = interp23tap(imresize(PAN, 1/4)): the bicubic antialiased resize
  reads PAN rows 4j-6..4j+9 for MS row j, mirrored at the scene border, so
  each MS-scale piece of imresize(PAN) is computed from its PAN rows plus an
  8-pixel halo clipped at the scene border (where the resize's own mirroring
  then equals the whole scene's); the circular interp23tap halo of 12 MS
  pixels is assembled from those pieces (wrapping to the opposite border).

- D_ρ (Scarpa & Ciotola): a local correlation on 2w x 2w windows of
  locally centred images, so each window reads the fused image and the PAN
  with a 2w-pixel halo, zeros outside the scene (the zero padding of
  `local_cross_correlation.m`); ρ is computed on the same numbers as on the
  whole scene and summed.
- Reprojection (R-Q2n, R-SAM, R-ERGAS): a first pass over MS-scale windows
  sums the co-registration correlations (MS and the MTF-filtered PAN, halos
  of 4 MS and 20 + 16 PAN pixels) to pick the decimation offsets; the main
  pass MTF-filters each fused window (20-pixel halo) and decimates it. The
  reprojected image and the MS (1/16 of the scene's pixels) are kept and
  scored at the end with `q2n`, `sam`, `ergas`.

Nothing is approximated: the only differences from the in-memory functions
are the order of floating-point sums and FFT sizes (relative ~1e-15 per
value). Q2n and D_λ^K quantise to uint16, so a value within ~1e-12 of a .5
boundary could round the other way; the chance is negligible (about 1e-11 per
value) and a flip moves the score by ~1e-8 at most.
"""

from __future__ import annotations

import math

import numpy as np

from keras_pansharp.metrics._inputs import (
    Q_BLOCK,
    RATIO,
    _check_scales,
    _merge_stats,
    _resolve_scale,
    _scale_stats,
)
from keras_pansharp.metrics._windows import (
    _grid,
    _progress,
    _scale_in_place,
    _Scene,
    _window_step,
    _wrapped,
)
from keras_pansharp.metrics.q_index import (
    _block_groups,
    _block_q_bands_each,
    _block_q_pairs_each,
    _q2n_block_norms,
    _sum_q,
)
from keras_pansharp.metrics.reprojection import (
    COREG_HALF_WIDTH,
    _best_offsets,
    _reprojection_scores,
    reprojection_kernels,
)
from keras_pansharp.metrics.spatial_consistency import (
    _d_rho_sum,
    _lcc_padded,
    half_width,
)
from keras_pansharp.metrics.windowed_rr import evaluate_rr_windowed
from keras_pansharp.sensors import Sensor, get_sensor

__all__ = ["evaluate_fr_windowed", "evaluate_rr_windowed"]

_HALO_LR = 12  # MS pixels around a window for interp23tap (reach ~9)
_RESIZE_HALO = 8  # PAN pixels around a piece of imresize(PAN, 1/4) (needs 6)


# ------------------------------------------------------------------- FR


def _zero_halo(a, e0, g0, r0, r1, c0, c1, halo, n0, n1):
    """Rows `r0-halo:r1+halo`, cols `c0-halo:c1+halo` of a scene, zero outside.

    `a` holds the scene's rows `e0:` and cols `g0:` (at least the wanted
    region clipped to the `(n0, n1)` scene). Returns the region and the mask
    of its scene pixels (the layout of `spatial_consistency._lcc_padded`).
    """
    t0, t1 = max(0, r0 - halo), min(n0, r1 + halo)
    u0, u1 = max(0, c0 - halo), min(n1, c1 + halo)
    pad = (
        (t0 - (r0 - halo), r1 + halo - t1),
        (u0 - (c0 - halo), c1 + halo - u1),
    )
    core = a[t0 - e0 : t1 - e0, u0 - g0 : u1 - g0]
    inside = np.pad(np.ones(core.shape[:2], bool), pad)
    return np.pad(core, (*pad, (0, 0))), inside


def _coregistration_windowed(ms_src, p_src, kernel, step, factor):
    """`reprojection._coregistration_scores` summed over MS-scale windows.

    Returns `(4, 4, C)` mean ρ, equal to the whole-scene scores up to the
    order of the sums (ρ itself is computed on the same numbers).
    """
    from keras_pansharp.signal import correlate_nearest

    cw = COREG_HALF_WIDTH
    h, w, c = ms_src.shape
    big_h, big_w = p_src.h, p_src.w
    halo_lr = 2 * cw
    kh = kernel.shape[0] // 2
    acc = np.zeros((RATIO, RATIO, c))
    lstep = step // RATIO
    for ly0, ly1 in _grid(h, lstep):
        for lx0, lx1 in _grid(w, lstep):
            m0, n0 = max(0, ly0 - halo_lr), max(0, lx0 - halo_lr)
            m1, n1 = min(h, ly1 + halo_lr), min(w, lx1 + halo_lr)
            ms = _scale_in_place(ms_src.read(m0, m1, n0, n1), factor)
            ms_ext, inside = _zero_halo(ms, m0, n0, ly0, ly1, lx0, lx1, halo_lr, h, w)
            # PAN rows feeding the LR rows m0:m1 at every offset, plus the
            # filter's halo (replicate padding acts only at the scene border).
            e0, e1 = max(0, RATIO * m0 - kh), min(big_h, RATIO * m1 + kh)
            g0, g1 = max(0, RATIO * n0 - kh), min(big_w, RATIO * n1 + kh)
            pan = _scale_in_place(p_src.read(e0, e1, g0, g1)[:, :, 0], factor)
            plp = correlate_nearest(pan, kernel)
            for i in range(RATIO):
                for j in range(RATIO):
                    a0, b0 = RATIO * m0 + i - e0, RATIO * n0 + j - g0
                    pij = plp[a0 : a0 + RATIO * (m1 - m0) : RATIO,
                              b0 : b0 + RATIO * (n1 - n0) : RATIO, None]  # fmt: skip
                    p_ext, _ = _zero_halo(
                        pij, m0, n0, ly0, ly1, lx0, lx1, halo_lr, h, w
                    )
                    rho = _lcc_padded(ms_ext, p_ext, inside, cw)
                    acc[i, j] += np.sum(rho, axis=(0, 1))
    return acc / (h * w)


def evaluate_fr_windowed(
    fused,
    ms_lr,
    pan,
    *,
    sensor: str | Sensor,
    max_value: float | None = None,
    normalized: bool = False,
    lms=None,
    pan_lr=None,
    block_size: int = Q_BLOCK,
    window: int = 1024,
    verbose: int = 0,
    consistency: bool = True,
) -> dict[str, float]:
    """`evaluate_fr` over a scene read window by window, in bounded memory.

    Same arguments and same numbers as `keras_pansharp.metrics.evaluate_fr`
    (D_λ, D_s, QNR, D_λ^K, HQNR, toolbox-exact, D_ρ and R-Q2n / R-SAM /
    R-ERGAS; see this module's docstring
    for why the windowed sums are exact), for inputs that need not fit in
    memory: each is read by `window x window` PAN-scale slices plus halos.

    Args:
        fused: `(H, W, C)` fused scene (array-like read by slices, e.g. an
            `np.memmap`, an h5py dataset, a GeoTIFF window reader).
        ms_lr: `(H/4, W/4, C)` MS scene.
        pan: `(H, W)` or `(H, W, 1)` PAN scene.
        sensor: sensor name or `Sensor` (MTF gains, max DN).
        max_value: maximum DN, overriding the sensor's (for `normalized`).
        normalized: True when all inputs are in [0, 1] (scaled to DN by the
            max DN, window by window).
        lms: optional `(H, W, C)` precomputed interp23tap(ms_lr) (array-like).
        pan_lr: optional `(H/4, W/4)` precomputed imresize(PAN, 1/4).
        block_size: Q block side (32); H and W must be multiples of it
            (D_λ^K, as the toolbox).
        window: window side at PAN scale, rounded down to a multiple of
            `block_size` and 4. Memory grows with `window² x C`, not with
            the scene: peak RSS 0.43 GB with 1024 and 0.95 GB with 2048 for
            4 bands, on 4096² and 8192² scenes alike (0.23 GB of it the
            imported libraries; `benchmarks/bench_metrics.py --windowed`).
            Windows below ~512 get slower (the halos are re-read and
            re-filtered).
        verbose: 1 shows a progress bar over windows.
        consistency: also compute D_ρ and the reprojection indices (as
            `evaluate_fr`; False skips them and their first pass).

    Returns:
        dict with `d_lambda`, `d_s`, `qnr`, `d_lambda_k`, `hqnr`, (with
        `consistency`) `d_rho`, `r_q2n`, `r_sam`, `r_ergas` (floats), equal to `evaluate_fr` on the
        whole scene to ~1e-13. The reprojection keeps two MS-scale
        `(H/4, W/4, C)` float64 arrays in memory.

    Raises:
        ValueError: as `evaluate_fr` (shapes, bands, NaN / inf, with the
            window position, inputs on different scales, checked on the
            windows read so far before each window's computation).

    Example:

    >>> fused = np.load("fused.npy", mmap_mode="r")  # doctest: +SKIP
    >>> evaluate_fr_windowed(fused, ms, pan, sensor="wv3")  # doctest: +SKIP
    """
    from keras_pansharp.signal import imresize_bicubic, interp23tap, mtf_filter
    from keras_pansharp.signal.kernels import mtf_kernels

    fn = "evaluate_fr_windowed"
    f_src = _Scene(fused, "fused")
    ms_src = _Scene(ms_lr, "ms_lr")
    p_src = _Scene(pan, "pan", single_band=True)
    big_h, big_w, c = f_src.shape
    h, w = ms_src.h, ms_src.w
    if ms_src.c != c:
        raise ValueError(
            f"fused has {c} bands but ms_lr has {ms_src.c}; they must match."
        )
    if (big_h, big_w) != (RATIO * h, RATIO * w):
        raise ValueError(
            f"fused is {big_h}x{big_w} but ms_lr is {h}x{w}; expected fused = "
            f"{RATIO} x ms_lr."
        )
    if (p_src.h, p_src.w) != (big_h, big_w):
        raise ValueError(
            f"pan is {p_src.h}x{p_src.w} but fused is {big_h}x{big_w}; they must "
            "be equal."
        )
    sensor_obj = get_sensor(sensor)
    if c != sensor_obj.num_bands:
        raise ValueError(
            f"fused has {c} bands but sensor {sensor_obj.name!r} has "
            f"{sensor_obj.num_bands} (use sensor.rgbn() or generic_sensor for a "
            "subset)."
        )
    if c < 2:
        raise ValueError("d_lambda needs at least 2 bands.")
    s = int(block_size)
    if big_h % s or big_w % s:
        raise ValueError(
            f"d_lambda_k needs H and W multiples of {s} (toolbox), got "
            f"{(big_h, big_w)}."
        )
    lms_src = None if lms is None else _Scene(lms, "lms")
    if lms_src is not None and lms_src.shape != (big_h, big_w, c):
        raise ValueError(
            f"lms has shape {lms_src.shape} but fused has shape {(big_h, big_w, c)}; "
            "they must be equal (H, W, C)."
        )
    plr_src = None if pan_lr is None else _Scene(pan_lr, "pan_lr", single_band=True)
    if plr_src is not None and (plr_src.h, plr_src.w) != (h, w):
        raise ValueError(
            f"pan_lr has shape {(plr_src.h, plr_src.w)}, expected {(h, w)} (ms_lr)."
        )
    scale = _resolve_scale(sensor, max_value)
    factor = None
    if normalized:
        if scale is None:  # pragma: no cover - sensor is required
            raise ValueError("normalized=True needs the DN scale.")
        factor = scale
    kernels = mtf_kernels(sensor_obj, RATIO, num_bands=c)
    halo = kernels.shape[0] // 2
    step = _window_step(window, math.lcm(s, RATIO))
    k = RATIO * _HALO_LR

    def pan_lr_piece(a, b, c0, c1):
        """imresize(PAN, 1/4)[a:b, c0:c1] (MS scale, in range) from PAN rows."""
        e0, e1 = max(0, RATIO * a - _RESIZE_HALO), min(big_h, RATIO * b + _RESIZE_HALO)
        g0, g1 = (
            max(0, RATIO * c0 - _RESIZE_HALO),
            min(big_w, RATIO * c1 + _RESIZE_HALO),
        )
        ext = _scale_in_place(p_src.read(e0, e1, g0, g1)[:, :, 0], factor)
        small = imresize_bicubic(ext, 1.0 / RATIO)
        oy, ox = e0 // RATIO, g0 // RATIO
        return small[a - oy : b - oy, c0 - ox : c1 - ox, None]

    # Scarpa & Ciotola: D_rho sums, and the reprojected fused image at MS
    # scale (1/16 of the scene) assembled window by window after a first pass
    # for the decimation offsets.
    rw = half_width(RATIO)
    rkern = reprojection_kernels(sensor_obj, c)
    if consistency:
        offsets = _best_offsets(
            _coregistration_windowed(ms_src, p_src, rkern[:, :, 0], step, factor)
        )
        f_lr = np.empty((h, w, c))
        ms_all = np.empty((h, w, c))
    stats: dict = {}
    acc = {"qf": 0.0, "ql": 0.0, "qh": 0.0, "qlp": 0.0, "q2n": 0.0, "n": 0}
    acc["rho"] = 0.0
    windows = [(ry, rx) for ry in _grid(big_h, step) for rx in _grid(big_w, step)]
    bar = _progress(len(windows), verbose)
    for i, ((y0, y1), (x0, x1)) in enumerate(windows):
        ly0, ly1, lx0, lx1 = y0 // RATIO, y1 // RATIO, x0 // RATIO, x1 // RATIO
        ey0, ey1 = max(0, y0 - halo), min(big_h, y1 + halo)
        ex0, ex1 = max(0, x0 - halo), min(big_w, x1 + halo)
        core = (slice(y0 - ey0, y1 - ey0), slice(x0 - ex0, x1 - ex0))
        # Read everything, check finiteness and the scales, then compute.
        fe = f_src.read(ey0, ey1, ex0, ex1)
        pw = p_src.read(y0, y1, x0, x1)
        new = {"fused": _scale_stats(fe[core]), "pan": _scale_stats(pw)}
        if lms_src is None:
            ms_ext = _wrapped(
                ms_src.read, h, w,
                ly0 - _HALO_LR, ly1 + _HALO_LR, lx0 - _HALO_LR, lx1 + _HALO_LR,
            )  # fmt: skip
            ms_core = ms_ext[
                _HALO_LR : _HALO_LR + ly1 - ly0, _HALO_LR : _HALO_LR + lx1 - lx0
            ]
            new["ms_lr"] = _scale_stats(ms_core)
        else:
            new["ms_lr"] = _scale_stats(ms_src.read(ly0, ly1, lx0, lx1))
            lw = lms_src.read(y0, y1, x0, x1)
            new["lms"] = _scale_stats(lw)
        if plr_src is not None:
            plr_ext = _wrapped(
                plr_src.read, h, w,
                ly0 - _HALO_LR, ly1 + _HALO_LR, lx0 - _HALO_LR, lx1 + _HALO_LR,
            )  # fmt: skip
            new["pan_lr"] = _scale_stats(
                plr_ext[
                    _HALO_LR : _HALO_LR + ly1 - ly0, _HALO_LR : _HALO_LR + lx1 - lx0
                ]
            )
        stats = {key: _merge_stats(stats.get(key), v) for key, v in new.items()}
        _check_scales(
            stats, "ms_lr", normalized=normalized, scale=scale, fn=fn, final=False
        )
        # DN scaling, as evaluate_fr (before any filtering).
        _scale_in_place(fe, factor)
        _scale_in_place(pw, factor)
        fw = fe[core]
        if lms_src is None:
            lw = interp23tap(_scale_in_place(ms_ext, factor), RATIO)
            lw = lw[k : k + y1 - y0, k : k + x1 - x0]
            del ms_ext
        else:
            _scale_in_place(lw, factor)
        if plr_src is not None:
            plr_ext = _scale_in_place(plr_ext, factor)
        else:
            plr_ext = _wrapped(
                pan_lr_piece, h, w,
                ly0 - _HALO_LR, ly1 + _HALO_LR, lx0 - _HALO_LR, lx1 + _HALO_LR,
            )  # fmt: skip
        plp = interp23tap(plr_ext, RATIO)[k : k + y1 - y0, k : k + x1 - x0]
        del plr_ext
        # D_lambda and D_s: block Q sums (blocks shared by both).
        gf, gl = _block_groups(fw, s), _block_groups(lw, s)
        qf, n = _sum_q(_block_q_pairs_each(gf))
        ql, _ = _sum_q(_block_q_pairs_each(gl))
        qh, _ = _sum_q(_block_q_bands_each(gf, _block_groups(pw, s)))
        qlp, _ = _sum_q(_block_q_bands_each(gl, _block_groups(plp, s)))
        del gf, gl, pw, plp
        # D_lambda^K: Q2n blocks of MTF(fused) against LMS.
        fm = mtf_filter(fe, kernels)[core]
        if consistency:
            # D_rho: the fused and PAN with a 2w halo, zeros outside the scene.
            pe0, pe1 = max(0, y0 - 2 * rw), min(big_h, y1 + 2 * rw)
            pg0, pg1 = max(0, x0 - 2 * rw), min(big_w, x1 + 2 * rw)
            pe = _scale_in_place(p_src.read(pe0, pe1, pg0, pg1), factor)
            f_ext, inside = _zero_halo(
                fe, ey0, ex0, y0, y1, x0, x1, 2 * rw, big_h, big_w
            )
            p_ext, _ = _zero_halo(pe, pe0, pg0, y0, y1, x0, x1, 2 * rw, big_h, big_w)
            acc["rho"] += _d_rho_sum(_lcc_padded(f_ext, p_ext, inside, rw))
            del f_ext, p_ext, pe, inside
            # Reprojection: the tool's MTF kernels, decimated at the offsets.
            fr = mtf_filter(fe, rkern)[core]
            for b, (r, cc) in enumerate(offsets):
                f_lr[ly0:ly1, lx0:lx1, b] = fr[r::RATIO, cc::RATIO, b]
            del fr
            ms_all[ly0:ly1, lx0:lx1] = _scale_in_place(
                ms_src.read(ly0, ly1, lx0, lx1), factor
            )
        del fe
        q2 = _q2n_block_norms(fm, lw, s)
        del fm, lw
        for key, v in (("qf", qf), ("ql", ql), ("qh", qh), ("qlp", qlp)):
            acc[key] = acc[key] + v
        acc["q2n"] += float(np.sum(q2))
        acc["n"] += n
        if bar is not None:
            bar.update(i + 1)
    _check_scales(stats, "ms_lr", normalized=normalized, scale=scale, fn=fn)
    n = acc["n"]
    iu = np.triu_indices(c, k=1)
    dl = float(np.mean(np.abs(acc["qf"][iu] / n - acc["ql"][iu] / n)))
    ds = float(np.mean(np.abs(acc["qh"] / n - acc["qlp"] / n)))
    dk = 1.0 - acc["q2n"] / n
    return {
        "d_lambda": dl,
        "d_s": ds,
        "qnr": float((1 - dl) * (1 - ds)),
        "d_lambda_k": float(dk),
        "hqnr": float((1 - dk) * (1 - ds)),
        **(
            {"d_rho": acc["rho"] / (big_h * big_w * c)}
            | _reprojection_scores(f_lr, ms_all, s)
            if consistency
            else {}
        ),
    }
