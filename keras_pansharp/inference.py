"""Pan-sharpen whole scenes in bounded memory (tiling).

`predict_scene(model, ms, pan)` cuts the scene into PAN-scale tiles of at
most `tile x tile` pixels (MS tiles `tile/4`) and runs the model on batches
of tiles. Two schemes:

**Exact** (default for models with image-wide statistics, e.g. PanTiny, and
on request for any Keras model): the scene is partitioned into disjoint
*cores*; each tile is its core plus a halo of `halo` PAN pixels of context
(default: the model's receptive-field radius from its convolutions, rounded up
to a multiple of 4; PanTiny: 17 -> 20), shifted inwards at the scene border,
where the tile edge *is* the scene edge and zero padding matches the
whole-scene model. Local layers then give every core pixel exactly its
whole-scene value. PanTiny's channel attention is not local: it normalises
queries and keys over *all* pixels of the image, so `A = softmax(q k^T t /
(|q| |k|))` depends on three image-wide sums, `G = sum q k^T`, `sum q^2` and
`sum k^2` (a few `dim x dim` numbers per layer). With `L` such layers the
scene is processed in `L + 1` passes: pass `j` runs every tile with layers
`1..j-1` applying their already-known whole-scene `A` and layer `j` summing
`G` and the norms over the tile's core only (each pixel counted once; the
forward pass stops there), then `A_j` is fixed; the last pass writes the
cores of the output. Cost: about `(L + 1) / 2 + 1` full-model passes (the
collection passes stop at their layer; 4.5 for PanTiny's 6 blocks) plus the
halo overhead, run eagerly (measured at 1024^2 on 2 CPU cores: 62 s with
TensorFlow, ~9x the untiled `predict`; JAX's op-by-op eager dispatch is much
slower, ~13x untiled at 512^2, so prefer the TensorFlow backend for it).
Memory: one batch of tiles and the statistics besides the output (eager
calls hold more activations than a compiled pass: peak RSS 2.4 GB instead of
1.2 GB for PanTiny with 512^2 tiles, `batch_size=1`; use smaller tiles to
lower it). Statistics belong to the one scene being fused (as in an
untiled batch, where each image has its own).

**Blending** (`exact=False`, the default for purely convolutional models and
for non-Keras wrappers): neighbouring tiles share `overlap` pixels and are
blended: along each axis a tile's weight is 0 on the outer quarter of each
shared band (`overlap // 4` pixels next to an inner tile edge), then ramps
linearly to 1 across the middle half; weights of neighbouring tiles sum to 1
(renormalised exactly, the grid is separable), so no seams and no gain
change. Output equals untiled prediction (up to float rounding) for models
whose receptive-field radius is at most `overlap // 4` PAN pixels (all
convolutional baselines with the default `overlap`). One compiled pass
(`predict_on_batch`).

In both schemes the MS -> PAN-size upsampling (`lms`) of each tile is
computed from the MS tile plus a 12-pixel low-resolution halo taken from the
*whole scene* with the toolbox's circular boundary, so it equals the
whole-scene `interp23tap` exactly (done only for models whose upsampler is
`"interp23tap"`, the default, and that take the optional `lms` input).

Memory is bounded by the inputs (which may be `np.memmap`s or h5py datasets
read tile by tile), the output (an in-memory array, or any writable
array-like passed as `out=`, e.g. a `np.memmap`) and one batch of tiles.

Every tile is checked on the host as it is read, before the model runs:
NaN / inf raise a `ValueError` naming the input and the tile's position, and
values above 1.5 once normalised (digital numbers given without
`max_value=`, or a `max_value` below the data's range) warn once per call
with the largest value seen (a warning, not an error, for the reasons given
in `keras_pansharp.models.base`). The data are never altered.
"""

from __future__ import annotations

import math
import sys
import warnings

import keras
import numpy as np

from keras_pansharp.layers.transformer import (
    ChannelAttention,
    GlobalStatisticsCollected,
)
from keras_pansharp.signal.filters import interp23tap

__all__ = [
    "predict_scene",
    "tile_starts",
    "blend_weights",
    "core_tiles",
    "receptive_radius",
    "global_statistics_layers",
]

RATIO = 4
UNIT_MAX = 1.5  # largest normalised value taken for [0, 1] data (models.base)
_HALO_LR = 12  # > reach of the two 23-tap x2 stages (about 8.25 LR pixels)


