"""`MultiSensorDataset`: balanced multi-sensor training batches for `model.fit`.

The paper behind PanTiny trains one model on WV2 + WV3 + GF2 at once. This
module turns any mix of PanCollection files, folder datasets, scenes and
arrays into a `keras.utils.PyDataset` that every backend's `model.fit`
accepts.

What an epoch is
----------------
An epoch is `steps_per_epoch` batches (default: `ceil(total samples of all
sources / batch_size)`, i.e. as many patches as the sources hold together).
The sensors' shares of those patches follow `balance`. Each source walks
through its own endless stream of shuffled passes over its samples (a new
permutation per pass), and each epoch continues where the previous one
stopped; so every sample of a source is used once before any is reused,
whatever the balance. With `balance="proportional"` and the default
`steps_per_epoch`, an epoch is (up to rounding) one pass over every file. With
`balance="equal"` (the default), small sensors are revisited within an epoch
(with fresh random crops and flips) and large sensors are spread over several
epochs.

Determinism: a batch is a pure function of `(seed, epoch, batch index)`, so
the same seed gives the same batches whatever the number of workers.
(`model.fit(..., shuffle=True)` additionally reorders whole batches with
Python's `random`, which `keras.utils.set_random_seed` seeds.)
"""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Mapping
from typing import Any

import keras
import numpy as np

from keras_pansharp.data.readers import RATIO, PairReader, open_source
from keras_pansharp.sensors import Sensor, get_sensor

__all__ = ["MultiSensorDataset"]

_INPUT_KEYS = ("ms", "pan", "lms")


def _largest_remainder(weights: np.ndarray, total: int) -> np.ndarray:
    raw = weights / weights.sum() * total
    counts = np.floor(raw).astype(np.int64)
    rest = total - counts.sum()
    if rest > 0:
        order = np.argsort(-(raw - counts), kind="stable")
        counts[order[:rest]] += 1
    return counts


def _dihedral(arr: np.ndarray, op: int) -> np.ndarray:
    """One of the 8 flips/90-degree rotations of a (H, W, C) array."""
    if op >= 4:
        arr = arr[:, ::-1]
    return np.rot90(arr, op % 4, axes=(0, 1))


class _Source:
    """One named source: one or more readers of the same sensor."""

    def __init__(self, name, readers, bands):
        self.name = name
        self.readers = readers
        sensors = {r.sensor.name for r in readers}
        if len(sensors) != 1:
            raise ValueError(
                f"Source {name!r}: all its readers must have the same sensor, got "
                f"{sorted(sensors)}."
            )
        sensor = readers[0].sensor
        nb = {r.num_bands for r in readers}
        if len(nb) != 1:
            raise ValueError(
                f"Source {name!r}: all its readers must have the same band count, "
                f"got {sorted(nb)}."
            )
        num_bands = nb.pop()
        self.band_index = None
        if bands == "rgbn" and num_bands != 4:
            if num_bands < 4:
                raise ValueError(
                    f"Source {name!r} ({sensor.name}) has {num_bands} bands; "
                    "bands='rgbn' needs at least 4 (blue, green, red, NIR)."
                )
            self.band_index = np.asarray(sensor.rgbn_indices)
            sensor = sensor.rgbn()
        self.sensor: Sensor = sensor
        self.num_bands = 4 if bands == "rgbn" else num_bands
        self.offsets = np.cumsum([0] + [len(r) for r in readers])
        self.size = int(self.offsets[-1])
        self.has_gt = all(r.has_gt for r in readers)
        if any(r.has_gt for r in readers) and not self.has_gt:
            raise ValueError(
                f"Source {name!r}: mixes files with and without 'gt' (RR and FR)."
            )
        sizes = {tuple(r.pan_size) for r in readers}
        self.min_size = min(min(s) for s in sizes)
        self.sizes = sizes

    def locate(self, index: int) -> tuple[PairReader, int]:
        k = int(np.searchsorted(self.offsets, index, side="right")) - 1
        return self.readers[k], int(index - self.offsets[k])


