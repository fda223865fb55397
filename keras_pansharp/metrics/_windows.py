"""Window-by-window reading shared by the scene metrics (`windowed`,
`windowed_rr`): scenes as sliced array-likes, circular halos, the window
grid, progress bars."""

from __future__ import annotations

import numpy as np


# ------------------------------------------------------------- array access
class _Scene:
    """A channels-last view of an array-like, read by rectangular windows.

    Args:
        x: `(H, W)` or `(H, W, C)` array-like (NumPy array, `np.memmap`, h5py
            dataset, any object with `shape`, `dtype` and 2-D slicing).
        name: argument name for messages.
        single_band: require one band (PAN).
        offset, size: a sub-rectangle of `x` (the toolbox border cut).
    """

    def __init__(self, x, name: str, *, single_band=False, offset=(0, 0), size=None):
        if not all(hasattr(x, a) for a in ("shape", "dtype", "__getitem__")):
            x = np.asarray(x)
        shape = tuple(int(d) for d in x.shape)
        dtype = np.dtype(x.dtype)
        if not (np.issubdtype(dtype, np.number) or dtype == np.bool_) or np.issubdtype(
            dtype, np.complexfloating
        ):
            raise ValueError(f"{name}: expected a real numeric array, got {dtype}.")
        if len(shape) not in (2, 3):
            raise ValueError(
                f"{name}: expected a channels-last image (H, W, C) or (H, W), got "
                f"shape {shape}."
            )
        self.x, self.name = x, name
        self.c = 1 if len(shape) == 2 else shape[2]
        if single_band and self.c != 1:
            raise ValueError(
                f"{name}: expected one band, (H, W) or (H, W, 1), got shape {shape}."
            )
        self.oy, self.ox = offset
        self.h, self.w = size if size is not None else shape[:2]
        if min(self.h, self.w, self.c) < 1:
            raise ValueError(f"{name}: empty image of shape {shape}.")

    @property
    def shape(self) -> tuple[int, int, int]:
        return self.h, self.w, self.c

    def read(self, r0: int, r1: int, c0: int, c1: int) -> np.ndarray:
        """Rows `r0:r1`, columns `c0:c1` (inside the view) as float64 (h, w, C).

        Raises:
            ValueError: NaN / inf in the window (its first position named).
        """
        a = np.asarray(
            self.x[self.oy + r0 : self.oy + r1, self.ox + c0 : self.ox + c1]
        ).astype(np.float64)
        if a.ndim == 2:
            a = a[:, :, None]
        if not np.isfinite(np.sum(a)) and not np.all(np.isfinite(a)):
            bad = np.argwhere(~np.isfinite(a))
            r, c = int(bad[0][0]) + r0, int(bad[0][1]) + c0
            raise ValueError(
                f"{self.name}: contains {len(bad)} NaN or infinite values in "
                f"rows {r0}:{r1}, cols {c0}:{c1} (first at row {r}, col {c})."
            )
        return a


def _runs(start: int, stop: int, n: int) -> list[tuple[int, int]]:
    """Contiguous runs of the indices `start..stop-1` taken modulo `n`."""
    idx = np.arange(start, stop) % n
    breaks = np.nonzero(np.diff(idx) != 1)[0] + 1
    return [(int(b[0]), int(b[-1]) + 1) for b in np.split(idx, breaks)]


def _wrapped(get, n0: int, n1: int, r0: int, r1: int, c0: int, c1: int):
    """Rows `r0:r1`, cols `c0:c1` of an `(n0, n1, ...)` image, circularly.

    `get(a, b, c, d)` returns the in-range region `[a:b, c:d]`.
    """
    col_runs = _runs(c0, c1, n1)
    rows = []
    for a, b in _runs(r0, r1, n0):
        parts = [get(a, b, c, d) for c, d in col_runs]
        rows.append(parts[0] if len(parts) == 1 else np.concatenate(parts, axis=1))
    return rows[0] if len(rows) == 1 else np.concatenate(rows, axis=0)


def _grid(size: int, step: int) -> list[tuple[int, int]]:
    return [(a, min(a + step, size)) for a in range(0, size, step)]


def _window_step(window, multiple: int) -> int:
    if isinstance(window, bool) or int(window) != window:
        raise ValueError(f"window must be an integer, got {window!r}.")
    step = (int(window) // multiple) * multiple
    if step < multiple:
        raise ValueError(
            f"window must be at least {multiple} (a multiple of the block size and "
            f"of the ratio), got {window}."
        )
    return step


def _progress(n: int, verbose: int):
    if not verbose:
        return None
    import keras

    return keras.utils.Progbar(n, unit_name="window")


# ------------------------------------------------------------------- FR
def _scale_in_place(a: np.ndarray, factor: float | None) -> np.ndarray:
    if factor is not None:
        a *= factor
    return a
