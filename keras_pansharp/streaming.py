"""Fuse a GeoTIFF scene of any size disk to disk, in bounded memory.

`fuse_geotiff(model, ms_path, pan_path, out_path, sensor=...)` opens the MS
and PAN as window-reading array-likes (`GeoTiffReader`), checks that they
form a 4:1 pair over the same ground, and runs `predict_scene` on them with
an `out=` object that hands finished rows of the output to a
`GeoTiffWriter` (tiled, deflate-compressed, georeferenced like the PAN, with
overviews) as soon as the tiling has moved past them. Neither input nor the
output is ever held whole in memory: the resident set is one batch of model
tiles, the decoded-segment caches of the readers and about one row of model
tiles of the output (`tile` rows x the scene width x bands x 4 bytes).

The output equals `predict_scene` on the scene in memory (same tiles, same
calls; `exact` multi-pass included), rounded to uint16 DN and clipped to
`[0, sensor max DN]`.
"""

from __future__ import annotations

import dataclasses
import os
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from keras_pansharp.data.geotiff import GeoTiffReader, GeoTiffWriter, check_alignment
from keras_pansharp.sensors import Sensor, get_sensor

__all__ = ["fuse_geotiff", "FuseResult", "resolve_bands", "model_bands"]


@dataclasses.dataclass
class FuseResult:
    """What `fuse_geotiff` returns.

    Attributes:
        path: the written GeoTIFF.
        shape: `(H, W, C)` of the output (PAN size, selected bands).
        bands: the MS band indices that were fused.
        sensor: the sensor (band subset) used for the max DN.
        exact: whether the exact tiled scheme ran (else blending).
        seconds: wall time of the whole call.
        megapixels_per_second: output PAN pixels per second / 1e6.
        notes: remarks of the MS/PAN consistency check (e.g. a file
            without georeferencing).
    """

    path: Path
    shape: tuple[int, int, int]
    bands: tuple[int, ...]
    sensor: Sensor
    exact: bool
    seconds: float
    megapixels_per_second: float
    notes: list[str]


def model_bands(model) -> int | None:
    """Number of MS bands a model takes (None when it cannot be told)."""
    bands = getattr(model, "bands", None)
    if bands is not None:
        return int(bands)
    try:
        inp = model.input
        if isinstance(inp, dict) and "ms" in inp:
            return int(inp["ms"].shape[-1])
    except (AttributeError, ValueError):
        pass
    try:
        return int(model.output_shape[-1])
    except (AttributeError, ValueError, TypeError):
        return None


def _subset_sensor(sensor: Sensor, bands: Sequence[int]) -> Sensor:
    bands = tuple(bands)
    if bands == tuple(range(sensor.num_bands)):
        return sensor
    if bands == tuple(sensor.rgbn_indices):
        return sensor.rgbn()
    names = tuple(sensor.band_names[b] for b in bands)
    rgbn = tuple(
        bands.index(i) if i in bands else 0 for i in sensor.rgbn_indices
    )  # best effort for a custom subset
    return dataclasses.replace(
        sensor,
        name=f"{sensor.name}_{''.join(str(b) for b in bands)}",
        band_names=names,
        ms_gnyq=tuple(sensor.ms_gnyq[b] for b in bands),
        rgbn_indices=rgbn,
    )


def resolve_bands(
    bands: str | Sequence[int] | None, sensor: str | Sensor, num_file_bands: int
) -> tuple[tuple[int, ...], Sensor]:
    """Resolve a band selection against a sensor and a file.

    Args:
        bands: None (all bands of the file), `"rgbn"` (the sensor's blue,
            green, red and NIR bands), or 0-based indices (a sequence or a
            comma-separated string such as `"1,2,4,6"`).
        sensor: the sensor of the file (name or `Sensor`).
        num_file_bands: bands stored in the MS file.

    Returns:
        `(indices, sensor view)`: the band indices and the `Sensor` describing
        them (e.g. `WV3_RGBN` for the rgbn view of WorldView-3).

    Raises:
        ValueError: an unknown sensor, a file whose band count is not the
            sensor's, or indices out of range.
    """
    sensor = get_sensor(sensor)
    if isinstance(bands, str) and bands.strip().lower() != "rgbn":
        try:
            bands = [int(b) for b in bands.split(",") if b.strip()]
        except ValueError:
            raise ValueError(
                f"bands must be 'rgbn' or comma-separated 0-based indices, got "
                f"{bands!r}"
            ) from None
    if num_file_bands != sensor.num_bands:
        hint = ""
        if sensor.num_bands == 8 and num_file_bands == 4:
            hint = (
                f" For 4-band (blue, green, red, NIR) data of {sensor.name} use "
                f"sensor {sensor.name.lower()}_rgbn."
            )
        raise ValueError(
            f"the MS file has {num_file_bands} bands but sensor {sensor.name} has "
            f"{sensor.num_bands}.{hint}"
        )
    if bands is None:
        return tuple(range(num_file_bands)), sensor
    if isinstance(bands, str):
        return tuple(sensor.rgbn_indices), sensor.rgbn()
    idx = tuple(int(b) for b in bands)
    bad = [b for b in idx if not 0 <= b < num_file_bands]
    if bad or not idx:
        raise ValueError(
            f"band indices {list(idx)} out of range for an MS file with "
            f"{num_file_bands} bands (0-based)"
        )
    return idx, _subset_sensor(sensor, idx)


