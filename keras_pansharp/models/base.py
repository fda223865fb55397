"""The input contract shared by every pan-sharpening model.

Every model of the package takes a dict

- `"ms"`:  `(batch, h, w, C)` low-resolution multispectral image,
- `"pan"`: `(batch, 4h, 4w, 1)` panchromatic image,
- `"lms"` (optional): `(batch, 4h, 4w, C)` MS already upsampled to PAN size
  (PanCollection files ship it). When absent the model upsamples `"ms"`
  itself (`Interp23Tap` by default, or bicubic), so a served model needs no
  preprocessing.

all floating point, normalised to [0, 1] by the sensor's maximum DN, and
returns `(batch, 4h, 4w, C)`. Spatial dimensions are dynamic.

Model authors use three helpers:

- `pansharp_inputs(bands)` builds the dict of `keras.Input`s;
- `UpsampledMS(upsampler)` is the layer `(ms, lms) -> lms or upsample(ms)`;
- `PansharpModel` is the functional-model base class: it validates the input
  dict whenever the model is called (eager call, `predict`, `fit`, after
  `.keras` loading) and fills a missing `"lms"` with `None`.

NumPy inputs are also checked by value on the host, before anything is
traced or compiled (`check_input_values`; tensors are left alone, no op is
added to a graph): NaN / inf raise a `ValueError` (they would spread through
every output pixel in the receptive field, silently), and a maximum above
`UNIT_MAX` (1.5) warns that the data look like digital numbers rather than
[0, 1]. That one only warns: normalised data legitimately exceed 1 a little
(interpolation overshoot, gain augmentation, saturated pixels, a sensor max
DN below the true maximum), and a model can be used on purpose on other
ranges; 1.5 leaves that room while catching DN, whose maxima are 255 to
65535. The data are never rescaled.

Example (a model following the contract):

```python
@keras.saving.register_keras_serializable(package="keras_pansharp")
class Tiny(PansharpModel):
    def __init__(self, bands=4, upsampler="interp23tap", **kwargs):
        inputs = pansharp_inputs(bands)
        lms = UpsampledMS(upsampler)(inputs["ms"], inputs["lms"])
        x = keras.layers.Concatenate()([lms, inputs["pan"]])
        x = keras.layers.Conv2D(bands, 3, padding="same")(x)
        outputs = keras.layers.Add()([x, lms])
        super().__init__(inputs=inputs, outputs=outputs, **kwargs)
        self.bands = bands
        self.upsampler = upsampler

    def get_config(self):
        return {"bands": self.bands, "upsampler": self.upsampler,
                "name": self.name, "trainable": self.trainable}
```
"""

from __future__ import annotations

import contextlib
import contextvars
import math
import warnings
from typing import Any

import keras
import numpy as np

from keras_pansharp.layers.interp23tap import BicubicUpsample, Interp23Tap

RATIO = 4
INPUT_KEYS = ("ms", "pan", "lms")
UPSAMPLERS = ("interp23tap", "bicubic")
#: Largest input value still taken for data normalised to [0, 1] (see the
#: module docstring); above it the inputs look like digital numbers.
UNIT_MAX = 1.5

_VALUE_CHECKS = contextvars.ContextVar("keras_pansharp_value_checks", default=True)


def pansharp_inputs(bands: int, dtype: str | None = None) -> dict:
    """Build the model inputs of the shared contract.

    Args:
        bands: number of MS bands `C`.
        dtype: input dtype (default: Keras' float type, normally float32).

    Returns:
        Dict of `keras.Input`: `"ms"` `(None, None, C)`, `"pan"`
        `(None, None, 1)` and the optional `"lms"` `(None, None, C)`.

    Example:
    >>> inputs = pansharp_inputs(4)
    >>> sorted(inputs)
    ['lms', 'ms', 'pan']
    """
    bands = _check_bands(bands)
    return {
        "ms": keras.Input(shape=(None, None, bands), name="ms", dtype=dtype),
        "pan": keras.Input(shape=(None, None, 1), name="pan", dtype=dtype),
        "lms": keras.Input(
            shape=(None, None, bands), name="lms", dtype=dtype, optional=True
        ),
    }


