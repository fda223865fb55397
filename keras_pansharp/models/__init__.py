"""keras_pansharp.models: pan-sharpening networks on one input contract."""

from keras_pansharp.models.base import (
    PansharpModel,
    UpsampledMS,
    get_upsampler,
    pansharp_inputs,
    validate_pansharp_inputs,
)
from keras_pansharp.models.dicnn import DiCNN
from keras_pansharp.models.fusionnet import FusionNet
from keras_pansharp.models.msdcnn import MSDCNN
from keras_pansharp.models.panflow import PanFlow
from keras_pansharp.models.panmamba import PanMamba
from keras_pansharp.models.pannet import PanNet
from keras_pansharp.models.pantiny import PANTINY_PRESETS, PanTiny
from keras_pansharp.models.pnn import PNN
from keras_pansharp.models.pscinn import PSCINN
from keras_pansharp.models.registry import (
    BASELINES,
    MODEL_NAMES,
    PAPER_MODELS,
    get_model,
    get_model_class,
)
from keras_pansharp.models.sfdi import SFDI
