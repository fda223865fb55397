"""`FullResolutionDataset`: no-reference training batches from real scenes.

Full-resolution scenes have no ground truth. This dataset cuts random crops
from them and yields the inputs of the shared model contract together with
the packed target of `keras_pansharp.losses.NoReferenceLoss`, so that
`model.fit(dataset)` trains at full resolution:

    ({"ms": (B, p/4, p/4, C), "pan": (B, p, p, 1), "lms": (B, p, p, C)},
     y_true (B, p, p, 2C + 3))

Every crop keeps the MS sampling grid: `lms[2::4, 2::4] == ms` exactly, also
after the augmentations (a flipped crop is taken one PAN pixel further, so the
MS samples land on the same phase), because the loss re-projects the fused
image onto that grid.

Augmentations (all per sample, seeded):

- geometry: the 8 flips/transpositions;
- radiometry (`RadiometricAugmentation`): a global gain (the same scene
  normalised by another max DN, another bit depth or exposure), a per-band
  MS gain jitter relative to the PAN (sensors differ in spectral response),
  a PAN gain relative to the MS, additive Gaussian PAN noise, and
  re-quantisation to a random bit depth. The
  target is built from the same augmented pixels, so the loss stays
  consistent.

Determinism: a batch is a pure function of `(seed, epoch, batch index)`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any

import keras
import numpy as np

from keras_pansharp.data.readers import RATIO, Scene
from keras_pansharp.losses.full_resolution import NoReferenceLoss, no_reference_target
from keras_pansharp.sensors import Sensor
from keras_pansharp.signal.wald import wald_degrade

__all__ = ["FullResolutionDataset", "RadiometricAugmentation"]


@dataclasses.dataclass(frozen=True)
class RadiometricAugmentation:
    """Per-sample radiometric augmentation of normalised crops.

    Args:
        gain_range: `(low, high)` of a log-uniform global gain applied to MS,
            PAN and LMS (1, 1 disables).
        band_jitter: half-width of a uniform per-band MS gain `1 + U(-j, j)`
            (the PAN is unchanged).
        pan_gain_range: `(low, high)` of a log-uniform extra PAN gain
            relative to the MS (sensors differ in PAN-to-MS radiometry);
            `(1, 1)` disables.
        noise_std: standard deviation of additive Gaussian PAN noise, in
            normalised units, drawn uniformly in `[0, noise_std]` per sample
            (the MS is left alone so that `lms[2::4, 2::4] == ms` holds).
        bit_depths: re-quantise the (gained) crop to `2**b - 1` levels for a
            `b` drawn from this tuple with probability `quantize_prob`.
        quantize_prob: probability of re-quantising a sample.
    """

    gain_range: tuple[float, float] = (0.5, 2.0)
    band_jitter: float = 0.1
    pan_gain_range: tuple[float, float] = (1.0, 1.0)
    noise_std: float = 0.0
    bit_depths: tuple[int, ...] = (8, 10, 11, 12)
    quantize_prob: float = 0.3

    def __post_init__(self):
        lo, hi = self.gain_range
        if not 0 < lo <= hi:
            raise ValueError(
                f"gain_range must be 0 < low <= high, got {self.gain_range}."
            )
        plo, phi = self.pan_gain_range
        if not 0 < plo <= phi:
            raise ValueError(
                f"pan_gain_range must be 0 < low <= high, got {self.pan_gain_range}."
            )
        if not 0 <= self.band_jitter < 1:
            raise ValueError(f"band_jitter must be in [0, 1), got {self.band_jitter}.")
        if self.noise_std < 0 or not 0 <= self.quantize_prob <= 1:
            raise ValueError("noise_std must be >= 0 and quantize_prob in [0, 1].")


def _as_scene(name: str, item: Any) -> Scene:
    if isinstance(item, Scene):
        return item
    if isinstance(item, Mapping) and {"ms", "pan", "sensor"} <= set(item):
        from keras_pansharp.data.readers import read_scene

        return read_scene(item["ms"], item["pan"], sensor=item["sensor"])
    raise ValueError(
        f"Scene {name!r}: expected a keras_pansharp.data.Scene (read_scene) or a "
        f"dict with 'ms', 'pan' and 'sensor'; got {type(item).__name__}."
    )


def _ms_slice(start: int, size: int, flip: bool) -> slice:
    """MS rows/columns `start:start + size`, reversed when `flip`."""
    if not flip:
        return slice(start, start + size)
    return slice(start + size - 1, start - 1 if start else None, -1)


class FullResolutionDataset(keras.utils.PyDataset):
    """Random full-resolution crops and their no-reference targets.

    Args:
        scenes: dict `{name: Scene}` (or a list of `Scene`s), e.g. from
            `keras_pansharp.data.read_scene`. Values are in DN; each scene is
            divided by its sensor's `max_value`.
        batch_size: crops per batch.
        patch_size: PAN-scale crop side (multiple of 4; the loss's Q2n uses
            blocks of `min(32, patch_size / 4)` MS pixels).
        steps_per_epoch: batches per epoch.
        bands: `"rgbn"` (default) takes the blue, green, red and NIR bands of
            8-band sensors so that every sensor mixes in a batch; `"native"`
            keeps all bands (then every scene must have the same count).
        augment: flips and transpositions.
        radiometric: a `RadiometricAugmentation`, or `None` for none.
        reduced_resolution: also crop each scene's Wald-degraded copy (scale
            augmentation, MTF blur of the sensor), which has a reference:
            its original MS. The target then carries `[gt (C) | has_gt (1)]`
            after the no-reference channels (`has_gt` 0 for full-resolution
            crops), for `NoReferenceLoss(supervised_weight=...)`. Scenes
            whose degraded copy is smaller than a crop are used at full
            resolution only.
        seed: integer seed (`None` draws one).
        workers, use_multiprocessing, max_queue_size: `keras.utils.PyDataset`.

    Attributes:
        sensors: the distinct sensors (views) of the scenes, in the order of
            the target's sensor index; pass them to `NoReferenceLoss` (or use
            `loss()`).

    Example:
    >>> scenes = {"qb": read_scene("ms.tif", "pan.tif", sensor="qb")}  # doctest: +SKIP
    >>> ds = FullResolutionDataset(scenes, batch_size=8, patch_size=64)  # doctest: +SKIP
    >>> model.compile(optimizer="adam", loss=ds.loss())  # doctest: +SKIP
    >>> model.fit(ds, epochs=5)  # doctest: +SKIP
    """

    def __init__(
        self,
        scenes: Mapping[str, Scene] | Sequence[Scene],
        batch_size: int = 8,
        patch_size: int = 64,
        steps_per_epoch: int = 100,
        bands: str = "rgbn",
        augment: bool = True,
        radiometric: RadiometricAugmentation | None = None,
        reduced_resolution: bool = False,
        seed: int | None = None,
        workers: int = 1,
        use_multiprocessing: bool = False,
        max_queue_size: int = 10,
    ):
        super().__init__(
            workers=workers,
            use_multiprocessing=use_multiprocessing,
            max_queue_size=max_queue_size,
        )
        if not isinstance(scenes, Mapping):
            scenes = {
                getattr(s, "source", f"scene{i}"): s for i, s in enumerate(scenes)
            }
        if not scenes:
            raise ValueError("scenes must be a non-empty dict {name: Scene}.")
        if bands not in ("rgbn", "native"):
            raise ValueError(f"bands must be 'rgbn' or 'native', got {bands!r}.")
        patch_size = int(patch_size)
        if patch_size < 16 or patch_size % RATIO:
            raise ValueError(
                f"patch_size must be a multiple of {RATIO} and >= 16, got {patch_size}."
            )
        if int(batch_size) < 1 or int(steps_per_epoch) < 1:
            raise ValueError("batch_size and steps_per_epoch must be >= 1.")
        if radiometric is not None and not isinstance(
            radiometric, RadiometricAugmentation
        ):
            raise ValueError("radiometric must be a RadiometricAugmentation or None.")
        self.batch_size = int(batch_size)
        self.patch_size = patch_size
        self.steps_per_epoch = int(steps_per_epoch)
        self.bands = bands
        self.augment = bool(augment)
        self.radiometric = radiometric
        if seed is None:
            seed = int(np.random.SeedSequence().entropy % (2**31))
        self.seed = int(seed)
        self.epoch = 0

        self.sensors: list[Sensor] = []
        gains_index: dict[tuple, int] = {}
        self.names: list[str] = []
        self._ms: list[np.ndarray] = []
        self._target: list[np.ndarray] = []
        self.reduced_resolution = bool(reduced_resolution)
        for name, item in scenes.items():
            scene = _as_scene(str(name), item)
            sensor, ms = scene.sensor, np.asarray(scene.ms)
            if bands == "rgbn" and sensor.num_bands != 4:
                ms = ms[..., list(sensor.rgbn_indices)]
                sensor = sensor.rgbn()
            if min(scene.pan.shape) < patch_size + RATIO:
                raise ValueError(
                    f"Scene {name!r} ({scene.source}): PAN {scene.pan.shape} is too "
                    f"small for patch_size {patch_size} (needs {patch_size + RATIO})."
                )
            key = tuple(sensor.ms_gnyq)
            if key not in gains_index:
                gains_index[key] = len(self.sensors)
                self.sensors.append(sensor)
            pairs = [(str(name), ms, np.asarray(scene.pan), None)]
            if self.reduced_resolution:
                pairs += self._degraded(str(name), ms, scene.pan, sensor)
            for pair_name, pair_ms, pair_pan, gt in pairs:
                scale = float(sensor.max_value)
                self._ms.append((pair_ms / scale).astype("float32"))
                target = no_reference_target(
                    pair_ms, pair_pan, sensor, sensor_index=gains_index[key]
                )
                if self.reduced_resolution:
                    ref = np.zeros((*target.shape[:2], ms.shape[-1] + 1), "float32")
                    if gt is not None:
                        ref[..., :-1] = gt / scale
                        ref[..., -1] = 1.0
                    target = np.concatenate([target, ref], axis=-1)
                self._target.append(target)
                self.names.append(pair_name)
        counts = {t.shape[-1] for t in self._target}
        if len(counts) > 1:
            raise ValueError(
                "Scenes have different band counts; use bands='rgbn' to mix them."
            )
        self.num_bands = self._ms[0].shape[-1]

    def _degraded(self, name, ms, pan, sensor) -> list:
        """The Wald-degraded copy of a scene, with its MS as reference."""
        h, w = (ms.shape[0] // RATIO) * RATIO, (ms.shape[1] // RATIO) * RATIO
        if min(h, w) < self.patch_size + RATIO:
            return []  # too small once degraded: full resolution only
        ms, pan = ms[:h, :w], np.asarray(pan)[: RATIO * h, : RATIO * w]
        ms_lr, pan_lr = wald_degrade(ms, pan, sensor)
        return [(f"{name} (reduced x4)", ms_lr, pan_lr, ms)]

    def loss(self, **kwargs) -> NoReferenceLoss:
        """A `NoReferenceLoss` over this dataset's sensors (kwargs: weights,
        e.g. `supervised_weight` with `reduced_resolution=True`)."""
        return NoReferenceLoss([list(s.ms_gnyq) for s in self.sensors], **kwargs)

    # ------------------------------------------------------------------ keras
    @property
    def num_batches(self) -> int:
        return self.steps_per_epoch

    def __len__(self) -> int:
        return self.steps_per_epoch

    def on_epoch_end(self):
        self.epoch += 1

    def __getitem__(self, index: int):
        if not 0 <= int(index) < self.steps_per_epoch:
            raise IndexError(f"batch {index} out of range [0, {self.steps_per_epoch}).")
        rng = np.random.default_rng([self.seed, self.epoch, int(index)])
        return self.batch(rng, self.batch_size)

    def batch(self, rng: np.random.Generator, size: int, augment: bool = True):
        """`size` crops drawn with `rng`, as `(inputs, target)` like a batch.

        `augment=False` draws plain crops (no flips, no radiometric changes),
        e.g. a fixed check batch.
        """
        samples = [self.sample(rng, augment) for _ in range(int(size))]
        ms, target = (np.stack(a) for a in zip(*samples))
        c = self.num_bands
        x = {"ms": ms, "pan": target[..., c : c + 1], "lms": target[..., :c]}
        return x, target

    def sample(self, rng: np.random.Generator, augment: bool = True):
        """One `(ms (p/4, p/4, C), target (p, p, 2C + 3 [+ C + 1]))` crop.

        `augment=False` skips this dataset's augmentations for this crop.
        """
        i = int(rng.integers(len(self._ms)))
        ms_full, tgt_full = self._ms[i], self._target[i]
        p, q = self.patch_size, self.patch_size // RATIO
        h, w = tgt_full.shape[:2]
        y0 = RATIO * int(rng.integers((h - p - RATIO) // RATIO + 1))
        x0 = RATIO * int(rng.integers((w - p - RATIO) // RATIO + 1))
        flip_y, flip_x, trans = (
            rng.integers(2, size=3).astype(bool)
            if augment and self.augment
            else (0, 0, 0)
        )
        # A flipped crop starts one PAN pixel later: PAN row y0 + p - i holds
        # an MS sample for i = 2 (mod 4), the same phase as unflipped crops.
        ty = slice(y0 + p, y0, -1) if flip_y else slice(y0, y0 + p)
        tx = slice(x0 + p, x0, -1) if flip_x else slice(x0, x0 + p)
        my0, mx0 = y0 // RATIO, x0 // RATIO
        my = _ms_slice(my0, q, flip_y)
        mx = _ms_slice(mx0, q, flip_x)
        tgt = np.array(tgt_full[ty, tx], dtype="float32")
        ms = np.array(ms_full[my, mx], dtype="float32")
        if trans:
            tgt = tgt.transpose(1, 0, 2).copy()
            ms = ms.transpose(1, 0, 2).copy()
        if augment and self.radiometric is not None:
            self._radiometric(rng, ms, tgt)
        return ms, tgt

    def _radiometric(self, rng, ms: np.ndarray, tgt: np.ndarray) -> None:
        """Augment `ms` and the target's lms/pan in place (same pixels)."""
        aug, c = self.radiometric, self.num_bands
        lo, hi = aug.gain_range
        gain = float(np.exp(rng.uniform(np.log(lo), np.log(hi))))
        band = 1.0 + rng.uniform(-aug.band_jitter, aug.band_jitter, size=c)
        factor = (gain * band).astype("float32")
        ms *= factor
        tgt[..., :c] *= factor
        if self.reduced_resolution:
            tgt[..., 2 * c + 3 : 3 * c + 3] *= factor
        plo, phi = aug.pan_gain_range
        pan_gain = float(np.exp(rng.uniform(np.log(plo), np.log(phi))))
        tgt[..., c : c + 2] *= gain * pan_gain
        sigma = float(rng.uniform(0.0, aug.noise_std)) if aug.noise_std else 0.0
        if sigma:
            # PAN noise only: the LMS must keep its exact MS samples.
            noise = rng.normal(0.0, sigma, size=tgt.shape[:2])
            tgt[..., c] += noise.astype("float32")
        if aug.quantize_prob and rng.uniform() < aug.quantize_prob:
            levels = float(2 ** int(rng.choice(aug.bit_depths)) - 1)
            views = [ms, tgt[..., : c + 2]]
            if self.reduced_resolution:
                views.append(tgt[..., 2 * c + 3 : 3 * c + 3])
            for a in views:
                np.clip(np.round(a * levels) / levels, 0.0, None, out=a)
