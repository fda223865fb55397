"""`evaluate_rr_windowed`: reduced-resolution scores of a scene read window
by window, equal to `evaluate_rr` (see `keras_pansharp.metrics.windowed` for
why windowing is exact)."""

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
)
from keras_pansharp.metrics.q_index import (
    _q2n_block_norms,
    _q_map,
)
from keras_pansharp.metrics.reduced_resolution import _sobel_magnitude
from keras_pansharp.sensors import Sensor, get_sensor

__all__ = ["evaluate_rr_windowed"]

_SSIM_RADIUS = 5  # Gaussian sigma 1.5, truncate 3.5 (scikit-image)


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
