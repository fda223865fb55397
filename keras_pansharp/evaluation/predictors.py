"""Predictors for `evaluate`: models, `predict_on_batch` objects, callables,
classical methods, all turned into one `fuse(inputs, sensor)` function."""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping

import keras
import numpy as np

from keras_pansharp.sensors import Sensor
from keras_pansharp.signal import CLASSICAL_METHODS, bt_h, exp_method, mtf_glp_hpm_r

__all__ = ["CLASSICAL_NAMES", "classical_method", "make_fuser", "predictor_bands"]

#: Names `evaluate` accepts for the toolbox's classical methods (case and
#: `-` / `_` / space do not matter: `"bt_h"`, `"mtf-glp-hpm-r"`).
CLASSICAL_NAMES = ("EXP", "BT-H", "MTF-GLP-HPM-R")

_KNOWN_FUNCTIONS = {
    exp_method: CLASSICAL_METHODS["EXP"],
    bt_h: CLASSICAL_METHODS["BT_H"],
    mtf_glp_hpm_r: CLASSICAL_METHODS["MTF_GLP_HPM_R"],
}

Fuser = Callable[[Mapping[str, np.ndarray], Sensor], np.ndarray]


def to_numpy(x) -> np.ndarray:
    """A backend tensor (or anything array-like) as a NumPy array."""
    if isinstance(x, np.ndarray):
        return x
    try:
        return np.asarray(keras.ops.convert_to_numpy(x))
    except Exception:
        return np.asarray(x)


def model_inputs(model, inputs: Mapping) -> dict:
    """The entries of `inputs` that `model` declares as inputs.

    Keras functional models declare their input dict (`_inputs_struct`);
    keys they do not declare (e.g. an unused `"lms"`) are dropped. Other
    objects get every entry.
    """
    struct = getattr(model, "_inputs_struct", None)
    if isinstance(struct, Mapping):
        return {k: v for k, v in inputs.items() if k in struct}
    return dict(inputs)


def classical_method(name: str) -> Callable:
    """The toolbox classical method called `name`.

    Args:
        name: `"EXP"`, `"BT-H"` or `"MTF-GLP-HPM-R"` (case-insensitive;
            `-`, `_` and spaces are interchangeable).

    Returns:
        `method(ms (h, w, C), pan (4h, 4w), sensor) -> (4h, 4w, C)` float64,
        from `keras_pansharp.signal.CLASSICAL_METHODS`.

    Raises:
        ValueError: for an unknown name.
    """
    key = str(name).strip().upper().replace("-", "_").replace(" ", "_")
    if key not in CLASSICAL_METHODS:
        raise ValueError(
            f"Unknown classical method {name!r}; expected one of "
            f"{', '.join(CLASSICAL_NAMES)} (keras_pansharp.signal.CLASSICAL_METHODS)."
        )
    return CLASSICAL_METHODS[key]


def predictor_bands(predictor) -> int | None:
    """The MS band count a predictor declares, or `None` (any).

    Its `bands` attribute (library models, served-model wrappers), else the
    channels of a Keras model's `"ms"` input; `None` for classical methods
    and plain callables.
    """
    if isinstance(predictor, str):
        return None
    bands = getattr(predictor, "bands", None)
    if isinstance(bands, (int, np.integer)) and not isinstance(bands, bool):
        return int(bands)
    if isinstance(predictor, keras.Model):
        try:
            inp = predictor.input
            shape = inp["ms"].shape if isinstance(inp, Mapping) else inp[0].shape
            return None if shape[-1] is None else int(shape[-1])
        except Exception:  # noqa: BLE001 - models without a usable input spec
            return None
    return None


def _takes_sensor(fn) -> bool:
    try:
        return "sensor" in inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return False


