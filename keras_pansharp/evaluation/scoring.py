"""`evaluate`: score a predictor on RR and FR data into an `EvaluationTable`."""

from __future__ import annotations

import math
import time
import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from keras_pansharp.evaluation.predictors import make_fuser, predictor_bands
from keras_pansharp.evaluation.sources import EvaluationSource, SensorSpec, load_sources
from keras_pansharp.evaluation.table import EvaluationTable, rows_from_images
from keras_pansharp.metrics import evaluate_fr, evaluate_rr
from keras_pansharp.sensors import Sensor

__all__ = ["DEFAULT_METRICS", "FR_METRICS", "RR_METRICS", "evaluate"]

#: Reduced-resolution metrics (`evaluate_rr`): SAM in degrees, PSNR in dB.
RR_METRICS = ("q2n", "sam", "ergas", "scc", "psnr", "q_avg", "ssim")
#: Full-resolution metrics (`evaluate_fr`): the toolbox's, then Scarpa &
#: Ciotola's D_rho and reprojection indices (R-SAM in degrees).
FR_METRICS = (
    "d_lambda",
    "d_s",
    "qnr",
    "hqnr",
    "d_lambda_k",
    "d_rho",
    "r_q2n",
    "r_sam",
    "r_ergas",
)
#: What `evaluate` keeps by default (the toolbox's, without `q_avg`, `ssim`).
DEFAULT_METRICS = RR_METRICS[:5] + FR_METRICS[:5]
_UNITS = {"sam_units": "degrees", "psnr_units": "dB"}


def _split_metrics(metrics: Sequence[str] | None) -> tuple[list[str], list[str]]:
    if metrics is None:
        metrics = DEFAULT_METRICS
    if isinstance(metrics, str):
        metrics = [metrics]
    metrics = [str(m).lower() for m in metrics]
    unknown = [m for m in metrics if m not in RR_METRICS + FR_METRICS]
    if unknown or not metrics:
        raise ValueError(
            f"Unknown metric(s) {unknown}; choose from RR {list(RR_METRICS)} and FR "
            f"{list(FR_METRICS)}."
        )
    return (
        [m for m in RR_METRICS if m in metrics],
        [m for m in FR_METRICS if m in metrics],
    )


def score_fr_image(
    fused: np.ndarray,
    ms: np.ndarray,
    pan: np.ndarray,
    sensor: Sensor,
    lms: np.ndarray | None = None,
    consistency: bool = True,
) -> dict[str, float]:
    """FR scores of one normalised image: `evaluate_fr(..., normalized=True)`.

    Args:
        fused: `(H, W, C)` in [0, 1].
        ms: `(H/4, W/4, C)` in [0, 1].
        pan: `(H, W, 1)` or `(H, W)` in [0, 1].
        sensor: the sensor (max DN, MTF gains).
        lms: optional `(H, W, C)` upsampled MS in [0, 1] (default: the
            toolbox `interp23tap` of `ms`).
        consistency: also compute D_rho and the reprojection indices.

    Returns:
        `{"d_lambda", "d_s", "qnr", "d_lambda_k", "hqnr", "d_rho", "r_q2n",
        "r_sam", "r_ergas"}`, computed in DN.
    """
    return evaluate_fr(
        fused, ms, pan, sensor=sensor, normalized=True, lms=lms, consistency=consistency
    )


def _fuse(fuse, label: str, src: EvaluationSource, split: str) -> np.ndarray:
    ms = src.inputs["ms"]
    n, h, w, c = ms.shape
    expected = (n, 4 * h, 4 * w, c)
    fused = np.asarray(fuse(src.inputs, src.sensor))
    if fused.shape != expected:
        hint = ""
        if fused.ndim == 4 and fused.shape[:3] == expected[:3]:
            hint = (
                f" The predictor makes {fused.shape[-1]} bands and the data has "
                f"{c}: for a 4-band model on 8-band data pass bands='rgbn'."
            )
        raise ValueError(
            f"{label!r} returned shape {fused.shape} for {split} source "
            f"{src.name!r} ({src.sensor.name}); expected {expected} (N images, PAN "
            f"size, MS bands).{hint}"
        )
    return fused


def _score(fuse, label, src, split, metrics, dim_cut) -> list[dict[str, float]]:
    fused = _fuse(fuse, label, src, split)
    lms = src.inputs.get("lms")
    out = []
    for i in range(len(src)):
        if not np.all(np.isfinite(fused[i])):
            warnings.warn(
                f"evaluate: {label!r} output for {split} source {src.name!r} image "
                f"{i} has NaN/inf values; its scores are NaN.",
                stacklevel=3,
            )
            out.append({f"{split}_{m}": math.nan for m in metrics})
            continue
        if split == "rr":
            r = evaluate_rr(
                fused[i],
                src.gt[i],
                sensor=src.sensor,
                normalized=True,
                dim_cut=dim_cut,
            )
        else:
            r = score_fr_image(
                fused[i],
                src.inputs["ms"][i],
                src.inputs["pan"][i],
                src.sensor,
                lms=None if lms is None else lms[i],
                consistency=any(m in FR_METRICS[5:] for m in metrics),
            )
        out.append({f"{split}_{m}": r[m] for m in metrics})
    return out


