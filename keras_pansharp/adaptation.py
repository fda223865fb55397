"""Target-adaptive fine-tuning on the user's own scene (no ground truth).

`adapt(model, ms, pan, sensor=...)` fine-tunes a copy of a pan-sharpening
model on random crops of one full-resolution scene with the no-reference
`NoReferenceLoss` (lambda-PNN's target adaptation, REFERENCE section 9), for
a bounded number of steps, and returns the adapted copy with the scene's
full-resolution scores before and after. Its default loss keeps the
spectral terms (ERGAS and Khan's D_lambda of the re-projection, HQNR's
D_lambda^K) and QNR's D_s, and drops lambda-PNN's structural term: with
it, fine-tuning lowered HQNR on QuickBird along the whole fine-tuning
direction, and without it `adapt` raised HQNR on all ten held-out scores of
`benchmarks/bench_generalization.py` and their reduced-resolution Q2n on
eight (docs/generalization.md).

Fine-tuning learns the scene's details; how much of them to inject is then
set per band by `calibrate_detail_gain` (`calibrate=True`, the default),
because the no-reference loss prefers more detail than the scene's
scale-consistency (and HQNR, and Wald-scale fidelity) supports: without it,
adapting the shipped weights lowered HQNR on 3 of 4 held-out scenes
(docs/generalization.md).

The input model is never modified. With `evaluate=True` the candidates are
the fine-tuned weights and the weights part of the way to them from the
input's (`blends`, default halfway: a shorter step in the same direction,
as in weight-space ensembling of fine-tuned models); the one with the highest
HQNR on the scene (a no-reference index of the scene itself) is kept if it
beats the input model. With `evaluate=False` the fine-tuned weights are kept
if they lower the no-reference loss on a fixed set of crops of the scene
(the selection lambda-PNN makes with its lowest-loss weights). Otherwise the
result holds the original weights and says so.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Sequence

import keras
import numpy as np

from keras_pansharp import recipes
from keras_pansharp.calibration import (
    apply_detail_gain,
    calibrate_detail_gain,
    can_fold_gains,
    choose_gains,
    scene_model,
)
from keras_pansharp.data.full_resolution import FullResolutionDataset
from keras_pansharp.data.readers import Scene
from keras_pansharp.inference import centre_crop, predict_tiled
from keras_pansharp.losses.full_resolution import NoReferenceLoss
from keras_pansharp.metrics import evaluate_fr
from keras_pansharp.models.base import copy_model, interp23tap_lms
from keras_pansharp.scene_inputs import scene_inputs
from keras_pansharp.sensors import Sensor

__all__ = ["adapt", "AdaptResult", "ADAPT_DEFAULTS"]

#: Default budget and optimiser of `adapt` (about 40 s of training for a
#: 1024^2 PAN scene on 2 CPU cores under TensorFlow; `time_limit` in seconds
#: caps the whole call on slower machines).
ADAPT_DEFAULTS = {
    "steps": 100,
    "batch_size": 8,
    "patch_size": 64,
    "learning_rate": 3e-4,
    "blends": (0.5,),
    "time_limit": 60.0,
    # Changes to the pretraining recipe's loss: HQNR's own D_lambda^K at PAN
    # scale, weighted as the recipe's MS-scale D_lambda (beta 2.5); and no
    # structural term (gamma 0): it asks for more PAN correlation than the
    # scene supports, which the detail calibration then has to take back,
    # and it outweighed the spectral terms (docs/generalization.md).
    "loss_weights": {"epsilon": 2.5, "gamma": 0.0},
}


@dataclasses.dataclass
class AdaptResult:
    """What `adapt` returns.

    Attributes:
        model: the adapted copy (or a copy with the original weights when
            it did not improve on the input model: `improved` False).
        fused: `(4h, 4w, C)` float32 fused scene in DN from `model`, or None
            when `evaluate=False`.
        before: FR scores of the original model on the scene (`evaluate_fr`:
            `d_lambda`, `d_s`, `qnr`, `d_lambda_k`, `hqnr`), or None.
        after: FR scores of `model`, or None.
        loss_before: no-reference loss of the original model on the fixed
            check crops.
        loss_after: the same for the fine-tuned weights (before the
            detail gains).
        improved: whether the fine-tuned weights were kept (see `adapt`).
        gains: `(C,)` detail gains `calibrate_detail_gain` chose for the
            fine-tuned model (None with `calibrate=False`, a model they
            cannot be folded into or one that calibrates itself).
        seconds: wall time of the whole call.
        blend: where the kept weights lie between the input model's (0) and
            the fine-tuned ones (1): 1.0, one of `blends`, or None when the
            input model was kept.
        candidates: `{fraction: HQNR}` of every candidate scored (1.0 and
            `blends`; empty with `evaluate=False`).
        steps: optimiser steps run: `steps`, or fewer when `time_limit`
            stopped the fine-tuning early.
    """

    model: keras.Model
    fused: np.ndarray | None
    before: dict | None
    after: dict | None
    loss_before: float
    loss_after: float
    improved: bool
    seconds: float
    gains: np.ndarray | None = None
    blend: float | None = None
    candidates: dict = dataclasses.field(default_factory=dict)
    steps: int | None = None

    def summary(self) -> str:
        """One line: HQNR (or loss) before and after, what was kept, time."""
        if not self.improved:
            kept = "input model kept: no " + (
                "higher HQNR" if self.before else "lower loss"
            )
        elif self.blend == 1.0:
            kept = "fine-tuned weights kept"
        else:
            kept = f"weights {self.blend:g} of the way to the fine-tuned ones kept"
        if self.before and self.after:
            change = f"HQNR {self.before['hqnr']:.4f} -> {self.after['hqnr']:.4f}"
        else:
            change = (
                f"no-reference loss {self.loss_before:.4f} -> {self.loss_after:.4f}"
            )
        steps = ""
        if self.steps is not None:
            steps = f"{self.steps} step{'' if self.steps == 1 else 's'}, "
        return f"{change} ({kept}, {steps}{self.seconds:.1f} s)"


class _TimeLimit(keras.callbacks.Callback):
    """Stops `fit` when the next step and the work after it would pass a limit.

    After each step it projects the call's end time: time spent since
    `start`, plus one more step (the mean of the steps after the first),
    plus `reserve` seconds for what follows the fine-tuning. The first step
    always runs. It includes tracing and is not used as the estimate of a
    step: after it the projection holds no step, so a slow first step alone
    does not end the fine-tuning (it did: one step in 48 s in a
    `bench_adapt.py` call whose other scenes ran 87 steps).
    """

    def __init__(self, start: float, limit: float, reserve: float):
        super().__init__()
        self.start, self.limit, self.reserve = start, limit, reserve
        self.durations: list[float] = []
        self._t = 0.0

    def on_train_batch_begin(self, batch, logs=None):
        self._t = time.perf_counter()

    def on_train_batch_end(self, batch, logs=None):
        now = time.perf_counter()
        self.durations.append(now - self._t)
        later = self.durations[1:]
        step = sum(later) / len(later) if later else 0.0
        if now - self.start + step + self.reserve > self.limit:
            self.model.stop_training = True


#: Scenes up to this PAN side are fused in one call; larger ones tile by tile.
_UNTILED_MAX_SIDE = 2048


def _predict(model, ms_n: np.ndarray, pan_n: np.ndarray) -> np.ndarray:
    if max(pan_n.shape) <= _UNTILED_MAX_SIDE:
        x = {"ms": ms_n[None].astype("float32"), "pan": pan_n[None, ..., None]}
        return np.asarray(model.predict_on_batch(x))[0]
    model = scene_model(model, ms_n, pan_n)
    return predict_tiled(model, ms_n, pan_n, tile=1024, exact=False, verbose=0)


def _scores(fused, ms, pan, sensor) -> dict:
    """FR scores on the largest top-left crop of 32-multiple PAN size (the
    toolbox's indices; D_rho and the reprojection indices are not needed to
    choose and would double the time of each candidate)."""
    h, w = (pan.shape[0] // 32) * 32, (pan.shape[1] // 32) * 32
    return evaluate_fr(
        fused[:h, :w],
        ms[: h // 4, : w // 4],
        pan[:h, :w],
        sensor=sensor,
        consistency=False,
    )


def _fold_scene_gains(tuned, lms, pan_n, fused_n):
    """Fold the gains chosen on the centred crop of a whole-scene prediction.

    `fused_n` is `tuned`'s normalised prediction of the scene, `lms` its
    upsampled MS (`models.base.interp23tap_lms`) and `pan_n` its normalised
    PAN. The gains are folded into `tuned` (in place) and the calibrated
    prediction is returned without predicting again.

    Returns:
        `(calibrated fused_n, gains)`.
    """
    resid = np.asarray(fused_n, np.float64) - lms
    r0, c0, ch, cw = centre_crop(pan_n.shape, 1024)
    crop = (slice(r0, r0 + ch), slice(c0, c0 + cw))
    gains, _, _ = choose_gains(lms[crop], resid[crop], pan_n[crop][..., None])
    apply_detail_gain(tuned, gains)
    return lms + gains * resid, gains


def adapt(
    model: keras.Model,
    ms,
    pan,
    *,
    sensor: str | Sensor,
    max_value: float | None = None,
    steps: int = ADAPT_DEFAULTS["steps"],
    batch_size: int = ADAPT_DEFAULTS["batch_size"],
    patch_size: int = ADAPT_DEFAULTS["patch_size"],
    learning_rate: float = ADAPT_DEFAULTS["learning_rate"],
    blends: Sequence[float] = ADAPT_DEFAULTS["blends"],
    time_limit: float | None = ADAPT_DEFAULTS["time_limit"],
    loss_weights: dict | None = None,
    supervised_weight: float = 0.0,
    calibrate: bool = True,
    evaluate: bool = True,
    seed: int = 0,
    verbose: int = 1,
) -> AdaptResult:
    """Fine-tune a copy of `model` on one scene with the no-reference loss.

    Args:
        model: a pan-sharpening model of the package (dict inputs, inputs
            normalised by the sensor's max DN), e.g.
            `PanTiny.from_preset("pantiny_multisensor")`. Not modified.
        ms: `(h, w, C)` MS scene in digital numbers (DN), C = the model's
            bands. For the 4-band model and 8-band data pass
            `ms[..., sensor.rgbn_indices]` with `sensor="WV3_RGBN"`.
        pan: `(4h, 4w)` or `(4h, 4w, 1)` PAN scene in DN.
        sensor: sensor name or `Sensor` with C bands: its MTF gains define
            the loss, its max DN normalises (unless `max_value`).
        max_value: normalisation constant overriding the sensor's max DN
            (e.g. 255 for 8-bit products, 1.0 for data already in [0, 1]).
        steps: optimiser steps (the budget).
        batch_size: crops per step.
        patch_size: PAN-scale crop side (a multiple of 32, or 16; reduced to
            fit small scenes).
        learning_rate: initial Adam rate (cosine-decayed to 10 % of it).
        blends: with `evaluate`, also score the weights at these fractions
            of the way from the input model's weights to the fine-tuned ones
            (`w0 + f (w1 - w0)`, each f in (0, 1)); the candidate with the
            highest HQNR is kept if it beats the input model. Each adds one
            prediction and one `evaluate_fr` of the scene. A shorter step
            along the fine-tuning direction helps where the full step
            overshoots (docs/generalization.md). `()` tries the fine-tuned
            weights only.
        time_limit: seconds the whole call should take at most (default
            60), or None for no limit. Fine-tuning stops before `steps` when
            the time spent, one more step and the work left after it (as
            long as the "before" prediction and scores took, once per
            candidate, plus 5 % of the limit) would pass it; at least one
            step runs. On 2 CPU cores the default 100 steps of a 1024^2
            scene usually fit; a slower or busier machine runs fewer
            (`AdaptResult.steps`), so results depend on the machine unless
            it is None.
        loss_weights: `NoReferenceLoss` arguments overriding the default
            loss: `recipes.NO_REFERENCE_LOSS` (the pretraining recipe's
            weights) with `epsilon=2.5` and `gamma=0`
            (`ADAPT_DEFAULTS["loss_weights"]`): HQNR's D_lambda^K at PAN
            scale, the spectral half of the index the candidates are chosen
            by, and no structural (PAN correlation) term, because how much
            PAN detail to inject is then set by the detail calibration.
            `{"epsilon": 0, "gamma": 3.75}` gives the pretraining loss.
        supervised_weight: if > 0, also train on crops of the scene's own
            Wald-degraded copy, whose reference is the scene's MS (still no
            external ground truth), with the paper's supervised loss at this
            weight, as the pretraining recipe does
            (`FullResolutionDataset(reduced_resolution=True)`). Scenes whose
            degraded copy is smaller than a crop use full resolution only.
        calibrate: after fine-tuning, rescale the model's details per band
            to the scene (`calibrate_detail_gain`, defaults; for models whose
            output adds a convolution to the upsampled MS, else skipped).
            A model that calibrates itself (`calibrate_details=True`, the
            `"pantiny_multisensor"` preset) is not calibrated again: its
            predictions, and the scores, already are.
        evaluate: predict the whole scene and compute FR scores before and
            after (adds two predictions and two `evaluate_fr` calls). The
            scores cover the largest top-left crop whose PAN sides are
            multiples of 32 (the toolbox's D_lambda^K needs them). Scenes
            with a PAN side above 2048 are fused tile by tile
            (`predict_scene`, blending); pass `evaluate=False` for very large
            scenes and fuse with `predict_scene` yourself. With `evaluate`,
            the best candidate (`blends`) is kept only if its HQNR on the
            scene is higher than the input model's; without, the fine-tuned
            weights are kept only if they lower the no-reference loss on the
            check crops.
        seed: random seed of the crops and augmentations.
        verbose: 1 shows a progress bar over the steps, 0 is silent.

    Returns:
        An `AdaptResult` (adapted model, fused scene, scores before/after).

    Raises:
        ValueError: band count different from the model's or the sensor's,
            PAN not 4x the MS, NaN/inf, negative values, values above the
            max DN or normalised data given with a DN sensor, a scene too
            small for a 16-pixel crop.

    Example:
    >>> model = keras_pansharp.PanTiny.from_preset("pantiny_multisensor")  # doctest: +SKIP
    >>> res = keras_pansharp.adapt(model, ms, pan, sensor="qb")  # doctest: +SKIP
    >>> res.before["hqnr"], res.after["hqnr"]  # doctest: +SKIP
    """
    t0 = time.perf_counter()
    sensor, ms, pan, scale = scene_inputs(model, ms, pan, sensor, max_value, "adapt")
    steps, batch_size = int(steps), int(batch_size)
    if steps < 1 or batch_size < 1:
        raise ValueError("adapt: steps and batch_size must be >= 1.")
    if not (np.isfinite(learning_rate) and learning_rate > 0):
        raise ValueError(f"adapt: learning_rate must be > 0, got {learning_rate}.")
    if time_limit is not None and not (np.isfinite(time_limit) and time_limit > 0):
        raise ValueError(
            f"adapt: time_limit must be > 0 seconds or None, got {time_limit}."
        )
    blends = tuple(float(f) for f in blends)
    if not all(0.0 < f < 1.0 for f in blends):
        raise ValueError(f"adapt: blends must lie in (0, 1), got {list(blends)}.")
    if not supervised_weight >= 0:
        raise ValueError(
            f"adapt: supervised_weight must be >= 0, got {supervised_weight}."
        )
    side = min(pan.shape) - 4
    # Crops of 16 or a multiple of 32 PAN pixels fit the loss's blocks.
    patch = min(int(patch_size), side - side % 32 if side >= 32 else side - side % 16)
    if patch < 16:
        raise ValueError(
            f"adapt: the scene (PAN {pan.shape}) is too small; it needs at least "
            "20 x 20 PAN pixels."
        )
    if evaluate and min(pan.shape) < 32:
        raise ValueError(
            f"adapt: FR scores need at least 32 x 32 PAN pixels, the scene has "
            f"{pan.shape}; pass evaluate=False."
        )

    view = dataclasses.replace(sensor, max_value=scale)
    scene = Scene(ms=ms, pan=pan, sensor=view, source="adapt scene")
    data = FullResolutionDataset(
        {"scene": scene},
        batch_size=batch_size,
        patch_size=patch,
        steps_per_epoch=steps,
        bands="native",
        reduced_resolution=supervised_weight > 0,
        seed=seed,
    )
    # A fixed batch of plain crops, from the same targets, judges the result.
    check_x, check_y = data.batch(
        np.random.default_rng([seed + 1, 0, 0]), max(batch_size, 8), augment=False
    )
    weights = dict(recipes.NO_REFERENCE_LOSS)
    weights.update(ADAPT_DEFAULTS["loss_weights"])
    weights.update(loss_weights or {})
    if supervised_weight > 0:
        weights["supervised_weight"] = float(supervised_weight)
    loss = NoReferenceLoss([list(view.ms_gnyq)], **weights)

    def check_loss(m) -> float:
        return float(np.mean(np.asarray(loss(check_y, m.predict_on_batch(check_x)))))

    # The copy, compiled first, also makes the "before" predictions: they
    # equal the input model's, and its traced predict function is reused
    # after fine-tuning instead of being traced again.
    tuned = copy_model(model)
    recipes.no_reference(
        tuned,
        loss,
        total_steps=steps,
        learning_rate=learning_rate,
        final_learning_rate=0.1 * learning_rate,
    )
    # Models that calibrate themselves, or have no layer to fold gains into,
    # are not calibrated here.
    fold = calibrate and can_fold_gains(tuned)
    before = fused = None
    t_eval = time.perf_counter()
    if evaluate:
        ms_n, pan_n = ms / scale, pan / scale
        fused = _predict(tuned, ms_n, pan_n) * scale
        before = _scores(fused, ms, pan, sensor)
    loss_before = check_loss(tuned)
    # The work after fine-tuning: a check loss and one prediction and score
    # per candidate (without `evaluate`: two check losses; the calibration's
    # crop prediction is not counted).
    t_eval = time.perf_counter() - t_eval
    reserve = t_eval * (1 + len(blends)) if evaluate else 2.0 * t_eval
    callbacks = []
    if time_limit is not None:
        # And 5 % of the limit for run-to-run variation: with the estimate
        # alone, calls on 2 idle cores ran 100 steps and ended at 62 s.
        reserve += 0.05 * float(time_limit)
        callbacks.append(_TimeLimit(t0, float(time_limit), reserve))

    tuned.fit(data, epochs=1, verbose=verbose, callbacks=callbacks)
    steps_run = len(callbacks[0].durations) if callbacks else steps
    if steps_run < steps and verbose:
        print(
            f"adapt: stopped after {steps_run} of {steps} steps to stay within "
            f"time_limit={time_limit:g} s."
        )
    loss_after = check_loss(tuned)
    after = blend = gains = None
    candidates: dict[float, float] = {}
    if evaluate:
        start, end = model.get_weights(), tuned.get_weights()
        lms = interp23tap_lms(ms_n) if fold else None
        best_weights = None
        for fraction in (1.0, *blends):
            if fraction != 1.0:
                tuned.set_weights(_interpolate(start, end, fraction))
            tuned_fused = _predict(tuned, ms_n, pan_n)
            cal = None
            if fold:
                tuned_fused, cal = _fold_scene_gains(tuned, lms, pan_n, tuned_fused)
            tuned_fused = tuned_fused * scale
            scores = _scores(tuned_fused, ms, pan, sensor)
            candidates[fraction] = scores["hqnr"]
            if scores["hqnr"] > (before if after is None else after)["hqnr"]:
                after, blend, gains, fused = scores, fraction, cal, tuned_fused
                best_weights = tuned.get_weights()
        improved = after is not None
        if improved:
            tuned.set_weights(best_weights)
        else:
            after = dict(before)
    else:
        if fold:
            gains = calibrate_detail_gain(
                tuned, ms, pan, sensor=sensor, max_value=scale
            ).gains
            apply_detail_gain(tuned, gains)
        improved = (check_loss(tuned) if gains is not None else loss_after) < (
            loss_before
        )
        blend = 1.0 if improved else None
    if not improved:
        tuned.set_weights(model.get_weights())
        gains = None
    return AdaptResult(
        model=tuned,
        fused=None if fused is None else fused.astype("float32"),
        before=before,
        after=after,
        loss_before=loss_before,
        loss_after=loss_after,
        improved=bool(improved),
        seconds=time.perf_counter() - t0,
        gains=gains,
        blend=blend,
        candidates=candidates,
        steps=steps_run,
    )


def _interpolate(start: list, end: list, fraction: float) -> list:
    """`start + fraction * (end - start)` for every float weight array."""
    return [
        a + fraction * (b - a) if np.issubdtype(np.asarray(a).dtype, np.floating) else b
        for a, b in zip(start, end)
    ]