def _classical_fuser(method: Callable) -> Fuser:
    def fuse(inputs, sensor):
        ms, pan = inputs["ms"], inputs["pan"]
        return np.stack(
            [
                method(
                    np.asarray(ms[i], np.float64),
                    np.asarray(pan[i][..., 0], np.float64),
                    sensor,
                )
                for i in range(len(ms))
            ]
        )

    return fuse


def _chunked(call: Callable, batch_size: int) -> Fuser:
    def fuse(inputs, sensor):
        n = len(inputs["ms"])
        outs = []
        for i in range(0, n, batch_size):
            out = call({k: v[i : i + batch_size] for k, v in inputs.items()})
            if isinstance(out, Mapping):
                raise ValueError(
                    f"the predictor returned a dict (keys {sorted(out)}); expected "
                    "the fused batch (B, H, W, C)."
                )
            outs.append(to_numpy(out))
        return np.asarray(np.concatenate(outs), np.float64)

    return fuse


def make_fuser(predictor, batch_size: int = 4) -> tuple[str, Fuser]:
    """Turn any supported predictor into `fuse(inputs, sensor) -> fused`.

    `inputs` is `{"ms": (N, h, w, C), "pan": (N, 4h, 4w, 1)[, "lms"]}`
    normalised; `fused` is float64 `(N, 4h, 4w, C)` in the same units.

    Args:
        predictor: one of
            - a `keras.Model`: `model.predict(inputs, batch_size)` with the
              inputs it declares;
            - an object with `predict_on_batch(inputs) -> (B, H, W, C)`
              (e.g. a wrapper of a served SavedModel), called on chunks of
              `batch_size` with every input key;
            - a classical method: a name from `CLASSICAL_NAMES`,
              `keras_pansharp.signal.exp_method` / `bt_h` / `mtf_glp_hpm_r`,
              or any callable with a parameter named `sensor`, called per
              image as `fn(ms (h, w, C), pan (4h, 4w), sensor)`;
            - any other callable `fn(ms, pan) -> fused`, called on chunks of
              `batch_size` with `ms` `(B, h, w, C)` and `pan` `(B, 4h, 4w, 1)`.
        batch_size: images per model call.

    Returns:
        `(label, fuse)`: a name for the predictor and the function.

    Raises:
        ValueError: for an unknown classical method name or a predictor of
            an unsupported type.
    """
    if isinstance(predictor, str):
        label = predictor.strip()
        return label, _classical_fuser(classical_method(predictor))
    if isinstance(predictor, keras.Model):
        model = predictor

        def fuse(inputs, sensor):
            pred = model.predict(
                model_inputs(model, inputs), batch_size=batch_size, verbose=0
            )
            if isinstance(pred, Mapping):
                raise ValueError(
                    f"model {model.name!r} returned a dict (keys {sorted(pred)}); "
                    "expected the fused batch (B, H, W, C)."
                )
            return np.asarray(pred, np.float64)

        return model.name, fuse
    if callable(getattr(predictor, "predict_on_batch", None)):
        obj = predictor
        label = getattr(obj, "name", None) or type(obj).__name__
        return str(label), _chunked(
            lambda x: obj.predict_on_batch(model_inputs(obj, x)), batch_size
        )
    if callable(predictor):
        label = getattr(predictor, "__name__", None) or type(predictor).__name__
        for key, method in CLASSICAL_METHODS.items():
            if predictor is method:
                return key.replace("_", "-"), _classical_fuser(method)
        for fn, method in _KNOWN_FUNCTIONS.items():
            if predictor is fn:
                return label, _classical_fuser(method)
        if _takes_sensor(predictor):
            return label, _classical_fuser(predictor)
        fn = predictor
        return label, _chunked(lambda x: fn(x["ms"], x["pan"]), batch_size)
    raise ValueError(
        f"Unsupported predictor of type {type(predictor).__name__}; expected a "
        "keras.Model, an object with predict_on_batch(inputs), a callable "
        f"(ms, pan) -> fused, or a classical method name ({', '.join(CLASSICAL_NAMES)})."
    )
