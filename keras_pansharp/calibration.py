"""Per-scene detail-gain calibration from the scene itself (no ground truth).

A residual pan-sharpening model adds learned details `r` to the upsampled MS:
`fused = LMS + r`. How much detail a real scene can take depends on the
sensor, the processing level and the scene, and a model trained on other
scenes often injects too much or too little (docs/generalization.md). This
module rescales the details of each band, `fused_b = LMS_b + g_b * r_b`, with
gains chosen on the scene to be fused, from its MS and PAN alone.

**The criterion** is QNR's scale-invariance hypothesis (Alparone et al.
2008, the basis of D_s): a band should relate to the full-resolution PAN as
the MS band relates to the low-passed PAN at the MS scale. For each band `b`
the target is `T_b = Q(LMS_b, PAN_LP)` (the mean 32 x 32 block UIQI, with
`PAN_LP = interp23tap(imresize(PAN, 1/4))`, as in `metrics.d_s`), and
`g_b` is the first local minimum of `|Q(LMS_b + g_b r_b, PAN) - T_b|`
scanning a grid `0, step, ..., max_gain` up from 0: the least detail that
brings the band to its target. That is D_s's
per-band term, so the calibration lowers D_s on the scene by construction:
read the HQNR of a calibrated model with that in mind; its reduced-resolution
Q2n on held-out scenes (which the calibration never sees) is the independent
check, measured in `benchmarks/bench_generalization.py`.

The block moments are linear / quadratic in `g`, so every gain of the grid is
scored from one prediction and one pass of block statistics (about a second
for a 1024^2 PAN crop). `g = 0` gives EXP (the upsampled MS); `g = 1` the
model as it is.

The gains can be folded into the model (`apply_detail_gain`) when its output
is `Add([Conv2D(...), upsampled MS])`: PanTiny, PanNet, DiCNN, FusionNet,
SFDI and PanMamba. Scaling that convolution's kernel and bias by `g_b` per
output band is exactly `LMS + g * r`, so the calibrated model is the same
class (exact tiling, export and saving work unchanged).
"""

from __future__ import annotations

import dataclasses
import time

import keras
import numpy as np

from keras_pansharp.inference import all_layers, centre_crop, predict_tiled
from keras_pansharp.layers.detail_calibration import DetailCalibration
from keras_pansharp.metrics.full_resolution import pan_lp
from keras_pansharp.metrics.q_index import blocks, uiqi_from_moments
from keras_pansharp.models.base import copy_model, interp23tap_lms
from keras_pansharp.scene_inputs import scene_inputs
from keras_pansharp.sensors import Sensor

__all__ = [
    "DetailGainResult",
    "apply_detail_gain",
    "calibrate_detail_gain",
    "can_fold_gains",
    "choose_gains",
    "detail_gain_layer",
    "has_detail_calibration",
    "scene_calibrated_model",
    "scene_model",
    "without_detail_calibration",
]

#: Block side of the Q index (the toolbox's D_s).
_BLOCK = 32


@dataclasses.dataclass
class DetailGainResult:
    """What `calibrate_detail_gain` returns.

    Attributes:
        gains: `(C,)` float64 detail gain of each band (1: the model as is).
        model: a copy of the model with the gains folded into its last
            convolution, or None when the model's output is not
            `Add([Conv2D, upsampled MS])` (`apply_detail_gain` says why).
        fused: `(4h', 4w', C)` float32 calibrated fused image of the crop the
            gains were chosen on, in the units of the input (DN).
        d_s_before: D_s of the model on that crop (gains 1).
        d_s_after: D_s with the chosen gains.
        crop: `(row, col, height, width)` of that crop at PAN scale.
        seconds: wall time of the call.
    """

    gains: np.ndarray
    model: keras.Model | None
    fused: np.ndarray
    d_s_before: float
    d_s_after: float
    crop: tuple[int, int, int, int]
    seconds: float


