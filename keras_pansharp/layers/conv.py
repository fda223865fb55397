"""A 3x3 convolution layer with the library's backend-specific fast path."""

from __future__ import annotations

import keras

from keras_pansharp.utils import perf


@keras.saving.register_keras_serializable(package="keras_pansharp")
class Conv3x3(keras.layers.Conv2D):
    """`keras.layers.Conv2D` with a 3x3 kernel, stride 1 and "same" padding.

    Same weights, config and outputs as the `Conv2D` it extends; the
    convolution runs through `keras_pansharp.utils.perf.conv3x3` (on JAX with
    a CPU, a faster kernel gradient).

    Args:
        filters: output channels.
        **kwargs: other `keras.layers.Conv2D` arguments (`use_bias`,
            `activation`, initializers, `name`, ...). `kernel_size`,
            `strides`, `padding`, `dilation_rate`, `groups` and `data_format`
            are fixed.

    Example:
    >>> x = np.random.rand(1, 8, 8, 4).astype("float32")
    >>> tuple(Conv3x3(6)(x).shape)
    (1, 8, 8, 6)
    """

    def __init__(self, filters: int, **kwargs):
        for key, value in (
            ("kernel_size", (3, 3)),
            ("strides", (1, 1)),
            ("padding", "same"),
            ("dilation_rate", (1, 1)),
            ("groups", 1),
            ("data_format", "channels_last"),
        ):
            kwargs[key] = value  # fixed (also when given, e.g. by from_config)
        super().__init__(filters, **kwargs)

    def convolution_op(self, inputs, kernel):
        return perf.conv3x3(inputs, kernel)
