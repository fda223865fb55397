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
scene is processed in `L + 1` passes over the tiles. Tiles are as large as
`tile` allows but no larger than needed (`balanced_core_tiles`: a 1024-pixel
axis with `tile=512` takes 3 tiles of 368, not 3 of 512). For functional
models whose attention layers each sit in the graph once (PanTiny and its
presets), each pass is one compiled function (`tf.function`; `jax.jit`)
that continues the forward pass where the previous one stopped: pass `s`
reads the input `b` of block `s - 1` kept from pass `s - 1`, recomputes its
attention values `v`, finishes that block with its now fixed whole-scene
attention (`b + v A^T P`, `P` the output projection, then the FFN), runs on
to block `s`, and returns its input `b` and the statistics summed over the
tile's core (each pixel counted once); the last pass writes the cores. So
every activation is computed once (one LayerNorm per block twice), as in
one forward pass over the tiles; see `benchmarks/bench_exact_tiling.py` and
docs/performance.md for the time against untiled `model.predict`. The `b`
kept between passes (`dim` floats per tile pixel, 112 bytes for PanTiny)
stays in memory up to `cache_mb` (default 1024 MB) and goes to an anonymous
temporary file in `cache_dir` (default: the system's temporary folder; no
name on disk, removed when closed, also on errors) beyond it, so memory
stays bounded for any scene size; the disk needs about `112 * H * W` bytes
(plus the halo overhead) for an `H x W` PAN scene (e.g. ~8 GB at 8192^2).
Where the disk has no room, each pass recomputes the earlier segments
instead (exact, slower). Other models (subclassed, or an attention
layer shared between calls) run the same scheme eagerly, each pass from the
inputs with layer hooks (`ChannelAttention.global_stats_mode`): exact, but
about `(L + 1) / 2 + 1` full-model passes (62 s against 6.9 s untiled for
PanTiny at 1024^2 with TensorFlow). Statistics belong to the one scene being
fused (as in an untiled batch, where each image has its own).

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

import functools
import math
import shutil
import sys
import tempfile
import warnings
import weakref

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
    "balanced_core_tiles",
    "receptive_radius",
    "global_statistics_layers",
]

