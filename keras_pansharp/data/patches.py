"""Cut PanCollection-format training files from whole scenes (Wald's protocol).

`make_training_set` degrades a full-resolution MS + PAN scene by 4 with
`keras_pansharp.signal.wald_degrade` (MTF-matched MS filter + decimation,
MATLAB bicubic PAN), keeps the original MS as ground truth, upsamples the
degraded MS with `interp23tap`, and writes patches to an HDF5 file with the
PanCollection layout (`gt`, `ms`, `lms`, `pan`, channels-first, DN). Optional
full-resolution crops (no `gt`) go to a second file.
"""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Iterator, Mapping
from pathlib import Path

import numpy as np

from keras_pansharp.data.readers import RATIO, Scene, read_scene
from keras_pansharp.sensors import Sensor, get_sensor

__all__ = [
    "make_training_set",
    "wald_scene",
    "patch_grid",
    "write_pancollection",
    "atomic_h5",
]


@contextlib.contextmanager
def atomic_h5(path: str | os.PathLike, overwrite: bool = False) -> Iterator:
    """Open a new HDF5 file for writing that appears at `path` only when complete.

    Writes to a temporary file in the same folder, then `os.replace`s it, so
    readers never see a partial file and concurrent writers cannot corrupt
    each other (the last complete file wins). On error the temporary file is
    removed.

    Args:
        path: final file path.
        overwrite: replace an existing file. If `False` and `path` exists,
            raises `FileExistsError` before writing anything.

    Yields:
        An `h5py.File` open for writing.
    """
    import h5py

    path = Path(path)
    if path.exists() and not overwrite:
        raise FileExistsError(f"{path} exists; pass overwrite=True to replace it.")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.parent / f".{path.name}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    try:
        with h5py.File(tmp, "w") as f:
            yield f
        if path.exists() and not overwrite:
            raise FileExistsError(
                f"{path} appeared while writing; pass overwrite=True to replace it."
            )
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def write_pancollection(
    path: str | os.PathLike,
    arrays: Mapping[str, np.ndarray],
    sensor: str | Sensor,
    overwrite: bool = False,
    dtype: str = "float32",
    attrs: Mapping[str, object] | None = None,
) -> Path:
    """Write channels-last sample arrays as a PanCollection HDF5 file (atomic).

    Args:
        path: output `.h5` path.
        arrays: `{"ms": (N, h, w, C), "pan": (N, 4h, 4w[, 1]), "lms": (N, 4h,
            4w, C)[, "gt": (N, 4h, 4w, C)]}` in DN.
        sensor: sensor name or `Sensor` (stored in the `sensor` attribute, so
            `PanCollectionReader` needs no `sensor=` argument).
        overwrite: replace an existing file.
        dtype: stored dtype (`"float32"` default; PanCollection uses float64).
        attrs: extra file attributes.

    Returns:
        The path written.
    """
    sensor = get_sensor(sensor)
    with atomic_h5(path, overwrite) as f:
        for key in ("gt", "ms", "lms", "pan"):
            if key not in arrays:
                continue
            a = np.asarray(arrays[key])
            if key == "pan" and a.ndim == 3:
                a = a[..., None]
            a = np.ascontiguousarray(np.moveaxis(a, -1, 1), dtype=dtype)
            f.create_dataset(key, data=a, chunks=(1, *a.shape[1:]))
        f.attrs["sensor"] = sensor.name
        f.attrs["ratio"] = RATIO
        f.attrs["max_value"] = sensor.max_value
        for k, v in (attrs or {}).items():
            f.attrs[k] = v
    return Path(path)


def wald_scene(ms: np.ndarray, pan: np.ndarray, sensor: str | Sensor) -> dict:
    """Reduced-resolution version of a whole scene by Wald's protocol.

    Args:
        ms: `(h, w, C)` full-resolution MS (h, w multiples of 4), DN.
        pan: `(4h, 4w)` PAN, DN.
        sensor: sensor whose MTF gains shape the MS filter.

    Returns:
        Channels-last float64 arrays: `gt` (the input MS, `(h, w, C)`), `ms`
        `(h/4, w/4, C)`, `pan` `(h, w)`, `lms` `(h, w, C)` (interp23tap of
        `ms`).
    """
    from keras_pansharp.signal import interp23tap, wald_degrade

    sensor = get_sensor(sensor)
    ms = np.asarray(ms, np.float64)
    ms_lr, pan_lr = wald_degrade(ms, np.asarray(pan, np.float64), sensor)
    return {"gt": ms, "ms": ms_lr, "pan": pan_lr, "lms": interp23tap(ms_lr)}


