"""`EvaluationTable`: per-sensor scores with CSV, JSON and Markdown output."""

from __future__ import annotations

import csv
import io
import json
import math
import os
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from keras_pansharp.utils.io import write_atomic

__all__ = ["EvaluationTable", "HEADERS", "METRIC_COLUMNS"]

#: Metric columns in table order: `rr_<metric>` (reduced resolution, against
#: the reference) then `fr_<metric>` (full resolution, no reference).
METRIC_COLUMNS = (
    "rr_q2n",
    "rr_sam",
    "rr_ergas",
    "rr_scc",
    "rr_psnr",
    "rr_q_avg",
    "rr_ssim",
    "fr_d_lambda",
    "fr_d_s",
    "fr_qnr",
    "fr_hqnr",
    "fr_d_lambda_k",
    "fr_d_rho",
    "fr_r_q2n",
    "fr_r_sam",
    "fr_r_ergas",
)
_COUNT_COLUMNS = ("n_rr", "n_fr")
#: Markdown headers of the columns.
HEADERS = {
    "rr_q2n": "Q2n",
    "rr_sam": "SAM",
    "rr_ergas": "ERGAS",
    "rr_scc": "SCC",
    "rr_psnr": "PSNR",
    "rr_q_avg": "Q_avg",
    "rr_ssim": "SSIM",
    "fr_d_lambda": "D_lambda",
    "fr_d_s": "D_s",
    "fr_qnr": "QNR",
    "fr_hqnr": "HQNR",
    "fr_d_lambda_k": "D_lambda_K",
    "fr_d_rho": "D_rho",
    "fr_r_q2n": "R-Q2n",
    "fr_r_sam": "R-SAM",
    "fr_r_ergas": "R-ERGAS",
    "n_rr": "N_RR",
    "n_fr": "N_FR",
}
_SPLITS = ("rr", "fr")

Row = dict[str, float]
PerImage = dict[str, dict[str, list[Row]]]


def _order(keys: Iterable[str]) -> list[str]:
    keys = set(keys)
    known = [c for c in (*METRIC_COLUMNS, *_COUNT_COLUMNS) if c in keys]
    return known + sorted(keys - set(known))


def _is_missing(v) -> bool:
    return v is None or (isinstance(v, float) and math.isnan(v))


def _cell(column: str, v) -> str:
    if _is_missing(v):
        return "-"
    if column.startswith("n_"):
        return str(int(v))
    if column.endswith(("psnr", "sam", "ergas")):
        return f"{v:.3f}"
    return f"{v:.4f}"


def _parse(column: str, text: str):
    if column.startswith("n_"):
        return int(float(text))
    return float(text)


def _json_safe(value):
    """NaN / inf -> None (strict JSON); NumPy scalars -> Python numbers."""
    if isinstance(value, Mapping):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _from_json_row(row: Mapping) -> Row:
    return {
        k: (math.nan if v is None and not k.startswith("n_") else v)
        for k, v in row.items()
    }


def rows_from_images(per_image: PerImage) -> dict[str, Row]:
    """Mean rows from per-image scores: `{name: {col: mean, "n_rr": N, ...}}`.

    The mean of a column is `np.mean` over the images of its split.
    """
    rows: dict[str, Row] = {}
    for name, splits in per_image.items():
        row: Row = {}
        for split in _SPLITS:
            scores = splits.get(split) or []
            if not scores:
                continue
            for key in scores[0]:
                row[key] = float(np.mean([s[key] for s in scores]))
            row[f"n_{split}"] = len(scores)
        rows[name] = row
    return rows


