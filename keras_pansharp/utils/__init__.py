"""Utilities: performance defaults, fast result-preserving kernels, atomic files."""

from keras_pansharp.utils.io import atomic_path, write_atomic
from keras_pansharp.utils.perf import (
    channel_attention,
    channel_layer_norm,
    default_jit_compile,
    has_accelerator,
    pointwise_conv,
)