def detail_gain_layer(model: keras.Model) -> keras.layers.Layer:
    """The convolution whose output `model` adds to the upsampled MS.

    Args:
        model: a functional pan-sharpening model.

    Returns:
        The `keras.layers.Conv2D` producing the residual.

    Raises:
        ValueError: the model's output is not `Add([Conv2D, upsampled MS])`.
    """
    from keras_pansharp.models.base import UpsampledMS

    reason = None
    try:
        outputs = model.outputs
    except (AttributeError, ValueError):
        outputs = None
    if not outputs or len(outputs) != 1:
        reason = "it is not a functional model with one output"
    else:
        op = outputs[0]._keras_history.operation
        node = op._inbound_nodes[0] if op._inbound_nodes else None
        parents = (
            [t._keras_history.operation for t in node.input_tensors] if node else []
        )
        convs = [p for p in parents if isinstance(p, keras.layers.Conv2D)]
        ups = [p for p in parents if isinstance(p, UpsampledMS)]
        if isinstance(op, DetailCalibration):
            reason = (
                "it calibrates its own details on each image (DetailCalibration); "
                "build it with calibrate_details=False to fold fixed gains"
            )
        elif not isinstance(op, keras.layers.Add) or len(parents) != 2:
            reason = f"its output comes from {type(op).__name__} {op.name!r}, not Add"
        elif len(convs) != 1 or len(ups) != 1:
            reason = (
                f"its output Add {op.name!r} does not add a Conv2D to the upsampled MS"
            )
        else:
            return convs[0]
    raise ValueError(
        f"{type(model).__name__} {model.name!r}: cannot fold a detail gain into "
        f"the model: {reason}. Use the calibrated image "
        "(DetailGainResult.fused) or scale `fused - lms` yourself."
    )


def apply_detail_gain(model: keras.Model, gains) -> keras.Model:
    """Scale a residual model's details by `gains`, in place.

    The kernel (and bias) of the convolution found by `detail_gain_layer`
    is multiplied by `gains[b]` along output band `b`, so the model then
    returns `LMS + gains * (model(x) - LMS)`.

    Args:
        model: a functional model whose output is `Add([Conv2D, upsampled
            MS])` (PanTiny, PanNet, DiCNN, FusionNet, SFDI, PanMamba).
        gains: a scalar or `(C,)` finite gains, C = the model's bands.

    Returns:
        `model` (modified).

    Raises:
        ValueError: the model has no such convolution, or `gains` has the
            wrong length or non-finite values.
    """
    conv = detail_gain_layer(model)
    bands = conv.kernel.shape[-1]
    g = np.asarray(gains, np.float64)
    if g.ndim == 0:
        g = np.full((bands,), float(g))
    if g.shape != (bands,) or not np.all(np.isfinite(g)):
        raise ValueError(
            f"apply_detail_gain: expected a scalar or {bands} finite gains for "
            f"{type(model).__name__}, got {np.asarray(gains).tolist()}."
        )
    dtype = keras.backend.standardize_dtype(conv.kernel.dtype)
    kernel = keras.ops.convert_to_numpy(conv.kernel)
    conv.kernel.assign((kernel * g).astype(dtype))
    if conv.bias is not None:
        bias = keras.ops.convert_to_numpy(conv.bias)
        conv.bias.assign((bias * g).astype(dtype))
    return model


def _block_moments(x: np.ndarray, s: int):
    """Blocks `(nb, s*s, C)` centred, and their means `(nb, C)`."""
    xb = blocks(np.ascontiguousarray(x, np.float64), s, s)
    m = xb.mean(axis=1)
    return m, xb - m[:, None, :]


def _gain_curves(lms, resid, pan, pan_lp, gains, s=_BLOCK):
    """`|Q(lms + g resid, pan) - Q(lms, pan_lp)|` per gain and band `(G, C)`,
    and the targets `(C,)`; every gain from one pass of block moments."""
    ddof = s * s - 1
    ml, dl = _block_moments(lms, s)
    mr, dr = _block_moments(resid, s)
    mp, dp = _block_moments(pan, s)
    mq, dq = _block_moments(pan_lp, s)
    vll = np.einsum("bpc,bpc->bc", dl, dl) / ddof
    vrr = np.einsum("bpc,bpc->bc", dr, dr) / ddof
    vlr = np.einsum("bpc,bpc->bc", dl, dr) / ddof
    clp = np.einsum("bpc,bp->bc", dl, dp[..., 0]) / ddof
    crp = np.einsum("bpc,bp->bc", dr, dp[..., 0]) / ddof
    clq = np.einsum("bpc,bp->bc", dl, dq[..., 0]) / ddof
    vp = np.einsum("bp,bp->b", dp[..., 0], dp[..., 0])[:, None] / ddof
    vq = np.einsum("bp,bp->b", dq[..., 0], dq[..., 0])[:, None] / ddof
    target = uiqi_from_moments(ml, mq, vll, vq, clq).mean(axis=0)
    g = np.asarray(gains, np.float64)[:, None, None]
    q = uiqi_from_moments(
        ml + g * mr, mp, vll + 2 * g * vlr + g * g * vrr, vp, clp + g * crp
    ).mean(axis=1)
    return np.abs(q - target[None]), target


