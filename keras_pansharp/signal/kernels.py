"""Fixed filter coefficients shared by the NumPy tools and the Keras layers."""

from __future__ import annotations

import numpy as np

# Half of the toolbox's 23-tap polynomial interpolation kernel, centre first
# (REFERENCE §4). The full kernel is this array mirrored, times 2.
_INTERP23TAP_HALF = (
    0.5,
    0.305334091185,
    0.0,
    -0.072698593239,
    0.0,
    0.021809577942,
    0.0,
    -0.005192756653,
    0.0,
    0.000807762146,
    0.0,
    -0.000060081482,
)


def interp23tap_kernel() -> np.ndarray:
    """The 23-tap interpolation kernel of the reference toolbox (float64).

    Returns:
        Array of shape `(23,)`, symmetric, centre tap (index 11) equal to 1.0.
    """
    half = 2.0 * np.asarray(_INTERP23TAP_HALF, dtype=np.float64)
    return np.concatenate([half[:0:-1], half])