class _StreamedOutput:
    """`out=` of `predict_scene` that streams finished rows to a writer.

    `predict_scene` visits tiles in raster order (rows of tiles top to
    bottom) and writes (exact mode) or accumulates (blending) each tile into
    `out`. A write starting at row `y0` means every row above `y0` is final:
    those rows are converted to DN (rint, clip) and written out, and only the
    rows from `y0` on stay in memory. Reads return the accumulated values
    (zeros where nothing was written yet).
    """

    def __init__(self, writer, shape, max_value, nodata_mask=None):
        self.shape = tuple(shape)
        self.dtype = np.dtype("float32")
        self.ndim = 3
        self._writer = writer
        self._max = float(max_value)
        self._nodata_mask = nodata_mask
        self._base = 0
        self._buf = np.zeros((0, shape[1], shape[2]), np.float32)

    def _rows(self, key) -> tuple[int, int, int, int]:
        if not (isinstance(key, tuple) and len(key) == 2):
            raise TypeError(f"streamed output: expected [rows, cols], got {key!r}")
        rows, cols = key
        r0, r1, _ = rows.indices(self.shape[0])
        c0, c1, _ = cols.indices(self.shape[1])
        return r0, r1, c0, c1

    def __getitem__(self, key) -> np.ndarray:
        r0, r1, c0, c1 = self._rows(key)
        if r0 < self._base:
            raise RuntimeError(
                f"streamed output: rows {r0}:{r1} were already written to disk "
                f"(rows < {self._base}); tiles must come in raster order"
            )
        have = self._buf[r0 - self._base : r1 - self._base, c0:c1]
        if have.shape[0] == r1 - r0:
            return have  # a view: callers only read it
        out = np.zeros((r1 - r0, c1 - c0, self.shape[2]), np.float32)
        out[: have.shape[0]] = have
        return out

    def __setitem__(self, key, value) -> None:
        r0, r1, c0, c1 = self._rows(key)
        if r0 < self._base:
            raise RuntimeError(
                f"streamed output: rows {r0}:{r1} were already written to disk "
                f"(rows < {self._base}); tiles must come in raster order"
            )
        self._flush(r0)
        need = r1 - self._base
        if need > self._buf.shape[0]:
            grow = np.zeros(
                (need - self._buf.shape[0], self.shape[1], self.shape[2]), np.float32
            )
            self._buf = np.concatenate([self._buf, grow])
        self._buf[r0 - self._base : r1 - self._base, c0:c1] = value

    def _flush(self, upto: int) -> None:
        n = min(upto, self.shape[0]) - self._base
        if n <= 0:
            return
        block = self._buf[:n]
        if block.shape[0] < n:  # rows never written (cannot happen in a tiling)
            block = np.concatenate(
                [block, np.zeros((n - block.shape[0], *block.shape[1:]), np.float32)]
            )
        # In place: these rows leave the buffer.
        np.rint(block, out=block)
        np.clip(block, 0, self._max, out=block)
        dn = block.astype(np.uint16)
        if self._nodata_mask is not None:
            mask, value = self._nodata_mask(self._base, self._base + n)
            dn[mask] = value
        self._writer.write(dn, self._base, 0)
        self._buf = self._buf[n:]  # a view; copied when the buffer grows
        self._base += n

    def close(self) -> None:
        self._flush(self.shape[0])


