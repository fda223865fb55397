"""`PairReader`, the base class of the readers, and their shared LMS helper."""

from __future__ import annotations

import numpy as np

from keras_pansharp.sensors import Sensor


class PairReader:
    """Base class of the readers: indexable collection of MS/PAN samples.

    Attributes:
        sensor: the `Sensor` of the data (its `num_bands` equals the data's).
        max_value: the DN that maps to 1.0 when normalising (defaults to
            `sensor.max_value`; 255 for 8-bit folder datasets).
        has_gt: whether samples carry a reduced-resolution ground truth.
        pan_size: `(H, W)` of every sample at PAN scale.
        num_bands: number of MS bands.
        source: a human-readable name (file path) for messages.
    """

    sensor: Sensor
    max_value: float
    has_gt: bool
    pan_size: tuple[int, int]
    num_bands: int
    source: str

    def __len__(self) -> int:
        raise NotImplementedError

    def read(
        self, index: int, crop: tuple[int, int, int] | None = None
    ) -> dict[str, np.ndarray]:
        """Read one sample.

        Args:
            index: sample index in `[0, len(self))`.
            crop: optional `(top, left, size)` in PAN pixels (multiples of 4);
                the MS crop is `(top/4, left/4, size/4)`.

        Returns:
            Dict of float32 channels-last arrays in DN: `"ms"` `(h, w, C)`,
            `"pan"` `(H, W, 1)`, `"lms"` `(H, W, C)` and, if `has_gt`,
            `"gt"` `(H, W, C)`.
        """
        raise NotImplementedError

    def _check_index(self, index: int) -> int:
        n = len(self)
        index = int(index)
        if index < 0:
            index += n
        if not 0 <= index < n:
            raise IndexError(f"{self.source}: index {index} out of range [0, {n}).")
        return index

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}({self.source!r}, sensor={self.sensor.name}, "
            f"n={len(self)}, pan_size={self.pan_size}, bands={self.num_bands}, "
            f"gt={self.has_gt})"
        )


def _interp23tap(ms: np.ndarray) -> np.ndarray:
    from keras_pansharp.signal import interp23tap

    return np.asarray(interp23tap(np.asarray(ms, np.float64)), np.float32)