def _pick(grid: np.ndarray, dev: np.ndarray, rule: str) -> float:
    """The gain of `grid` chosen from the deviations `dev` (same length).

    `"first"`: the first local minimum scanning up from 0, i.e. the least
    detail that brings the band to its target (or closest to it before the
    deviation grows again). `"global"`: the smallest deviation (ties: the
    gain closest to 1).
    """
    d = np.round(dev, 12)  # float noise must not split ties
    if rule == "global":
        return float(grid[np.lexsort((np.abs(grid - 1.0), d))[0]])
    rising = np.nonzero(d[1:] > d[:-1])[0]
    return float(grid[rising[0]] if rising.size else grid[-1])


def choose_gains(
    lms, resid, pan, max_gain=4.0, step=1 / 32, per_band=True, rule="first"
):
    """The gains of `calibrate_detail_gain` from a prediction already made.

    Args:
        lms: `(H, W, C)` upsampled MS (the model's `interp23tap` LMS).
        resid: `(H, W, C)` the model's details, `fused - lms`.
        pan: `(H, W, 1)` PAN, on the scale of `lms` (H, W multiples of 32).
        max_gain, step, per_band, rule: as in `calibrate_detail_gain`.

    Returns:
        `(gains (C,), D_s before (gains 1), D_s after)`.
    """
    low = pan_lp(pan)
    grid = np.arange(int(np.floor(max_gain / step + 1e-9)) + 1) * step
    dev, _ = _gain_curves(lms, resid, pan, low, grid)
    bands = lms.shape[-1]
    if per_band:
        gains = np.array([_pick(grid, dev[:, b], rule) for b in range(bands)])
    else:
        gains = np.full(bands, _pick(grid, dev.mean(axis=1), rule))
    before, _ = _gain_curves(lms, resid, pan, low, np.array([1.0]))
    after = dev[np.searchsorted(grid, gains), np.arange(bands)]
    return gains, float(before[0].mean()), float(after.mean())


def has_detail_calibration(model) -> bool:
    """Whether `model` contains a `DetailCalibration` layer (it then chooses
    gains on each image it fuses, e.g. `PanTiny.from_preset("pantiny_multisensor")`)."""
    return any(isinstance(layer, DetailCalibration) for layer in all_layers(model))


def without_detail_calibration(model: keras.Model) -> keras.Model:
    """A copy of `model` without its `DetailCalibration` (the raw network).

    Args:
        model: a model built with `calibrate_details=True` (PanTiny).

    Returns:
        A new model of the same class and weights, `calibrate_details=False`.

    Raises:
        ValueError: the model's config has no `calibrate_details` argument.
    """
    config = model.get_config()
    if "calibrate_details" not in config:
        raise ValueError(
            f"{type(model).__name__} {model.name!r} contains a DetailCalibration "
            "layer but no `calibrate_details` constructor argument, so its raw "
            "network cannot be rebuilt to choose one set of gains per scene."
        )
    config["calibrate_details"] = False
    raw = model.__class__.from_config(config)
    raw.set_weights(model.get_weights())
    return raw


def can_fold_gains(model) -> bool:
    """Whether `apply_detail_gain` can fold gains into `model`.

    Returns:
        True when `detail_gain_layer` finds the residual output convolution;
        False for models without one (PNN, MSDCNN, PanFlow, PSCINN) and for
        models that calibrate themselves (`has_detail_calibration`).
    """
    try:
        detail_gain_layer(model)
    except ValueError:
        return False  # no such layer, or the model calibrates itself
    return True


