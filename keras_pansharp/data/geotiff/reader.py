"""`GeoTiffReader`: windowed reading of tiled or striped GeoTIFFs as an `(H, W, C)` array-like."""

from __future__ import annotations

import collections
import math
import os
import threading
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from keras_pansharp.data.geotiff.georef import (
    _COMPRESSION_NAMES,
    GeoInfo,
)
from keras_pansharp.data.readers.validation import DataFormatError

# --------------------------------------------------------------------------
# Reading
# --------------------------------------------------------------------------


def _norm_index(key, size: int, axis_name: str) -> tuple[int, int, int, bool]:
    """A slice or int along one axis -> `(start, stop, step, drop_axis)`."""
    if isinstance(key, slice):
        start, stop, step = key.indices(size)
        if step < 0:
            raise IndexError("GeoTiffReader: negative steps are not supported")
        return start, max(start, stop), step, False
    if isinstance(key, int | np.integer):
        i = int(key) + (size if key < 0 else 0)
        if not 0 <= i < size:
            raise IndexError(f"{axis_name} index {key} out of range for size {size}")
        return i, i + 1, 1, True
    raise IndexError(
        f"GeoTiffReader: {axis_name} index must be an int or a slice, got "
        f"{type(key).__name__}"
    )


class GeoTiffReader:
    """A GeoTIFF as a read-only `(H, W, C)` array-like, read window by window.

    Only the tiles or strips intersecting a window are read and decoded
    (uncompressed contiguous files are memory-mapped), so scenes larger than
    memory can be fed to `predict_scene` directly. Tiled and striped layouts,
    BigTIFF, pixel-interleaved and band-sequential (planar) files and band
    stacks stored one band per page are supported; other multi-page layouts
    are read whole (with a warning).

    Args:
        path: `.tif` / `.tiff` file.
        bands: band indices to expose, in order (e.g. `(1, 2, 4, 6)` for the
            blue/green/red/NIR view of WorldView-3); default all bands.
        level: 0 for the full-resolution image, `k` for the k-th internal
            overview (reduced-resolution page), if the file has one.
        cache_mb: size of the LRU cache of decoded segments (halos and the
            repeated passes of the exact tiled inference re-read segments).

    Attributes:
        shape: `(H, W, C)` with C the number of selected bands.
        dtype: the stored NumPy dtype (returned as is, never rescaled).
        geo: the file's `GeoInfo`.
        num_file_bands: number of bands stored in the file.
        bands: the selected band indices.

    Example:

    >>> with GeoTiffReader("ms.tif", bands=(1, 2, 4, 6)) as ms:  # doctest: +SKIP
    ...     window = ms.read((0, 0, 256, 256))          # (256, 256, 4)
    ...     same = ms[0:256, 0:256]
    """

    def __init__(
        self,
        path: str | os.PathLike,
        bands: Sequence[int] | None = None,
        level: int = 0,
        cache_mb: float = 64,
    ):
        import tifffile

        self.path = Path(path)
        if not self.path.is_file():
            raise FileNotFoundError(f"{self.path}: file not found")
        if self.path.stat().st_size == 0:
            raise DataFormatError(f"{self.path}: file is empty (0 bytes)")
        try:
            self._tif = tifffile.TiffFile(self.path)
            series = self._tif.series[0]
            levels = series.levels
        except Exception as e:
            raise DataFormatError(
                f"{self.path}: not a readable TIFF file (corrupted or truncated?): {e}"
            ) from e
        if not 0 <= level < len(levels):
            self._tif.close()
            raise ValueError(
                f"{self.path}: level {level} not available; the file has "
                f"{len(levels) - 1} overview level(s)"
            )
        self.level = level
        self.num_levels = len(levels)
        self._series = levels[level]
        self._lock = threading.RLock()
        self._cache: collections.OrderedDict = collections.OrderedDict()
        self._cache_bytes = 0
        self._cache_limit = int(cache_mb * 2**20)
        self._whole = None
        self._setup_layout()
        if self.dtype.kind not in "uif":
            self.close()
            raise DataFormatError(
                f"{self.path}: expected integer or float pixels, got {self.dtype}"
            )
        if bands is None:
            bands = tuple(range(self.num_file_bands))
        bands = tuple(int(b) for b in bands)
        bad = [b for b in bands if not 0 <= b < self.num_file_bands]
        if bad or not bands:
            self.close()
            raise ValueError(
                f"{self.path}: band indices {list(bands)} out of range for a file "
                f"with {self.num_file_bands} band(s) (0-based indices)"
            )
        self.bands = bands
        first = self._tif.pages[0]
        self.geo = GeoInfo.from_page(first, self.num_file_bands)

    # -- layout ------------------------------------------------------------

    def _setup_layout(self) -> None:
        series = self._series
        pages = [p for p in series.pages if p is not None]
        page = pages[0]
        sep, depth, length, width, contig = page.shaped
        self.dtype = np.dtype(page.dtype)
        self._mmaps: dict[int, np.memmap] = {}
        if depth == 1 and len(pages) == 1:
            self._pages = [page]
            self._band_src = [(0, s) for s in range(sep * contig)]
        elif (
            depth == 1
            and sep * contig == 1
            and len(series.shape) == 3
            and (tuple(series.shape) == (len(pages), length, width))
        ):  # one band per page
            self._pages = pages
            self._band_src = [(i, 0) for i in range(len(pages))]
        else:
            warnings.warn(
                f"{self.path}: TIFF layout {series.axes} {tuple(series.shape)} is "
                "read whole into memory (windowed reads need one image per page "
                "or one band per page)",
                stacklevel=3,
            )
            from keras_pansharp.data.readers.images import read_tiff

            arr = np.asarray(read_tiff(self.path))
            if arr.ndim == 2:
                arr = arr[..., None]
            self._whole = arr
            self._pages = []
            self._band_src = [(0, s) for s in range(arr.shape[2])]
            self.dtype = arr.dtype
            self.height, self.width = arr.shape[:2]
            self.num_file_bands = arr.shape[2]
            return
        self.height, self.width = int(length), int(width)
        self.num_file_bands = len(self._band_src)
        for i, p in enumerate(self._pages):
            if p.is_memmappable and p.bitspersample == self.dtype.itemsize * 8:
                offset = p.dataoffsets[0]
                self._mmaps[i] = np.memmap(
                    self.path,
                    dtype=self.dtype.newbyteorder(self._tif.byteorder),
                    mode="r",
                    offset=offset,
                    shape=p.shaped,
                )

    @property
    def shape(self) -> tuple[int, int, int]:
        return (self.height, self.width, len(self.bands))

    @property
    def ndim(self) -> int:
        return 3

    def __len__(self) -> int:
        return self.height

    @property
    def is_tiled(self) -> bool:
        return bool(self._pages) and self._pages[0].is_tiled

    @property
    def block_shape(self) -> tuple[int, int]:
        """`(rows, cols)` of one tile, or of one strip (`cols` = width)."""
        if not self._pages:
            return (self.height, self.width)
        p = self._pages[0]
        if p.is_tiled:
            return (int(p.tilelength), int(p.tilewidth))
        return (int(min(p.rowsperstrip, self.height)), self.width)

    @property
    def compression(self) -> str:
        if not self._pages:
            return "unknown"
        code = int(self._pages[0].compression)
        return _COMPRESSION_NAMES.get(code, str(code))

    @property
    def is_bigtiff(self) -> bool:
        return bool(self._tif.is_bigtiff)

    @property
    def is_planar(self) -> bool:
        return bool(self._pages) and (
            self._pages[0].planarconfig == 2 or len(self._pages) > 1
        )

    # -- reading -----------------------------------------------------------

    def __getitem__(self, key) -> np.ndarray:
        if not isinstance(key, tuple):
            key = (key,)
        if any(k is Ellipsis for k in key):
            i = next(i for i, k in enumerate(key) if k is Ellipsis)
            fill = (slice(None),) * (3 - (len(key) - 1))
            key = key[:i] + fill + key[i + 1 :]
        if len(key) > 3:
            raise IndexError(f"GeoTiffReader: too many indices ({len(key)})")
        key = key + (slice(None),) * (3 - len(key))
        r0, r1, rs, rdrop = _norm_index(key[0], self.height, "row")
        c0, c1, cs, cdrop = _norm_index(key[1], self.width, "column")
        bkey = key[2]
        if isinstance(bkey, slice | int | np.integer):
            sel = np.arange(len(self.bands))[bkey]
        else:
            sel = np.asarray(bkey, dtype=int)
        bdrop = np.ndim(sel) == 0
        bands = [self.bands[int(i)] for i in np.atleast_1d(sel)]
        out = self._read(r0, r1, c0, c1, bands)
        if rs != 1 or cs != 1:
            out = out[::rs, ::cs]
        index = (0 if rdrop else slice(None), 0 if cdrop else slice(None))
        out = out[index]
        return out[..., 0] if bdrop else out

    def read(
        self,
        window: tuple[int, int, int, int] | None = None,
        bands: Sequence[int] | None = None,
    ) -> np.ndarray:
        """Read a window `(row, col, height, width)` (default: everything).

        Args:
            window: the window in pixels; it must lie inside the image.
            bands: indices into the selected bands (default: all of them).

        Returns:
            `(height, width, C)` array of the stored dtype.
        """
        if window is None:
            window = (0, 0, self.height, self.width)
        row, col, h, w = (int(v) for v in window)
        if row < 0 or col < 0 or h < 0 or w < 0:
            raise ValueError(f"{self.path}: invalid window {window}")
        if row + h > self.height or col + w > self.width:
            raise ValueError(
                f"{self.path}: window {window} (row, col, height, width) exceeds "
                f"the image size {self.height} x {self.width}"
            )
        sel = range(len(self.bands)) if bands is None else bands
        return self._read(row, row + h, col, col + w, [self.bands[i] for i in sel])

    def __array__(self, dtype=None, copy=None):
        arr = self._read(0, self.height, 0, self.width, list(self.bands))
        return arr if dtype is None else arr.astype(dtype)

    def _read(self, r0, r1, c0, c1, bands: list[int]) -> np.ndarray:
        out = np.zeros((r1 - r0, c1 - c0, len(bands)), dtype=self.dtype)
        if r1 <= r0 or c1 <= c0 or not bands:
            return out
        if self._whole is not None:
            out[...] = self._whole[r0:r1, c0:c1][..., bands]
            return out
        by_page: dict[int, list[tuple[int, int]]] = {}
        for j, b in enumerate(bands):
            p, s = self._band_src[b]
            by_page.setdefault(p, []).append((j, s))
        with self._lock:
            for p, pairs in by_page.items():
                self._read_page(p, pairs, r0, r1, c0, c1, out)
        return out

    def _read_page(self, p, pairs, r0, r1, c0, c1, out) -> None:
        page = self._pages[p]
        outs = [j for j, _ in pairs]
        samples = [s for _, s in pairs]
        separate = page.planarconfig == 2
        mm = self._mmaps.get(p)
        if mm is not None:
            if separate:
                block = mm[samples, 0, r0:r1, c0:c1, 0]
                out[..., outs] = np.moveaxis(np.asarray(block), 0, -1)
            else:
                out[..., outs] = np.asarray(mm[0, 0, r0:r1, c0:c1])[..., samples]
            return
        if page.is_tiled:
            th, tw = int(page.tilelength), int(page.tilewidth)
        else:
            th, tw = int(min(page.rowsperstrip, self.height)), self.width
        nrow = math.ceil(self.height / th)
        ncol = math.ceil(self.width / tw)
        planes = [(s, [(j, 0)]) for j, s in pairs] if separate else [(0, pairs)]
        for plane, plane_pairs in planes:
            for ty in range(r0 // th, (r1 - 1) // th + 1):
                for tx in range(c0 // tw, (c1 - 1) // tw + 1):
                    index = plane * nrow * ncol + ty * ncol + tx
                    seg = self._segment(p, page, index)
                    y0, x0 = ty * th, tx * tw
                    ya, yb = max(r0, y0), min(r1, y0 + th)
                    xa, xb = max(c0, x0), min(c1, x0 + tw)
                    if seg is None:
                        fill = self.geo.nodata if self.geo.nodata is not None else 0
                        for j, _ in plane_pairs:
                            out[ya - r0 : yb - r0, xa - c0 : xb - c0, j] = fill
                        continue
                    part = seg[0, ya - y0 : yb - y0, xa - x0 : xb - x0]
                    for j, s in plane_pairs:
                        out[ya - r0 : yb - r0, xa - c0 : xb - c0, j] = part[..., s]

    def _segment(self, p: int, page, index: int):
        key = (p, index)
        cached = self._cache.get(key)
        if cached is not None:
            self._cache.move_to_end(key)
            return cached
        offset, count = page.dataoffsets[index], page.databytecounts[index]
        data = None
        if count:
            fh = self._tif.filehandle
            fh.seek(offset)
            data = fh.read(count)
        kwargs = {}
        if page.compression in (6, 7, 34892, 33007):
            kwargs = {"jpegtables": page.jpegtables, "jpegheader": page.jpegheader}
        try:
            seg, _, _ = page.decode(data, index, **kwargs)
        except Exception as e:  # noqa: BLE001 - codec errors of any kind
            raise DataFormatError(
                f"{self.path}: cannot decode segment {index} ({self.compression} "
                f"compression): {e}"
            ) from e
        if seg is None:
            return None
        seg = np.asarray(seg, dtype=self.dtype)  # native byte order
        self._cache[key] = seg
        self._cache_bytes += seg.nbytes
        while self._cache_bytes > self._cache_limit and len(self._cache) > 1:
            _, old = self._cache.popitem(last=False)
            self._cache_bytes -= old.nbytes
        return seg

    # -- lifetime ------------------------------------------------------------

    def close(self) -> None:
        """Close the file (the reader cannot read afterwards)."""
        self._mmaps = {}
        self._cache.clear()
        self._cache_bytes = 0
        tif = getattr(self, "_tif", None)
        if tif is not None:
            tif.close()

    def __enter__(self) -> GeoTiffReader:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        return (
            f"GeoTiffReader({str(self.path)!r}, shape={self.shape}, "
            f"dtype={self.dtype}, bands={list(self.bands)})"
        )