RATIO = 4
UNIT_MAX = 1.5  # largest normalised value taken for [0, 1] data (models.base)
_JAX_GROUPED = True  # JAX: run several batches per compiled call (lax loop)
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
    cache_mb: float = 1024,
    cache_dir: str | None = None,
) -> np.ndarray:
    """Pan-sharpen a whole scene tile by tile, in bounded memory.

    See the module docstring for the two schemes: `exact` (multi-pass,
    disjoint cores with a halo, image-wide statistics such as PanTiny's
    channel attention computed over the whole scene: equals untiled
    prediction up to float rounding) and blending (one pass, overlapping
    tiles blended).

    A model that calibrates its details on each image (a `DetailCalibration`
    layer, e.g. `PanTiny.from_preset("pantiny_multisensor")`) gets one set of
    gains for the whole scene, chosen on its centred crop of at most 1024
    PAN pixels (`keras_pansharp.calibration.scene_calibrated_model`); for a
    scene of at most 1024^2 that is the whole scene, as `model.predict`.

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
        cache_mb: exact mode: megabytes of the activations kept between
            passes (the block input `b` of every tile, see the module docstring) held in
            memory; the rest goes to an anonymous temporary file (0: all on
            disk). On JAX it also caps the tiles run in one compiled call.
        cache_dir: exact mode: folder of that temporary file (default: the
            system's temporary folder, `tempfile.gettempdir()`).

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
    if not cache_mb >= 0:
        raise ValueError(f"predict_scene: cache_mb must be >= 0, got {cache_mb}")
    from keras_pansharp.calibration import (
        has_detail_calibration,
        scene_calibrated_model,
    )

    if has_detail_calibration(model):
        # It chooses detail gains per image; a scene gets one set, chosen on
        # its centred crop, folded into the raw network that is then tiled.
        model = scene_calibrated_model(model, ms, pan, max_value)
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
    """The blending scheme of `predict_scene` on checked, loaded tiles."""
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


# ------------------------------------------------------------- exact: tiling
def balanced_core_tiles(size: int, tile: int, halo: int):
    """The fewest equal tiles of length `<= tile` whose disjoint cores cover
    `[0, size)` with `halo` pixels of context on every inner side.

    Unlike `core_tiles` (tiles of exactly `min(tile, size)` and cores of
    `tile - 2 * halo`, so the last tile is mostly redundant), the tile length
    is shrunk to the smallest multiple of 4 that still covers the axis with
    the same number of tiles: a 1024-pixel axis with `tile=512, halo=20`
    takes 3 tiles of 368 (1104 pixels computed) instead of 3 of 512 (1536).
    Edge tiles are flush with the scene edge (context on one side only);
    starts are multiples of 4 (MS-aligned).

    Args:
        size: axis length (multiple of 4).
        tile: largest tile length (multiple of 4).
        halo: context pixels on each inner side (multiple of 4).

    Returns:
        `(length, tiles)`: the common tile length and, per tile in order,
        `(tile_start, core_start, core_stop)`.

    Raises:
        ValueError: `tile` does not exceed `2 * halo` by at least 4 pixels
            (when the axis needs more than one tile).
    """
    if size <= tile:
        return size, [(0, 0, size)]
    if tile - 2 * halo < RATIO:
        raise ValueError(
            f"predict_scene: tile ({tile}) must exceed 2 * halo ({2 * halo}) by "
            "at least 4 pixels; use a larger tile"
        )
    n = 2
    while True:
        # n tiles of `length` cover `size` iff n * length - 2 (n - 1) halo >=
        # size; with evenly spread (rounded) starts each overlap must still
        # hold 2 * halo, so step up until it does.
        length = -(-(size + 2 * (n - 1) * halo) // (n * RATIO)) * RATIO
        while length <= tile:
            starts = [
                RATIO * round(i * (size - length) / ((n - 1) * RATIO)) for i in range(n)
            ]
            if all(length - (b - a) >= 2 * halo for a, b in zip(starts, starts[1:])):
                bounds = [0]
                for a, b in zip(starts, starts[1:]):
                    # Cut the overlap in the middle (multiple of 4; each side
                    # keeps >= halo since the overlap is >= 2 * halo).
                    mid = (b + a + length) // 2
                    cut = RATIO * (mid // RATIO)
                    if cut - b < halo:
                        cut += RATIO
                    bounds.append(cut)
                bounds.append(size)
                return length, [
                    (s, bounds[i], bounds[i + 1]) for i, s in enumerate(starts)
                ]
            length += RATIO
        n += 1


# ------------------------------------------------------ exact: compiled plan
class _Unsupported(Exception):
    """The model's graph does not fit the compiled exact scheme."""


class _Segment:
    """One pass of the compiled exact scheme (see `_ExactPlan`)."""

    def __init__(self, prev, start, nodes, end, feeds, stats):
        self.prev = prev  # None, or (TransformerBlock | None, attention) to finish
        self.start = start  # KerasTensor the finished block outputs (or None)
        self.nodes = nodes  # graph nodes from `start` and `feeds` to `end`
        self.end = end  # next block's input, or the model output
        self.feeds = feeds  # {input name: KerasTensor} read by `nodes`
        self.stats = stats  # None (last segment), or (norm | None, attention)


