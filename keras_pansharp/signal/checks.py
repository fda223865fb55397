"""Input validation shared by the NumPy signal tools."""

from __future__ import annotations

import numpy as np


def as_float_image(x, name: str, *, allow_2d: bool = True) -> np.ndarray:
    """Return `x` as a finite float64 array of rank 2 (if allowed) or 3.

    Raises:
        ValueError: wrong rank, empty array, non-numeric dtype, NaN or inf.
    """
    arr = np.asarray(x)
    if arr.dtype == object or not (
        np.issubdtype(arr.dtype, np.number) or arr.dtype == np.bool_
    ):
        raise ValueError(f"{name}: expected a numeric array, got dtype {arr.dtype}.")
    if np.issubdtype(arr.dtype, np.complexfloating):
        raise ValueError(f"{name}: complex input is not supported.")
    ranks = (2, 3) if allow_2d else (3,)
    if arr.ndim not in ranks:
        want = "(H, W) or (H, W, C)" if allow_2d else "(H, W, C)"
        raise ValueError(f"{name}: expected shape {want}, got {arr.shape}.")
    if arr.size == 0:
        raise ValueError(f"{name}: empty array of shape {arr.shape}.")
    arr = arr.astype(np.float64, copy=False)
    if not np.isfinite(arr).all():
        bad = int(np.size(arr) - np.count_nonzero(np.isfinite(arr)))
        raise ValueError(f"{name}: contains {bad} NaN or infinite value(s).")
    return arr


def as_pan(x, name: str = "pan") -> np.ndarray:
    """PAN as a finite float64 (H, W) array; accepts (H, W) or (H, W, 1)."""
    arr = as_float_image(x, name)
    if arr.ndim == 3:
        if arr.shape[2] != 1:
            raise ValueError(
                f"{name}: expected a single band (H, W) or (H, W, 1), got {arr.shape}."
            )
        arr = arr[:, :, 0]
    return arr


def check_ratio(ratio) -> int:
    if isinstance(ratio, bool) or int(ratio) != ratio or ratio < 1:
        raise ValueError(f"ratio must be a positive integer, got {ratio!r}.")
    return int(ratio)


def check_pair(ms: np.ndarray, pan: np.ndarray, ratio: int, ms_name="ms") -> None:
    """PAN must be exactly `ratio` times the MS size."""
    h, w = ms.shape[:2]
    if pan.shape[:2] != (ratio * h, ratio * w):
        raise ValueError(
            f"pan has spatial size {pan.shape[:2]} but {ms_name} is {(h, w)}; "
            f"expected pan = {ratio} x {ms_name} = {(ratio * h, ratio * w)}."
        )