def fuse_geotiff(
    model,
    ms_path: str | os.PathLike,
    pan_path: str | os.PathLike,
    out_path: str | os.PathLike,
    *,
    sensor: str | Sensor,
    bands: str | Sequence[int] | None = None,
    tile: int = 512,
    batch_size: int | None = None,
    exact: bool | str = "auto",
    overlap: int | None = None,
    overwrite: bool = False,
    progress: bool = True,
    overviews: int | str = "auto",
    out_tile: int = 256,
    cache_mb: float = 64,
    activation_cache_mb: float = 256,
) -> FuseResult:
    """Pan-sharpen a GeoTIFF scene disk to disk in bounded memory.

    The MS and PAN are read window by window (only the tiles/strips each
    model tile needs) and the output is written row of tiles by row of tiles
    to a tiled, deflate-compressed GeoTIFF, so the scene size is limited by
    disk, not memory. The output has the PAN's size and georeferencing (or
    the MS's, scaled, when the PAN has none), the nodata value of the PAN
    (else the MS) with nodata PAN pixels set to nodata in every band, the
    selected MS bands' descriptions, and internal overviews. It is written
    to a temporary file and renamed when complete.

    Args:
        model: a pan-sharpening Keras model taking inputs normalised by the
            sensor's max DN (e.g. `PanTiny.from_preset("pantiny_multisensor")`),
            or any `predict_on_batch` model for blending (see `predict_scene`).
        ms_path: the MS GeoTIFF (`(h, w, C)` DN).
        pan_path: the PAN GeoTIFF (`(4h, 4w)` DN, one band).
        out_path: the output GeoTIFF (uint16 DN).
        sensor: the sensor of the MS file (all its bands), e.g. `"wv3"`.
        bands: None (all), `"rgbn"` (blue, green, red, NIR; e.g. for a
            4-band model on 8-band data) or 0-based band indices.
        tile: model tile side at PAN scale (`predict_scene`).
        batch_size: tiles per model call; default 1 for exact tiling (its
            working set then stays small: about 0.3 GB for PanTiny at
            `tile=512`) and 4 for blending.
        exact: `"auto"`, True or False (`predict_scene`).
        overlap: blending overlap in PAN pixels (`predict_scene`); default
            64, or `tile / 2` (rounded down to a multiple of 4) if smaller.
        overwrite: replace an existing `out_path`.
        progress: show a progress bar with ETA (`keras.utils.Progbar`).
        overviews: overview levels of the output (`"auto"`, a count, or 0).
        out_tile: tile side of the output GeoTIFF.
        cache_mb: decoded-segment cache of each input reader (MB).
        activation_cache_mb: exact tiling: megabytes of the activations kept
            in memory between passes (`predict_scene(cache_mb=...)`); the rest
            goes to an anonymous temporary file (about `112 * H * W` bytes for
            PanTiny on an `H x W` PAN scene).

    Returns:
        A `FuseResult` (path, shape, bands, timing).

    Raises:
        FileNotFoundError: a missing input.
        FileExistsError: `out_path` exists and `overwrite` is False.
        ValueError: PAN not 4x the MS, different extent or CRS, a band count
            that is not the sensor's or the model's, bad band indices.

    Example:

    >>> model = keras_pansharp.PanTiny.from_preset("pantiny_multisensor")  # doctest: +SKIP
    >>> fuse_geotiff(model, "ms.tif", "pan.tif", "fused.tif", sensor="qb")  # doctest: +SKIP
    """
    from keras_pansharp.inference import global_statistics_layers
    from keras_pansharp.scene import predict_scene

    t0 = time.perf_counter()
    if overlap is None:
        overlap = min(64, tile // 2 // 4 * 4)
    out_path = Path(out_path)
    if out_path.exists() and not overwrite:
        raise FileExistsError(
            f"{out_path} exists; pass overwrite=True (--overwrite) to replace it"
        )
    with (
        GeoTiffReader(ms_path, cache_mb=cache_mb) as ms_file,
        GeoTiffReader(pan_path, cache_mb=cache_mb) as pan,
    ):
        notes = check_alignment(ms_file, pan)
        idx, view = resolve_bands(bands, sensor, ms_file.num_file_bands)
        want = model_bands(model)
        if want is not None and want != len(idx):
            hint = ""
            if want == 4 and len(idx) > 4:
                hint = " Select the blue/green/red/NIR bands with bands='rgbn'."
            raise ValueError(
                f"the model takes {want} bands but {len(idx)} MS bands of "
                f"{ms_file.path} were selected ({view.name}).{hint}"
            )
        ms = GeoTiffReader(ms_path, bands=idx, cache_mb=cache_mb)
        try:
            h, w = pan.height, pan.width
            shape = (h, w, len(idx))
            geo_tags = pan.geo.tags
            if not pan.geo.is_georeferenced and ms.geo.is_georeferenced:
                geo_tags = ms.geo.scaled_tags(1 / 4)
            nodata = pan.geo.nodata if pan.geo.nodata is not None else ms.geo.nodata
            if nodata is not None and not (
                float(nodata).is_integer() and 0 <= nodata <= 65535
            ):
                nodata = None
            mask_fn = None
            if pan.geo.nodata is not None and nodata is not None:
                pan_nodata, value = pan.geo.nodata, int(nodata)

                def mask_fn(r0, r1):
                    rows = pan.read((r0, 0, r1 - r0, w))[..., 0]
                    return rows == pan_nodata, value

            writer = GeoTiffWriter(
                out_path,
                shape,
                "uint16",
                geo_tags=geo_tags,
                nodata=nodata,
                metadata_items=ms.geo.band_metadata(idx),
                tile=out_tile,
                overviews=overviews,
                overwrite=overwrite,
            )
            with writer:
                out = _StreamedOutput(writer, shape, view.max_value, mask_fn)
                is_exact = exact is True or (
                    exact == "auto" and bool(global_statistics_layers(model))
                )
                if batch_size is None:
                    batch_size = 1 if is_exact else 4
                predict_scene(
                    model,
                    ms,
                    pan,
                    tile=tile,
                    overlap=overlap,
                    batch_size=batch_size,
                    max_value=float(view.max_value),
                    out=out,
                    verbose=1 if progress else 0,
                    exact=exact,
                    cache_mb=activation_cache_mb,
                )
                out.close()
        finally:
            ms.close()
    seconds = time.perf_counter() - t0
    return FuseResult(
        path=out_path,
        shape=shape,
        bands=idx,
        sensor=view,
        exact=is_exact,
        seconds=seconds,
        megapixels_per_second=h * w / 1e6 / max(seconds, 1e-9),
        notes=notes,
    )