def tile_starts(size: int, tile: int, overlap: int) -> list[int]:
    """Start offsets of tiles of length `tile` covering `[0, size)`.

    Consecutive tiles overlap by at least `overlap` pixels; the last one ends
    flush with `size`. `tile >= size` gives a single tile.
    """
    if tile >= size:
        return [0]
    stride = tile - overlap
    n = math.ceil((size - tile) / stride) + 1
    starts = [min(i * stride, size - tile) for i in range(n)]
    return sorted(set(starts))


def _ramp(length: int, overlap: int, lead: bool, trail: bool) -> np.ndarray:
    """1-D weights of one tile (lead/trail: is that edge shared?)."""
    margin = overlap // 4
    width = max(overlap - 2 * margin, 1)
    w = np.ones(length, dtype=np.float64)
    d = np.arange(length, dtype=np.float64)
    if lead:
        w = np.minimum(w, np.clip((d - margin + 0.5) / width, 0.0, 1.0))
    if trail:
        w = np.minimum(w, np.clip((length - 1 - d - margin + 0.5) / width, 0.0, 1.0))
    return w


def blend_weights(size: int, tile: int, overlap: int):
    """Per-tile 1-D blending weights along one axis, normalised to sum to 1.

    Returns:
        `(starts, weights)`: tile start offsets and, per tile, a float64 array
        of length `min(tile, size)`; summing each tile's weights into its
        place gives exactly 1 everywhere on `[0, size)`.
    """
    starts = tile_starts(size, tile, overlap)
    length = min(tile, size)
    raw = [
        _ramp(length, overlap, lead=i > 0, trail=i < len(starts) - 1)
        for i in range(len(starts))
    ]
    total = np.zeros(size, dtype=np.float64)
    for s, w in zip(starts, raw):
        total[s : s + length] += w
    if np.any(total <= 0):  # cannot happen with overlap <= tile / 2; be safe
        raise ValueError(
            f"tiling size={size} tile={tile} overlap={overlap} leaves pixels "
            "uncovered; use a larger tile or a smaller overlap"
        )
    return starts, [w / total[s : s + length] for s, w in zip(starts, raw)]


def core_tiles(size: int, tile: int, halo: int) -> list[tuple[int, int, int]]:
    """Disjoint cores covering `[0, size)` and the tiles holding them.

    Each tile has length `min(tile, size)` and contains its core plus at least
    `halo` pixels on each side that is not a scene edge (tiles are shifted
    inwards at the scene borders).

    Returns:
        List of `(tile_start, core_start, core_stop)`.
    """
    length = min(tile, size)
    if length == size:
        return [(0, 0, size)]
    core = tile - 2 * halo
    if core < RATIO:
        raise ValueError(
            f"predict_scene: tile ({tile}) must exceed 2 * halo ({2 * halo}) by "
            "at least 4 pixels; use a larger tile"
        )
    out = []
    for c0 in range(0, size, core):
        c1 = min(c0 + core, size)
        out.append((min(max(c0 - halo, 0), size - length), c0, c1))
    return out


def _all_layers(model) -> list:
    if not isinstance(model, keras.layers.Layer):
        return []
    return list(model._flatten_layers(include_self=False, recursive=True))


def global_statistics_layers(model) -> list:
    """The layers of `model` whose output depends on image-wide statistics.

    Returns:
        The `ChannelAttention` layers (PanTiny: one per transformer block).
    """
    return [
        layer for layer in _all_layers(model) if isinstance(layer, ChannelAttention)
    ]


