"""Helpers shared by the example scripts (data sources, evaluation, tables).

Not part of the library API; the examples import it as a sibling module.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path

import numpy as np

from keras_pansharp.metrics import evaluate_fr, evaluate_rr
from keras_pansharp.sensors import Sensor

RR_KEYS = ("q2n", "sam", "ergas", "scc", "psnr")
FR_KEYS = ("d_lambda", "d_s", "qnr", "hqnr")
COLUMNS = tuple(f"rr_{k}" for k in RR_KEYS) + tuple(f"fr_{k}" for k in FR_KEYS)
HEADERS = {
    "rr_q2n": "Q2n",
    "rr_sam": "SAM",
    "rr_ergas": "ERGAS",
    "rr_scc": "SCC",
    "rr_psnr": "PSNR",
    "fr_d_lambda": "D_lambda",
    "fr_d_s": "D_s",
    "fr_qnr": "QNR",
    "fr_hqnr": "HQNR",
    "fr_d_lambda_k": "D_lambda_K",
}


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


def write_atomic(path: str | os.PathLike, text: str) -> None:
    """Write `text` to `path` atomically (temp file in the same dir + rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.tmp-")
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)  # mkstemp creates 0600 files
    try:
        with os.fdopen(fd, "w", newline="") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def source_keys(dataset) -> dict[str, str]:
    """`{served sensor name (lower case): source name}` of a dataset."""
    return {s.name.lower(): src for src, s in dataset.sensors.items()}


def _mean_scores(scores: list[dict]) -> dict[str, float]:
    keys = scores[0].keys()
    return {k: float(np.mean([s[k] for s in scores])) for k in keys}


def evaluate_fused(
    fuse: Callable[[dict], np.ndarray],
    rr_data: Mapping | None,
    fr_data: Mapping | None,
    sensors: Mapping[str, Sensor],
    names: Mapping[str, str] | None = None,
    dim_cut: int = 0,
) -> dict[str, dict[str, float]]:
    """Per-sensor RR and FR scores (toolbox-exact), averaged over images.

    Args:
        fuse: maps a batch `{"ms", "pan", "lms"}` (normalised NHWC) to the
            fused batch `(B, H, W, C)`.
        rr_data: `{sensor key: (inputs, gt)}` from `evaluation_data()`.
        fr_data: `{sensor key: inputs}` from `evaluation_data()`.
        sensors: `{sensor key: Sensor}` for the metric parameters.
        names: optional `{sensor key: row name}`.
        dim_cut: RR border cut.

    Returns:
        `{row name: {"rr_q2n": ..., "fr_hqnr": ..., "n_rr": ..., "n_fr": ...}}`.
    """
    names = names or {}
    rows: dict[str, dict[str, float]] = {}
    for key, (inputs, gt) in (rr_data or {}).items():
        fused = fuse(inputs)
        scores = [
            evaluate_rr(
                fused[i], gt[i], sensor=sensors[key], normalized=True, dim_cut=dim_cut
            )
            for i in range(len(gt))
        ]
        mean = _mean_scores(scores)
        row = rows.setdefault(names.get(key, key), {})
        row.update({f"rr_{k}": mean[k] for k in RR_KEYS})
        row["n_rr"] = len(gt)
    for key, inputs in (fr_data or {}).items():
        fused = fuse(inputs)
        scores = [
            evaluate_fr(
                fused[i],
                inputs["ms"][i],
                inputs["pan"][i],
                sensor=sensors[key],
                normalized=True,
                lms=inputs["lms"][i],
            )
            for i in range(len(fused))
        ]
        mean = _mean_scores(scores)
        row = rows.setdefault(names.get(key, key), {})
        row.update({f"fr_{k}": mean[k] for k in (*FR_KEYS, "d_lambda_k")})
        row["n_fr"] = len(fused)
    return rows


def model_fuser(model, batch_size: int = 4):
    """`fuse` callable for `evaluate_fused` running a Keras model."""

    def fuse(inputs):
        return np.asarray(
            model.predict(inputs, batch_size=batch_size, verbose=0), np.float64
        )

    return fuse


def classical_fuser(method: Callable, sensor: Sensor):
    """`fuse` callable for a toolbox classical method `(ms, pan, sensor)`."""

    def fuse(inputs):
        return np.stack(
            [
                method(
                    np.asarray(inputs["ms"][i], np.float64),
                    np.asarray(inputs["pan"][i][..., 0], np.float64),
                    sensor,
                )
                for i in range(len(inputs["ms"]))
            ]
        )

    return fuse


def format_table(
    rows: Mapping[str, Mapping[str, float]],
    columns=COLUMNS,
    first: str = "sensor",
) -> str:
    """Markdown table: one row per entry, the given metric columns."""
    header = [first] + [HEADERS.get(c, c) for c in columns]
    lines = [
        "| " + " | ".join(header) + " |",
        "|" + "|".join(["---"] * len(header)) + "|",
    ]
    for name, row in rows.items():
        cells = [name]
        for c in columns:
            v = row.get(c)
            if v is None or (isinstance(v, float) and math.isnan(v)):
                cells.append("-")
            elif c.endswith(("psnr", "sam", "ergas")):
                cells.append(f"{v:.3f}")
            else:
                cells.append(f"{v:.4f}")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def save_results(out_dir, stem: str, rows: Mapping, meta: Mapping | None = None):
    """Write `rows` as `<stem>.csv` and `<stem>.json` (atomic writes)."""
    out_dir = Path(out_dir)
    cols = sorted({k for r in rows.values() for k in r})
    ordered = [c for c in (*COLUMNS, "fr_d_lambda_k", "n_rr", "n_fr") if c in cols]
    ordered += [c for c in cols if c not in ordered]
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(["name", *ordered])
    for name, row in rows.items():
        writer.writerow([name, *[row.get(c, "") for c in ordered]])
    write_atomic(out_dir / f"{stem}.csv", buf.getvalue())
    payload = {"results": rows}
    if meta:
        payload["meta"] = dict(meta)
    write_atomic(out_dir / f"{stem}.json", json.dumps(payload, indent=2))
    return out_dir / f"{stem}.csv", out_dir / f"{stem}.json"
