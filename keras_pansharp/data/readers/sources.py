"""`open_source`: turn a path, reader, `Scene` or dict of arrays into a reader."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from keras_pansharp.data.readers.arrays import ArrayReader
from keras_pansharp.data.readers.base import PairReader
from keras_pansharp.data.readers.folders import FolderReader
from keras_pansharp.data.readers.pancollection import PanCollectionReader
from keras_pansharp.data.readers.scenes import Scene
from keras_pansharp.data.readers.validation import DataFormatError
from keras_pansharp.sensors import Sensor


def open_source(
    source: Any,
    sensor: str | Sensor | None = None,
    max_value: float | None = None,
) -> PairReader:
    """Turn a path, reader, `Scene` or dict of arrays into a `PairReader`.

    Args:
        source: a `PairReader` (returned as is); an `.h5` path
            (`PanCollectionReader`); a folder with `ms/` and `pan/`
            (`FolderReader`); a `Scene`; or a dict of channels-last arrays
            `{"ms", "pan"[, "lms", "gt"]}` in DN (`ArrayReader`).
        sensor: sensor of the data (ignored for readers, which carry one).
        max_value: optional normalisation constant override.

    Returns:
        A `PairReader`.
    """
    if isinstance(source, PairReader):
        return source
    if isinstance(source, Scene):
        return source.reader(max_value)
    if isinstance(source, Mapping):
        unknown = set(source) - {"ms", "pan", "lms", "gt"}
        if unknown or not {"ms", "pan"} <= set(source):
            raise DataFormatError(
                f"array source: expected keys 'ms', 'pan' (and optional 'lms', "
                f"'gt'), got {sorted(source)}."
            )
        if sensor is None:
            raise ValueError("array source: a sensor is required.")
        return ArrayReader(
            source["ms"],
            source["pan"],
            sensor,
            gt=source.get("gt"),
            lms=source.get("lms"),
            max_value=max_value,
        )
    if isinstance(source, (str, os.PathLike)):
        path = Path(source)
        if path.is_dir():
            if sensor is None:
                raise ValueError(f"{path}: a sensor is required.")
            kwargs = {} if max_value is None else {"max_value": max_value}
            return FolderReader(path, sensor, **kwargs)
        if path.suffix.lower() in (".h5", ".hdf5", ".he5"):
            return PanCollectionReader(path, sensor=sensor, max_value=max_value)
        if not path.exists():
            raise DataFormatError(f"{path}: file not found.")
        raise DataFormatError(
            f"{path}: unsupported data source; expected a PanCollection .h5 file, "
            "a folder with ms/ and pan/, a reader, or a dict of arrays."
        )
    raise TypeError(
        f"Unsupported data source of type {type(source).__name__}; expected a path, "
        "a PairReader, a Scene or a dict of arrays."
    )
