"""Flag handling shared by the example scripts.

Not part of the library API; the examples import it as a sibling module.
Evaluation and result tables live in the library: `keras_pansharp.evaluate`
and `keras_pansharp.evaluation.EvaluationTable`.
"""

from __future__ import annotations

import os
from pathlib import Path


def parse_sources(specs: list[str] | None, flag: str) -> dict[str, list[str]]:
    """Parse repeated `sensor=path` flag values into `{sensor: [paths]}`."""
    out: dict[str, list[str]] = {}
    for spec in specs or []:
        if "=" not in spec:
            raise ValueError(
                f"--{flag} expects SENSOR=PATH (e.g. wv3=train_wv3.h5), got {spec!r}"
            )
        name, path = spec.split("=", 1)
        name = name.strip().lower()
        if not Path(path).exists():
            raise ValueError(f"--{flag} {spec}: file {path!r} does not exist")
        out.setdefault(name, []).append(path)
    return out


def write_atomic(path: str | os.PathLike, text: str) -> Path:
    """`keras_pansharp.utils.io.write_atomic` (imported lazily: this module
    stays light for the scripts' flag errors and `--help`)."""
    from keras_pansharp.utils.io import write_atomic as _write_atomic

    return _write_atomic(path, text)
