"""Compatibility module: the toolbox-exact NumPy metrics, re-exported.

The exact (reference-toolbox) metrics used to live in this module. They now
live in one module per concept:

- `keras_pansharp.metrics.q_index`: `q_avg`, `q2n`, `onion_structure_tensor`,
  `quantize_uint16` (UIQI, Q_avg, Q2n, block Q);
- `keras_pansharp.metrics.reduced_resolution`: `sam`, `ergas`, `scc`, `psnr`,
  `ssim`, `evaluate_rr`;
- `keras_pansharp.metrics.full_resolution`: `d_lambda`, `d_s`, `qnr`,
  `d_lambda_k`, `hqnr`, `evaluate_fr`;
- `keras_pansharp.metrics._inputs`: the shared input validation and DN
  scaling (conventions, `RATIO`, `Q_BLOCK`).

Prefer `keras_pansharp.metrics.<name>` (or the modules above). This module
only re-exports the public names, so that existing code such as
`keras_pansharp.metrics.reference.q2n` keeps working; private helpers are not
re-exported.
"""

from keras_pansharp.metrics._inputs import Q_BLOCK as Q_BLOCK
from keras_pansharp.metrics._inputs import RATIO as RATIO
from keras_pansharp.metrics.full_resolution import (
    d_lambda,
    d_lambda_k,
    d_s,
    evaluate_fr,
    hqnr,
    qnr,
)
from keras_pansharp.metrics.q_index import (
    onion_structure_tensor,
    q2n,
    q_avg,
    quantize_uint16,
)
from keras_pansharp.metrics.reduced_resolution import (
    ergas,
    evaluate_rr,
    psnr,
    sam,
    scc,
    ssim,
)

__all__ = [
    "sam",
    "ergas",
    "q_avg",
    "q2n",
    "scc",
    "psnr",
    "ssim",
    "d_lambda",
    "d_s",
    "qnr",
    "d_lambda_k",
    "hqnr",
    "evaluate_rr",
    "evaluate_fr",
    "onion_structure_tensor",
    "quantize_uint16",
]