def get_upsampler(upsampler: str, ratio: int = RATIO) -> keras.layers.Layer:
    """Return the MS -> PAN-size upsampling layer named `upsampler`.

    Args:
        upsampler: `"interp23tap"` (toolbox-exact `Interp23Tap`) or
            `"bicubic"` (`BicubicUpsample`, the paper's own pipeline).
        ratio: upsampling factor.

    Returns:
        A weightless `keras.layers.Layer`.
    """
    if upsampler == "interp23tap":
        return Interp23Tap(ratio=ratio)
    if upsampler == "bicubic":
        return BicubicUpsample(ratio=ratio)
    raise ValueError(
        f"Unknown upsampler {upsampler!r}; expected one of {list(UPSAMPLERS)}."
    )


@keras.saving.register_keras_serializable(package="keras_pansharp")
class UpsampledMS(keras.layers.Layer):
    """Return the precomputed `lms` when given, else upsample `ms` by 4.

    Args:
        upsampler: `"interp23tap"` (default) or `"bicubic"`.
        **kwargs: standard `keras.layers.Layer` arguments.

    Call arguments:
        ms: `(batch, h, w, C)` low-resolution MS.
        lms: `(batch, 4h, 4w, C)` upsampled MS, or `None`.

    Returns:
        `(batch, 4h, 4w, C)`: `lms` itself when it is not `None`, otherwise
        the upsampled `ms`.

    Example:
    >>> ms = np.random.rand(1, 8, 8, 4).astype("float32")
    >>> tuple(UpsampledMS()(ms, None).shape)
    (1, 32, 32, 4)
    """

    def __init__(self, upsampler: str = "interp23tap", **kwargs):
        kwargs.setdefault("trainable", False)
        super().__init__(**kwargs)
        if upsampler not in UPSAMPLERS:
            raise ValueError(
                f"Unknown upsampler {upsampler!r}; expected one of {list(UPSAMPLERS)}."
            )
        self.upsampler = upsampler
        self.upsample = get_upsampler(upsampler)

    def build(self, ms_shape, lms_shape=None):
        self.upsample.build(ms_shape)
        self.built = True

    def call(self, ms, lms=None):
        if lms is not None:
            return lms
        return self.upsample(ms)

    def compute_output_shape(self, ms_shape, lms_shape=None):
        if lms_shape is not None:
            return tuple(lms_shape)
        return self.upsample.compute_output_shape(ms_shape)

    def get_config(self):
        config = super().get_config()
        config.update({"upsampler": self.upsampler})
        return config


def _check_bands(bands) -> int:
    if isinstance(bands, bool) or int(bands) != bands or bands < 1:
        raise ValueError(f"`bands` must be a positive integer, got {bands!r}.")
    return int(bands)


def _static_shape(x) -> tuple | None:
    """Static shape with `None` for unknown dims; `None` for unknown rank."""
    shape = getattr(x, "shape", None)
    if shape is None:
        shape = np.shape(x)
    if getattr(shape, "rank", 0) is None:  # unknown-rank TF shape (traced)
        return None
    try:
        return tuple(None if d is None else int(d) for d in shape)
    except (TypeError, ValueError):
        return None


def _dtype_name(x) -> str | None:
    dtype = getattr(x, "dtype", None)
    if dtype is None:
        dtype = np.asarray(x).dtype
    try:
        return keras.backend.standardize_dtype(dtype)
    except Exception:  # noqa: BLE001 - unknown dtype objects
        return str(dtype)


def _fmt(shape) -> str:
    return "(" + ", ".join("None" if d is None else str(d) for d in shape) + ")"