class _ExactPlan:
    """The exact scheme of a functional model cut at its attention layers.

    With `b_s` the input of the block holding attention layer `s` and `v_s`
    that layer's values, segment `s`

    1. finishes block `s - 1` from the cached `b_{s-1}`: `v_{s-1}` from
       `LN(b_{s-1})`, then with the now fixed `M_{s-1} = A_{s-1}^T P` (`P`
       the attention's output projection) `y = b + v M`, `y + FFN(LN(y))`
       (`TransformerBlock`), or `v M` for a bare `ChannelAttention` node;
    2. runs the graph from there (and the model inputs it reads) to `b_s`;
    3. computes `q_s, k_s` and the masked core sums of the statistics.

    The last segment finishes the last block and runs the graph to the output.
    So every activation is computed once per tile, as in one forward pass
    (the block's first LayerNorm twice); only `b_s` crosses from one pass to
    the next (keeping `v_s` too measured slower: twice the bytes to keep,
    which at 2048^2 spilled to disk). Each segment is one
    backend-compiled function (`tf.function`; `jax.jit` with the variables as
    arguments; eager under `torch.no_grad` on PyTorch), traced once for the
    fixed tile and batch shape.
    """

    def __init__(self, model, segments):
        self.variables = list(model.variables)
        self.segments = segments
        self._compiled: dict[int, object] = {}

    def _body(self, seg):
        from keras import ops

        from keras_pansharp.utils import perf

        def body(bv, m, feeds, boxes):
            values = {id(t): feeds.get(name) for name, t in seg.feeds.items()}
            if seg.prev is not None:
                block, attn = seg.prev
                (b,) = bv
                # `v` again from the kept block input (cheaper than keeping
                # it: half the bytes between passes, one LayerNorm more).
                norm = None if block is None else block.norm1
                v = _qkv(b if norm is None else norm(b), attn, (2,))[0]
                y = perf.pointwise_conv(v, ops.cast(m, v.dtype))
                if block is not None:
                    y = b + y
                    y = y + block.ffn(block.norm2(y))
                values[id(seg.start)] = y
            for node in seg.nodes:
                args, kwargs = node.arguments.fill_in(values)
                if "training" in getattr(node.operation, "_call_context_args", ()):
                    kwargs["training"] = False
                outputs = node.operation(*args, **kwargs)
                for kt, value in zip(node.outputs, keras.tree.flatten(outputs)):
                    values[id(kt)] = value
            out = values[id(seg.end)]
            if seg.stats is None:
                return (out,)
            return (out, *_qkv_statistics(out, *seg.stats, boxes))

        return body

    def run(self, s, bv, m, feeds, boxes, grouped=False):
        """Segment `s` on one unit of tiles.

        Args:
            s: segment index.
            bv: None, or `(b,)` of the previous segment (given up: on JAX
                their buffers are reused for the new ones).
            m: None, or the `(dim, dim)` `A^T P` finishing the previous block.
            feeds: `{input name: array or None}` read by the segment.
            boxes: `(..., 4)` int32 core boxes.
            grouped: (JAX only) every array has a leading axis of batches,
                run in one call.

        Returns:
            `[out]` (NumPy) for the last segment, else `[b]` as backend
            tensors (left where the backend holds them, for the next pass)
            followed by the NumPy statistics `G, sq_q, sq_k`.
        """
        fn = self._compiled.get((s, grouped))
        if fn is None:
            fn = self._compile(self.segments[s], grouped)
            self._compiled[(s, grouped)] = fn
        res = list(fn(bv, m, feeds, boxes))
        if len(res) == 1:
            return [keras.ops.convert_to_numpy(res[0])]
        return res[:1] + [keras.ops.convert_to_numpy(t) for t in res[1:]]

    def _compile(self, seg, grouped):
        body = self._body(seg)
        backend = keras.backend.backend()
        if backend == "tensorflow":
            import tensorflow as tf

            # Relaxed shapes after a second tile/batch shape: no retracing
            # per scene size. (A partial: TensorFlow would count the traces of
            # all segments, which share `body`'s code, as retracing.) No
            # AutoGraph: the body is plain Python over the graph's nodes.
            return tf.function(
                functools.partial(body), reduce_retracing=True, autograph=False
            )
        if backend == "jax":
            return self._compile_jax(seg, body, grouped)
        if backend == "torch":
            import torch

            def eager(*args):
                with torch.no_grad():
                    return body(*args)

            return eager
        return body  # pragma: no cover - other backends run eagerly

    def _compile_jax(self, seg, body, grouped):
        import jax
        from jax import lax

        variables = self.variables

        def group_call(bv, m, feeds, boxes):
            """The batches of a group in one loop: XLA reuses one batch's
            buffers for the next, and `b` is updated in place."""
            n = boxes.shape[0]

            def one(i, bv):
                args = (None if bv is None else (bv[0][i],), m)
                return body(*args, jax.tree.map(lambda x: x[i], feeds), boxes[i])

            if seg.stats is None:
                return lax.map(lambda i: one(i, bv), jax.numpy.arange(n))
            shapes = jax.eval_shape(lambda: one(0, bv))
            init = [jax.numpy.zeros((n, *t.shape), t.dtype) for t in shapes[1:]]
            if bv is None:
                bv = [jax.numpy.zeros((n, *t.shape), t.dtype) for t in shapes[:1]]

            def step(i, carry):
                new = one(i, carry[:1])
                return tuple(
                    lax.dynamic_update_index_in_dim(c, t, i, 0)
                    for c, t in zip(carry, new)
                )

            return lax.fori_loop(0, n, step, (*bv, *init))

        def pure(state, bv, m, feeds, boxes):
            with keras.StatelessScope(state_mapping=list(zip(variables, state))):
                return (group_call if grouped else body)(bv, m, feeds, boxes)

        # The previous `b` is dead after the call: donate its buffer to
        # the new one (same shape) instead of allocating afresh.
        donate = (1,) if seg.stats is not None and seg.prev is not None else ()
        jitted = jax.jit(pure, donate_argnums=donate)
        return lambda *args: jitted([v.value for v in variables], *args)