def _band_mode(bands: str, predictors) -> str:
    if bands not in ("auto", "native", "rgbn"):
        raise ValueError(f"bands must be 'auto', 'native' or 'rgbn', got {bands!r}.")
    if bands != "auto":
        return bands
    return "rgbn" if any(predictor_bands(p) == 4 for p in predictors) else "native"


def evaluate(
    predictor: Any,
    rr: Any = None,
    fr: Any = None,
    *,
    sensors: SensorSpec = None,
    metrics: Sequence[str] | None = None,
    per_image: bool = False,
    batch_size: int = 4,
    dim_cut: int = 0,
    bands: str = "auto",
    patch_size: int | None = None,
    max_images: int | None = None,
    verbose: int = 0,
) -> EvaluationTable:
    """Score a model or a classical method per sensor, toolbox-exact.

    Every image of every source is fused by `predictor`, then scored with
    `keras_pansharp.metrics.evaluate_rr` (reduced resolution, Wald's
    protocol: against the reference `gt`) or `evaluate_fr` (full
    resolution, no reference), in digital numbers: normalised arrays are
    multiplied by the source sensor's max DN (`normalized=True`). FR scoring
    uses the source's `lms` when it has one (PanCollection files do). A
    row's score is the mean over its images (`np.mean`).

    Args:
        predictor: what fuses `ms` `(B, h, w, C)` and `pan` `(B, 4h, 4w, 1)`,
            normalised to [0, 1], into `(B, 4h, 4w, C)`:
            - a `keras.Model` (dict inputs `ms`, `pan`[, `lms`]);
            - any object with `predict_on_batch(inputs) -> (B, 4h, 4w, C)`,
              e.g. a wrapper of a loaded SavedModel;
            - a plain callable `fn(ms, pan) -> fused` on batches;
            - a classical method: a name (`"EXP"`, `"BT-H"`,
              `"MTF-GLP-HPM-R"`, or `"bt_h"`, `"mtf_glp_hpm_r"`), one of
              `keras_pansharp.signal.exp_method` / `bt_h` / `mtf_glp_hpm_r`,
              or any callable with a `sensor` parameter, called per image as
              `fn(ms (h, w, C), pan (4h, 4w), sensor)`;
            - a dict `{label: predictor}` of those: all are scored on the
              same data and the table has rows `"<sensor> / <label>"`
              (`EvaluationTable.compare`).
        rr: reduced-resolution data (with `gt`), one table row per source:
            `{name: path or [paths]}` (PanCollection `.h5`, folder datasets),
            `{name: reader or Scene}`, `{name: (inputs, gt)}` normalised
            arrays (what `MultiSensorDataset.evaluation_data()` returns), a
            `MultiSensorDataset`, or the result of `load_sources`. Names are
            sensor names (`"wv3"`, `"gf2"`, ...) unless `sensors` maps them.
        fr: full-resolution data (no `gt` needed): the same forms, with
            `{name: inputs}` for arrays. PAN sides must be multiples of 32
            (toolbox D_lambda^K).
        sensors: the sensor of every source (a name or `Sensor`), or
            `{name: sensor}` for source names that are not sensor names.
        metrics: metric names to keep, from `RR_METRICS` and `FR_METRICS`;
            default `DEFAULT_METRICS` (`q2n`, `sam`, `ergas`, `scc`, `psnr`,
            `d_lambda`, `d_s`, `qnr`, `hqnr`, `d_lambda_k`; add `d_rho`,
            `r_q2n`, `r_sam`, `r_ergas` for Scarpa & Ciotola's indices).
        per_image: also keep every image's scores (`table.per_image`).
        batch_size: images per model call.
        dim_cut: RR border cut of the toolbox (0 for patches, 21 for the
            256 x 256 test images).
        bands: `"native"` (every band), `"rgbn"` (8-band data reduced to
            blue, green, red, NIR, the sensor becoming e.g. `WV3_RGBN`) or
            `"auto"` (default: `"rgbn"` when a predictor is a 4-band model,
            i.e. its `bands` attribute or `"ms"` input has 4 channels, so
            every predictor of a dict sees the same bands; else `"native"`).
            Applies to path and reader sources and to arrays with the
            sensor's full band count.
        patch_size: optional centred crop of every image (PAN pixels,
            multiple of 4).
        max_images: optional cap on the images per source (the first ones).
        verbose: 1 prints one line per source scored.

    Returns:
        An `EvaluationTable`: rows named like the sources (RR sources first)
        with `rr_<metric>`, `n_rr`, `fr_<metric>`, `n_fr`; `meta` records
        the predictor, `dim_cut`, `bands` and units.

    Raises:
        ValueError: when neither `rr` nor `fr` is given, for empty or
            malformed sources, unknown sensors, metrics or classical
            methods, RR data without `gt`, or a predictor output of the
            wrong shape.

    Example:

    ```python
    import keras_pansharp as kp

    paths = kp.data.synthetic.ensure_datasets(("wv3", "gf2"))
    table = kp.evaluate("MTF-GLP-HPM-R", rr=paths["test_rr"], fr=paths["test_fr"])
    print(table.to_markdown())        # | sensor | Q2n | SAM | ... | HQNR |
    model = kp.PanTiny.from_preset("pantiny_multisensor")  # 4 bands: "rgbn"
    table = kp.evaluate({"PanTiny": model, "EXP": "EXP"}, rr=paths["test_rr"])
    table.save("runs/eval/pantiny")   # pantiny.csv, .json, .md
    ```
    """
    rr_metrics, fr_metrics = _split_metrics(metrics)
    if int(batch_size) < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}.")
    if int(dim_cut) < 0:
        raise ValueError(f"dim_cut must be >= 0, got {dim_cut}.")
    if rr is None and fr is None:
        raise ValueError(
            "evaluate: no data; pass rr= (reduced-resolution data with ground "
            "truth) and/or fr= (full-resolution data), e.g. "
            "rr={'wv3': 'test_wv3.h5'}."
        )
    for split, data, kept in (("rr", rr, rr_metrics), ("fr", fr, fr_metrics)):
        if data is not None and not kept:
            raise ValueError(
                f"{split}= is given but metrics {list(metrics or [])} has no "
                f"{split.upper()} metric."
            )
    multi = isinstance(predictor, Mapping)
    predictors = dict(predictor) if multi else {None: predictor}
    if not predictors:
        raise ValueError("evaluate: no predictors (empty dict).")
    fusers = {key: make_fuser(p, int(batch_size)) for key, p in predictors.items()}
    mode = _band_mode(bands, predictors.values())
    kwargs = dict(
        sensors=sensors, bands=mode, patch_size=patch_size, max_images=max_images
    )
    rr_src = {} if rr is None else load_sources(rr, what="rr", **kwargs)
    fr_src = {} if fr is None else load_sources(fr, what="fr", **kwargs)
    if isinstance(sensors, Mapping):
        unknown = set(sensors) - set(rr_src) - set(fr_src)
        if unknown:
            raise ValueError(
                f"sensors has entries {sorted(unknown)} that name no source; sources "
                f"are {sorted(set(rr_src) | set(fr_src))}."
            )
    for src in rr_src.values():
        if not src.has_gt:
            raise ValueError(
                f"rr source {src.name!r} has no ground truth 'gt' (full-resolution "
                "data?); pass it as fr= instead."
            )
    for key, p in predictors.items():
        want = predictor_bands(p)
        for src in (*rr_src.values(), *fr_src.values()):
            have = src.inputs["ms"].shape[-1]
            if want is not None and want != have:
                hint = " Pass bands='rgbn' or 'auto'." if want == 4 else ""
                raise ValueError(
                    f"{fusers[key][0]!r} takes {want} MS bands but source "
                    f"{src.name!r} ({src.sensor.name}) has {have}.{hint}"
                )
    settings = {"dim_cut": int(dim_cut), "bands": mode}
    tables = {}
    for key, (label, fuse) in fusers.items():
        images: dict[str, dict[str, list]] = {}
        for split, sources, kept in (
            ("rr", rr_src, rr_metrics),
            ("fr", fr_src, fr_metrics),
        ):
            for name, src in sources.items():
                t0 = time.time()
                scores = _score(fuse, label, src, split, kept, int(dim_cut))
                images.setdefault(name, {"rr": [], "fr": []})[split] = scores
                if verbose:
                    print(
                        f"evaluate {label}: {split} {name} ({src.sensor.name}), "
                        f"{len(src)} images, {time.time() - t0:.1f} s"
                    )
        tables[key] = EvaluationTable(
            rows_from_images(images),
            per_image=images if per_image else None,
            meta={"predictor": label, **settings, **_UNITS},
        )
    if not multi:
        return tables[None]
    table = EvaluationTable.compare({str(k): t for k, t in tables.items()})
    table.meta = {
        "predictors": {str(k): label for k, (label, _) in fusers.items()},
        **settings,
        **_UNITS,
    }
    return table