class EvaluationTable:
    """Per-sensor (or per-method) scores with CSV, JSON and Markdown output.

    `keras_pansharp.evaluate` returns one. Each row is a dict of mean scores
    over its images: `rr_<metric>` (reduced resolution: `q2n`, `sam` in
    degrees, `ergas`, `scc`, `psnr` in dB, optionally `q_avg`, `ssim`),
    `fr_<metric>` (full resolution: `d_lambda`, `d_s`, `qnr`, `hqnr`,
    `d_lambda_k`, optionally `d_rho`, `r_q2n`, `r_sam`, `r_ergas`), and the image counts `n_rr` / `n_fr`. Scores that could
    not be computed (a non-finite prediction) are NaN.

    Files are written atomically (temporary file + rename): a reader never
    sees a partial file.

    Args:
        rows: `{row name: {column: value}}`, in display order.
        per_image: optional `{row name: {"rr": [scores], "fr": [scores]}}`,
            one dict per image with the same `rr_*` / `fr_*` keys.
        meta: free-form JSON-serialisable information (predictor, settings).
        index_name: header of the first Markdown column (`"sensor"`).

    Example:

    ```python
    table = keras_pansharp.evaluate("MTF-GLP-HPM-R", rr=paths["test_rr"])
    table["wv3"]["rr_q2n"]       # mean Q2n of the WV3 images
    print(table.to_markdown())
    table.save("runs/eval/mtf")  # mtf.csv, mtf.json, mtf.md
    EvaluationTable.from_json("runs/eval/mtf.json")["wv3"]
    ```
    """

    def __init__(
        self,
        rows: Mapping[str, Mapping[str, float]],
        per_image: PerImage | None = None,
        meta: Mapping[str, Any] | None = None,
        index_name: str = "sensor",
    ):
        self.rows: dict[str, Row] = {str(k): dict(v) for k, v in rows.items()}
        self.per_image: PerImage | None = None
        if per_image is not None:
            unknown = set(per_image) - set(self.rows)
            if unknown:
                raise ValueError(
                    f"per_image has rows {sorted(unknown)} that are not in rows "
                    f"{list(self.rows)}."
                )
            self.per_image = {
                str(k): {s: [dict(r) for r in v.get(s, [])] for s in _SPLITS}
                for k, v in per_image.items()
            }
        self.meta: dict[str, Any] = dict(meta or {})
        self.index_name = str(index_name)

    # ------------------------------------------------------------- mapping
    @property
    def names(self) -> list[str]:
        """Row names in display order."""
        return list(self.rows)

    @property
    def columns(self) -> list[str]:
        """All columns present in any row, in table order."""
        return _order(k for r in self.rows.values() for k in r)

    def __getitem__(self, name: str) -> Row:
        if name not in self.rows:
            raise KeyError(f"No row {name!r}; rows are {self.names}.")
        return self.rows[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self.rows)

    def __len__(self) -> int:
        return len(self.rows)

    def __contains__(self, name) -> bool:
        return name in self.rows

    def __repr__(self) -> str:
        return (
            f"<EvaluationTable rows={self.names} columns={self.columns}"
            f"{' per_image' if self.per_image else ''}>"
        )

    def __str__(self) -> str:
        return self.to_markdown()

    def _repr_markdown_(self) -> str:
        return self.to_markdown()

    # -------------------------------------------------------------- output
    def _metric_columns(self, columns: Sequence[str] | None) -> list[str]:
        if columns is not None:
            return list(columns)
        present = [c for c in self.columns if not c.startswith("n_")]
        if "fr_hqnr" in present:  # D_lambda_K is HQNR's spectral term
            present = [c for c in present if c != "fr_d_lambda_k"]
        return present

    def to_markdown(
        self,
        path: str | os.PathLike | None = None,
        *,
        columns: Sequence[str] | None = None,
        per_image: bool = False,
    ) -> str | Path:
        """The table as Markdown (SAM, ERGAS, PSNR with 3 decimals, else 4).

        Args:
            path: if given, write the text there (atomically) and return the
                path; otherwise return the text.
            columns: columns to show; default: every metric column present
                except `fr_d_lambda_k` when `fr_hqnr` is shown.
            per_image: one line per image (columns `index_name`, `image`
                such as `rr 0`) instead of the means; needs `per_image`
                scores.

        Returns:
            The Markdown text (no trailing newline), or `Path(path)`.
        """
        cols = self._metric_columns(columns)
        first = [self.index_name] + (["image"] if per_image else [])
        header = first + [HEADERS.get(c, c) for c in cols]
        lines = [
            "| " + " | ".join(header) + " |",
            "|" + "|".join(["---"] * len(header)) + "|",
        ]
        for lead, row in self._lines(per_image):
            cells = lead + [_cell(c, row.get(c)) for c in cols]
            lines.append("| " + " | ".join(cells) + " |")
        text = "\n".join(lines)
        if path is None:
            return text
        return write_atomic(path, text + "\n")

    def _lines(self, per_image: bool):
        if not per_image:
            for name, row in self.rows.items():
                yield [name], row
            return
        if self.per_image is None:
            raise ValueError(
                "This table has no per-image scores; evaluate(..., per_image=True)."
            )
        for name, splits in self.per_image.items():
            for split in _SPLITS:
                for i, row in enumerate(splits.get(split, [])):
                    yield [name, f"{split} {i}"], row

    def to_csv(
        self, path: str | os.PathLike | None = None, *, per_image: bool = False
    ) -> str | Path:
        """The table as CSV.

        Mean table: header `name, <columns>` (metric columns, then `n_rr`,
        `n_fr`), one line per row. Per-image table: header
        `name, split, image, <metric columns>`, one line per image (`split`
        is `rr` or `fr`; the other split's columns are empty). Floats are
        written with full precision (`repr`), so `from_csv` reads back the
        same numbers.

        Args:
            path: if given, write there (atomically) and return the path;
                otherwise return the text.
            per_image: write the per-image scores.

        Returns:
            The CSV text, or `Path(path)`.
        """
        buf = io.StringIO()
        writer = csv.writer(buf)
        if not per_image:
            cols = self.columns
            writer.writerow(["name", *cols])
            for name, row in self.rows.items():
                writer.writerow([name, *[row.get(c, "") for c in cols]])
        else:
            if self.per_image is None:
                raise ValueError(
                    "This table has no per-image scores; evaluate(..., per_image=True)."
                )
            cols = _order(
                k
                for splits in self.per_image.values()
                for rows in splits.values()
                for r in rows
                for k in r
            )
            writer.writerow(["name", "split", "image", *cols])
            for name, splits in self.per_image.items():
                for split in _SPLITS:
                    for i, row in enumerate(splits.get(split, [])):
                        cells = [row.get(c, "") for c in cols]
                        writer.writerow([name, split, i, *cells])
        text = buf.getvalue()
        if path is None:
            return text
        return write_atomic(path, text)

    def to_dict(self) -> dict[str, Any]:
        """`{"results": rows, "meta": ..., "index_name": ...[, "per_image"]}`."""
        out: dict[str, Any] = {"results": self.rows}
        if self.meta:
            out["meta"] = self.meta
        out["index_name"] = self.index_name
        if self.per_image is not None:
            out["per_image"] = self.per_image
        return out

    def to_json(self, path: str | os.PathLike | None = None) -> str | Path:
        """The table as JSON (`to_dict()`; NaN written as `null`).

        Args:
            path: if given, write there (atomically) and return the path;
                otherwise return the text.

        Returns:
            The JSON text, or `Path(path)`.
        """
        text = json.dumps(
            _json_safe(self.to_dict()), indent=2, allow_nan=False, default=str
        )
        if path is None:
            return text
        return write_atomic(path, text + "\n")

    def save(
        self,
        path: str | os.PathLike,
        formats: Sequence[str] | None = None,
    ) -> dict[str, Path]:
        """Write the table to files (atomically).

        `path` with a `.csv`, `.json` or `.md` suffix writes that one file;
        any other `path` is a stem: `<path>.csv`, `<path>.json` and
        `<path>.md` (or the `formats` given). With per-image scores, a CSV
        file `x.csv` comes with `x_per_image.csv` (the JSON file always
        holds them). Missing folders are created.

        Args:
            path: a file name (`"results.csv"`) or a stem
                (`"runs/eval/results"`).
            formats: for a stem, any of `"csv"`, `"json"`, `"md"` (default:
                all three).

        Returns:
            `{format: path}` of the files written (plus `"per_image_csv"`).

        Example:

        >>> table.save("runs/eval/results")  # doctest: +SKIP
        {'csv': PosixPath('runs/eval/results.csv'), 'json': ..., 'md': ...}
        """
        path = Path(path)
        suffix = path.suffix.lower()
        if suffix in (".csv", ".json", ".md"):
            if formats is not None and list(formats) != [suffix[1:]]:
                raise ValueError(
                    f"save({str(path)!r}): the suffix selects the format; pass a "
                    f"stem (no suffix) to write formats {list(formats)}."
                )
            files = {suffix[1:]: path}
        else:
            formats = ("csv", "json", "md") if formats is None else tuple(formats)
            unknown = set(formats) - {"csv", "json", "md"}
            if unknown or not formats:
                raise ValueError(
                    f"Unknown formats {sorted(unknown)}; choose from 'csv', 'json', "
                    "'md'."
                )
            files = {f: path.with_name(f"{path.name}.{f}") for f in formats}
        out: dict[str, Path] = {}
        for fmt, p in files.items():
            if fmt == "csv":
                out["csv"] = self.to_csv(p)
                if self.per_image is not None:
                    out["per_image_csv"] = self.to_csv(
                        p.with_name(f"{p.stem}_per_image.csv"), per_image=True
                    )
            elif fmt == "json":
                out["json"] = self.to_json(p)
            else:
                out["md"] = self.to_markdown(p)
        return out

    # -------------------------------------------------------------- input
    @classmethod
    def from_dict(cls, payload: Mapping[str, Any]) -> EvaluationTable:
        """Inverse of `to_dict()` (`null` scores become NaN)."""
        if "results" not in payload:
            raise ValueError(
                f"Not an evaluation table: no 'results' key (keys {sorted(payload)})."
            )
        rows = {k: _from_json_row(v) for k, v in payload["results"].items()}
        per_image = payload.get("per_image")
        if per_image is not None:
            per_image = {
                name: {s: [_from_json_row(r) for r in v] for s, v in splits.items()}
                for name, splits in per_image.items()
            }
        return cls(
            rows,
            per_image=per_image,
            meta=payload.get("meta"),
            index_name=payload.get("index_name", "sensor"),
        )

    @classmethod
    def from_json(cls, path: str | os.PathLike) -> EvaluationTable:
        """Read a table written by `to_json` / `save`."""
        return cls.from_dict(json.loads(Path(path).read_text(encoding="utf-8")))

    @classmethod
    def from_csv(
        cls, path: str | os.PathLike, index_name: str = "sensor"
    ) -> EvaluationTable:
        """Read a table written by `to_csv` (mean or per-image).

        A per-image file gives a table with `per_image` scores and the mean
        rows recomputed from them (equal to the evaluated ones).

        Args:
            path: the CSV file.
            index_name: header of the first Markdown column.

        Returns:
            The `EvaluationTable` (without `meta`, which CSV does not hold).
        """
        with open(path, newline="", encoding="utf-8") as f:
            lines = list(csv.reader(f))
        if not lines or not lines[0] or lines[0][0] != "name":
            raise ValueError(f"{path}: not an evaluation table (no 'name' column).")
        header = lines[0]
        if header[1:3] == ["split", "image"]:
            per_image: PerImage = {}
            for line in lines[1:]:
                name, split = line[0], line[1]
                row = {c: _parse(c, v) for c, v in zip(header[3:], line[3:]) if v != ""}
                splits = per_image.setdefault(name, {s: [] for s in _SPLITS})
                splits[split].append(row)
            return cls(
                rows_from_images(per_image), per_image=per_image, index_name=index_name
            )
        rows = {
            line[0]: {c: _parse(c, v) for c, v in zip(header[1:], line[1:]) if v != ""}
            for line in lines[1:]
        }
        return cls(rows, index_name=index_name)

    # --------------------------------------------------------- combination
    @classmethod
    def merge(
        cls, tables: Iterable[EvaluationTable], index_name: str | None = None
    ) -> EvaluationTable:
        """One table with the rows of all `tables` (row names must differ).

        For example the per-sensor tables of several single-sensor models.
        `meta` keeps the entries all tables agree on; per-image scores are
        kept when every table has them.
        """
        tables = list(tables)
        if not tables:
            raise ValueError("merge: no tables.")
        rows: dict[str, Row] = {}
        for t in tables:
            dup = set(rows) & set(t.rows)
            if dup:
                raise ValueError(f"merge: row names {sorted(dup)} appear twice.")
            rows.update(t.rows)
        per_image = None
        if all(t.per_image is not None for t in tables):
            per_image = {k: v for t in tables for k, v in t.per_image.items()}
        return cls(
            rows,
            per_image=per_image,
            meta=_common_meta(tables),
            index_name=index_name or tables[0].index_name,
        )

    @classmethod
    def compare(
        cls,
        tables: Mapping[str, EvaluationTable],
        separator: str = " / ",
        index_name: str = "sensor / method",
    ) -> EvaluationTable:
        """Side-by-side rows `<row><separator><label>` grouped by row.

        Args:
            tables: `{label: table}`, e.g. `{"PanTiny": t1, "EXP": t2}`.
            separator: between row name and label.
            index_name: header of the first Markdown column.

        Returns:
            A table with rows `"wv3 / PanTiny", "wv3 / EXP", "gf2 / PanTiny",
            ...`: row names in order of first appearance, then labels in
            the order given.
        """
        if not tables:
            raise ValueError("compare: no tables.")
        names: list[str] = []
        for t in tables.values():
            names += [n for n in t.rows if n not in names]
        rows: dict[str, Row] = {}
        per_image: PerImage | None = (
            {} if all(t.per_image is not None for t in tables.values()) else None
        )
        for name in names:
            for label, t in tables.items():
                if name in t.rows:
                    key = f"{name}{separator}{label}"
                    rows[key] = t.rows[name]
                    if per_image is not None and name in t.per_image:
                        per_image[key] = t.per_image[name]
        return cls(
            rows,
            per_image=per_image,
            meta=_common_meta(list(tables.values())),
            index_name=index_name,
        )


def _common_meta(tables: Sequence[EvaluationTable]) -> dict[str, Any]:
    missing = object()
    first = tables[0].meta
    return {
        k: v
        for k, v in first.items()
        if all(t.meta.get(k, missing) == v for t in tables)
    }
