"""`predict_tiled`: a model, as it is, over a whole scene tile by tile.

The input checks, the tile loader (NaN/inf errors, the DN warning, the exact
`interp23tap` of each tile) and the two schemes of `keras_pansharp.inference`:
blending, and the exact multi-pass scheme (compiled `exact_plan` segments
with the `cache` of activations, or the eager fallback). It consumes a model
and never changes it: a model that chooses detail gains per image is fused
through `keras_pansharp.predict_scene`, which folds one set of gains for the
scene first (`keras_pansharp.calibration.scene_model`).
"""

from __future__ import annotations

import math
import sys
import warnings

import keras
import numpy as np

from keras_pansharp.inference.cache import _ActivationCache, _fits_disk
from keras_pansharp.inference.exact_plan import _cached_plan
from keras_pansharp.inference.model_graph import (
    all_layers,
    global_statistics_layers,
    receptive_radius,
    uses_interp23tap_lms,
)
from keras_pansharp.inference.tiles import (
    RATIO,
    balanced_core_tiles,
    blend_weights,
    wrapped_slice,
)
from keras_pansharp.layers.detail_calibration import DetailCalibration
from keras_pansharp.layers.transformer import GlobalStatisticsCollected
from keras_pansharp.signal.filters import interp23tap

__all__ = ["check_tiling_inputs", "predict_tiled"]

UNIT_MAX = 1.5  # largest normalised value taken for [0, 1] data (models.base)
_JAX_GROUPED = True  # JAX: run several batches per compiled call (lax loop)
_HALO_LR = 12  # > reach of the two 23-tap x2 stages (about 8.25 LR pixels)


def _outside_level() -> int:
    """`warnings.warn` stack level, from the caller, of the first frame
    outside the package (the user's call of `predict_scene`, `fuse_geotiff`,
    ...)."""
    frame, level = sys._getframe(1), 1
    while frame is not None and str(frame.f_globals.get("__name__", "")).startswith(
        "keras_pansharp."
    ):
        frame, level = frame.f_back, level + 1
    return level


def check_tiling_inputs(ms, pan, lms, tile, overlap, batch_size, max_value) -> None:
    """Raise `ValueError` on inputs or tiling arguments `predict_tiled`
    cannot take (shapes, ratio, dtype without `max_value`, tile, overlap,
    batch size); the values themselves are checked as each tile is read."""
    for name, x in (("ms", ms), ("pan", pan)):
        if not hasattr(x, "shape") or not hasattr(x, "dtype"):
            raise ValueError(
                f"predict_scene: '{name}' must be an array-like with .shape and "
                f".dtype (NumPy array, np.memmap, h5py dataset); got "
                f"{type(x).__name__}"
            )
    if len(ms.shape) != 3:
        raise ValueError(
            f"predict_scene: 'ms' must have shape (h, w, C), got {tuple(ms.shape)}"
        )
    if len(pan.shape) == 3 and pan.shape[-1] != 1 or len(pan.shape) not in (2, 3):
        raise ValueError(
            "predict_scene: 'pan' must have shape (4h, 4w) or (4h, 4w, 1), got "
            f"{tuple(pan.shape)}"
        )
    h, w, c = ms.shape
    if tuple(pan.shape[:2]) != (RATIO * h, RATIO * w):
        raise ValueError(
            f"predict_scene: 'pan' must be 4x the MS size, i.e. ({RATIO * h}, "
            f"{RATIO * w}) for ms {tuple(ms.shape)}; got {tuple(pan.shape)}"
        )
    if lms is not None and tuple(lms.shape) != (RATIO * h, RATIO * w, c):
        raise ValueError(
            f"predict_scene: 'lms' must have shape ({RATIO * h}, {RATIO * w}, {c}),"
            f" got {tuple(lms.shape)}"
        )
    if max_value is None:
        for name, x in (("ms", ms), ("pan", pan)):
            if not np.issubdtype(np.dtype(x.dtype), np.floating):
                raise ValueError(
                    f"predict_scene: '{name}' has dtype {np.dtype(x.dtype)}; pass "
                    "normalised floats (DN / sensor max) or give max_value= to "
                    "normalise digital numbers tile by tile"
                )
    elif not max_value > 0:
        raise ValueError(f"predict_scene: max_value must be > 0, got {max_value}")
    if tile % RATIO or tile < 4 * RATIO:
        raise ValueError(
            f"predict_scene: tile must be a multiple of 4 >= 16, got {tile}"
        )
    if overlap % RATIO or overlap < 0 or 2 * overlap > tile:
        raise ValueError(
            "predict_scene: overlap must be a multiple of 4 with 0 <= overlap < "
            f"tile / 2, got overlap={overlap} for tile={tile}"
        )
    if batch_size < 1:
        raise ValueError(f"predict_scene: batch_size must be >= 1, got {batch_size}")


