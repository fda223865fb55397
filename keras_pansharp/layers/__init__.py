"""keras_pansharp.layers: building blocks of the pan-sharpening models."""

from keras_pansharp.layers.highpass import HighPass
from keras_pansharp.layers.interp23tap import BicubicUpsample, Interp23Tap
from keras_pansharp.layers.replicate_padding import ReplicatePadding2D
from keras_pansharp.layers.transformer import (
    ChannelAttention,
    ChannelLayerNorm,
    GatedDepthwiseFFN,
    TransformerBlock,
)