def _qkv(a, attn, parts):
    """Parts (0: q, 1: k, 2: v) of `ChannelAttention` step 1 on its input `a`.

    `DWConv3x3(Conv1x1(a))` with the kernels sliced per part, as the layer
    does (with its own fast `perf` formulation where this `perf` has it).
    """
    from keras import ops

    from keras_pansharp.utils import perf

    dim = attn.dim
    kernel = ops.cast(attn.qkv.kernel, a.dtype)
    kernel = ops.reshape(kernel, (kernel.shape[-2], kernel.shape[-1]))
    dw_kernel = ops.cast(attn.qkv_dwconv.kernel, a.dtype)
    fused = getattr(perf, "pointwise_depthwise", None)
    depthwise = getattr(perf, "depthwise_conv3x3", None)

    def conv(i):
        pw, dw = (
            kernel[:, i * dim : (i + 1) * dim],
            dw_kernel[:, :, i * dim : (i + 1) * dim],
        )
        if fused is not None:
            return fused(a, pw, dw)[0]
        if depthwise is not None:  # pragma: no cover - older perf module
            return depthwise(perf.pointwise_conv(a, pw), dw)
        return ops.depthwise_conv(  # pragma: no cover - older perf module
            perf.pointwise_conv(a, pw), dw, padding="same"
        )

    return [conv(i) for i in parts]