def receptive_radius(model) -> int:
    """Upper bound of a model's receptive-field radius in PAN pixels.

    Sums `dilation * (kernel - 1) // 2` over every stride-1 convolution of
    the model (`Conv2D`, `DepthwiseConv2D`, `SeparableConv2D`, nested layers
    included), excluding the MS upsampler (fed a precomputed `lms`). Exact
    for a chain of convolutions (PanTiny: 17), an upper bound with parallel
    branches. Layers convolving with `keras.ops` directly are not seen: pass
    `halo=` to `predict_scene` for such models.

    Raises:
        ValueError: a strided or transposed convolution (not supported).
    """
    from keras_pansharp.models.base import UpsampledMS

    skip = set()
    for layer in _all_layers(model):
        if isinstance(layer, UpsampledMS):
            skip.update(id(sub) for sub in _all_layers(layer))
    total = 0
    for layer in _all_layers(model):
        if id(layer) in skip:
            continue
        if isinstance(layer, keras.layers.Conv2DTranspose) or (
            isinstance(layer, keras.layers.Conv2D | keras.layers.DepthwiseConv2D)
            and any(s != 1 for s in layer.strides)
        ):
            raise ValueError(
                f"predict_scene: layer {layer.name!r} is a strided or transposed "
                "convolution; give halo= explicitly"
            )
        if isinstance(
            layer,
            keras.layers.Conv2D
            | keras.layers.DepthwiseConv2D
            | keras.layers.SeparableConv2D,
        ):
            total += max(
                d * (k - 1) // 2 for k, d in zip(layer.kernel_size, layer.dilation_rate)
            )
    return total


def _outside_level() -> int:
    """`warnings.warn` stack level, from the caller, of the first frame
    outside this module (the user's call of `predict_scene`)."""
    frame, level = sys._getframe(1), 1
    while frame is not None and frame.f_globals.get("__name__") == __name__:
        frame, level = frame.f_back, level + 1
    return level


def _wrapped_slice(arr, start: int, stop: int, axis: int) -> np.ndarray:
    """`arr` indices `start..stop-1` along `axis` (0 or 1), circular.

    Reads contiguous blocks only, so `arr` may be an h5py dataset or memmap.
    """
    n = arr.shape[axis]
    idx = np.arange(start, stop) % n
    # Split the index run into contiguous ascending blocks.
    breaks = np.nonzero(np.diff(idx) != 1)[0] + 1
    parts = []
    for block in np.split(idx, breaks):
        sl = [slice(None)] * 2
        sl[axis] = slice(int(block[0]), int(block[-1]) + 1)
        parts.append(np.asarray(arr[tuple(sl)]))
    return parts[0] if len(parts) == 1 else np.concatenate(parts, axis=axis)


def _uses_interp23tap_lms(model) -> bool:
    if hasattr(model, "accepts_interp23tap_lms"):
        return bool(model.accepts_interp23tap_lms)
    names = set()
    try:
        inp = model.input
        names = set(inp) if isinstance(inp, dict) else set()
    except (AttributeError, ValueError):
        pass
    if "lms" not in names:
        return False
    try:
        upsampler = model.get_config().get("upsampler", "interp23tap")
    except Exception:  # noqa: BLE001 - config of arbitrary models
        upsampler = "interp23tap"
    return upsampler == "interp23tap"


def _check_inputs(ms, pan, lms, tile, overlap, batch_size, max_value):
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


