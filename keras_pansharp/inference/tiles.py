"""Tile geometry of `predict_tiled`: tile starts, blending weights, cores.

Pure index arithmetic at PAN scale (no model, no backend): where the tiles
of a scene start, the separable blending weights of overlapping tiles, the
disjoint cores and halos of the exact scheme, the centred crop that scene
calibration and adaptation score, and circular reads of the MS for the
exact `interp23tap` of a tile. See `keras_pansharp.inference` for the two
schemes.
"""

from __future__ import annotations

import math

import numpy as np

__all__ = [
    "RATIO",
    "balanced_core_tiles",
    "blend_weights",
    "centre_crop",
    "core_tiles",
    "tile_starts",
    "wrapped_slice",
]

RATIO = 4


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


def centre_crop(pan_shape, crop: int | None, block: int = 32):
    """A centred crop of `pan_shape` whose sides are multiples of `block`.

    Args:
        pan_shape: `(H, W)` of the PAN scene.
        crop: largest side of the crop (rounded down to a multiple of
            `block`, at least `block`); None: the whole scene, trimmed to
            multiples of `block`.
        block: the side the crop's sides are multiples of (the Q index's 32).

    Returns:
        `(row, col, height, width)` at PAN scale; `row` and `col` are
        multiples of 4, so the crop is aligned to the MS grid.
    """
    h, w = pan_shape
    ch, cw = h - h % block, w - w % block
    if crop:
        limit = max(block, int(crop) - int(crop) % block)
        ch, cw = min(ch, limit), min(cw, limit)
    r0 = ((h - ch) // 2) // RATIO * RATIO
    c0 = ((w - cw) // 2) // RATIO * RATIO
    return r0, c0, ch, cw


def wrapped_slice(arr, start: int, stop: int, axis: int) -> np.ndarray:
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
