"""Callbacks that score a model with the toolbox-exact metrics during `fit()`.

`RREvaluation` (reduced resolution, against a ground truth) and
`FREvaluation` (full resolution, no reference) predict held-out data every
`every_n_epochs` epochs, compute the exact NumPy metrics of
`keras_pansharp.metrics` in digital numbers, and write them into the
epoch `logs` (e.g. `val_q2n`, `fr_hqnr`, and per sensor `fr_hqnr_wv3`), so that
`ModelCheckpoint`, `EarlyStopping`, `CSVLogger`, `TensorBoard` and `History`
see them.

**Order matters**: Keras calls callbacks in list order with one shared `logs`
dict, so put these callbacks *before* the ones that read their keys:

>>> callbacks = [  # doctest: +SKIP
...     FREvaluation({"wv3": fr_inputs}),
...     keras.callbacks.ModelCheckpoint("best.keras", monitor="fr_hqnr",
...                                     mode="max", save_best_only=True),
... ]
>>> model.fit(train_ds, epochs=50, callbacks=callbacks)  # doctest: +SKIP

(`History` and the progress bar are appended by Keras after user callbacks,
so they always see the keys.)
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Mapping, Sequence

import keras
import numpy as np

from keras_pansharp.evaluation.predictors import model_inputs, to_numpy
from keras_pansharp.evaluation.scoring import score_fr_image
from keras_pansharp.metrics import border_cut
from keras_pansharp.metrics import q_index as qi
from keras_pansharp.metrics import reduced_resolution as rr
from keras_pansharp.sensors import Sensor, get_sensor

__all__ = ["RREvaluation", "FREvaluation"]

RR_METRICS = ("q2n", "q_avg", "sam", "ergas", "scc", "psnr", "ssim")
FR_METRICS = ("hqnr", "qnr", "d_lambda", "d_s", "d_lambda_k")
#: Opt-in FR metrics (Scarpa & Ciotola's D_rho and reprojection indices).
FR_EXTRA_METRICS = ("d_rho", "r_q2n", "r_sam", "r_ergas")


def _rr_fn(name: str) -> Callable:
    # Each takes fused, gt in DN (float64) and the max DN.
    table = {
        "q2n": lambda f, g, m: qi.q2n(f, g),
        "q_avg": lambda f, g, m: qi.q_avg(f, g),
        "sam": lambda f, g, m: rr.sam(f, g),
        "ergas": lambda f, g, m: rr.ergas(f, g),
        "scc": lambda f, g, m: rr.scc(f, g),
        "psnr": lambda f, g, m: rr.psnr(f, g, max_value=m),
        "ssim": lambda f, g, m: rr.ssim(f, g, max_value=m),
    }
    return table[name]


_to_numpy = to_numpy  # shared with keras_pansharp.evaluation


def _is_array_pair(v) -> bool:
    return (
        isinstance(v, (tuple, list))
        and len(v) == 2
        and isinstance(v[0], Mapping)
        and not isinstance(v[1], Mapping)
        and hasattr(v[1], "shape")
        and len(v[1].shape) == 4
    )


def _is_array_inputs(v) -> bool:
    return isinstance(v, Mapping) and all(
        hasattr(x, "shape") and len(x.shape) == 4 for x in v.values()
    )


def _iter_batches(source):
    """Iterate a re-iterable source of batches (list, tf.data, PyDataset)."""
    if isinstance(source, keras.utils.PyDataset):
        for i in range(len(source)):
            yield source[i]
        return
    yield from source


def _check_reiterable(source, what: str) -> None:
    if iter(source) is source:
        raise ValueError(
            f"{what}: got a one-shot iterator/generator; it would be exhausted "
            "after the first evaluation. Pass a list of batches, a tf.data.Dataset, "
            "a keras.utils.PyDataset or NumPy arrays."
        )


def _split_source(obj):
    """`MultiSensorDataset` (or any object with `evaluation_data()`): use its
    per-sensor arrays `{sensor: (inputs, gt)}` / `{sensor: inputs}`."""
    fn = getattr(obj, "evaluation_data", None)
    if callable(fn) and not isinstance(obj, Mapping):
        return fn()
    return obj


class _EvaluationCallback(keras.callbacks.Callback):
    """Shared machinery: data handling, scheduling, per-sensor aggregation."""

    _metric_names: tuple[str, ...] = ()
    _optional_names: tuple[str, ...] = ()

    def __init__(
        self,
        data,
        sensor: str | Sensor | Mapping[str, str | Sensor] | None,
        metrics: Sequence[str] | None,
        every_n_epochs: int,
        prefix: str,
        batch_size: int,
        verbose: int,
        kind: str,
    ):
        super().__init__()
        if int(every_n_epochs) < 1:
            raise ValueError(f"every_n_epochs must be >= 1, got {every_n_epochs}.")
        self.every_n_epochs = int(every_n_epochs)
        self.prefix = str(prefix)
        self.batch_size = int(batch_size)
        self.verbose = int(verbose)
        self.metrics = tuple(metrics) if metrics is not None else self._metric_names
        known = self._metric_names + self._optional_names
        unknown = [m for m in self.metrics if m not in known]
        if unknown or not self.metrics:
            raise ValueError(
                f"Unknown {kind} metric(s) {unknown}; choose from {known}."
            )
        self.sources = self._parse(_split_source(data), sensor)
        self.last_results: dict[str, float] = {}

    # ----------------------------------------------------------- data parsing
    def _is_arrays(self, v) -> bool:  # pragma: no cover - overridden
        raise NotImplementedError

    def _parse(self, data, sensor):
        """-> list of (key or None, Sensor, source)."""
        out = []
        if isinstance(data, Mapping) and not self._is_arrays(data):
            if not data:
                raise ValueError("data is an empty dict.")
            for key, value in data.items():
                if isinstance(sensor, Mapping):
                    if key not in sensor:
                        raise ValueError(f"sensor mapping has no entry for {key!r}.")
                    s = get_sensor(sensor[key])
                elif sensor is not None and len(data) == 1:
                    s = get_sensor(sensor)
                else:
                    s = get_sensor(key)
                out.append((str(key).lower(), s, self._check_source(value, key)))
        else:
            if sensor is None or isinstance(sensor, Mapping):
                raise ValueError(
                    "Pass sensor= (a name or Sensor) for data that is not a "
                    "{sensor_name: data} dict."
                )
            out.append((None, get_sensor(sensor), self._check_source(data, "data")))
        return out

    def _check_source(self, value, key):
        if self._is_arrays(value):
            return value
        _check_reiterable(value, f"data[{key!r}]" if key != "data" else "data")
        return value

    # ------------------------------------------------------------- prediction
    def _model_inputs(self, inputs: Mapping) -> dict:
        """Keep the input keys the model declares (others, e.g. an unused
        "lms", are dropped); a missing required input fails in Keras."""
        return model_inputs(self.model, inputs)

    def _predict(self, inputs: Mapping, on_batch: bool) -> np.ndarray:
        x = self._model_inputs(inputs)
        if on_batch:
            pred = self.model.predict_on_batch(x)
        else:
            pred = self.model.predict(x, batch_size=self.batch_size, verbose=0)
        return _to_numpy(pred).astype(np.float64)

    # ------------------------------------------------------------- scheduling
    def _due(self, epoch: int) -> bool:
        # The first epoch too, so CSVLogger (which fixes its columns then)
        # records the keys; then every n-th epoch and the last one.
        last = (self.params or {}).get("epochs")
        return (
            epoch == 0
            or (epoch + 1) % self.every_n_epochs == 0
            or (last is not None and epoch + 1 == last)
        )

    def on_epoch_end(self, epoch, logs=None):
        if not self._due(epoch):
            return
        results = self.evaluate()
        self.last_results = results
        if logs is not None:
            logs.update(results)
        if self.verbose:
            txt = " - ".join(
                f"{k}: {v:.4f}" for k, v in results.items() if k.count("_") < 2
            )
            keras.utils.io_utils.print_msg(
                f"{type(self).__name__} epoch {epoch + 1}: {txt}"
            )

    def evaluate(self) -> dict[str, float]:
        """Run the evaluation now; returns the dict written into `logs`."""
        per_sensor = {}
        for key, s, source in self.sources:
            sums = dict.fromkeys(self.metrics, 0.0)
            count = 0
            for values in self._score_source(s, source):
                for m in self.metrics:
                    sums[m] += values[m]
                count += 1
            if count == 0:
                raise ValueError(f"No images in the evaluation data {key or ''}.")
            per_sensor[key] = {m: sums[m] / count for m in self.metrics}
        out = {}
        for m in self.metrics:
            out[self.prefix + m] = float(np.mean([v[m] for v in per_sensor.values()]))
        for key, vals in per_sensor.items():
            if key is not None:
                for m in self.metrics:
                    out[f"{self.prefix}{m}_{key}"] = float(vals[m])
        return out

    def _score_source(self, s: Sensor, source):  # pragma: no cover - overridden
        raise NotImplementedError

    def _nan_values(self, why: str) -> dict[str, float]:
        warnings.warn(
            f"{type(self).__name__}: {why}; logging NaN for this image.", stacklevel=2
        )
        return dict.fromkeys(self.metrics, math.nan)

    def get_config(self):
        return {
            "metrics": list(self.metrics),
            "every_n_epochs": self.every_n_epochs,
            "prefix": self.prefix,
            "batch_size": self.batch_size,
            "verbose": self.verbose,
        }


class RREvaluation(_EvaluationCallback):
    """Reduced-resolution evaluation with the exact toolbox metrics.

    After the first epoch, every `every_n_epochs` epochs and after the last
    epoch (the keys are absent from the other epochs' logs), the model predicts
    the held-out inputs; predictions and ground truth (normalised [0, 1]) are
    scaled to DN by the sensor's max DN and scored per image with the NumPy
    reference metrics. Per sensor, each metric is the mean over its images;
    the un-suffixed key (e.g. `val_q2n`) is the mean over sensors (each sensor
    weighs the same). Keys: `{prefix}{metric}` and, for dict data,
    `{prefix}{metric}_{sensor_key}` (e.g. `val_sam_wv3`).

    Keras' own validation metrics are also called `val_<name>`; choose another
    `prefix` (e.g. `"rr_"`) if you compile metrics with the same names.

    Put this callback before `ModelCheckpoint` / `EarlyStopping` / `CSVLogger`
    in the `callbacks` list (they read the keys it writes into `logs`).

    Args:
        data: one of
            - `{sensor_name: (inputs, gt)}` with `inputs` a dict of NumPy
              arrays `{"ms": (N, h, w, C), "pan": (N, 4h, 4w, 1)[, "lms"]}` and
              `gt` `(N, 4h, 4w, C)`, all normalised to [0, 1] (NHWC);
            - `{sensor_name: batches}` where `batches` is a re-iterable of
              `(inputs, gt)` batches (list, `tf.data.Dataset`, `PyDataset`);
            - `(inputs, gt)` or such batches directly, with `sensor=`;
            - a `keras_pansharp.MultiSensorDataset` (its `evaluation_data()`
              arrays, loaded once; pass `ds.evaluation_data(max_samples=n)`
              yourself to cap the number of images).
        sensor: the sensor for non-dict data, a `{key: sensor}` mapping for
            dict keys that are not sensor names, or None (dict keys are sensor
            names such as `"wv3"`, `"gf2"`, `"wv3_rgbn"`).
        metrics: subset of `("q2n", "q_avg", "sam", "ergas", "scc", "psnr",
            "ssim")`; all by default.
        dim_cut: toolbox border cut (0 for patches, 21 for 256 × 256 tests).
        every_n_epochs: evaluation period in epochs.
        prefix: key prefix (`"val_"`).
        batch_size: prediction batch size for array data.
        verbose: 1 prints the scores after each evaluation.

    Example:

    >>> cb = RREvaluation({"wv3": ({"ms": ms, "pan": pan}, gt)})  # doctest: +SKIP
    >>> model.fit(..., callbacks=[cb, keras.callbacks.CSVLogger("log.csv")])
    ...     # doctest: +SKIP
    """

    _metric_names = RR_METRICS

    def __init__(
        self,
        data,
        sensor: str | Sensor | Mapping[str, str | Sensor] | None = None,
        metrics: Sequence[str] | None = None,
        dim_cut: int = 0,
        every_n_epochs: int = 1,
        prefix: str = "val_",
        batch_size: int = 8,
        verbose: int = 0,
    ):
        self.dim_cut = int(dim_cut)
        super().__init__(
            data, sensor, metrics, every_n_epochs, prefix, batch_size, verbose, "RR"
        )

    def _is_arrays(self, v) -> bool:
        return _is_array_pair(v)

    def _batches(self, source):
        if _is_array_pair(source):
            inputs, gt = source
            pred = self._predict(inputs, on_batch=False)
            yield pred, _to_numpy(gt).astype(np.float64)
            return
        for batch in _iter_batches(source):
            if not isinstance(batch, (tuple, list)) or len(batch) < 2:
                raise ValueError("RR batches must be (inputs, gt) tuples.")
            inputs, gt = batch[0], batch[1]
            inputs = {k: _to_numpy(v) for k, v in inputs.items()}
            yield self._predict(inputs, on_batch=True), _to_numpy(gt).astype(np.float64)

    def _score_source(self, s: Sensor, source):
        scale = s.max_value
        fns = {m: _rr_fn(m) for m in self.metrics}
        for pred, gt in self._batches(source):
            if pred.shape != gt.shape:
                raise ValueError(
                    f"Model output {pred.shape} and ground truth {gt.shape} differ."
                )
            if gt.shape[-1] != s.num_bands:
                raise ValueError(
                    f"Ground truth has {gt.shape[-1]} bands, sensor {s.name} has "
                    f"{s.num_bands}."
                )
            for f_img, g_img in zip(pred, gt):
                if not np.all(np.isfinite(f_img)):
                    yield self._nan_values("the model output has NaN/inf")
                    continue
                f_dn = border_cut(f_img * scale, self.dim_cut)
                g_dn = border_cut(g_img * scale, self.dim_cut)
                yield {m: fn(f_dn, g_dn, scale) for m, fn in fns.items()}

    def get_config(self):
        return {**super().get_config(), "dim_cut": self.dim_cut}


class FREvaluation(_EvaluationCallback):
    """Full-resolution (no-reference) evaluation with the exact toolbox metrics.

    After the first epoch, every `every_n_epochs` epochs and after the last
    epoch (the keys are absent from the other epochs' logs), the model fuses the
    held-out MS/PAN pairs; fused image, `ms` and `pan` (normalised [0, 1]) are
    scaled to DN by the sensor's max DN and scored per image with
    `evaluate_fr` (D_λ, D_s, QNR, D_λ^K with the sensor's MTF, HQNR; the LMS
    is always the toolbox interp23tap of `ms`). Per sensor, each metric is the
    mean over images; the un-suffixed key (e.g. `fr_hqnr`) is the mean over
    sensors. Keys: `{prefix}{metric}` and, for dict data,
    `{prefix}{metric}_{sensor_key}` (e.g. `fr_hqnr_wv3`).

    Put this callback before `ModelCheckpoint(monitor="fr_hqnr", mode="max")`
    and the other callbacks that read its keys.

    Args:
        data: one of
            - `{sensor_name: inputs}` with `inputs` a dict of NumPy arrays
              `{"ms": (N, h, w, C), "pan": (N, 4h, 4w, 1)[, "lms"]}` in [0, 1];
            - `{sensor_name: batches}`, a re-iterable of input dicts or of
              `(inputs, anything)` tuples;
            - such inputs / batches directly, with `sensor=`;
            - a `keras_pansharp.MultiSensorDataset` of FR sources (its
              `evaluation_data()` arrays).
            PAN sides must be multiples of 32 (toolbox D_λ^K).
        sensor: the sensor for non-dict data, a `{key: sensor}` mapping, or
            None (dict keys are sensor names).
        metrics: subset of `("hqnr", "qnr", "d_lambda", "d_s", "d_lambda_k")`
            (all five by default; QNR and HQNR share D_s), plus on request
            Scarpa & Ciotola's `"d_rho"`, `"r_q2n"`, `"r_sam"`, `"r_ergas"`
            (logged as `fr_d_rho`, ...).
        every_n_epochs: evaluation period in epochs.
        prefix: key prefix (`"fr_"`).
        batch_size: prediction batch size for array data.
        verbose: 1 prints the scores after each evaluation.

    Example:

    >>> cb = FREvaluation({"wv3": {"ms": ms, "pan": pan}})  # doctest: +SKIP
    >>> ckpt = keras.callbacks.ModelCheckpoint(  # doctest: +SKIP
    ...     "best.keras", monitor="fr_hqnr", mode="max", save_best_only=True)
    >>> model.fit(..., callbacks=[cb, ckpt])  # doctest: +SKIP
    """

    _metric_names = FR_METRICS
    _optional_names = FR_EXTRA_METRICS

    def __init__(
        self,
        data,
        sensor: str | Sensor | Mapping[str, str | Sensor] | None = None,
        metrics: Sequence[str] | None = None,
        every_n_epochs: int = 1,
        prefix: str = "fr_",
        batch_size: int = 4,
        verbose: int = 0,
    ):
        super().__init__(
            data, sensor, metrics, every_n_epochs, prefix, batch_size, verbose, "FR"
        )

    def _is_arrays(self, v) -> bool:
        return _is_array_inputs(v) and "ms" in v and "pan" in v

    def _batches(self, source):
        if self._is_arrays(source):
            pred = self._predict(source, on_batch=False)
            yield pred, _to_numpy(source["ms"]), _to_numpy(source["pan"])
            return
        for batch in _iter_batches(source):
            inputs = batch[0] if isinstance(batch, (tuple, list)) else batch
            if (
                not isinstance(inputs, Mapping)
                or "ms" not in inputs
                or "pan" not in inputs
            ):
                raise ValueError(
                    "FR batches must be input dicts with 'ms' and 'pan' (or "
                    "(inputs, ...) tuples)."
                )
            inputs = {k: _to_numpy(v) for k, v in inputs.items()}
            pred = self._predict(inputs, on_batch=True)
            yield pred, inputs["ms"], inputs["pan"]

    def _score_source(self, s: Sensor, source):
        for pred, ms, pan in self._batches(source):
            if ms.shape[-1] != s.num_bands:
                raise ValueError(
                    f"ms has {ms.shape[-1]} bands, sensor {s.name} has {s.num_bands}."
                )
            for f_img, m_img, p_img in zip(pred, ms, pan):
                if not np.all(np.isfinite(f_img)):
                    yield self._nan_values("the model output has NaN/inf")
                    continue
                # keras_pansharp.evaluation's FR image score (evaluate_fr in
                # DN); no "lms": the toolbox interp23tap of `ms`, as before.
                r = score_fr_image(
                    f_img,
                    m_img,
                    p_img,
                    s,
                    consistency=any(m in FR_EXTRA_METRICS for m in self.metrics),
                )
                yield {m: r[m] for m in self.metrics}