def validate_pansharp_inputs(
    inputs: Any, bands: int, model_name: str = "model"
) -> dict:
    """Check an input dict against the contract and fill a missing `"lms"`.

    Only static information is checked (rank, band count, spatial sizes when
    known, dtype), so it works on NumPy arrays, eager tensors and traced
    tensors alike; unknown (`None`) dimensions are skipped.

    Args:
        inputs: dict with `"ms"`, `"pan"` and optionally `"lms"`.
        bands: the number of MS bands the model was built for.
        model_name: name used in error messages.

    Returns:
        A new dict with the same tensors and `"lms"` set to `None` when it
        was absent.

    Raises:
        ValueError: naming the offending input and the expected shape, for a
            non-dict input, missing or unknown keys, a wrong rank or band
            count, a PAN that is not single-band or not 4x the MS size,
            spatial sizes that are not multiples of 4, an `lms` whose shape
            differs from the PAN's, mismatched batch sizes or a non-floating
            dtype.
    """
    expected = (
        f"{model_name} expects a dict {{'ms': (batch, h, w, {bands}), "
        f"'pan': (batch, 4h, 4w, 1), optional 'lms': (batch, 4h, 4w, {bands})}}"
    )
    if not isinstance(inputs, dict):
        raise ValueError(f"{expected}; got {type(inputs).__name__}.")
    missing = [k for k in ("ms", "pan") if k not in inputs or inputs[k] is None]
    if missing:
        raise ValueError(
            f"{expected}; missing input(s) {missing} (got keys {sorted(inputs)})."
        )
    unknown = sorted(set(inputs) - set(INPUT_KEYS))
    if unknown:
        raise ValueError(
            f"{expected}; got unexpected key(s) {unknown}. Pass only "
            "'ms', 'pan' and optionally 'lms'."
        )
    out = {"ms": inputs["ms"], "pan": inputs["pan"], "lms": inputs.get("lms")}

    for key in ("ms", "pan", "lms"):
        x = out[key]
        if x is None:
            continue
        dtype = _dtype_name(x)
        if "float" not in dtype:
            raise ValueError(
                f"{model_name}: input '{key}' must be floating point "
                f"(normalised to [0, 1]), got dtype {dtype}. Convert it, e.g. "
                "`x.astype('float32') / sensor.max_value`."
            )

    ms_shape = _static_shape(out["ms"])
    pan_shape = _static_shape(out["pan"])
    lms_shape = None if out["lms"] is None else _static_shape(out["lms"])
    # Traced tensors of unknown rank (relaxed TF retracing) carry no static
    # information; `fit`/`evaluate`/`predict` validate their data eagerly.
    if ms_shape is None:
        ms_shape = (None, None, None, None)
    if pan_shape is None:
        pan_shape = (None, None, None, None)

    def rank_error(key, shape, want):
        hint = " (add a batch dimension)" if len(shape) == 3 else ""
        return ValueError(
            f"{model_name}: input '{key}' must have shape {want}, got shape "
            f"{_fmt(shape)}{hint}."
        )

    if len(ms_shape) != 4:
        raise rank_error("ms", ms_shape, f"(batch, h, w, {bands})")
    if len(pan_shape) != 4:
        raise rank_error("pan", pan_shape, "(batch, 4h, 4w, 1)")
    if out["lms"] is not None and lms_shape is None:
        lms_shape = (None, None, None, None)
    if lms_shape is not None and len(lms_shape) != 4:
        raise rank_error("lms", lms_shape, f"(batch, 4h, 4w, {bands})")

    if ms_shape[3] is not None and ms_shape[3] != bands:
        raise ValueError(
            f"{model_name} was built for {bands} bands: input 'ms' must have "
            f"shape (batch, h, w, {bands}), got {_fmt(ms_shape)} "
            f"({ms_shape[3]} bands)."
        )
    if pan_shape[3] is not None and pan_shape[3] != 1:
        raise ValueError(
            f"{model_name}: input 'pan' must have a single band, shape "
            f"(batch, 4h, 4w, 1), got {_fmt(pan_shape)}."
        )
    for axis, label in ((1, "height"), (2, "width")):
        size = pan_shape[axis]
        if size is not None and size % RATIO:
            raise ValueError(
                f"{model_name}: input 'pan' {label} must be a multiple of "
                f"{RATIO} (PAN is {RATIO}x the MS size), got shape "
                f"{_fmt(pan_shape)}."
            )
        small = ms_shape[axis]
        if size is not None and small is not None and size != RATIO * small:
            want = list(pan_shape)
            want[1], want[2] = (
                None if ms_shape[1] is None else RATIO * ms_shape[1],
                None if ms_shape[2] is None else RATIO * ms_shape[2],
            )
            raise ValueError(
                f"{model_name}: input 'pan' must be {RATIO}x the size of 'ms' "
                f"{_fmt(ms_shape)}, i.e. shape {_fmt(want)}; got "
                f"{_fmt(pan_shape)}."
            )
    if lms_shape is not None:
        want = (pan_shape[0], pan_shape[1], pan_shape[2], bands)
        for got, exp in zip(lms_shape, want):
            if got is not None and exp is not None and got != exp:
                raise ValueError(
                    f"{model_name}: input 'lms' must have the PAN's size and the "
                    f"MS bands, shape {_fmt(want)}, got {_fmt(lms_shape)}."
                )
    batches = {
        k: s[0]
        for k, s in (("ms", ms_shape), ("pan", pan_shape), ("lms", lms_shape))
        if s is not None and s[0] is not None
    }
    if len(set(batches.values())) > 1:
        raise ValueError(
            f"{model_name}: inputs must have the same batch size, got {batches}."
        )
    return out


