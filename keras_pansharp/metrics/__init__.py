"""keras_pansharp.metrics: toolbox-exact NumPy metrics and Keras metrics.

- NumPy float64 reference functions (`sam`, `ergas`, `q_avg`, `q2n`, `scc`,
  `psnr`, `ssim`, `d_lambda`, `d_s`, `qnr`, `d_lambda_k`, `hqnr`,
  `evaluate_rr`, `evaluate_fr`) reproduce the MATLAB pan-sharpening toolbox.
- Keras metrics (`SAM`, `ERGAS`, `Q2n`, `SCC`, `PSNR`, `SSIM`) for `compile()`.
"""

from keras_pansharp.metrics.keras_metrics import ERGAS, PSNR, SAM, SCC, SSIM, Q2n
from keras_pansharp.metrics.reference import (
    d_lambda,
    d_lambda_k,
    d_s,
    ergas,
    evaluate_fr,
    evaluate_rr,
    hqnr,
    psnr,
    q2n,
    q_avg,
    qnr,
    sam,
    scc,
    ssim,
)