class MultiSensorDataset(keras.utils.PyDataset):
    """Multi-sensor pan-sharpening batches for `model.fit` (any backend).

    Yields `({"ms": (B, p/4, p/4, C), "pan": (B, p, p, 1), "lms": (B, p, p, C)},
    gt (B, p, p, C))`, float32, channels-last, each sample divided by its
    source's max DN (e.g. 2047 for WV3, 1023 for GF2), with fixed shapes.

    Args:
        sources: dict `{name: source}`. A source is a PanCollection `.h5`
            path, a folder dataset, a `Scene`, a dict of channels-last DN
            arrays `{"ms", "pan"[, "lms", "gt"]}`, a reader, or a list of
            those (concatenated). The sensor is the reader's own or, for
            paths/arrays, `get_sensor(name)`.
        batch_size: samples per batch.
        patch_size: PAN-scale crop size (multiple of 4). `None`: the whole
            samples (they must all have the same size, per batch).
        bands: `"rgbn"` (default) reduces 8-band sensors to blue, green, red
            and NIR (`Sensor.rgbn_indices`) so sensors mix within a batch, as
            the paper does; `"native"` keeps every band, each batch then comes
            from a single source (see `batch_sensor(i)`).
        balance: `"equal"` (default: each source equally often whatever its
            size), `"proportional"` (to the number of samples, i.e. plain
            concatenation as in the paper) or a dict `{name: weight}`.
        augment: random flips and 90-degree rotations, identical for ms, pan,
            lms and gt. Default: `training`.
        shuffle: shuffle samples (and interleave sources randomly). Default:
            `training`.
        seed: integer seed; same seed, same batches. `None` draws one.
        steps_per_epoch: batches per epoch (training only); see the module
            docstring for what an epoch is.
        training: `False` gives the validation/test variant: no augmentation,
            no shuffling, centred crops, every sample exactly once per epoch
            (the last batch of a group may be smaller); FR sources (no `gt`)
            are allowed and yield inputs only.
        workers, use_multiprocessing, max_queue_size: passed to
            `keras.utils.PyDataset`. HDF5 handles are reopened in each worker
            process.

    Example:

    ```python
    ds = keras_pansharp.MultiSensorDataset(
        {"wv3": "train_wv3.h5", "gf2": "train_gf2.h5", "wv2": "train_wv2.h5"},
        batch_size=16, patch_size=64, seed=0)
    val = keras_pansharp.MultiSensorDataset.for_evaluation(
        {"wv3": "valid_wv3.h5", "gf2": "valid_gf2.h5", "wv2": "valid_wv2.h5"},
        batch_size=16)
    model.fit(ds, validation_data=val, epochs=10)
    ```
    """

    def __init__(
        self,
        sources: Mapping[str, Any],
        batch_size: int = 16,
        patch_size: int | None = None,
        bands: str = "rgbn",
        balance: str | Mapping[str, float] = "equal",
        augment: bool | None = None,
        shuffle: bool | None = None,
        seed: int | None = None,
        steps_per_epoch: int | None = None,
        training: bool = True,
        workers: int = 1,
        use_multiprocessing: bool = False,
        max_queue_size: int = 10,
    ):
        super().__init__(
            workers=workers,
            use_multiprocessing=use_multiprocessing,
            max_queue_size=max_queue_size,
        )
        if not isinstance(sources, Mapping) or not sources:
            raise ValueError(
                "sources must be a non-empty dict {name: path, reader or arrays}."
            )
        if bands not in ("rgbn", "native"):
            raise ValueError(f"bands must be 'rgbn' or 'native', got {bands!r}.")
        if int(batch_size) < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}.")
        self.batch_size = int(batch_size)
        self.bands = bands
        self.training = bool(training)
        self.augment = self.training if augment is None else bool(augment)
        self.shuffle = self.training if shuffle is None else bool(shuffle)
        if not self.training and (self.augment or self.shuffle):
            raise ValueError(
                "training=False (validation/test) does not augment or shuffle; "
                "leave augment and shuffle unset."
            )
        if seed is None:
            seed = int(np.random.SeedSequence().entropy % (2**31))
        self.seed = int(seed)

        self._sources: list[_Source] = []
        for name, src in sources.items():
            items = list(src) if isinstance(src, (list, tuple)) else [src]
            if not items:
                raise ValueError(f"Source {name!r} is an empty list.")
            readers = []
            for item in items:
                sensor = None
                if not isinstance(item, PairReader):
                    sensor = get_sensor(name)
                readers.append(open_source(item, sensor=sensor))
            self._sources.append(_Source(str(name), readers, bands))
        self.source_names = [s.name for s in self._sources]

        # Patch size and fixed shapes.
        if patch_size is None:
            if bands == "rgbn":
                all_sizes = set().union(*(s.sizes for s in self._sources))
                if len(all_sizes) > 1:
                    raise ValueError(
                        f"Samples have different sizes {sorted(all_sizes)}; pass "
                        "patch_size to crop them to one size."
                    )
            for s in self._sources:
                if len(s.sizes) > 1:
                    raise ValueError(
                        f"Source {s.name!r} has samples of sizes {sorted(s.sizes)}; "
                        "pass patch_size to crop them to one size."
                    )
        else:
            patch_size = int(patch_size)
            if patch_size <= 0 or patch_size % RATIO:
                raise ValueError(
                    f"patch_size must be a positive multiple of {RATIO} (PAN pixels), "
                    f"got {patch_size}."
                )
            for s in self._sources:
                if patch_size > s.min_size:
                    raise ValueError(
                        f"patch_size {patch_size} is larger than the samples of source "
                        f"{s.name!r} ({s.min_size} PAN pixels)."
                    )
        self.patch_size = patch_size

        if self.training:
            missing = [s.name for s in self._sources if not s.has_gt]
            if missing:
                raise ValueError(
                    f"Sources {missing} have no 'gt' (full-resolution data); training "
                    "batches need a reference. Use training=False for FR data."
                )
        else:
            kinds = {s.has_gt for s in self._sources}
            if len(kinds) > 1:
                raise ValueError(
                    "Evaluation sources mix reduced-resolution (with 'gt') and "
                    "full-resolution (without) data; use two datasets."
                )
        self.has_gt = all(s.has_gt for s in self._sources)

        # Sensor weights.
        sizes = np.asarray([s.size for s in self._sources], np.float64)
        if isinstance(balance, Mapping):
            unknown = set(balance) - set(self.source_names)
            if unknown:
                raise ValueError(
                    f"balance names {sorted(unknown)} are not sources "
                    f"{self.source_names}."
                )
            weights = np.asarray(
                [float(balance.get(n, 0.0)) for n in self.source_names]
            )
            if (
                (weights < 0).any()
                or not np.isfinite(weights).all()
                or weights.sum() <= 0
            ):
                raise ValueError(f"balance weights must be >= 0, not all 0: {balance}.")
        elif balance == "equal":
            weights = np.ones(len(self._sources))
        elif balance == "proportional":
            weights = sizes.copy()
        else:
            raise ValueError(
                "balance must be 'equal', 'proportional' or a dict of weights, got "
                f"{balance!r}."
            )
        self.balance = balance
        self.weights = weights / weights.sum()

        total = int(sizes.sum())
        if not self.training:
            if steps_per_epoch is not None:
                raise ValueError("steps_per_epoch applies to training=True only.")
            self._eval_plan = self._make_eval_plan()
            self.steps_per_epoch = len(self._eval_plan)
        else:
            if steps_per_epoch is None:
                steps_per_epoch = max(1, math.ceil(total / self.batch_size))
            if int(steps_per_epoch) < 1:
                raise ValueError(
                    f"steps_per_epoch must be >= 1, got {steps_per_epoch}."
                )
            self.steps_per_epoch = int(steps_per_epoch)
        self.epoch = 0
        self._plan_cache: OrderedDict = OrderedDict()
        self._perm_cache: OrderedDict = OrderedDict()

    @classmethod
    def for_evaluation(
        cls, sources: Mapping[str, Any], batch_size: int = 16, **kwargs
    ) -> MultiSensorDataset:
        """The validation/test variant (`training=False`).

        No augmentation or shuffling, centred crops (if `patch_size`), every
        sample exactly once. Accepts the other constructor arguments.
        """
        return cls(sources, batch_size=batch_size, training=False, **kwargs)

    # ------------------------------------------------------------------ keras

    @property
    def num_batches(self) -> int:
        return self.steps_per_epoch

    def __len__(self) -> int:
        return self.steps_per_epoch

    def on_epoch_end(self) -> None:
        self.epoch += 1

    def __getitem__(self, index: int):
        return self.get_batch(index, self.epoch)

    # ------------------------------------------------------------ sampling

    def _permutation(self, s: int, block: int) -> np.ndarray:
        key = (s, block)
        perm = self._perm_cache.get(key)
        if perm is None:
            n = self._sources[s].size
            if self.shuffle:
                rng = np.random.default_rng([self.seed, 7, s, block])
                perm = rng.permutation(n)
            else:
                perm = np.arange(n)
            self._perm_cache[key] = perm
            while len(self._perm_cache) > 4 * len(self._sources):
                self._perm_cache.popitem(last=False)
        return perm

    def _stream(self, s: int, start: int, count: int) -> list[int]:
        n = self._sources[s].size
        out = []
        for p in range(start, start + count):
            out.append(int(self._permutation(s, p // n)[p % n]))
        return out

    def _make_eval_plan(self):
        plan = []
        b = self.batch_size
        if self.bands == "rgbn":
            items = [
                (s, i) for s, src in enumerate(self._sources) for i in range(src.size)
            ]
            plan = [items[k : k + b] for k in range(0, len(items), b)]
        else:
            for s, src in enumerate(self._sources):
                items = [(s, i) for i in range(src.size)]
                plan += [items[k : k + b] for k in range(0, len(items), b)]
        return plan

    def _plan(self, epoch: int):
        if not self.training:
            return self._eval_plan
        plan = self._plan_cache.get(epoch)
        if plan is not None:
            return plan
        b, steps = self.batch_size, self.steps_per_epoch
        rng = np.random.default_rng([self.seed, 11, epoch])
        plan = []
        if self.bands == "rgbn":
            counts = _largest_remainder(self.weights, steps * b)
            items = []
            for s, c in enumerate(counts):
                ids = self._stream(s, epoch * int(c), int(c))
                items += [(s, i) for i in ids]
            if self.shuffle:
                order = rng.permutation(len(items))
                items = [items[k] for k in order]
            plan = [items[k * b : (k + 1) * b] for k in range(steps)]
        else:
            nb = _largest_remainder(self.weights, steps)
            batches = []
            for s, c in enumerate(nb):
                ids = self._stream(s, epoch * int(c) * b, int(c) * b)
                for k in range(int(c)):
                    # sort key interleaves the sources evenly when not shuffled
                    batches.append(
                        ((k + 0.5) / c, s, [(s, i) for i in ids[k * b : (k + 1) * b]])
                    )
            if self.shuffle:
                order = rng.permutation(len(batches))
                plan = [batches[k][2] for k in order]
            else:
                plan = [x[2] for x in sorted(batches, key=lambda x: (x[0], x[1]))]
        self._plan_cache[epoch] = plan
        while len(self._plan_cache) > 2:
            self._plan_cache.popitem(last=False)
        return plan

    # ------------------------------------------------------------ batches

    def _read_sample(
        self, s: int, index: int, rng, training: bool
    ) -> tuple[dict[str, np.ndarray], np.float32]:
        """One sample (DN, possibly non-contiguous views) and its 1/max_value."""
        src = self._sources[s]
        reader, local = src.locate(index)
        crop = None
        ps = self.patch_size
        if ps is not None:
            hp, wp = reader.pan_size
            if training:
                top = RATIO * int(rng.integers(0, (hp - ps) // RATIO + 1))
                left = RATIO * int(rng.integers(0, (wp - ps) // RATIO + 1))
            else:
                top = (hp - ps) // 2 // RATIO * RATIO
                left = (wp - ps) // 2 // RATIO * RATIO
            if not ps == hp == wp:
                crop = (top, left, ps)
        sample = reader.read(local, crop=crop)
        op = int(rng.integers(0, 8)) if (training and self.augment) else 0
        out = {}
        for key, arr in sample.items():
            if src.band_index is not None and key != "pan":
                arr = arr[..., src.band_index]
            if op:
                arr = _dihedral(arr, op)
            out[key] = arr
        return out, np.float32(1.0 / reader.max_value)

    def _stack(self, items, rng, training, keys):
        """Read `items` [(source, index)] into normalised float32 batches."""
        out = None
        for k, (s, i) in enumerate(items):
            sample, scale = self._read_sample(s, i, rng, training)
            if out is None:
                out = {
                    key: np.empty((len(items), *sample[key].shape), np.float32)
                    for key in keys
                }
            for key in keys:
                np.multiply(sample[key], scale, out=out[key][k])
        return out

    def get_batch(self, index: int, epoch: int = 0):
        """Batch `index` of epoch `epoch` (a pure function of the seed).

        Returns:
            `(inputs, gt)` with `inputs = {"ms", "pan", "lms"}`; for
            full-resolution evaluation data, `inputs` only.
        """
        plan = self._plan(epoch)
        if not 0 <= index < len(plan):
            raise IndexError(f"batch index {index} out of range [0, {len(plan)}).")
        rng = np.random.default_rng([self.seed, 13, epoch, index])
        keys = _INPUT_KEYS + (("gt",) if self.has_gt else ())
        out = self._stack(plan[index], rng, self.training, keys)
        inputs = {k: out[k] for k in _INPUT_KEYS}
        if not self.has_gt:
            return inputs
        return inputs, out["gt"]

    def batch_sources(self, index: int, epoch: int | None = None) -> list[str]:
        """Source name of every sample of batch `index`."""
        plan = self._plan(self.epoch if epoch is None else epoch)
        return [self._sources[s].name for s, _ in plan[index]]

    def batch_sensor(self, index: int, epoch: int | None = None) -> Sensor:
        """The sensor of batch `index` (as served: e.g. `WV3_RGBN` in rgbn mode).

        Raises:
            ValueError: if the batch mixes sensors (only in `bands="rgbn"`).
        """
        plan = self._plan(self.epoch if epoch is None else epoch)
        sensors = {self._sources[s].sensor.name for s, _ in plan[index]}
        if len(sensors) != 1:
            raise ValueError(
                f"Batch {index} mixes sensors {sorted(sensors)} (bands='rgbn'); use "
                "batch_sources(), or bands='native' for single-sensor batches."
            )
        return self._sources[plan[index][0][0]].sensor

    @property
    def sensors(self) -> dict[str, Sensor]:
        """`{source name: served Sensor}` (4-band views in `bands="rgbn"`)."""
        return {s.name: s.sensor for s in self._sources}

    @property
    def num_samples(self) -> dict[str, int]:
        """`{source name: number of samples}`."""
        return {s.name: s.size for s in self._sources}

    # ------------------------------------------------------------ exports

    def evaluation_data(self, max_samples: int | None = None) -> dict[str, Any]:
        """Per-sensor held-out arrays for the metric callbacks.

        Every sample (or the first `max_samples`) of each source, centred crop
        to `patch_size` if set, no augmentation, normalised like the batches.

        Args:
            max_samples: optional cap on samples per source.

        Returns:
            For RR data `{sensor_name: (inputs, gt)}`, for FR data
            `{sensor_name: inputs}`, where `inputs = {"ms", "pan", "lms"}` are
            float32 NHWC arrays and `sensor_name` is the served sensor's
            name in lower case (e.g. `"wv3_rgbn"`, `"gf2"`), which
            `keras_pansharp.get_sensor` resolves.
        """
        out = {}
        for s, src in enumerate(self._sources):
            key = src.sensor.name.lower()
            if key in out:
                raise ValueError(
                    f"Two sources serve sensor {src.sensor.name}; merge them into "
                    "one source (a list) to export evaluation data."
                )
            n = src.size if max_samples is None else min(src.size, int(max_samples))
            keys = _INPUT_KEYS + (("gt",) if src.has_gt else ())
            arrays = self._stack([(s, i) for i in range(n)], None, False, keys)
            inputs = {k: arrays[k] for k in _INPUT_KEYS}
            out[key] = (inputs, arrays["gt"]) if src.has_gt else inputs
        return out

    def as_tf_dataset(self, prefetch: int | None = None):
        """This dataset as a `tf.data.Dataset` (one epoch per iteration).

        Batches are produced by a generator in a background thread and
        prefetched; each new iteration over the dataset is the next epoch.

        Args:
            prefetch: number of batches to prefetch (default
                `tf.data.AUTOTUNE`).

        Returns:
            A `tf.data.Dataset` yielding the same `(inputs, gt)` structures.
        """
        import tensorflow as tf

        ps = self.patch_size
        sizes = set().union(*(s.sizes for s in self._sources))
        if ps is not None:
            hp = wp = ps
        elif len(sizes) == 1:
            hp, wp = next(iter(sizes))
        else:
            hp = wp = None
        bands = {s.num_bands for s in self._sources}
        c = bands.pop() if len(bands) == 1 else None
        fixed_b = self.training
        b = self.batch_size if fixed_b else None

        def spec(h, w, ch):
            return tf.TensorSpec((b, h, w, ch), tf.float32)

        inputs = {
            "ms": spec(
                None if hp is None else hp // RATIO,
                None if wp is None else wp // RATIO,
                c,
            ),
            "pan": spec(hp, wp, 1),
            "lms": spec(hp, wp, c),
        }
        signature = (inputs, spec(hp, wp, c)) if self.has_gt else inputs
        state = {"epoch": self.epoch}

        def gen():
            epoch = state["epoch"]
            state["epoch"] += 1
            for i in range(len(self._plan(epoch))):
                yield self.get_batch(i, epoch)

        ds = tf.data.Dataset.from_generator(gen, output_signature=signature)
        return ds.prefetch(tf.data.AUTOTUNE if prefetch is None else int(prefetch))

    def __repr__(self) -> str:
        parts = ", ".join(
            f"{s.name}: {s.size} x {s.sensor.name}" for s in self._sources
        )
        return (
            f"MultiSensorDataset({{{parts}}}, batch_size={self.batch_size}, "
            f"patch_size={self.patch_size}, bands={self.bands!r}, "
            f"steps_per_epoch={self.steps_per_epoch}, training={self.training})"
        )