def predict_tiled(
    model: keras.Model,
    ms,
    pan,
    tile: int = 512,
    overlap: int = 64,
    batch_size: int = 4,
    lms=None,
    max_value: float | None = None,
    out=None,
    verbose: int = 1,
    exact: bool | str = "auto",
    halo: int | None = None,
    cache_mb: float = 1024,
    cache_dir: str | None = None,
) -> np.ndarray:
    """Pan-sharpen a whole scene tile by tile with `model` as it is.

    The engine of `keras_pansharp.predict_scene` (which is what most callers
    want: it also handles models that calibrate their details per image).
    See `keras_pansharp.inference` for the two schemes: `exact` (multi-pass,
    disjoint cores with a halo, image-wide statistics such as PanTiny's
    channel attention computed over the whole scene: equals untiled
    prediction up to float rounding) and blending (one pass, overlapping
    tiles blended).

    Args, Returns, Raises and Warns: as `keras_pansharp.predict_scene`,
    which calls this function; here `model` is used as it is, and a model
    with a `DetailCalibration` layer is refused with a `ValueError` (tiled,
    each tile would choose its own detail gains).

    Example:
    >>> fused = predict_tiled(model, ms_scene, pan_scene, tile=512)  # doctest: +SKIP
    """
    if exact not in ("auto", True, False):
        raise ValueError(
            f"predict_scene: exact must be 'auto', True or False, got {exact!r}"
        )
    global_layers = global_statistics_layers(model)
    if exact == "auto":
        exact = bool(global_layers)
    if exact and not isinstance(model, keras.Model):
        raise ValueError(
            "predict_scene: exact=True needs a Keras model (its layers are "
            f"inspected and called); got {type(model).__name__}"
        )
    check_tiling_inputs(
        ms, pan, lms, tile, 0 if exact else overlap, batch_size, max_value
    )
    if not cache_mb >= 0:
        raise ValueError(f"predict_scene: cache_mb must be >= 0, got {cache_mb}")
    calibrating = [
        lay for lay in all_layers(model) if isinstance(lay, DetailCalibration)
    ]
    if calibrating:
        raise ValueError(
            f"predict_scene: {type(model).__name__} {model.name!r} chooses its "
            f"detail gains on each image (layer {calibrating[0].name!r}), so tile by "
            "tile each tile would get its own gains. Fuse it with "
            "keras_pansharp.predict_scene, which chooses one set for the scene, or "
            "fold them first: keras_pansharp.calibration.scene_model(model, ms, "
            "pan, max_value)."
        )
    if exact:
        if halo is None:
            radius = receptive_radius(model)
            halo = -(-radius // RATIO) * RATIO
        elif halo % RATIO or halo < 0:
            raise ValueError(
                f"predict_scene: halo must be a multiple of 4 >= 0, got {halo}"
            )
    h, w, c = ms.shape
    big_h, big_w = RATIO * h, RATIO * w
    pan2d = len(pan.shape) == 2
    scale = 1.0 if max_value is None else 1.0 / float(max_value)
    if exact:
        th, cys = balanced_core_tiles(big_h, tile, halo)
        tw, cxs = balanced_core_tiles(big_w, tile, halo)
    else:
        th, tw = min(tile, big_h), min(tile, big_w)
    if out is None:
        out = np.zeros((big_h, big_w, c), dtype=np.float32)
    elif tuple(out.shape) != (big_h, big_w, c):
        raise ValueError(
            f"predict_scene: 'out' must have shape ({big_h}, {big_w}, {c}), got "
            f"{tuple(out.shape)}"
        )
    own_lms = lms is None and uses_interp23tap_lms(model)
    warned = []

    def check(name, arr, y0, x0, r0, c0, size):
        """Raise on NaN/inf in a tile just read; return its largest value.

        `(r0, c0)`: the position of `arr[0, 0]` in `name`'s own coordinates
        (negative or past the end for a circular halo), `size` its `(h, w)`.
        """
        lo, hi = float(np.min(arr)), float(np.max(arr))  # NaN propagates
        if math.isfinite(lo) and math.isfinite(hi):
            return hi
        where = np.argwhere(~np.isfinite(arr))
        rows, cols = (r0 + where[:, 0]) % size[0], (c0 + where[:, 1]) % size[1]
        bands = where[:, 2] if where.shape[1] > 2 else np.zeros_like(rows)
        count = len(set(zip(rows.tolist(), cols.tolist(), bands.tolist())))
        raise ValueError(
            f"predict_scene: '{name}' contains {count} NaN or inf value(s) in "
            f"the data read for the tile at PAN rows {y0}:{y0 + th}, cols "
            f"{x0}:{x0 + tw} (the first at {name} row {rows[0]}, col {cols[0]}); "
            "replace or mask them (e.g. nodata pixels) before fusing"
        )

    def warn_dn(hi, y0, x0):
        if hi * scale <= UNIT_MAX or warned:
            return
        warned.append(True)
        if max_value is None:
            fix = (
                "pass max_value= (the sensor's max DN, e.g. 2047 for 11-bit "
                "data) to normalise tile by tile"
            )
        else:
            fix = (
                f"max_value={max_value:g} is below the data's range: the data "
                f"reach {hi:.6g}; pass the sensor's max DN"
            )
        warnings.warn(
            f"predict_scene: the tile at PAN rows {y0}:{y0 + th}, cols "
            f"{x0}:{x0 + tw} reaches {hi * scale:.6g} after normalisation, but the "
            f"model expects [0, 1] (values above {UNIT_MAX} look like digital "
            f"numbers): {fix}. Further tiles are not reported.",
            UserWarning,
            stacklevel=_outside_level(),
        )

    def load(y0, x0, keys=("ms", "pan", "lms")):
        """The checked, normalised inputs `keys` of the tile at `(y0, x0)`
        (`"lms"` only when given or computed for the model)."""
        ly0, lx0 = y0 // RATIO, x0 // RATIO
        lth, ltw = th // RATIO, tw // RATIO
        tile_in, hi = {}, -math.inf
        if "ms" in keys:
            ms_t = np.asarray(ms[ly0 : ly0 + lth, lx0 : lx0 + ltw], dtype=np.float32)
            hi = max(hi, check("ms", ms_t, y0, x0, ly0, lx0, (h, w)))
            tile_in["ms"] = ms_t * scale
        if "pan" in keys:
            pan_t = np.asarray(pan[y0 : y0 + th, x0 : x0 + tw], dtype=np.float32)
            if pan2d:
                pan_t = pan_t[..., None]
            hi = max(hi, check("pan", pan_t, y0, x0, y0, x0, (big_h, big_w)))
            tile_in["pan"] = pan_t * scale
        if "lms" not in keys:
            pass
        elif lms is not None:
            lms_t = np.asarray(lms[y0 : y0 + th, x0 : x0 + tw], dtype=np.float32)
            hi = max(hi, check("lms", lms_t, y0, x0, y0, x0, (big_h, big_w)))
            tile_in["lms"] = lms_t * scale
        elif own_lms:
            ext = wrapped_slice(ms, ly0 - _HALO_LR, ly0 + lth + _HALO_LR, 0)
            ext = wrapped_slice(ext, lx0 - _HALO_LR, lx0 + ltw + _HALO_LR, 1)
            ext = np.asarray(ext, dtype=np.float64)
            check("ms", ext, y0, x0, ly0 - _HALO_LR, lx0 - _HALO_LR, (h, w))
            up = interp23tap(ext * scale, RATIO)
            k = RATIO * _HALO_LR
            tile_in["lms"] = up[k : k + th, k : k + tw].astype(np.float32)
        warn_dn(hi, y0, x0)
        return tile_in

    def batches(jobs):
        """Yield `(jobs of the batch, stacked inputs)`, last batch padded."""
        size = min(batch_size, len(jobs))
        for b0 in range(0, len(jobs), size):
            batch_jobs = jobs[b0 : b0 + size]
            tiles = [load(job[0], job[1]) for job in batch_jobs]
            # Pad the last batch to a constant size: no retracing/recompiling.
            tiles += [tiles[-1]] * (size - len(tiles))
            yield batch_jobs, {k: np.stack([t[k] for t in tiles]) for k in tiles[0]}

    # The tiles are checked above; the model's own NumPy checks would repeat.
    from keras_pansharp.models.base import skip_value_checks

    with skip_value_checks():
        if exact:
            return _predict_exact(
                model, global_layers, load, batches, batch_size, out, cys, cxs,
                th, tw, max_value, verbose, cache_mb, cache_dir,
            )  # fmt: skip
        return _predict_blend(
            model, batches, out, big_h, big_w, th, tw, tile, overlap, max_value,
            verbose,
        )  # fmt: skip


def _predict_blend(
    model, batches, out, big_h, big_w, th, tw, tile, overlap, max_value, verbose
):  # fmt: skip
    """The blending scheme of `predict_tiled` on checked, loaded tiles."""
    ys, wys = blend_weights(big_h, tile, overlap)
    xs, wxs = blend_weights(big_w, tile, overlap)
    jobs = [(ys[iy], xs[ix], iy, ix) for iy in range(len(ys)) for ix in range(len(xs))]
    bar = keras.utils.Progbar(len(jobs), unit_name="tile") if verbose else None
    done = 0
    for batch_jobs, batch in batches(jobs):
        pred = keras.ops.convert_to_numpy(model.predict_on_batch(batch))
        for (y0, x0, iy, ix), p in zip(batch_jobs, pred):
            weight = (wys[iy][:, None] * wxs[ix][None, :]).astype(np.float32)
            contrib = p * weight[..., None]
            if max_value is not None:
                contrib = contrib * np.float32(max_value)
            region = (slice(y0, y0 + th), slice(x0, x0 + tw))
            out[region] = out[region] + contrib
        done += len(batch_jobs)
        if bar is not None:
            bar.update(done)
    return out


def _predict_exact_eager(
    model, global_layers, batches, out, cys, cxs, th, tw, max_value, verbose
):  # fmt: skip
    """The exact multi-pass scheme, eager and without caching: the fallback
    for models `_exact_plan` does not cover (see the module docstring)."""
    # Job: (tile y0, tile x0, core box in tile coordinates).
    jobs = [
        (ty, tx, (cy0 - ty, cy1 - ty, cx0 - tx, cx1 - tx))
        for ty, cy0, cy1 in cys
        for tx, cx0, cx1 in cxs
    ]
    passes = len(global_layers) + 1
    bar = keras.utils.Progbar(passes * len(jobs), unit_name="tile") if verbose else None
    done = 0
    frozen: dict[int, np.ndarray] = {}
    try:
        for _ in range(passes):
            pending = [lay for lay in global_layers if id(lay) not in frozen]
            for lay in global_layers:
                lay.global_stats = None
                if id(lay) in frozen:
                    lay.global_stats_mode = ("frozen", frozen[id(lay)])
            sums, collector = None, None
            for batch_jobs, batch in batches(jobs):
                if pending:
                    mask = np.zeros((len(batch["pan"]), th, tw), np.float32)
                    for i, (_, _, (y0, y1, x0, x1)) in enumerate(batch_jobs):
                        mask[i, y0:y1, x0:x1] = 1.0
                    for lay in pending:
                        lay.global_stats_mode = ("collect", mask)
                    try:
                        model(batch, training=False)
                    except GlobalStatisticsCollected:
                        pass
                    hit = [lay for lay in pending if lay.global_stats is not None]
                    if len(hit) != 1 or (
                        collector is not None and hit[0] is not collector
                    ):
                        raise RuntimeError(
                            "predict_scene: exact mode expected exactly one "
                            "attention layer to collect statistics per pass; got "
                            f"{[lay.name for lay in hit]}"
                        )  # fmt: skip
                    collector = hit[0]
                    stats = [
                        np.asarray(t, np.float64).sum(0) for t in collector.global_stats
                    ]
                    sums = (
                        stats if sums is None else [a + b for a, b in zip(sums, stats)]
                    )
                    collector.global_stats = None
                else:
                    pred = keras.ops.convert_to_numpy(model(batch, training=False))
                    for (ty, tx, (y0, y1, x0, x1)), p in zip(batch_jobs, pred):
                        core = p[y0:y1, x0:x1]
                        if max_value is not None:
                            core = core * np.float32(max_value)
                        out[ty + y0 : ty + y1, tx + x0 : tx + x1] = core
                done += len(batch_jobs)
                if bar is not None:
                    bar.update(done)
            if pending:
                frozen[id(collector)] = collector.attention_from_stats(
                    *(a[None] for a in sums)
                )
    finally:
        for lay in global_layers:
            lay.global_stats_mode = None
            lay.global_stats = None
    return out


def _units(count, batch_size, max_tiles=None):
    """Split `count` tiles into units of `group` batches of `size` tiles.

    A unit is what one compiled call processes: one batch, or with
    `max_tiles` (JAX, which maps over the batches of a call) up to that many
    tiles. The last unit is padded by repeating its last tile; `size <=
    batch_size` is chosen to pad the fewest tiles (then the largest), since
    padded tiles are computed for nothing.

    Returns:
        `(units, tiles_per_unit, group, size)`.
    """
    batch_size = max(min(batch_size, count), 1)
    if max_tiles is None:
        size = min(
            range(1, batch_size + 1), key=lambda s: (-(-count // s) * s - count, -s)
        )
        return -(-count // size), size, 1, size
    units = -(-count // max(max_tiles, batch_size))
    per_unit = -(-count // units)
    size = min(
        range(1, min(batch_size, per_unit) + 1),
        key=lambda s: (units * -(-per_unit // s) * s - count, -s),
    )
    return units, per_unit, -(-per_unit // size), size


def _predict_exact(
    model, global_layers, load, batches, batch_size, out, cys, cxs, th, tw,
    max_value, verbose, cache_mb, cache_dir,
):  # fmt: skip
    """The exact scheme: compiled segments, activations cached between passes."""
    plan = _cached_plan(model, global_layers)
    if plan is None:
        return _predict_exact_eager(
            model, global_layers, batches, out, cys, cxs, th, tw, max_value, verbose
        )
    jobs = [
        (ty, tx, (cy0 - ty, cy1 - ty, cx0 - tx, cx1 - tx))
        for ty, cy0, cy1 in cys
        for tx, cx0, cx1 in cxs
    ]
    count = len(jobs)
    segments = plan.segments
    # Bytes of `b` per tile, the activations kept between two passes.
    per_tile = 1
    for seg in segments[:-1]:
        itemsize = np.dtype(keras.backend.standardize_dtype(seg.end.dtype)).itemsize
        per_tile = max(per_tile, th * tw * seg.end.shape[-1] * itemsize)
    grouped = keras.backend.backend() == "jax" and _JAX_GROUPED
    # JAX runs the batches of a unit in one call (its activations updated in
    # place): a unit may take the whole memory budget.
    max_tiles = int(cache_mb * 2**20) // per_tile if grouped else None
    units, tiles_per_unit, group, size = _units(count, batch_size, max_tiles)
    grouped = group > 1
    per_unit = group * size
    if cache_mb * 2**20 < units * per_unit * per_tile and not _fits_disk(
        units * per_unit * per_tile - cache_mb * 2**20, cache_dir
    ):
        cache = None  # no room: every pass recomputes the segments before it
    else:
        cache = _ActivationCache(cache_mb, cache_dir)
    bar = None
    if verbose:
        bar = keras.utils.Progbar(len(segments) * count, unit_name="tile")
    done, mats = 0, []

    def stack(arrays):
        """`(per_unit, ...)` padded with the last tile, grouped on JAX."""
        arr = np.stack(arrays)
        if len(arr) < per_unit:
            pad = np.repeat(arr[-1:], per_unit - len(arr), axis=0)
            arr = np.concatenate([arr, pad])
        return arr.reshape(group, size, *arr.shape[1:]) if grouped else arr

    try:
        for s, seg in enumerate(segments):
            chain = [s] if s == 0 or cache is not None else list(range(s + 1))
            # The first pass reads (and checks) every input of every tile.
            keys = {"ms", "pan", "lms"} if s == 0 else set()
            for j in chain:
                keys.update(segments[j].feeds)
            sums = None
            for u in range(units):
                unit_jobs = jobs[u * tiles_per_unit : (u + 1) * tiles_per_unit]
                tiles = [load(ty, tx, tuple(keys)) for ty, tx, _ in unit_jobs]
                boxes = np.zeros((per_unit, 4), np.int32)
                for i, (_, _, box) in enumerate(unit_jobs):
                    boxes[i] = box
                if grouped:
                    boxes = boxes.reshape(group, size, 4)
                bv = cache.get(u) if chain[0] > 0 else None
                for j in chain:
                    feeds = {
                        name: stack([t[name] for t in tiles])
                        if name in tiles[0]
                        else None
                        for name in segments[j].feeds
                    }
                    m = mats[j - 1] if j else None
                    res = plan.run(j, bv, m, feeds, boxes, grouped)
                    bv = res[:1]
                if seg.stats is not None:
                    if cache is not None:
                        # Replaces the unit's `b` of the previous pass,
                        # already read above.
                        cache.put(u, res[:1])
                    # Per-tile float32 sums (as untiled), added up in float64.
                    axes = (0, 1) if grouped else 0
                    st = [np.asarray(t, np.float64).sum(axis=axes) for t in res[1:]]
                    sums = st if sums is None else [a + c for a, c in zip(sums, st)]
                else:
                    pred = res[0].reshape(per_unit, *res[0].shape[-3:])
                    for (ty, tx, (y0, y1, x0, x1)), p in zip(unit_jobs, pred):
                        core = p[y0:y1, x0:x1].astype(np.float32)
                        if max_value is not None:
                            core = core * np.float32(max_value)
                        out[ty + y0 : ty + y1, tx + x0 : tx + x1] = core
                done += len(unit_jobs)
                if bar is not None:
                    bar.update(done)
                del bv, res
            if seg.stats is not None:
                attn = seg.stats[1]
                a = attn.attention_from_stats(*(t[None] for t in sums))[0]
                proj = keras.ops.convert_to_numpy(attn.project_out.kernel)
                proj = np.asarray(proj, np.float64).reshape(a.shape)
                mats.append((a.astype(np.float64).T @ proj).astype(np.float32))
    finally:
        if cache is not None:
            cache.close()
    return out