def _crop_gains(model, ms_c, pan_c, max_gain, step, per_band, rule):
    """Predict a normalised crop, choose its gains (`choose_gains`).

    Returns:
        `(gains, d_s_before, d_s_after, lms, resid)` (float64 arrays).
    """
    # Tiles of 512 (exact for PanTiny, one tile up to 512^2) keep the memory
    # of the prediction bounded whatever the crop.
    fused = np.asarray(
        predict_tiled(model, ms_c, pan_c, tile=512, batch_size=1, verbose=0),
        np.float64,
    )
    lms = interp23tap_lms(ms_c)
    resid = fused - lms
    gains, before, after = choose_gains(
        lms, resid, pan_c[..., None], max_gain, step, per_band, rule
    )
    return gains, before, after, lms, resid


def scene_calibrated_model(model, ms, pan, max_value=None, crop: int = 1024):
    """The raw network of `model` with the gains of one scene folded in.

    What `keras_pansharp.predict_scene` fuses when `model` calibrates itself
    (`has_detail_calibration`, see `scene_model`): a whole scene must use one set of gains, so
    they are chosen once, as `calibrate_detail_gain` does, on the scene's
    centred crop of at most `crop` PAN pixels a side (multiples of 32).

    Args:
        model: a model with `calibrate_details=True`.
        ms: `(h, w, C)` MS scene (array-like read by slices).
        pan: `(4h, 4w)` or `(4h, 4w, 1)` PAN scene, same units.
        max_value: divisor of DN inputs (None: already normalised).
        crop: largest side of the crop.

    Returns:
        A new model without `DetailCalibration`, the gains folded into its
        output convolution.

    Raises:
        ValueError: a scene below 32 x 32 PAN pixels, or a model whose raw
            network cannot be rebuilt (`without_detail_calibration`).
    """
    raw = without_detail_calibration(model)
    shape = tuple(pan.shape[:2])
    if min(shape) < _BLOCK:
        raise ValueError(
            f"The scene (PAN {shape}) is too small to choose detail gains: "
            f"{type(model).__name__} calibrates its details and needs at least "
            f"{_BLOCK} x {_BLOCK} PAN pixels."
        )
    r0, c0, ch, cw = centre_crop(shape, crop)
    scale = 1.0 if max_value is None else float(max_value)
    ms_c = np.asarray(
        ms[r0 // 4 : (r0 + ch) // 4, c0 // 4 : (c0 + cw) // 4], np.float64
    )
    pan_c = np.asarray(pan[r0 : r0 + ch, c0 : c0 + cw], np.float64)
    if pan_c.ndim == 3:
        pan_c = pan_c[..., 0]
    ms_c, pan_c = ms_c / scale, pan_c / scale
    gains = _crop_gains(raw, ms_c, pan_c, 4.0, 1.0 / 32, True, "first")[0]
    return apply_detail_gain(raw, gains)


def scene_model(model, ms, pan, max_value=None, crop: int = 1024):
    """The model that fuses one scene: `model`, with one set of detail gains
    for the whole scene folded in if it calibrates itself.

    A model with a `DetailCalibration` layer (e.g.
    `PanTiny.from_preset("pantiny_multisensor")`) chooses gains on each image
    it fuses; tiled, each tile would get its own. This gives it one set,
    chosen on the scene's centred crop (`scene_calibrated_model`). Any other
    model is returned as it is. `keras_pansharp.predict_scene` is
    `predict_tiled(scene_model(model, ms, pan, max_value), ms, pan, ...)`.

    Args:
        model: a pan-sharpening model.
        ms: `(h, w, C)` MS scene (array-like read by slices).
        pan: `(4h, 4w)` or `(4h, 4w, 1)` PAN scene, same units.
        max_value: divisor of DN inputs (None: already normalised).
        crop: largest side of the crop the gains are chosen on.

    Returns:
        `model` itself, or a new model with the scene's gains folded in.

    Raises:
        ValueError: as `scene_calibrated_model`, for a model that calibrates
            itself.
    """
    if not has_detail_calibration(model):
        return model
    return scene_calibrated_model(model, ms, pan, max_value, crop)


def calibrate_detail_gain(
    model: keras.Model,
    ms,
    pan,
    *,
    sensor: str | Sensor,
    max_value: float | None = None,
    max_gain: float = 4.0,
    step: float = 1.0 / 32,
    per_band: bool = True,
    rule: str = "first",
    crop: int | None = 1024,
) -> DetailGainResult:
    """Choose per-band detail gains for `model` on one scene, from the scene.

    See the module docstring for the criterion. The model predicts once
    (`predict_tiled`, 512 tiles) on a centred crop of the scene (at most
    `crop` PAN pixels a side, multiples of 32); the gains are chosen there
    and hold for the whole scene.

    Args:
        model: a pan-sharpening model of the package (dict inputs normalised
            by the max DN), e.g. `PanTiny.from_preset("pantiny_multisensor")`.
            Not modified.
        ms: `(h, w, C)` MS scene in digital numbers (DN).
        pan: `(4h, 4w)` or `(4h, 4w, 1)` PAN scene in DN.
        sensor: sensor name or `Sensor` with C bands (its max DN normalises
            the inputs unless `max_value`).
        max_value: normalisation constant overriding the sensor's max DN
            (e.g. 255 for 8-bit products, 1.0 for data already in [0, 1]).
        max_gain: largest gain tried (relative to the model as given).
        step: spacing of the gain grid `0, step, ..., max_gain`.
        per_band: one gain per band (default), or one for all bands
            (minimising D_s itself).
        rule: `"first"` (default): each gain is the first local minimum of
            its deviation scanning up from 0, the least detail that reaches
            the target (the deviation can dip to 0 a second time at a large
            gain, where the band's variance overshoots: that choice is
            unstable). `"global"`: the smallest deviation on the grid.
        crop: PAN side of the centred crop used (None: the whole scene,
            trimmed to multiples of 32).

    Returns:
        A `DetailGainResult`: the gains, the calibrated copy of the model
        (None if the gains cannot be folded into it), the calibrated image
        of the crop, and D_s before and after.

    Raises:
        ValueError: band count different from the model's or the sensor's,
            PAN not 4x the MS, NaN/inf, negative values, values above the
            max DN or normalised data given with a DN sensor, a scene
            smaller than 32 x 32 PAN pixels, or a bad `max_gain` / `step`.

    Example:
    >>> model = keras_pansharp.PanTiny.from_preset("pantiny_multisensor")  # doctest: +SKIP
    >>> cal = keras_pansharp.calibrate_detail_gain(model, ms, pan, sensor="qb")  # doctest: +SKIP
    >>> cal.gains, cal.d_s_before, cal.d_s_after  # doctest: +SKIP
    >>> fused = keras_pansharp.predict_scene(cal.model, ms, pan, max_value=2047)  # doctest: +SKIP
    """
    t0 = time.perf_counter()
    if not (np.isfinite(max_gain) and max_gain > 0):
        raise ValueError(
            f"calibrate_detail_gain: max_gain must be > 0, got {max_gain}."
        )
    if not (np.isfinite(step) and 0 < step <= max_gain):
        raise ValueError(
            f"calibrate_detail_gain: step must be in (0, max_gain], got {step}."
        )
    if rule not in ("first", "global"):
        raise ValueError(
            f"calibrate_detail_gain: rule must be 'first' or 'global', got {rule!r}."
        )
    sensor, ms, pan, scale = scene_inputs(
        model, ms, pan, sensor, max_value, "calibrate_detail_gain"
    )
    if min(pan.shape) < _BLOCK:
        raise ValueError(
            f"calibrate_detail_gain: the scene (PAN {pan.shape}) is too small; "
            f"it needs at least {_BLOCK} x {_BLOCK} PAN pixels."
        )
    r0, c0, ch, cw = centre_crop(pan.shape, crop)
    ms_c = ms[r0 // 4 : (r0 + ch) // 4, c0 // 4 : (c0 + cw) // 4]
    pan_c = pan[r0 : r0 + ch, c0 : c0 + cw]
    # A model that calibrates itself is calibrated from its raw network.
    raw = without_detail_calibration(model) if has_detail_calibration(model) else model
    gains, d_s_before, d_s_after, lms, resid = _crop_gains(
        raw, ms_c / scale, pan_c / scale, max_gain, step, per_band, rule
    )
    calibrated = None
    if can_fold_gains(raw):
        calibrated = apply_detail_gain(
            raw if raw is not model else copy_model(model), gains
        )
    out = ((lms + gains * resid) * scale).astype("float32")
    return DetailGainResult(
        gains=gains,
        model=calibrated,
        fused=out,
        d_s_before=d_s_before,
        d_s_after=d_s_after,
        crop=(r0, c0, ch, cw),
        seconds=time.perf_counter() - t0,
    )
