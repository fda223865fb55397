"""Training losses for pan-sharpening (backend-agnostic, `keras.ops` only).

- Supervised (reduced resolution, with ground truth): `L1Loss`, `SSIMLoss`,
  `PanSharpLoss` (the PanTiny paper's `1.5 * L1 + 4 * (1 - SSIM)`).
- No-reference (full resolution, no ground truth): `NoReferenceLoss`
  (lambda-PNN's spectral + structural consistency) and the target builder
  `no_reference_target`.
"""

from keras_pansharp.losses.supervised import (
    L1Loss,
    PanSharpLoss,
    SSIMLoss,
    gaussian_window,
    ssim,
)

# isort: split
from keras_pansharp.losses.full_resolution import (
    NoReferenceLoss,
    local_correlation,
    no_reference_target,
    unpack_target,
)

__all__ = [
    "L1Loss",
    "SSIMLoss",
    "PanSharpLoss",
    "ssim",
    "gaussian_window",
    "NoReferenceLoss",
    "no_reference_target",
    "local_correlation",
    "unpack_target",
]
