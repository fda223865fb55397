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
from keras_pansharp.metrics.q_index import (
    _block_groups,
    _block_q_bands_each,
    _block_q_pairs_each,
    _q2n_block_norms,
    _q_map,
    _sum_q,
)
from keras_pansharp.metrics.reduced_resolution import _sobel_magnitude
from keras_pansharp.sensors import Sensor, get_sensor

__all__ = ["evaluate_fr_windowed", "evaluate_rr_windowed"]

_HALO_LR = 12  # MS pixels around a window for interp23tap (reach ~9)
_RESIZE_HALO = 8  # PAN pixels around a piece of imresize(PAN, 1/4) (needs 6)
_SSIM_RADIUS = 5  # Gaussian sigma 1.5, truncate 3.5 (scikit-image)


# ------------------------------------------------------------- array access
class _Scene:
    """A channels-last view of an array-like, read by rectangular windows.

    Args:
        x: `(H, W)` or `(H, W, C)` array-like (NumPy array, `np.memmap`, h5py
            dataset, any object with `shape`, `dtype` and 2-D slicing).
        name: argument name for messages.
        single_band: require one band (PAN).
        offset, size: a sub-rectangle of `x` (the toolbox border cut).
    """

    def __init__(self, x, name: str, *, single_band=False, offset=(0, 0), size=None):
        if not all(hasattr(x, a) for a in ("shape", "dtype", "__getitem__")):
            x = np.asarray(x)
        shape = tuple(int(d) for d in x.shape)
        dtype = np.dtype(x.dtype)
        if not (np.issubdtype(dtype, np.number) or dtype == np.bool_) or np.issubdtype(
            dtype, np.complexfloating
        ):
            raise ValueError(f"{name}: expected a real numeric array, got {dtype}.")
        if len(shape) not in (2, 3):
            raise ValueError(
                f"{name}: expected a channels-last image (H, W, C) or (H, W), got "
                f"shape {shape}."
            )
        self.x, self.name = x, name
        self.c = 1 if len(shape) == 2 else shape[2]
        if single_band and self.c != 1:
            raise ValueError(
                f"{name}: expected one band, (H, W) or (H, W, 1), got shape {shape}."
            )
        self.oy, self.ox = offset
        self.h, self.w = size if size is not None else shape[:2]
        if min(self.h, self.w, self.c) < 1:
            raise ValueError(f"{name}: empty image of shape {shape}.")

    @property
    def shape(self) -> tuple[int, int, int]:
        return self.h, self.w, self.c

    def read(self, r0: int, r1: int, c0: int, c1: int) -> np.ndarray:
        """Rows `r0:r1`, columns `c0:c1` (inside the view) as float64 (h, w, C).

        Raises:
            ValueError: NaN / inf in the window (its first position named).
        """
        a = np.asarray(
            self.x[self.oy + r0 : self.oy + r1, self.ox + c0 : self.ox + c1]
        ).astype(np.float64)
        if a.ndim == 2:
            a = a[:, :, None]
        if not np.isfinite(np.sum(a)) and not np.all(np.isfinite(a)):
            bad = np.argwhere(~np.isfinite(a))
            r, c = int(bad[0][0]) + r0, int(bad[0][1]) + c0
            raise ValueError(
                f"{self.name}: contains {len(bad)} NaN or infinite values in "
                f"rows {r0}:{r1}, cols {c0}:{c1} (first at row {r}, col {c})."
            )
        return a


def _runs(start: int, stop: int, n: int) -> list[tuple[int, int]]:
    """Contiguous runs of the indices `start..stop-1` taken modulo `n`."""
    idx = np.arange(start, stop) % n
    breaks = np.nonzero(np.diff(idx) != 1)[0] + 1
    return [(int(b[0]), int(b[-1]) + 1) for b in np.split(idx, breaks)]


def _wrapped(get, n0: int, n1: int, r0: int, r1: int, c0: int, c1: int):
    """Rows `r0:r1`, cols `c0:c1` of an `(n0, n1, ...)` image, circularly.

    `get(a, b, c, d)` returns the in-range region `[a:b, c:d]`.
    """
    col_runs = _runs(c0, c1, n1)
    rows = []
    for a, b in _runs(r0, r1, n0):
        parts = [get(a, b, c, d) for c, d in col_runs]
        rows.append(parts[0] if len(parts) == 1 else np.concatenate(parts, axis=1))
    return rows[0] if len(rows) == 1 else np.concatenate(rows, axis=0)


