"""`GeoTiffWriter`: tiled, compressed, georeferenced GeoTIFF written window by window, atomically."""

from __future__ import annotations

import contextlib
import math
import os
import queue
import threading
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from keras_pansharp.data.geotiff.alignment import (
    _ABORT,
    _BIGTIFF_LIMIT,
)
from keras_pansharp.data.geotiff.georef import (
    GDAL_METADATA,
    GDAL_NODATA,
    gdal_metadata_xml,
)
from keras_pansharp.data.geotiff.reader import (
    GeoTiffReader,
)


class GeoTiffWriter:
    """Write an image window by window to a tiled, compressed GeoTIFF.

    Windows may come in any order and size; a row of tiles is compressed and
    written (in a background thread) as soon as all its pixels have been
    given, so memory holds only the incomplete rows of tiles. The file is
    written to a temporary name in the same folder and renamed to `path` by
    `close()` (atomic); on error, or `abort()`, the temporary file is
    removed and `path` is left as it was.

    After the full-resolution image, `close()` adds internal overviews
    (reduced-resolution pages, 2x2 average, nodata-aware) read back from the
    written image window by window, until the smallest fits in one tile.

    Args:
        path: output `.tif` path.
        shape: `(H, W, C)` of the image.
        dtype: pixel dtype (default uint16); `write` accepts only data that
            casts safely (round and clip floats first).
        geo_tags: georeferencing tags as tifffile extratags (e.g.
            `GeoTiffReader(pan).geo.tags`), written to the full-resolution page.
        nodata: nodata value (GDAL_NODATA tag), or None.
        band_descriptions: per-band names (GDAL_METADATA), or None.
        metadata_items: further GDAL_METADATA items `(name, sample, role,
            text)` (e.g. `GeoInfo.band_metadata(bands)`); descriptions given
            in `band_descriptions` replace theirs.
        tile: tile side in pixels (multiple of 16).
        compression: tifffile compression name (`"zlib"`: deflate, readable
            everywhere without extra codecs), or None.
        compression_level: deflate level (1: the default, about 90 % of the
            size reduction of GDAL's default level 6 at several times the
            speed, so compression does not limit the fusion; 9: smallest).
        predictor: horizontal differencing before compression (integer data).
        bigtiff: True/False, or None for automatic (BigTIFF when the
            uncompressed image and overviews may exceed 4 GB).
        overviews: number of overview levels, `"auto"` (halve until the image
            fits in one tile) or 0.
        overwrite: replace an existing `path`; otherwise `FileExistsError`.

    Example:

    >>> with GeoTiffWriter("out.tif", (1024, 1024, 4), geo_tags=pan.geo.tags) as w:  # doctest: +SKIP
    ...     for row in range(0, 1024, 256):
    ...         w.write(block[row : row + 256], row, 0)
    """

    def __init__(
        self,
        path: str | os.PathLike,
        shape: Sequence[int],
        dtype: Any = "uint16",
        *,
        geo_tags: Sequence[tuple] = (),
        nodata: float | None = None,
        band_descriptions: Sequence[str | None] | None = None,
        metadata_items: Sequence[tuple] = (),
        tile: int = 256,
        compression: str | None = "zlib",
        compression_level: int | None = 1,
        predictor: bool = True,
        bigtiff: bool | None = None,
        overviews: int | str = "auto",
        overwrite: bool = False,
    ):
        from keras_pansharp.utils.io import atomic_path

        self.path = Path(path)
        shape = tuple(int(s) for s in shape)
        if len(shape) == 2:
            shape = (*shape, 1)
        if len(shape) != 3 or min(shape) < 1:
            raise ValueError(f"GeoTiffWriter: shape must be (H, W, C), got {shape}")
        if tile % 16 or tile < 16:
            raise ValueError(
                f"GeoTiffWriter: tile must be a multiple of 16, got {tile}"
            )
        self.shape = shape
        self.dtype = np.dtype(dtype)
        self.tile = int(tile)
        if self.path.exists() and not overwrite:
            raise FileExistsError(
                f"{self.path} exists; pass overwrite=True (--overwrite) to replace it"
            )
        self.overwrite = overwrite
        h, w, c = shape
        if overviews == "auto":
            n, side = 0, max(h, w)
            while side > self.tile:
                side = math.ceil(side / 2)
                n += 1
            overviews = n
        self.overviews = int(overviews)
        if bigtiff is None:
            nbytes = h * w * c * self.dtype.itemsize * (4 / 3 if self.overviews else 1)
            bigtiff = nbytes > _BIGTIFF_LIMIT
        self.bigtiff = bool(bigtiff)
        if nodata is not None and self.dtype.kind in "ui":
            info = np.iinfo(self.dtype)
            if not (float(nodata).is_integer() and info.min <= nodata <= info.max):
                warnings.warn(
                    f"{self.path}: nodata {nodata} is not a {self.dtype} value; "
                    "not written",
                    stacklevel=2,
                )
                nodata = None
        self.nodata = nodata
        items = list(metadata_items)
        if band_descriptions is not None:
            items = [
                i for i in items if not (i[1] is not None and i[2] == "description")
            ]
            items += [
                ("DESCRIPTION", b, "description", str(d))
                for b, d in enumerate(band_descriptions)
                if d
            ]
        xml = gdal_metadata_xml(items)
        self._extratags = list(geo_tags)
        if xml:
            self._extratags.append((GDAL_METADATA, 2, 0, xml, True))
        self._nodata_tag = []
        if nodata is not None:
            text = str(int(nodata)) if float(nodata).is_integer() else repr(nodata)
            self._nodata_tag = [(GDAL_NODATA, 2, 0, text, True)]
        self._write_kw = {
            "tile": (self.tile, self.tile),
            "compression": compression,
            "compressionargs": (
                {"level": int(compression_level)}
                if compression and compression_level is not None
                else None
            ),
            "predictor": (
                True if predictor and compression and self.dtype.kind in "ui" else None
            ),
            "photometric": "minisblack",
            "metadata": None,
            "software": "keras_pansharp",
        }
        if c > 1:
            self._write_kw["planarconfig"] = "contig"
        self._rows_of_tiles = math.ceil(h / self.tile)
        self._next = 0  # next row of tiles to write
        self._pending: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        self._closed = False
        self._error: BaseException | None = None
        self._stack = contextlib.ExitStack()
        self.temp_path = self._stack.enter_context(atomic_path(self.path))
        self._queue: queue.Queue = queue.Queue(maxsize=2)
        self._thread = threading.Thread(
            target=self._run, name="GeoTiffWriter", daemon=True
        )
        self._thread.start()

    # -- background writer ----------------------------------------------------

    def _tiles(self) -> Iterator[np.ndarray]:
        while True:
            item = self._queue.get()
            if item is None:
                return
            if item is _ABORT:
                raise RuntimeError("GeoTiffWriter aborted")
            yield from (t[..., 0] if t.shape[2] == 1 else t for t in item)

    def _run(self) -> None:
        import tifffile

        try:
            with tifffile.TiffWriter(self.temp_path, bigtiff=self.bigtiff) as tw:
                tw.write(
                    self._tiles(),
                    shape=self.shape if self.shape[2] > 1 else self.shape[:2],
                    dtype=self.dtype,
                    extratags=self._extratags + self._nodata_tag,
                    **self._write_kw,
                )
        except BaseException as e:  # noqa: BLE001 - re-raised in the caller
            self._error = e
            # Drain so that a producer blocked on put() wakes up.
            with contextlib.suppress(queue.Empty):
                while True:
                    self._queue.get_nowait()

    def _put(self, item) -> None:
        while True:
            if self._error is not None:
                raise RuntimeError(
                    f"GeoTiffWriter: writing {self.temp_path} failed: {self._error}"
                ) from self._error
            try:
                self._queue.put(item, timeout=0.5)
                return
            except queue.Full:
                if not self._thread.is_alive():
                    raise RuntimeError(
                        f"GeoTiffWriter: the writer thread of {self.path} stopped"
                    ) from self._error

    # -- public API -------------------------------------------------------------

    @property
    def rows_written(self) -> int:
        """Rows already handed to the compressor (no longer writable)."""
        return min(self._next * self.tile, self.shape[0])

    def write(self, data, row: int = 0, col: int = 0) -> None:
        """Write `data` (`(h, w, C)` or `(h, w)`) at `(row, col)`.

        Raises:
            ValueError: the window is outside the image, or touches a row of
                tiles that was already written out.
            TypeError: `data` does not cast safely to the writer's dtype.
        """
        if self._closed:
            raise ValueError(f"GeoTiffWriter: {self.path} is closed")
        data = np.asarray(data)
        if data.ndim == 2:
            data = data[..., None]
        h, w, c = self.shape
        dh, dw = data.shape[:2]
        if data.ndim != 3 or data.shape[2] != c:
            raise ValueError(
                f"GeoTiffWriter: data must have shape (h, w, {c}), got {data.shape}"
            )
        if row < 0 or col < 0 or row + dh > h or col + dw > w:
            raise ValueError(
                f"GeoTiffWriter: window ({row}, {col}, {dh}, {dw}) exceeds the image "
                f"size {h} x {w}"
            )
        if data.dtype != self.dtype and not np.can_cast(data.dtype, self.dtype):
            raise TypeError(
                f"GeoTiffWriter: cannot write {data.dtype} data to a {self.dtype} "
                "image safely; round, clip and cast it first"
            )
        if dh == 0 or dw == 0:
            return
        t = self.tile
        first, last = row // t, (row + dh - 1) // t
        if first < self._next:
            raise ValueError(
                f"GeoTiffWriter: rows {row}:{row + dh} touch rows already written "
                f"(rows < {self.rows_written}); write rows of tiles in order"
            )
        for k in range(first, last + 1):
            buf = self._pending.get(k)
            if buf is None:
                rows = min(t, h - k * t)
                buf = (np.zeros((rows, w, c), self.dtype), np.zeros((rows, w), bool))
                self._pending[k] = buf
            arr, mask = buf
            a, b = max(row, k * t), min(row + dh, (k + 1) * t)
            arr[a - k * t : b - k * t, col : col + dw] = data[a - row : b - row]
            mask[a - k * t : b - k * t, col : col + dw] = True
        while self._next in self._pending and self._pending[self._next][1].all():
            self._flush(self._next)

    def _flush(self, k: int) -> None:
        arr, _ = self._pending.pop(k)
        t = self.tile
        h, w, c = self.shape
        tiles = []
        for x0 in range(0, w, t):
            tile = np.zeros((t, t, c), self.dtype)
            part = arr[:, x0 : x0 + t]
            tile[: part.shape[0], : part.shape[1]] = part
            tiles.append(tile)
        self._put(tiles)
        self._next = k + 1

    def close(self) -> Path:
        """Finish the file: wait for the writer, add overviews, rename.

        Returns:
            The final path.

        Raises:
            ValueError: some pixels were never written (the file is removed).
        """
        if self._closed:
            return self.path
        try:
            if self._next < self._rows_of_tiles:
                raise ValueError(
                    f"GeoTiffWriter: only {self.rows_written} of {self.shape[0]} rows "
                    f"of {self.path} were written completely"
                )
            self._put(None)
            self._thread.join()
            if self._error is not None:
                raise RuntimeError(
                    f"GeoTiffWriter: writing {self.temp_path} failed: {self._error}"
                ) from self._error
            self._write_overviews()
            if self.path.exists() and not self.overwrite:
                raise FileExistsError(
                    f"{self.path} appeared while writing; not overwritten (pass "
                    "overwrite=True to replace it)"
                )
        except BaseException as e:
            self._abort(e)
            raise
        self._closed = True
        self._stack.close()  # os.replace(temp, path)
        return self.path

    def _write_overviews(self) -> None:
        import tifffile

        h, w, c = self.shape
        t = self.tile
        for level in range(1, self.overviews + 1):
            src = GeoTiffReader(self.temp_path, level=level - 1, cache_mb=16)
            sh, sw = src.height, src.width
            oh, ow = math.ceil(sh / 2), math.ceil(sw / 2)

            def tiles(src=src, sh=sh, sw=sw, oh=oh, ow=ow):
                for y in range(0, oh, t):
                    for x in range(0, ow, t):
                        block = src.read(
                            (
                                2 * y,
                                2 * x,
                                min(2 * t, sh - 2 * y),
                                min(2 * t, sw - 2 * x),
                            )
                        )
                        tile = np.zeros((t, t, c), self.dtype)
                        small = _downsample2(block, self.nodata, self.dtype)
                        tile[: small.shape[0], : small.shape[1]] = small
                        yield tile if c > 1 else tile[..., 0]

            try:
                with tifffile.TiffWriter(
                    self.temp_path, append=True, bigtiff=self.bigtiff
                ) as tw:
                    tw.write(
                        tiles(),
                        shape=(oh, ow, c) if c > 1 else (oh, ow),
                        dtype=self.dtype,
                        subfiletype=1,
                        extratags=self._nodata_tag,
                        **self._write_kw,
                    )
            finally:
                src.close()

    def _abort(self, exc: BaseException | None = None) -> None:
        if self._closed:
            return
        self._closed = True
        if self._thread.is_alive():
            with contextlib.suppress(queue.Full):
                self._queue.put(_ABORT, timeout=5)
            self._thread.join(timeout=30)
        exc = exc or RuntimeError("aborted")
        self._stack.__exit__(type(exc), exc, exc.__traceback__)  # removes temp

    def abort(self) -> None:
        """Stop writing and remove the temporary file; `path` is untouched."""
        self._abort()

    def __enter__(self) -> GeoTiffWriter:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc is not None:
            self._abort(exc)
        else:
            self.close()

    def __del__(self):
        with contextlib.suppress(Exception):
            if not self._closed:
                self._abort()


def _downsample2(block: np.ndarray, nodata, dtype) -> np.ndarray:
    """2x2 average of `(h, w, C)` ignoring nodata (odd edges: fewer pixels)."""
    h, w, c = block.shape
    ph, pw = h + h % 2, w + w % 2
    vals = np.zeros((ph, pw, c), np.float64)
    vals[:h, :w] = block
    valid = np.zeros((ph, pw, c), bool)
    valid[:h, :w] = True if nodata is None else block != nodata
    vals[~valid] = 0.0
    s = vals.reshape(ph // 2, 2, pw // 2, 2, c).sum((1, 3))
    n = valid.reshape(ph // 2, 2, pw // 2, 2, c).sum((1, 3))
    out = np.divide(s, n, out=np.zeros_like(s), where=n > 0)
    if np.dtype(dtype).kind in "ui":
        out = np.rint(out)
    out = out.astype(dtype)
    if nodata is not None:
        out[n == 0] = nodata
    return out
