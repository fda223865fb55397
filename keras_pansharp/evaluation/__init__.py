"""keras_pansharp.evaluation: per-sensor RR / FR score tables.

`evaluate(predictor, rr=..., fr=...)` fuses held-out data with a Keras
model, a `predict_on_batch` object, a plain callable or a classical method
and scores every image with the toolbox-exact `evaluate_rr` /
`evaluate_fr` in digital numbers. It returns an `EvaluationTable` (mean per
sensor, optionally per image) that writes CSV, JSON and Markdown
atomically. `load_sources` reads the data once for several predictors.

See `docs/evaluation.md`.
"""

from keras_pansharp.evaluation.predictors import (
    CLASSICAL_NAMES,
    classical_method,
    make_fuser,
)
from keras_pansharp.evaluation.scoring import (
    DEFAULT_METRICS,
    FR_METRICS,
    RR_METRICS,
    evaluate,
    score_fr_image,
)
from keras_pansharp.evaluation.sources import EvaluationSource, load_sources
from keras_pansharp.evaluation.table import HEADERS, METRIC_COLUMNS, EvaluationTable
from keras_pansharp.utils.io import atomic_path, write_atomic

__all__ = [
    "CLASSICAL_NAMES",
    "DEFAULT_METRICS",
    "FR_METRICS",
    "HEADERS",
    "METRIC_COLUMNS",
    "RR_METRICS",
    "EvaluationSource",
    "EvaluationTable",
    "atomic_path",
    "classical_method",
    "evaluate",
    "load_sources",
    "make_fuser",
    "score_fr_image",
    "write_atomic",
]
