"""Evaluation sources: held-out images as normalised arrays plus their sensor."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

import numpy as np

from keras_pansharp.data import MultiSensorDataset, PairReader, Scene, open_source
from keras_pansharp.sensors import Sensor, UnknownSensorError, get_sensor

__all__ = ["EvaluationSource", "load_sources"]

RATIO = 4
# Normalised inputs are about [0, 1]; larger values are almost surely DN.
_DN_GUARD = 8.0
_INPUT_KEYS = ("ms", "pan", "lms")

SensorSpec = str | Sensor | Mapping[str, str | Sensor] | None


def _array(x, what: str) -> np.ndarray:
    try:
        a = np.asarray(x)
    except Exception as e:  # pragma: no cover - exotic inputs
        raise ValueError(f"{what}: cannot convert to an array ({e}).") from e
    if not np.issubdtype(a.dtype, np.number):
        raise ValueError(f"{what}: expected a numeric array, got dtype {a.dtype}.")
    return a


@dataclasses.dataclass
class EvaluationSource:
    """The held-out images of one table row, ready for a predictor.

    Arrays are normalised like the library's batches: digital numbers (DN)
    divided by the data's max DN, float, channels-last. The metrics scale
    them back to DN with `sensor.max_value` (as `evaluate_rr` /
    `evaluate_fr` with `normalized=True`).

    Args:
        name: row name in the table (e.g. `"wv3"`).
        sensor: the `Sensor` the metrics use (max DN; MTF gains for the FR
            metrics). In `bands="rgbn"` mode the 4-band view (`WV3_RGBN`).
        inputs: `{"ms": (N, h, w, C), "pan": (N, 4h, 4w, 1)[, "lms":
            (N, 4h, 4w, C)]}` in [0, 1]. A `(N, 4h, 4w)` PAN is accepted.
        gt: `(N, 4h, 4w, C)` reference in [0, 1] (reduced-resolution data),
            or `None` (full-resolution data).

    Raises:
        ValueError: for missing keys, inconsistent shapes, a band count
            different from the sensor's, non-finite values, or values that
            look like DN (above 8) instead of normalised ones.
    """

    name: str
    sensor: Sensor
    inputs: dict[str, np.ndarray]
    gt: np.ndarray | None = None

    def __post_init__(self):
        self.name = str(self.name)
        self.sensor = get_sensor(self.sensor)
        where = f"source {self.name!r}"
        if not isinstance(self.inputs, Mapping):
            raise ValueError(
                f"{where}: inputs must be a dict {{'ms', 'pan'[, 'lms']}}, got "
                f"{type(self.inputs).__name__}."
            )
        unknown = sorted(set(self.inputs) - set(_INPUT_KEYS))
        if unknown or not {"ms", "pan"} <= set(self.inputs):
            raise ValueError(
                f"{where}: inputs must have keys 'ms' and 'pan' (and optional "
                f"'lms'), got {sorted(self.inputs)}."
            )
        inputs = {k: _array(v, f"{where} {k!r}") for k, v in self.inputs.items()}
        ms, pan = inputs["ms"], inputs["pan"]
        if ms.ndim != 4:
            raise ValueError(
                f"{where}: 'ms' must be (N, h, w, C), got shape {ms.shape}."
            )
        if pan.ndim == 3:
            pan = inputs["pan"] = pan[..., None]
        if pan.ndim != 4 or pan.shape[-1] != 1:
            raise ValueError(
                f"{where}: 'pan' must be (N, 4h, 4w, 1) or (N, 4h, 4w), got shape "
                f"{pan.shape}."
            )
        n, h, w, c = ms.shape
        if n == 0:
            raise ValueError(f"{where}: holds no images (N = 0).")
        full = (n, RATIO * h, RATIO * w)
        if pan.shape[:3] != full:
            raise ValueError(
                f"{where}: 'pan' has shape {pan.shape}; expected {(*full, 1)} "
                f"(N and 4x the size of 'ms' {ms.shape})."
            )
        if c != self.sensor.num_bands:
            raise ValueError(
                f"{where}: 'ms' has {c} bands but sensor {self.sensor.name} has "
                f"{self.sensor.num_bands} (for a 4-band view of an 8-band sensor "
                f"use the sensor '{self.sensor.name.lower()}_rgbn' or "
                "bands='rgbn')."
            )
        arrays = dict(inputs)
        if self.gt is not None:
            arrays["gt"] = self.gt = _array(self.gt, f"{where} 'gt'")
        for key in ("lms", "gt"):
            if key in arrays and arrays[key].shape != (*full, c):
                raise ValueError(
                    f"{where}: {key!r} has shape {arrays[key].shape}; expected "
                    f"{(*full, c)} (N, 4h, 4w, C of 'ms' {ms.shape})."
                )
        for key, arr in arrays.items():
            if not np.all(np.isfinite(arr)):
                raise ValueError(f"{where}: {key!r} contains NaN or infinite values.")
        for key in ("ms", "pan"):
            top = float(np.max(inputs[key]))
            if top > _DN_GUARD:
                raise ValueError(
                    f"{where}: {key!r} reaches {top:g}; expected values normalised "
                    "to about [0, 1] (DN / max DN). For arrays in DN use "
                    "keras_pansharp.data.ArrayReader(ms, pan, sensor, gt=...)."
                )
        self.inputs = inputs

    @property
    def has_gt(self) -> bool:
        """Whether the source carries a reference (reduced-resolution data)."""
        return self.gt is not None

    def __len__(self) -> int:
        return int(self.inputs["ms"].shape[0])

    def __repr__(self) -> str:
        ms = self.inputs["ms"]
        return (
            f"EvaluationSource({self.name!r}, sensor={self.sensor.name}, n={len(self)}, "
            f"ms={tuple(ms.shape[1:])}, pan={tuple(self.inputs['pan'].shape[1:3])}, "
            f"gt={self.has_gt})"
        )


def _resolve_sensor(name: str, sensors: SensorSpec, what: str) -> Sensor:
    spec = name
    if isinstance(sensors, Mapping):
        spec = sensors.get(name, name)
    elif sensors is not None:
        spec = sensors
    try:
        return get_sensor(spec)
    except UnknownSensorError as e:
        raise ValueError(
            f"{what} source {name!r}: {e} Name sources by sensor (e.g. 'wv3') or "
            f"pass sensors={{{name!r}: sensor}}."
        ) from None


def _sensor_override(name: str, sensors: SensorSpec, what: str) -> Sensor | None:
    if sensors is None or (isinstance(sensors, Mapping) and name not in sensors):
        return None
    return _resolve_sensor(name, sensors, what)


def _is_pair(value) -> bool:
    return (
        isinstance(value, (tuple, list))
        and len(value) == 2
        and isinstance(value[0], Mapping)
    )


def _centre_crop(arrays: dict, size: int | None, name: str) -> dict:
    if size is None:
        return arrays
    h, w = arrays["pan"].shape[1:3]
    if size > min(h, w):
        raise ValueError(
            f"source {name!r}: patch_size {size} is larger than its images "
            f"({h} x {w} PAN pixels)."
        )
    top = (h - size) // 2 // RATIO * RATIO
    left = (w - size) // 2 // RATIO * RATIO
    out = {}
    for key, a in arrays.items():
        t, lf, s = top, left, size
        if key == "ms":
            t, lf, s = t // RATIO, lf // RATIO, s // RATIO
        out[key] = a[:, t : t + s, lf : lf + s]
    return out


def _from_arrays(name, sensor, inputs, gt, bands, patch_size, max_images):
    arrays = {k: v for k, v in inputs.items()}
    if gt is not None:
        arrays["gt"] = gt
    if max_images is not None:
        arrays = {k: v[:max_images] for k, v in arrays.items()}
    arrays = _centre_crop(arrays, patch_size, name)
    if bands == "rgbn" and sensor.num_bands != 4:
        ms = arrays.get("ms")
        if getattr(ms, "ndim", 0) == 4 and ms.shape[-1] == sensor.num_bands:
            idx = list(sensor.rgbn_indices)
            arrays = {k: (v if k == "pan" else v[..., idx]) for k, v in arrays.items()}
            sensor = sensor.rgbn()
    gt = arrays.pop("gt", None)
    return EvaluationSource(name, sensor, arrays, gt)


def _from_readers(name, value, sensors, bands, patch_size, max_images, what):
    items = list(value) if isinstance(value, (list, tuple)) else [value]
    if not items:
        raise ValueError(f"{what} source {name!r} is an empty list.")
    override = _sensor_override(name, sensors, what)
    if override is not None:
        items = [
            it if isinstance(it, (PairReader, Scene)) else open_source(it, override)
            for it in items
        ]
    try:
        ds = MultiSensorDataset.for_evaluation(
            {name: items}, batch_size=1, bands=bands, patch_size=patch_size
        )
    except UnknownSensorError as e:
        raise ValueError(
            f"{what} source {name!r}: {e} Name sources by sensor (e.g. 'wv3'), pass "
            f"sensors={{{name!r}: sensor}} or a reader that carries its sensor."
        ) from None
    data = next(iter(ds.evaluation_data(max_samples=max_images).values()))
    inputs, gt = data if isinstance(data, tuple) else (data, None)
    return EvaluationSource(name, ds.sensors[name], inputs, gt)


def _from_dataset(ds, max_images, what) -> dict[str, EvaluationSource]:
    data = ds.evaluation_data(max_samples=max_images)
    served = {}
    for src, s in getattr(ds, "sensors", {}).items():
        served[s.name.lower()] = (src, s)
    out = {}
    for key, value in data.items():
        name, sensor = served.get(key, (key, None))
        if sensor is None:
            sensor = _resolve_sensor(key, None, what)
        inputs, gt = value if _is_pair(value) else (value, None)
        out[str(name)] = EvaluationSource(name, sensor, inputs, gt)
    if not out:
        raise ValueError(f"{what}: the dataset's evaluation_data() is empty.")
    return out


def load_sources(
    sources: Any,
    *,
    sensors: SensorSpec = None,
    bands: str = "native",
    patch_size: int | None = None,
    max_images: int | None = None,
    what: str = "sources",
) -> dict[str, EvaluationSource]:
    """Load held-out data once into `{row name: EvaluationSource}`.

    `keras_pansharp.evaluate` calls this for its `rr` and `fr` arguments;
    call it yourself to score several predictors on the same data without
    reading the files again (pass the returned dict as `rr=` / `fr=`).

    Args:
        sources: one of
            - `{name: source}` where a source is a PanCollection `.h5` path,
              a folder dataset, a `PairReader`, a `Scene`, or a list of those
              (concatenated); data in DN, normalised by the reader's max DN;
            - `{name: (inputs, gt)}` (reduced resolution) or `{name: inputs}`
              (full resolution) with normalised NHWC arrays, as
              `MultiSensorDataset.evaluation_data()` returns them (a dict
              source is always normalised model inputs, never DN);
            - `{name: EvaluationSource}`;
            - a `MultiSensorDataset` (its `evaluation_data()`, rows named by
              its source names; its own `bands` and `patch_size` apply);
            - a single `PairReader` or `Scene` (row named by its sensor).
        sensors: the sensor of every source (a name or `Sensor`), or
            `{name: sensor}` for names that are not sensor names (e.g.
            `{"pleiades": generic_sensor(4, bit_depth=12)}`). Default: the
            reader's own sensor, else `get_sensor(name)`.
        bands: `"native"` (default: every band) or `"rgbn"` (8-band sensors
            reduced to blue, green, red, NIR, for 4-band models).
        patch_size: optional centred crop, PAN pixels (multiple of 4).
        max_images: optional cap on images per source (the first ones).
        what: name used in error messages (e.g. `"rr"`).

    Returns:
        `{name: EvaluationSource}` in the order given.

    Raises:
        ValueError: for an empty or malformed source, an unknown sensor, or
            arrays that do not fit together.

    Example:

    >>> paths = keras_pansharp.data.synthetic.ensure_datasets()  # doctest: +SKIP
    >>> rr = load_sources(paths["test_rr"], bands="rgbn")  # doctest: +SKIP
    >>> rr["wv3"].inputs["ms"].shape, rr["wv3"].sensor.name  # doctest: +SKIP
    ((4, 32, 32, 4), 'WV3_RGBN')
    """
    if bands not in ("native", "rgbn"):
        raise ValueError(f"bands must be 'native' or 'rgbn', got {bands!r}.")
    if max_images is not None:
        if int(max_images) < 1:
            raise ValueError(f"max_images must be >= 1 or None, got {max_images}.")
        max_images = int(max_images)
    if patch_size is not None:
        patch_size = int(patch_size)
        if patch_size <= 0 or patch_size % RATIO:
            raise ValueError(
                f"patch_size must be a positive multiple of {RATIO}, got {patch_size}."
            )
    if isinstance(sources, (PairReader, Scene)):
        sources = {sources.sensor.name.lower(): sources}
    elif callable(getattr(sources, "evaluation_data", None)) and not isinstance(
        sources, Mapping
    ):
        return _from_dataset(sources, max_images, what)
    if not isinstance(sources, Mapping):
        raise ValueError(
            f"{what}: expected a dict {{sensor: path, [paths], reader or arrays}}, "
            f"a MultiSensorDataset or a reader, got {type(sources).__name__}."
        )
    if not sources:
        raise ValueError(
            f"{what}: no sources (empty dict); expected {{sensor: path or [paths]}}."
        )
    out: dict[str, EvaluationSource] = {}
    for key, value in sources.items():
        name = str(key)
        if isinstance(value, EvaluationSource):
            src = dataclasses.replace(value, name=name)
        elif _is_pair(value):
            src = _from_arrays(
                name,
                _resolve_sensor(name, sensors, what),
                value[0],
                value[1],
                bands,
                patch_size,
                max_images,
            )
        elif isinstance(value, Mapping):
            if "gt" in value or not {"ms", "pan"} <= set(value):
                raise ValueError(
                    f"{what} source {name!r}: a dict source holds normalised model "
                    f"inputs {{'ms', 'pan'[, 'lms']}}, got keys {sorted(value)}; "
                    "pass reduced-resolution arrays as (inputs, gt), arrays in DN "
                    "as keras_pansharp.data.ArrayReader(ms, pan, sensor, gt=...)."
                )
            src = _from_arrays(
                name,
                _resolve_sensor(name, sensors, what),
                value,
                None,
                bands,
                patch_size,
                max_images,
            )
        else:
            src = _from_readers(
                name, value, sensors, bands, patch_size, max_images, what
            )
        out[name] = src
    return out