def _qkv_statistics(b, norm, attn, boxes):
    """`(sum q k^T, sum q^2, sum k^2)` over each tile's core.

    `b` is the block input (`norm` its LayerNorm, or None when `attn` takes
    `b` itself); q, k as in `ChannelAttention` step 1 (`_qkv`); `boxes`
    `(B, 4)` int32 core boxes `(y0, y1, x0, x1)` in tile coordinates (empty
    for the padding of the last batch). Float32 sums per tile, like the
    untiled call. (`v` is computed in the next pass, from the kept `b`.)
    """
    from keras import ops

    dim = attn.dim
    q, k = _qkv(b if norm is None else norm(b), attn, (0, 1))
    shape = ops.shape(q)  # dynamic on TensorFlow (relaxed tile shapes)
    rows = ops.expand_dims(ops.arange(shape[1], dtype="int32"), 1)
    cols = ops.expand_dims(ops.arange(shape[2], dtype="int32"), 0)
    boxes = ops.convert_to_tensor(boxes, "int32")

    def edge(i):
        return ops.reshape(boxes[:, i], (-1, 1, 1))

    inside = ops.logical_and(
        ops.logical_and(rows >= edge(0), rows < edge(1)),
        ops.logical_and(cols >= edge(2), cols < edge(3)),
    )
    mask = ops.reshape(ops.cast(inside, "float32"), (shape[0], -1, 1))
    q = ops.reshape(ops.cast(q, "float32"), (shape[0], -1, dim)) * mask
    k = ops.reshape(ops.cast(k, "float32"), (shape[0], -1, dim))
    return (
        # Contracting the pixel axis directly (no transposed copy of q: on
        # JAX/XLA CPU that copy costs as much as computing q, k and v).
        ops.einsum("bpi,bpj->bij", q, k),
        ops.sum(ops.square(q), axis=1),
        ops.sum(ops.square(k) * mask, axis=1),
    )


def _graph_nodes(end, start, inputs):
    """Nodes computing `end` from `start` and the model `inputs` (topological).

    Returns:
        `(nodes, feeds)`: the nodes to run and the `{name: KerasTensor}` model
        inputs they read.

    Raises:
        _Unsupported: `end` does not depend on `start`.
    """
    by_id = {id(t): name for name, t in inputs.items()}
    nodes, seen, feeds, reached = [], set(), {}, [start is None]

    def visit(tensor):
        if start is not None and tensor is start:
            reached[0] = True
            return
        if id(tensor) in by_id:
            feeds[by_id[id(tensor)]] = tensor
            return
        history = tensor._keras_history
        node = history.operation._inbound_nodes[history.node_index]
        if id(node) in seen:
            return
        seen.add(id(node))
        if node.is_input:
            raise _Unsupported("an input outside the model's input dict")
        for parent in node.input_tensors:
            visit(parent)
        nodes.append(node)

    visit(end)
    if not reached[0]:
        raise _Unsupported("a segment does not depend on the previous one")
    return nodes, dict(sorted(feeds.items()))


def _exact_plan(model, global_layers) -> _ExactPlan | None:
    """The compiled exact scheme of `model`, or None where it does not apply.

    Applies to functional models with dict inputs (`ms`, `pan`, `lms`) and
    one output whose global-statistics layers are each either a node of the
    graph or the `attn` of a `TransformerBlock` node (PanTiny), called once,
    such that the graph between two consecutive such nodes runs no other
    one. Other models use the eager scheme.
    """
    from keras_pansharp.layers.transformer import TransformerBlock

    try:
        inputs, output = model.input, model.output
    except (AttributeError, ValueError):
        return None
    if not isinstance(inputs, dict) or not set(inputs) <= {"ms", "pan", "lms"}:
        return None
    if isinstance(output, list | tuple | dict):
        return None
    global_ids = {id(g) for g in global_layers}

    def runs_global(node):
        op = node.operation
        subs = _all_layers(op) if isinstance(op, keras.layers.Layer) else []
        return id(op) in global_ids or any(id(sub) in global_ids for sub in subs)

    try:
        all_nodes, _ = _graph_nodes(output, None, inputs)
        stops = []
        for layer in global_layers:
            owner = [
                node
                for node in all_nodes
                if node.operation is layer
                or (
                    isinstance(node.operation, keras.layers.Layer)
                    and any(sub is layer for sub in _all_layers(node.operation))
                )
            ]
            if (
                len(owner) != 1
                or len(owner[0].input_tensors) != 1
                or len(owner[0].outputs) != 1
            ):
                return None
            op = owner[0].operation
            if op is layer:
                block, norm = None, None
            elif type(op) is TransformerBlock and op.attn is layer:
                # (Not a subclass: its `call` is what segments replay.)
                block, norm = op, op.norm1
            else:
                return None
            stops.append((owner[0], block, norm, layer))
        segments = []
        for s in range(len(stops) + 1):
            prev = (stops[s - 1][1], stops[s - 1][3]) if s else None
            start = stops[s - 1][0].outputs[0] if s else None
            end = stops[s][0].input_tensors[0] if s < len(stops) else output
            nodes, feeds = _graph_nodes(end, start, inputs)
            if any(runs_global(node) for node in nodes):
                return None
            stats = stops[s][2:] if s < len(stops) else None
            segments.append(_Segment(prev, start, nodes, end, feeds, stats))
    except (_Unsupported, AttributeError, IndexError):
        return None
    return _ExactPlan(model, segments)


