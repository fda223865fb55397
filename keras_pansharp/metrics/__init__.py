"""keras_pansharp.metrics: toolbox-exact NumPy metrics and Keras metrics.

- NumPy float64 reference functions (`sam`, `ergas`, `q_avg`, `q2n`, `scc`,
  `psnr`, `ssim`, `d_lambda`, `d_s`, `qnr`, `d_lambda_k`, `hqnr`,
  `evaluate_rr`, `evaluate_fr`) reproduce the MATLAB pan-sharpening toolbox.
  They live in `q_index` (Q_avg, Q2n), `reduced_resolution` (SAM, ERGAS, SCC,
  PSNR, SSIM, `evaluate_rr`) and `full_resolution` (D_λ, D_s, QNR, D_λ^K,
  HQNR, `evaluate_fr`); `reference` re-exports them for compatibility.
- `evaluate_fr_windowed`, `evaluate_rr_windowed` (`windowed`): the same
  numbers for scenes read window by window (memmaps, h5py, GeoTIFF windows)
  in bounded memory.
- Keras metrics (`SAM`, `ERGAS`, `Q2n`, `SCC`, `PSNR`, `SSIM`) for `compile()`.
- `border_cut`: the toolbox's RR border cut (`dim_cut`).
- Scarpa & Ciotola's full-resolution indices: `d_rho` and
  `local_cross_correlation` (`spatial_consistency`), `reprojection` (R-Q2n,
  R-SAM, R-ERGAS) and `reproject` (`reprojection`); `evaluate_fr` reports
  them too.
"""

from keras_pansharp.metrics._inputs import border_cut
from keras_pansharp.metrics.full_resolution import (
    d_lambda,
    d_lambda_k,
    d_s,
    evaluate_fr,
    hqnr,
    qnr,
)
from keras_pansharp.metrics.keras_metrics import ERGAS, PSNR, SAM, SCC, SSIM, Q2n
from keras_pansharp.metrics.q_index import q2n, q_avg
from keras_pansharp.metrics.reduced_resolution import (
    ergas,
    evaluate_rr,
    psnr,
    sam,
    scc,
    ssim,
)
from keras_pansharp.metrics.reprojection import reproject, reprojection
from keras_pansharp.metrics.spatial_consistency import d_rho, local_cross_correlation
from keras_pansharp.metrics.windowed import (
    evaluate_fr_windowed,
    evaluate_rr_windowed,
)