def patch_grid(height: int, width: int, patch: int, stride: int) -> list:
    """Top-left corners of a regular grid of `patch` x `patch` windows."""
    if patch > height or patch > width:
        return []
    rows = range(0, height - patch + 1, stride)
    cols = range(0, width - patch + 1, stride)
    return [(r, c) for r in rows for c in cols]


def _cut(full: Mapping[str, np.ndarray], corners, patch: int) -> dict:
    """Cut PAN-scale `patch` windows (MS windows `patch/4`) at `corners`."""
    out = {}
    q = patch // RATIO
    for key, arr in full.items():
        if key == "ms":
            out[key] = np.stack(
                [
                    arr[r // RATIO : r // RATIO + q, c // RATIO : c // RATIO + q]
                    for r, c in corners
                ]
            )
        else:
            out[key] = np.stack([arr[r : r + patch, c : c + patch] for r, c in corners])
    return out


def _check_geometry(patch_size: int, stride: int) -> None:
    for name, v in (("patch_size", patch_size), ("stride", stride)):
        if v <= 0 or v % RATIO:
            raise ValueError(f"{name} must be a positive multiple of {RATIO}, got {v}.")


def _write_patches(
    path, full, corners, patch, sensor, overwrite, dtype, attrs, bar, done
):
    n = len(corners)
    chunk = 64
    with atomic_h5(path, overwrite) as f:
        dsets = {}
        for key, arr in full.items():
            c = arr.shape[2] if arr.ndim == 3 else 1
            size = patch // RATIO if key == "ms" else patch
            dsets[key] = f.create_dataset(
                key, shape=(n, c, size, size), dtype=dtype, chunks=(1, c, size, size)
            )
        for start in range(0, n, chunk):
            part = _cut(full, corners[start : start + chunk], patch)
            for key, a in part.items():
                if a.ndim == 3:
                    a = a[..., None]
                dsets[key][start : start + len(a)] = np.moveaxis(a, -1, 1).astype(dtype)
            done += len(part["pan"])
            if bar is not None:
                bar.update(done)
        f.attrs["sensor"] = sensor.name
        f.attrs["ratio"] = RATIO
        f.attrs["max_value"] = sensor.max_value
        for k, v in attrs.items():
            f.attrs[k] = v
    return done


def make_training_set(
    ms_scene: str | os.PathLike | np.ndarray | Scene,
    pan_scene: str | os.PathLike | np.ndarray | None = None,
    sensor: str | Sensor | None = None,
    patch_size: int = 64,
    stride: int | None = None,
    out: str | os.PathLike = "train_x.h5",
    overwrite: bool = False,
    fr_out: str | os.PathLike | None = None,
    ms_key: str | None = None,
    pan_key: str | None = None,
    scale: float = 1.0,
    dtype: str = "float32",
    progress: bool = False,
) -> dict:
    """Make a PanCollection-compatible RR training file from a scene.

    Wald's protocol (REFERENCE §5): the scene's MS is the ground truth; MS
    and PAN are degraded by 4 (`wald_degrade`); the degraded MS is upsampled
    with `interp23tap` over the whole scene (so patches have no border
    artefacts); then `patch_size` x `patch_size` windows (at the ground
    truth's scale; MS windows are `patch_size/4`) are cut on a grid with step
    `stride`. Rows/columns beyond a multiple of 4 MS pixels are not used.

    With `fr_out`, full-resolution crops of the original pair (PAN windows of
    `patch_size`, MS `patch_size/4`, `lms` = interp23tap of the whole MS, no
    `gt`) are written too, e.g. for full-resolution validation.

    Writes are atomic (temporary file + rename) and existing files are never
    replaced unless `overwrite=True`.

    Args:
        ms_scene: MS file (`.tif`, `.mat`), a `.mat` holding both images, an
            `(h, w, C)` array, or a `Scene`.
        pan_scene: PAN file or `(4h, 4w)` array (`None` for a `Scene` or a
            `.mat` holding both).
        sensor: sensor name or `Sensor` (required unless a `Scene` is given).
        patch_size: window size in GT pixels (= RR PAN pixels), multiple of 4.
        stride: grid step (multiple of 4); default `patch_size`.
        out: RR output `.h5` path.
        overwrite: replace existing output files.
        fr_out: optional FR output `.h5` path.
        ms_key, pan_key: variable names inside `.mat` files.
        scale: multiply input values by this (e.g. 2047 for [0, 1] data).
        dtype: stored dtype.
        progress: show a `keras.utils.Progbar`.

    Returns:
        `{"rr": Path, "rr_samples": N[, "fr": Path, "fr_samples": M]}`.

    Raises:
        FileExistsError: an output exists and `overwrite` is `False`.
        DataFormatError: invalid scene (see `read_scene`).
        ValueError: bad sizes (scene smaller than one patch, ...).

    Example:

    ```python
    make_training_set("ms.tif", "pan.tif", "wv3", patch_size=64, stride=32,
                      out="train_wv3.h5")
    ```
    """
    patch_size = int(patch_size)
    stride = patch_size if stride is None else int(stride)
    _check_geometry(patch_size, stride)
    outputs = [Path(out)] + ([Path(fr_out)] if fr_out is not None else [])
    if len(outputs) == 2 and outputs[0].resolve() == outputs[1].resolve():
        raise ValueError("out and fr_out must be different files.")
    for p in outputs:
        if p.exists() and not overwrite:
            raise FileExistsError(f"{p} exists; pass overwrite=True to replace it.")

    if isinstance(ms_scene, Scene):
        scene = ms_scene
        if sensor is not None and get_sensor(sensor).name != scene.sensor.name:
            raise ValueError(
                f"sensor {get_sensor(sensor).name} differs from the scene's "
                f"{scene.sensor.name}."
            )
    else:
        if sensor is None:
            raise ValueError("make_training_set: `sensor` is required.")
        scene = read_scene(
            ms_scene,
            pan_scene,
            sensor=sensor,
            ms_key=ms_key,
            pan_key=pan_key,
            scale=scale,
        )
    sensor = scene.sensor
    h, w = scene.ms.shape[:2]
    h4, w4 = h - h % RATIO, w - w % RATIO
    ms = np.asarray(scene.ms[:h4, :w4], np.float64)
    pan = np.asarray(scene.pan[: RATIO * h4, : RATIO * w4], np.float64)
    rr_corners = patch_grid(h4, w4, patch_size, stride)
    if not rr_corners:
        raise ValueError(
            f"{scene.source}: MS scene {h}x{w} is smaller than one patch of "
            f"{patch_size} (RR patches are cut at the MS scale)."
        )
    fr_corners = []
    if fr_out is not None:
        fr_corners = patch_grid(RATIO * h4, RATIO * w4, patch_size, stride)
        if not fr_corners:
            raise ValueError(
                f"{scene.source}: PAN scene {RATIO * h4}x{RATIO * w4} is smaller than "
                f"one FR patch of {patch_size}."
            )
    total = len(rr_corners) + len(fr_corners)

    bar = None
    if progress:
        import keras

        print(
            f"Wald degradation of {scene.source} ({sensor.name}, MS {h4}x{w4}, "
            f"PAN {RATIO * h4}x{RATIO * w4}); writing {total} patches."
        )
        bar = keras.utils.Progbar(total, unit_name="patch")
    full = wald_scene(ms, pan, sensor)
    attrs = {"protocol": "wald_rr", "patch_size": patch_size, "stride": stride}
    done = _write_patches(
        outputs[0],
        full,
        rr_corners,
        patch_size,
        sensor,
        overwrite,
        dtype,
        attrs,
        bar,
        0,
    )
    result = {"rr": outputs[0], "rr_samples": len(rr_corners)}
    del full
    if fr_out is not None:
        from keras_pansharp.signal import interp23tap

        fr_full = {"ms": ms, "pan": pan, "lms": interp23tap(ms)}
        attrs = {
            "protocol": "full_resolution",
            "patch_size": patch_size,
            "stride": stride,
        }
        _write_patches(
            outputs[1],
            fr_full,
            fr_corners,
            patch_size,
            sensor,
            overwrite,
            dtype,
            attrs,
            bar,
            done,
        )
        result.update(fr=outputs[1], fr_samples=len(fr_corners))
    return result