_PLANS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _cached_plan(model, global_layers):
    """`_exact_plan(model)`, built (and its functions traced) once per model."""
    try:
        return _PLANS[model]
    except KeyError:
        pass
    except TypeError:  # pragma: no cover - not weak-referenceable
        return _exact_plan(model, global_layers)
    plan = _PLANS[model] = _exact_plan(model, global_layers)
    return plan


def _nbytes(fields) -> int:
    """Bytes of arrays given as `(shape, dtype)` pairs."""
    return sum(
        int(np.prod(shape)) * np.dtype(keras.backend.standardize_dtype(dtype)).itemsize
        for shape, dtype in fields
    )


class _ActivationCache:
    """`(b,)` of each batch of tiles between two passes of the exact scheme.

    Batches are kept as the backend's own tensors (no copy) while their total
    size stays within `budget_mb`; the others go to an anonymous temporary
    file in `directory`, read and written with plain file I/O (so those pages
    are not part of the process's resident set). Writing a batch replaces
    the one stored under the same key (in place).
    """

    def __init__(self, budget_mb, directory):
        self.budget = max(float(budget_mb), 0.0) * 2**20
        self.directory = directory
        self._mem: dict[int, list] = {}
        self._used = 0
        self._slots: dict[int, tuple[int, list]] = {}  # key: (offset, fields)
        self._end = 0
        self._file = None

    def put(self, key, arrays):
        fields = [(tuple(a.shape), a.dtype) for a in arrays]
        size = _nbytes(fields)
        if key in self._mem:
            old = self._mem.pop(key)
            self._used -= _nbytes([(a.shape, a.dtype) for a in old])
        if key not in self._slots and self._used + size <= self.budget:
            self._mem[key] = list(arrays)
            self._used += size
            return
        data = [np.ascontiguousarray(keras.ops.convert_to_numpy(a)) for a in arrays]
        fields = [(a.shape, a.dtype) for a in data]
        slot = self._slots.get(key)
        if slot is None or _nbytes(slot[1]) != size:
            if self._file is None:
                self._file = tempfile.TemporaryFile(dir=self.directory)
            slot = (self._end, fields)
            self._end += size
        self._slots[key] = (slot[0], fields)
        self._file.seek(slot[0])
        for a in data:
            self._file.write(memoryview(a.reshape(-1).view(np.uint8)))

    def get(self, key) -> list:
        if key in self._mem:
            return self._mem[key]
        offset, fields = self._slots[key]
        self._file.seek(offset)
        out = []
        for shape, dtype in fields:
            arr = np.empty(shape, dtype)
            view = memoryview(arr.reshape(-1).view(np.uint8))
            got = 0
            while got < len(view):
                chunk = self._file.readinto(view[got:])
                if not chunk:
                    raise RuntimeError("predict_scene: activation cache truncated")
                got += chunk
            out.append(arr)
        return out

    def close(self):
        if self._file is not None:
            self._file.close()
        self._mem, self._slots, self._file = {}, {}, None


def _fits_disk(nbytes, directory) -> bool:
    """Whether `nbytes` fit in `directory` (default: the temporary folder)
    leaving 1 GB free."""
    free = shutil.disk_usage(directory or tempfile.gettempdir()).free
    return nbytes <= free - 2**30


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