def _grid(size: int, step: int) -> list[tuple[int, int]]:
    return [(a, min(a + step, size)) for a in range(0, size, step)]


def _window_step(window, multiple: int) -> int:
    if isinstance(window, bool) or int(window) != window:
        raise ValueError(f"window must be an integer, got {window!r}.")
    step = (int(window) // multiple) * multiple
    if step < multiple:
        raise ValueError(
            f"window must be at least {multiple} (a multiple of the block size and "
            f"of the ratio), got {window}."
        )
    return step


def _progress(n: int, verbose: int):
    if not verbose:
        return None
    import keras

    return keras.utils.Progbar(n, unit_name="window")


# ------------------------------------------------------------------- FR
def _scale_in_place(a: np.ndarray, factor: float | None) -> np.ndarray:
    if factor is not None:
        a *= factor
    return a


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
) -> dict[str, float]:
    """`evaluate_fr` over a scene read window by window, in bounded memory.

    Same arguments and same numbers as `keras_pansharp.metrics.evaluate_fr`
    (D_λ, D_s, QNR, D_λ^K, HQNR, toolbox-exact; see this module's docstring
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

    Returns:
        dict with `d_lambda`, `d_s`, `qnr`, `d_lambda_k`, `hqnr` (floats),
        equal to `evaluate_fr` on the whole scene to ~1e-13.

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

    stats: dict = {}
    acc = {"qf": 0.0, "ql": 0.0, "qh": 0.0, "qlp": 0.0, "q2n": 0.0, "n": 0}
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
    }


# ------------------------------------------------------------------- RR
def evaluate_rr_windowed(
    fused,
    gt,
    *,
    sensor: str | Sensor | None = None,
    max_value: float | None = None,
    normalized: bool = False,
    dim_cut: int = 0,
    ratio: int = RATIO,
    block_size: int = Q_BLOCK,
    window: int = 1024,
    verbose: int = 0,
) -> dict[str, float]:
    """`evaluate_rr` over an image read window by window, in bounded memory.

    Same arguments and same numbers as `keras_pansharp.metrics.evaluate_rr`
    (Q2n, Q_avg, SAM, ERGAS, SCC, PSNR, SSIM, toolbox-exact; see this
    module's docstring), for `fused` and `gt` that need not fit in memory.

    Args:
        fused: `(H, W, C)` fused image (array-like read by slices).
        gt: `(H, W, C)` reference.
        sensor: sensor name or `Sensor` (max DN and a band-count check).
        max_value: maximum DN (overrides the sensor's); one of `sensor` /
            `max_value` is required.
        normalized: True when the inputs are in [0, 1] rather than DN.
        dim_cut: toolbox border cut (keeps rows/cols `dim_cut-1 : N-dim_cut`).
        ratio: resolution ratio for ERGAS (4).
        block_size: Q / Q2n block side (32).
        window: window side, rounded down to a multiple of `block_size`.
        verbose: 1 shows a progress bar over windows.

    Returns:
        dict with `q2n`, `q_avg`, `sam`, `ergas`, `scc`, `psnr`, `ssim`,
        equal to `evaluate_rr` on the whole image to ~1e-13.

    Raises:
        ValueError: as `evaluate_rr` (shapes, bands, NaN / inf with the
            window position, missing scale, inputs on different scales).
    """
    from skimage.metrics import structural_similarity

    fn = "evaluate_rr_windowed"
    f0 = _Scene(fused, "fused")
    g0 = _Scene(gt, "gt")
    if f0.shape != g0.shape:
        raise ValueError(
            f"fused has shape {f0.shape} but gt has shape {g0.shape}; they must "
            "be equal (H, W, C)."
        )
    h, w, c = g0.shape
    if sensor is not None:
        sensor_obj = get_sensor(sensor)
        if c != sensor_obj.num_bands:
            raise ValueError(
                f"gt has {c} bands but sensor {sensor_obj.name!r} has "
                f"{sensor_obj.num_bands} (use sensor.rgbn() or generic_sensor "
                "for a subset)."
            )
    scale = _resolve_scale(sensor, max_value)
    if scale is None:
        raise ValueError(f"{fn} needs the DN scale: pass sensor= or max_value=.")
    factor = scale if normalized else None
    cut = int(dim_cut)
    if cut < 0:
        raise ValueError(f"dim_cut must be >= 0, got {dim_cut}.")
    if cut:
        hc, wc = h - 2 * cut + 1, w - 2 * cut + 1
        if hc < 1 or wc < 1:
            raise ValueError(f"dim_cut={dim_cut} is too large for an image {h}x{w}.")
        offset = (cut - 1, cut - 1)
    else:
        hc, wc, offset = h, w, (0, 0)
    f_src = _Scene(fused, "fused", offset=offset, size=(hc, wc))
    g_src = _Scene(gt, "gt", offset=offset, size=(hc, wc))
    s = int(block_size)
    hp, wp = -(-hc // s) * s, -(-wc // s) * s
    if hp - hc > hc or wp - wc > wc:
        raise ValueError(f"image {hc}x{wc} is too small for {s}x{s} Q2n blocks.")
    if hc < s or wc < s:
        raise ValueError(f"q_avg needs images of at least {s}x{s}, got {(hc, wc)}.")
    if hc < 2 * _SSIM_RADIUS + 1 or wc < 2 * _SSIM_RADIUS + 1:
        raise ValueError(f"ssim needs images of at least 11x11, got {(hc, wc)}.")
    step = _window_step(window, s)
    halo = max(s, _SSIM_RADIUS + 1)
    r = _SSIM_RADIUS

    def mirror(start, stop, n):  # np.pad "symmetric" beyond the end
        i = np.arange(start, stop)
        return np.where(i < n, i, 2 * n - 1 - i)

    stats: dict = {}
    acc = {
        "q2n": 0.0, "nq2n": 0, "qavg": 0.0, "nqavg": 0, "sam": 0.0, "nsam": 0,
        "se": 0.0, "sg": 0.0, "se_unit": 0.0, "npix": 0,
        "scc_fg": 0.0, "scc_ff": 0.0, "scc_gg": 0.0, "ssim": 0.0, "nssim": 0,
    }  # fmt: skip
    windows = [(ry, rx) for ry in _grid(hp, step) for rx in _grid(wp, step)]
    bar = _progress(len(windows), verbose)
    for i, ((y0, y1), (x0, x1)) in enumerate(windows):
        ey0, ey1 = max(0, y0 - halo), min(hc, y1 + halo)
        ex0, ex1 = max(0, x0 - halo), min(wc, x1 + halo)
        fe = f_src.read(ey0, ey1, ex0, ex1)
        ge = g_src.read(ey0, ey1, ex0, ex1)
        py1, px1 = min(y1, hc), min(x1, wc)  # window pixels inside the image
        core = (slice(y0 - ey0, py1 - ey0), slice(x0 - ex0, px1 - ex0))
        new = {"gt": _scale_stats(ge[core]), "fused": _scale_stats(fe[core])}
        stats = {key: _merge_stats(stats.get(key), v) for key, v in new.items()}
        _check_scales(
            stats, "gt", normalized=normalized, scale=scale, fn=fn, final=False
        )
        _scale_in_place(fe, factor)
        _scale_in_place(ge, factor)
        # Q2n on the (mirror-padded) window.
        if py1 == y1 and px1 == x1:
            fq, gq = fe[core], ge[core]
        else:
            ri = mirror(y0, y1, hc) - ey0
            ci = mirror(x0, x1, wc) - ex0
            fq, gq = fe[ri][:, ci], ge[ri][:, ci]
        q2 = _q2n_block_norms(fq, gq, s)
        acc["q2n"] += float(np.sum(q2))
        acc["nq2n"] += q2.size
        del fq, gq
        # Pixel sums: SAM, ERGAS, PSNR.
        fc, gc = fe[core], ge[core]
        prod = np.einsum("hwc,hwc->hw", gc, fc)
        norm = np.sqrt(
            np.einsum("hwc,hwc->hw", gc, gc) * np.einsum("hwc,hwc->hw", fc, fc)
        )
        valid = norm != 0
        if np.any(valid):
            cos = np.clip(prod[valid] / norm[valid], -1.0, 1.0)
            acc["sam"] += float(np.sum(np.arccos(cos)))
            acc["nsam"] += int(cos.size)
        del prod, norm, valid
        acc["se"] = acc["se"] + np.sum((gc - fc) ** 2, axis=(0, 1))
        acc["sg"] = acc["sg"] + np.sum(gc, axis=(0, 1))
        acc["se_unit"] = acc["se_unit"] + np.sum(
            (gc / scale - fc / scale) ** 2, axis=(0, 1)
        )
        acc["npix"] += gc.shape[0] * gc.shape[1]
        # Q_avg: sliding-window map positions of this window.
        qy1, qx1 = min(y1, hc - s + 1), min(x1, wc - s + 1)
        if qy1 > y0 and qx1 > x0:
            sub = (
                slice(y0 - ey0, qy1 + s - 1 - ey0),
                slice(x0 - ex0, qx1 + s - 1 - ex0),
            )
            qmap = _q_map(fe[sub], ge[sub], s)
            acc["qavg"] = acc["qavg"] + np.sum(qmap, axis=(0, 1))
            acc["nqavg"] += qmap.shape[0] * qmap.shape[1]
            del qmap
        # SCC: Sobel on the image without its 1-pixel border (zero padding).
        sy0, sy1 = max(y0, 1), min(y1, hc - 1)
        sx0, sx1 = max(x0, 1), min(x1, wc - 1)
        if sy1 > sy0 and sx1 > sx0:
            ty0, ty1 = max(sy0 - 1, 1), min(sy1 + 1, hc - 1)
            tx0, tx1 = max(sx0 - 1, 1), min(sx1 + 1, wc - 1)
            ext = (slice(ty0 - ey0, ty1 - ey0), slice(tx0 - ex0, tx1 - ex0))
            keep = (slice(sy0 - ty0, sy1 - ty0), slice(sx0 - tx0, sx1 - tx0))
            mf = _sobel_magnitude(fe[ext])[keep]
            mg = _sobel_magnitude(ge[ext])[keep]
            acc["scc_fg"] += float(np.sum(mf * mg))
            acc["scc_ff"] += float(np.sum(mf * mf))
            acc["scc_gg"] += float(np.sum(mg * mg))
            del mf, mg
        # SSIM map (unit scale) without its r-pixel border.
        sy0, sy1 = max(y0, r), min(y1, hc - r)
        sx0, sx1 = max(x0, r), min(x1, wc - r)
        if sy1 > sy0 and sx1 > sx0:
            ext = (
                slice(sy0 - r - ey0, sy1 + r - ey0),
                slice(sx0 - r - ex0, sx1 + r - ex0),
            )
            _, smap = structural_similarity(
                ge[ext] / scale,
                fe[ext] / scale,
                data_range=1.0,
                channel_axis=-1,
                gaussian_weights=True,
                sigma=1.5,
                use_sample_covariance=False,
                K1=0.01,
                K2=0.03,
                full=True,
            )
            acc["ssim"] = acc["ssim"] + np.sum(smap[r:-r, r:-r], axis=(0, 1))
            acc["nssim"] += (sy1 - sy0) * (sx1 - sx0)
            del smap
        del fe, ge, fc, gc
        if bar is not None:
            bar.update(i + 1)
    _check_scales(stats, "gt", normalized=normalized, scale=scale, fn=fn)
    npix = acc["npix"]
    mse = acc["se"] / npix
    mu2 = (acc["sg"] / npix) ** 2
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(mu2 == 0, np.where(mse == 0, 0.0, np.inf), mse / mu2)
        psnr = 10.0 * np.log10(1.0 / (acc["se_unit"] / npix))
    den = math.sqrt(acc["scc_ff"]) * math.sqrt(acc["scc_gg"])
    if den == 0:
        scc = 1.0 if acc["scc_ff"] == acc["scc_gg"] else 0.0
    else:
        scc = acc["scc_fg"] / den
    return {
        "q2n": acc["q2n"] / acc["nq2n"],
        "q_avg": float(np.mean(acc["qavg"] / acc["nqavg"])),
        "sam": (acc["sam"] / acc["nsam"] * 180.0 / np.pi if acc["nsam"] else 0.0),
        "ergas": float(100.0 / ratio * np.sqrt(np.mean(terms))),
        "scc": float(scc),
        "psnr": float(np.mean(psnr)),
        "ssim": float(np.mean(acc["ssim"] / acc["nssim"])),
    }