def predict_scene(
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
) -> np.ndarray:
    """Pan-sharpen a whole scene tile by tile, in bounded memory.

    See the module docstring for the two schemes: `exact` (multi-pass,
    disjoint cores with a halo, image-wide statistics such as PanTiny's
    channel attention computed over the whole scene: equals untiled
    prediction up to float rounding) and blending (one pass, overlapping
    tiles blended).

    Args:
        model: pan-sharpening model (dict inputs `ms`, `pan`, optional `lms`),
            or, for blending, any object with `predict_on_batch(dict) ->
            (B, H, W, C)` (e.g. a wrapper of a served SavedModel; give it an
            attribute `accepts_interp23tap_lms = True` to receive the exact
            `lms`).
        ms: `(h, w, C)` MS scene; any array-like read by slices (NumPy array,
            `np.memmap`, h5py dataset). Normalised floats, or DN with
            `max_value`.
        pan: `(4h, 4w)` or `(4h, 4w, 1)` PAN scene, same units as `ms`.
        tile: tile side at PAN scale (multiple of 4); capped at the scene size.
            In exact mode it includes the halo (`tile > 2 * halo + 4`).
        overlap: blending only: pixels shared by neighbouring tiles (multiple
            of 4, `<= tile / 2`). Blended output equals untiled output for
            models with receptive-field radius <= `overlap // 4`.
        batch_size: tiles per model call.
        lms: optional precomputed `(4h, 4w, C)` upsampled MS scene (same
            units); by default it is computed per tile with a wrapped halo
            (toolbox `interp23tap`, exact) when the model uses that upsampler.
        max_value: if given, inputs are digital numbers: each tile is divided
            by `max_value` before the model and the output multiplied back.
        out: optional writable `(4h, 4w, C)` float32 array-like initialised to
            0 (e.g. `np.lib.format.open_memmap(..., mode="w+")`) receiving the
            result; by default a new in-memory array.
        verbose: 1 shows a `keras.utils.Progbar` over tiles (all passes), 0
            is silent.
        exact: `"auto"` (default): exact when the model has layers with
            image-wide statistics (`global_statistics_layers`, PanTiny's
            `ChannelAttention`), blending otherwise. `True`: exact (a Keras
            model; `L + 1` passes for `L` such layers, one pass for a
            convolutional model). `False`: blending (approximate for PanTiny:
            each tile then uses its own statistics).
        halo: exact mode: context pixels around each core (multiple of 4);
            default `receptive_radius(model)` rounded up to a multiple of 4.

    Returns:
        The fused scene `(4h, 4w, C)` float32 (`out` when given).

    Raises:
        ValueError: bad shapes, ratio, dtype, tiling arguments, or a tile
            containing NaN/inf (the input and the tile's location are named;
            checked on the host as each tile is read, before the model runs).

    Warns:
        UserWarning: once per call, when a tile's values exceed 1.5 after
            normalisation (digital numbers without `max_value=`, or a
            `max_value` below the data's range). The data are never rescaled.

    Example:
    >>> fused = predict_scene(model, ms_scene, pan_scene, tile=512)
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
    _check_inputs(ms, pan, lms, tile, 0 if exact else overlap, batch_size, max_value)
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
    th, tw = min(tile, big_h), min(tile, big_w)
    if out is None:
        out = np.zeros((big_h, big_w, c), dtype=np.float32)
    elif tuple(out.shape) != (big_h, big_w, c):
        raise ValueError(
            f"predict_scene: 'out' must have shape ({big_h}, {big_w}, {c}), got "
            f"{tuple(out.shape)}"
        )
    own_lms = lms is None and _uses_interp23tap_lms(model)
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

    def load(y0, x0):
        ly0, lx0 = y0 // RATIO, x0 // RATIO
        lth, ltw = th // RATIO, tw // RATIO
        ms_t = np.asarray(ms[ly0 : ly0 + lth, lx0 : lx0 + ltw], dtype=np.float32)
        pan_t = np.asarray(pan[y0 : y0 + th, x0 : x0 + tw], dtype=np.float32)
        if pan2d:
            pan_t = pan_t[..., None]
        hi = max(
            check("ms", ms_t, y0, x0, ly0, lx0, (h, w)),
            check("pan", pan_t, y0, x0, y0, x0, (big_h, big_w)),
        )
        tile_in = {"ms": ms_t * scale, "pan": pan_t * scale}
        if lms is not None:
            lms_t = np.asarray(lms[y0 : y0 + th, x0 : x0 + tw], dtype=np.float32)
            hi = max(hi, check("lms", lms_t, y0, x0, y0, x0, (big_h, big_w)))
            tile_in["lms"] = lms_t * scale
        elif own_lms:
            ext = _wrapped_slice(ms, ly0 - _HALO_LR, ly0 + lth + _HALO_LR, 0)
            ext = _wrapped_slice(ext, lx0 - _HALO_LR, lx0 + ltw + _HALO_LR, 1)
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
        return _predict(
            model, exact, global_layers, batches, out, big_h, big_w, th, tw, tile,
            halo, overlap, max_value, verbose,
        )  # fmt: skip


def _predict(
    model, exact, global_layers, batches, out, big_h, big_w, th, tw, tile, halo,
    overlap, max_value, verbose,
):  # fmt: skip
    """The two schemes of `predict_scene` on checked, loaded tiles."""
    if exact:
        return _predict_exact(
            model, global_layers, batches, out, big_h, big_w, th, tw, tile, halo,
            max_value, verbose,
        )  # fmt: skip

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


def _predict_exact(
    model, global_layers, batches, out, big_h, big_w, th, tw, tile, halo,
    max_value, verbose,
):  # fmt: skip
    """The exact multi-pass scheme (see the module docstring)."""
    cys = core_tiles(big_h, tile, halo)
    cxs = core_tiles(big_w, tile, halo)
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