def check_input_values(
    inputs: Any, model_name: str = "model", *, stacklevel: int = 2
) -> None:
    """Host-side value checks of the NumPy arrays of an input dict.

    Runs on `np.ndarray` values only (two reductions, `min` and `max`, no
    copy); tensors and symbolic inputs are skipped, so nothing is added to a
    compiled graph. The data are never altered.

    Args:
        inputs: dict with `"ms"`, `"pan"` and optionally `"lms"`.
        model_name: name used in messages.
        stacklevel: `warnings.warn` stack level, seen from the caller (2:
            the caller's caller).

    Raises:
        ValueError: an array contains NaN or inf (count and first index
            named).

    Warns:
        UserWarning: an array's maximum exceeds `UNIT_MAX` (1.5): the model
            expects data normalised to [0, 1]; digital numbers (e.g. up to
            2047) give meaningless outputs. Warns rather than raises because
            normalised data may legitimately exceed 1 somewhat (see the module
            docstring).
    """
    if not isinstance(inputs, dict) or not _VALUE_CHECKS.get():
        return
    high = []
    for key in INPUT_KEYS:
        x = inputs.get(key)
        if not isinstance(x, np.ndarray) or x.size == 0:
            continue
        if not np.issubdtype(x.dtype, np.floating):
            continue
        lo, hi = float(np.min(x)), float(np.max(x))  # NaN propagates
        if not (math.isfinite(lo) and math.isfinite(hi)):
            bad = ~np.isfinite(x)
            count = int(np.count_nonzero(bad))
            nans = int(np.count_nonzero(np.isnan(x)))
            first = tuple(int(i) for i in np.argwhere(bad)[0])
            raise ValueError(
                f"{model_name}: input '{key}' contains {count} non-finite "
                f"value(s) ({nans} NaN, {count - nans} inf), the first at index "
                f"{first} (batch, row, col, band). They would spread through "
                "the output; replace or mask them (e.g. nodata pixels) first."
            )
        if hi > UNIT_MAX:
            high.append(f"'{key}' max {hi:.6g}")
    if high:
        warnings.warn(
            f"{model_name}: input values above {UNIT_MAX} ({', '.join(high)}): "
            "the model expects data normalised to [0, 1], these look like "
            "digital numbers (DN). Divide by the sensor's maximum DN (e.g. "
            "`x / sensor.max_value`, 2047 for 11-bit data), or use "
            "`predict_scene(..., max_value=...)`, which normalises tile by tile.",
            UserWarning,
            stacklevel=stacklevel + 1,
        )


@contextlib.contextmanager
def skip_value_checks():
    """Disable `check_input_values` in this context (for callers such as
    `predict_scene` that check their data themselves, tile by tile)."""
    token = _VALUE_CHECKS.set(False)
    try:
        yield
    finally:
        _VALUE_CHECKS.reset(token)


