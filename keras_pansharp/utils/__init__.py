"""Utilities: performance defaults and fast, result-preserving kernels."""

from keras_pansharp.utils.perf import (
    channel_attention,
    channel_layer_norm,
    default_jit_compile,
    has_accelerator,
    pointwise_conv,
)
