"""keras_pansharp.signal: toolbox-exact NumPy/SciPy signal tools (float64).

Interpolation (`interp23tap`), MTF-matched kernels and filtering
(`mtf_kernels`, `mtf_filter`), MATLAB-compatible `imresize`
(`imresize_bicubic`, `imresize_nearest`) and Wald's protocol
(`wald_degrade`), plus the toolbox's classical pan-sharpening methods
(`exp_method`, `bt_h`, `mtf_glp_hpm_r`) used as reference baselines. All take channels-last arrays (H, W, C) or (H, W).
"""

from keras_pansharp.signal.classical import (
    CLASSICAL_METHODS,
    bt_h,
    exp_method,
    mtf_glp_hpm_r,
)
from keras_pansharp.signal.filters import correlate_nearest, interp23tap, mtf_filter
from keras_pansharp.signal.kernels import (
    fwind1,
    interp23tap_kernel,
    mtf_kernel,
    mtf_kernels,
)
from keras_pansharp.signal.resize import imresize_bicubic, imresize_nearest
from keras_pansharp.signal.wald import wald_degrade

__all__ = [
    "CLASSICAL_METHODS",
    "bt_h",
    "correlate_nearest",
    "exp_method",
    "mtf_glp_hpm_r",
    "fwind1",
    "imresize_bicubic",
    "imresize_nearest",
    "interp23tap",
    "interp23tap_kernel",
    "mtf_filter",
    "mtf_kernel",
    "mtf_kernels",
    "wald_degrade",
]
