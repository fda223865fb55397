"""Input validation and DN scaling shared by the toolbox-exact metrics.

Conventions of every NumPy metric in `keras_pansharp.metrics`
(`q_index`, `reduced_resolution`, `full_resolution`):

- Images are channels-last `(H, W, C)` arrays; a PAN image may be `(H, W)` or
  `(H, W, 1)`. Everything is computed in float64.
- The toolbox works in digital numbers (DN). Every function takes the data in
  DN by default. Pass `normalized=True` (with `max_value=` or `sensor=`) when
  the arrays are scaled to [0, 1]; they are multiplied by the sensor's maximum
  DN first. Only Q2n (which casts to uint16) and PSNR / SSIM (which work on
  [0, 1] data) depend on the scale; the other metrics are scale invariant.
- Bad input (wrong rank, mismatched shapes or band counts, NaN / inf) raises
  `ValueError`.
"""

from __future__ import annotations

import numpy as np

from keras_pansharp.sensors import Sensor, get_sensor

RATIO = 4
Q_BLOCK = 32


# ----------------------------------------------------------------- validation
def _as_image(x, name: str, allow_2d: bool = True) -> np.ndarray:
    """Return `x` as a float64 `(H, W, C)` array or raise ValueError."""
    try:
        a = np.asarray(x)
    except Exception as e:  # pragma: no cover - exotic inputs
        raise ValueError(f"{name}: cannot convert to an array ({e}).") from e
    if a.dtype == object or not (np.issubdtype(a.dtype, np.number) or a.dtype == bool):
        raise ValueError(f"{name}: expected a numeric array, got dtype {a.dtype}.")
    if np.iscomplexobj(a):
        raise ValueError(f"{name}: complex values are not supported.")
    if a.ndim == 2 and allow_2d:
        a = a[:, :, None]
    if a.ndim != 3:
        raise ValueError(
            f"{name}: expected a channels-last image (H, W, C)"
            f"{' or (H, W)' if allow_2d else ''}, got shape {a.shape}."
        )
    if a.shape[0] < 1 or a.shape[1] < 1 or a.shape[2] < 1:
        raise ValueError(f"{name}: empty image of shape {a.shape}.")
    a = a.astype(np.float64, copy=False)
    if not np.all(np.isfinite(a)):
        bad = int(np.size(a) - np.count_nonzero(np.isfinite(a)))
        raise ValueError(f"{name}: contains {bad} NaN or infinite values.")
    return a


def _same_shape(a: np.ndarray, b: np.ndarray, na: str, nb: str) -> None:
    if a.shape != b.shape:
        raise ValueError(
            f"{na} has shape {a.shape} but {nb} has shape {b.shape}; "
            "they must be equal (H, W, C)."
        )


def _pan(pan, name: str = "pan") -> np.ndarray:
    p = _as_image(pan, name)
    if p.shape[2] != 1:
        raise ValueError(
            f"{name}: expected one band, (H, W) or (H, W, 1), got shape {p.shape}."
        )
    return p


def _resolve_scale(
    sensor: str | Sensor | None, max_value: float | None
) -> float | None:
    if max_value is not None:
        max_value = float(max_value)
        if not np.isfinite(max_value) or max_value <= 0:
            raise ValueError(f"max_value must be a positive number, got {max_value}.")
        return max_value
    if sensor is not None:
        return float(get_sensor(sensor).max_value)
    return None


def _to_dn(arrays, normalized: bool, scale: float | None):
    if not normalized:
        return arrays
    if scale is None:
        raise ValueError(
            "normalized=True needs the DN scale: pass max_value= or sensor=."
        )
    return tuple(a * scale for a in arrays)


def _check_bands(x: np.ndarray, sensor: str | Sensor | None, name: str) -> None:
    if sensor is None:
        return
    s = get_sensor(sensor)
    if x.shape[2] != s.num_bands:
        raise ValueError(
            f"{name} has {x.shape[2]} bands but sensor {s.name!r} has "
            f"{s.num_bands} (use sensor.rgbn() or generic_sensor for a subset)."
        )


def _cut(x: np.ndarray, dim_cut: int) -> np.ndarray:
    """Toolbox border cut: keeps 0-based rows/cols `dim_cut-1 : N-dim_cut`."""
    if dim_cut < 0:
        raise ValueError(f"dim_cut must be >= 0, got {dim_cut}.")
    if dim_cut == 0:
        return x
    h, w = x.shape[:2]
    if h - 2 * dim_cut + 1 < 1 or w - 2 * dim_cut + 1 < 1:
        raise ValueError(f"dim_cut={dim_cut} is too large for an image {h}x{w}.")
    return x[dim_cut - 1 : h - dim_cut, dim_cut - 1 : w - dim_cut]


def _unit_scale(f, g, normalized, sensor, max_value, fn):
    scale = _resolve_scale(sensor, max_value)
    if normalized:
        return f, g
    if scale is None:
        raise ValueError(
            f"{fn} works on [0, 1] data: pass max_value= or sensor= for DN "
            "inputs, or normalized=True for data already in [0, 1]."
        )
    return f / scale, g / scale
