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
- Inputs on different scales (`_check_scales`, used by `evaluate_rr` /
  `evaluate_fr` and their windowed versions). Data normalised to [0, 1] have
  a mean |x| of at most about 0.5 (`UNIT_MEAN` = 1 allows any overshoot of
  fused images, whose maxima legitimately exceed 1.5), digital numbers a mean
  of tens to thousands (above `DN_MEAN` = 1.5 in any real scene). When two
  inputs' means differ by more than `SCALE_RATIO` (20x; a DN image is 255 to
  65535 times its [0, 1] version, images of one scene stay within a few times
  of each other) and the smaller looks normalised while the larger looks like
  DN, a `ValueError` names both and the fix. A gap without that signature
  (e.g. a near-black fused image from a failing model) only warns: it may be
  a legitimate, if poor, input. `normalized=True` with every input looking
  like DN (it would be scaled up once more) raises; `normalized=False` with
  every input looking normalised warns (D_λ^K, Q2n, PSNR and SSIM would be
  meaningless; the scale-invariant metrics are not affected).
"""

from __future__ import annotations

import warnings

import numpy as np

from keras_pansharp.sensors import Sensor, get_sensor

RATIO = 4
Q_BLOCK = 32
#: Mean |x| up to which an input looks normalised to [0, 1].
UNIT_MEAN = 1.0
#: Mean |x| above which an input looks like digital numbers.
DN_MEAN = 1.5
#: Ratio of mean |x| beyond which two inputs are on different scales.
SCALE_RATIO = 20.0


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


def border_cut(x: np.ndarray, dim_cut: int) -> np.ndarray:
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


# ------------------------------------------------------------ scale checks
def _scale_stats(a: np.ndarray) -> tuple[float, float, int]:
    """`(sum |a|, max |a|, size)`: what `_check_scales` needs of one input."""
    if a.size == 0:
        return 0.0, 0.0, 0
    mn, mx = float(np.min(a)), float(np.max(a))
    return float(np.sum(np.abs(a))), max(abs(mn), abs(mx)), int(a.size)


def _merge_stats(a, b):
    """Combine two `_scale_stats` (windowed evaluation)."""
    if a is None:
        return b
    return a[0] + b[0], max(a[1], b[1]), a[2] + b[2]


def _check_scales(
    stats: dict,
    ref: str,
    *,
    normalized: bool,
    scale: float | None,
    fn: str,
    final: bool = True,
) -> None:
    """Raise (or warn) when the inputs are not all on one scale.

    Args:
        stats: input name -> `_scale_stats` of that input (in the caller's
            units, before any `normalized` scaling).
        ref: the reference input the others are compared with (`ms_lr` or
            `gt`).
        normalized: the caller's `normalized` flag.
        scale: the max DN (sensor or `max_value`), if known.
        fn: the calling function, for messages.
        final: also run the checks that only warn (windowed evaluation runs
            the raising checks on running totals and warns once at the end).

    Raises:
        ValueError: one input looks normalised to [0, 1] and another like DN
            (mean ratio beyond `SCALE_RATIO`), or `normalized=True` while every
            input looks like DN.
    """
    means = {k: (v[0] / v[2] if v[2] else 0.0) for k, v in stats.items()}
    maxima = {k: v[1] for k, v in stats.items()}
    dn = f"the max DN ({scale:g})" if scale else "the sensor's max DN"
    for name in stats:
        if name == ref or means[name] == 0.0 or means[ref] == 0.0:
            continue
        ratio = means[name] / means[ref]
        if 1.0 / SCALE_RATIO <= ratio <= SCALE_RATIO:
            continue
        lo, hi = (name, ref) if ratio < 1.0 else (ref, name)
        if means[lo] <= UNIT_MEAN and means[hi] > DN_MEAN:
            raise ValueError(
                f"{fn}: {lo!r} looks normalised to [0, 1] (max {maxima[lo]:.4g}, "
                f"mean {means[lo]:.4g}) but {hi!r} looks like digital numbers "
                f"(max {maxima[hi]:.6g}, mean {means[hi]:.6g}); their means differ "
                f"{max(ratio, 1.0 / ratio):.0f}x. Give every input on one scale: "
                f"all in DN (multiply {lo!r} by {dn}), or all in [0, 1] (divide "
                f"{hi!r} by {dn}) with normalized=True."
            )
        if final:
            warnings.warn(
                f"{fn}: {name!r} and {ref!r} are on different scales (mean |x| "
                f"{means[name]:.6g} vs {means[ref]:.6g}, {max(ratio, 1 / ratio):.0f}x "
                "apart); the scores compare images of different brightness.",
                UserWarning,
                stacklevel=3,
            )
    nonzero = [k for k in stats if stats[k][2]]
    if not nonzero:
        return
    listing = ", ".join(f"{k} {means[k]:.4g}" for k in nonzero)
    if normalized and all(means[k] > DN_MEAN for k in nonzero):
        raise ValueError(
            f"{fn}: normalized=True but the inputs look like digital numbers "
            f"(mean |x|: {listing}; data normalised to [0, 1] have means below "
            f"{UNIT_MEAN:g}). They would be multiplied by {dn} once more: drop "
            "normalized=True for DN inputs."
        )
    if (
        final
        and not normalized
        and scale is not None
        and scale > DN_MEAN
        and all(means[k] <= UNIT_MEAN for k in nonzero)
    ):
        warnings.warn(
            f"{fn}: every input looks normalised to [0, 1] (mean |x|: {listing}; "
            f"max {max(maxima[k] for k in nonzero):.4g}) but normalized=False "
            "takes them as digital numbers: Q2n / D_lambda^K (uint16 DN "
            "quantisation) and PSNR / SSIM would be meaningless. Pass "
            "normalized=True (or multiply the inputs by the max DN).",
            UserWarning,
            stacklevel=3,
        )


def _check_fr(f: np.ndarray, ms: np.ndarray, pan: np.ndarray | None, ratio: int):
    if ms.shape[2] != f.shape[2]:
        raise ValueError(
            f"fused has {f.shape[2]} bands but ms_lr has {ms.shape[2]}; they must match."
        )
    if f.shape[:2] != (ms.shape[0] * ratio, ms.shape[1] * ratio):
        raise ValueError(
            f"fused is {f.shape[0]}x{f.shape[1]} but ms_lr is {ms.shape[0]}x"
            f"{ms.shape[1]}; expected fused = {ratio} x ms_lr."
        )
    if pan is not None and pan.shape[:2] != f.shape[:2]:
        raise ValueError(
            f"pan is {pan.shape[0]}x{pan.shape[1]} but fused is "
            f"{f.shape[0]}x{f.shape[1]}; they must be equal."
        )


def _fr_inputs(fused, ms_lr, pan=None):
    """Checked float64 `(fused, ms_lr, pan or None)` of the FR indices."""
    f = _as_image(fused, "fused")
    ms = _as_image(ms_lr, "ms_lr")
    p = _pan(pan) if pan is not None else None
    _check_fr(f, ms, p, RATIO)
    return f, ms, p