class PansharpModel(keras.Model):
    """Base class of the functional pan-sharpening models.

    Subclasses build their graph on `pansharp_inputs(bands)` and call
    `super().__init__(inputs=inputs, outputs=outputs, **kwargs)` (keras-hub
    functional-subclass style). This base then

    - validates the input dict (`validate_pansharp_inputs`) whenever the model
      is called: eager `model(x)`, `predict`, `fit`/`evaluate` (at trace time,
      from static shapes) and after `.keras` loading, raising a `ValueError`
      that names the input and the expected shape;
    - accepts dicts without `"lms"` (the model then upsamples `"ms"`);
    - checks NumPy inputs by value on the host before the compiled call
      (`check_input_values`: NaN / inf raise a `ValueError`, values above
      1.5, i.e. digital numbers rather than [0, 1], warn), in `__call__`,
      `predict`, `predict_on_batch`, `fit`, `evaluate`, `train_on_batch` and
      `test_on_batch`.

    `bands` is read from the `"ms"` input.
    """

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        inputs = self._inputs_struct
        if not (isinstance(inputs, dict) and set(inputs) == set(INPUT_KEYS)):
            raise ValueError(
                f"{type(self).__name__} must be built on pansharp_inputs(bands) "
                f"(a dict with keys {list(INPUT_KEYS)})."
            )
        self._contract_bands = int(inputs["ms"].shape[-1])

    def _prepare_inputs(self, inputs):
        return validate_pansharp_inputs(
            inputs, self._contract_bands, model_name=type(self).__name__
        )

    def _validate_data(self, x):
        """Validate the inputs of `fit`/`evaluate`/`predict` before tracing.

        TensorFlow traces training steps with relaxed (unknown) shapes after
        the first call, so the checks run here eagerly on the data: a dict of
        arrays, or a `tf.data.Dataset` (its `element_spec`). Other data
        sources are checked when each step is traced.
        """
        spec = getattr(x, "element_spec", None)
        if spec is not None:
            if isinstance(spec, tuple):
                spec = spec[0] if spec else None
            if isinstance(spec, dict):
                self._prepare_inputs(spec)
        elif isinstance(x, dict):
            inputs = self._prepare_inputs(x)
            # fit/predict/... -> _validate_data -> here: warn at the user's call.
            check_input_values(inputs, type(self).__name__, stacklevel=3)

    def fit(self, x=None, *args, **kwargs):
        self._validate_data(x)
        return super().fit(x, *args, **kwargs)

    def evaluate(self, x=None, *args, **kwargs):
        self._validate_data(x)
        return super().evaluate(x, *args, **kwargs)

    def predict(self, x, *args, **kwargs):
        self._validate_data(x)
        return super().predict(x, *args, **kwargs)

    def train_on_batch(self, x, *args, **kwargs):
        self._validate_data(x)
        return super().train_on_batch(x, *args, **kwargs)

    def test_on_batch(self, x, *args, **kwargs):
        self._validate_data(x)
        return super().test_on_batch(x, *args, **kwargs)

    def predict_on_batch(self, x):
        self._validate_data(x)
        return super().predict_on_batch(x)

    def __call__(self, inputs, *args, **kwargs):
        inputs = self._prepare_inputs(inputs)
        check_input_values(inputs, type(self).__name__)
        return super().__call__(inputs, *args, **kwargs)

    def compute_output_spec(self, inputs, *args, **kwargs):
        # Symbolic call (nesting the model in another functional model)
        # without "lms": Keras' graph spec pass cannot take `None` for an
        # optional input, so give it a placeholder of the lms spec. The
        # output spec does not depend on which branch UpsampledMS takes.
        if isinstance(inputs, dict) and inputs.get("lms") is None:
            ms, pan = inputs.get("ms"), inputs.get("pan")
            if ms is not None and pan is not None:
                inputs = dict(inputs)
                inputs["lms"] = keras.KerasTensor(
                    shape=(*tuple(pan.shape)[:3], tuple(ms.shape)[-1]),
                    dtype=ms.dtype,
                )
        return super().compute_output_spec(inputs, *args, **kwargs)

    def call(self, inputs, training=None, mask=None, **kwargs):
        # `stateless_call` (JAX training/prediction) calls `call` directly.
        # `training` is named so that Keras passes it (its trainers call the
        # model with `training=True` only when `call` declares it): layers
        # such as `DetailCalibration` behave differently in training.
        return super().call(
            self._prepare_inputs(inputs), training=training, mask=mask, **kwargs
        )


def copy_model(model: keras.Model) -> keras.Model:
    """A new model of the same class, config and weights (shares nothing).

    Args:
        model: a model whose class rebuilds it from `get_config()` (every
            model of the package).

    Returns:
        The copy; training or folding gains into it leaves `model` as it is.
    """
    clone = model.__class__.from_config(model.get_config())
    clone.set_weights(model.get_weights())
    return clone


def interp23tap_lms(ms: np.ndarray) -> np.ndarray:
    """The models' `interp23tap` upsampled MS of one normalised image.

    Args:
        ms: `(h, w, C)` MS, normalised (DN / max DN).

    Returns:
        `(4h, 4w, C)` float64: what `UpsampledMS("interp23tap")` gives the
        models (float32 arithmetic), for computations that must match their
        `lms` exactly.
    """
    lms = UpsampledMS("interp23tap")(np.asarray(ms)[None].astype("float32"))
    return np.asarray(lms, np.float64)[0]
