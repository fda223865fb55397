"""keras_pansharp.models: pan-sharpening networks on one input contract."""

from keras_pansharp.models.base import (
    PansharpModel,
    UpsampledMS,
    get_upsampler,
    pansharp_inputs,
    validate_pansharp_inputs,
)
from keras_pansharp.models.pantiny import PANTINY_PRESETS, PanTiny
