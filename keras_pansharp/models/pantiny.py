"""PanTiny: the compact transformer pan-sharpening network of the paper."""

from __future__ import annotations

import copy

import keras

from keras_pansharp.layers.detail_calibration import DetailCalibration
from keras_pansharp.layers.transformer import TransformerBlock, torch_conv_initializer
from keras_pansharp.models.base import (
    UPSAMPLERS,
    PansharpModel,
    UpsampledMS,
    pansharp_inputs,
)
from keras_pansharp.utils import perf

#: Presets. Architecture-only presets build a fresh model; presets with a
#: `"weights"` entry also load that file shipped inside the package
#: (`keras_pansharp/presets/`, no network), checked against its `"sha256"`.
PANTINY_PRESETS: dict[str, dict] = {
    "pantiny": {
        "dim": 28,
        "num_heads": 2,
        "encoder_depth": 3,
        "body_depth": 3,
        "description": "PanTiny as published: dim 28, 2 heads, 3 + 3 blocks "
        "(81,744 parameters for 4 bands).",
    },
    "pantiny_large": {
        "dim": 40,
        "num_heads": 4,
        "encoder_depth": 4,
        "body_depth": 4,
        "description": "Larger published variant: dim 40, 4 heads, 4 + 4 blocks "
        "(195,912 parameters for 4 bands).",
    },
    "pantiny_multisensor": {
        "bands": 4,
        "dim": 28,
        "num_heads": 2,
        "encoder_depth": 3,
        "body_depth": 3,
        "calibrate_details": True,
        "weights": "pantiny_multisensor.weights.h5",
        "sha256": "92d6060898ce56728f3df1bde77929ee9c88546230cf58be2e77497e59804244",
        "description": "Pretrained PanTiny (4 bands: blue, green, red, NIR; "
        "inputs divided by the sensor's max DN), trained on five real scenes "
        "of four sensors with the no-reference loss at full resolution and "
        "the supervised loss on their own Wald-degraded copies (no external "
        "ground truth; docs/model_card.md).",
    },
}

FUSIONS = ("conv", "conv_skip")


def _conv3x3(filters: int, name: str, activation=None) -> keras.layers.Conv2D:
    layer = keras.layers.Conv2D(
        filters,
        3,
        padding="same",
        use_bias=False,
        activation=activation,
        kernel_initializer=torch_conv_initializer(),
        name=name,
    )
    # Same layer class as ever (Keras names saved weights by class: files saved
    # before stay loadable); only its convolution runs through the library's
    # fast path (on JAX with a CPU, a faster kernel gradient; elsewhere
    # `ops.conv`). A model rebuilt from its config gets it again.
    layer.convolution_op = perf.conv3x3
    return layer


@keras.saving.register_keras_serializable(package="keras_pansharp")
class PanTiny(PansharpModel):
    """PanTiny ("Rethinking Pan-sharpening", REFERENCE §7) as a Keras model.

    A functional model on the shared input contract: it takes a dict
    `{"ms": (batch, h, w, bands), "pan": (batch, 4h, 4w, 1)}` with an optional
    precomputed `"lms": (batch, 4h, 4w, bands)` and returns the pan-sharpened
    `(batch, 4h, 4w, bands)`. When `"lms"` is absent the model upsamples
    `"ms"` itself (toolbox `interp23tap` by default), so a served model needs
    no preprocessing; the LR MS is otherwise unused. Inputs are floats in
    [0, 1] (DN / sensor max). Spatial sizes are dynamic (any PAN size that is
    a multiple of 4); bad inputs raise a `ValueError` naming the input.

    Architecture (no convolution has a bias):

    1. embed: 3x3 conv `bands -> dim` on the upsampled MS;
    2. encoder: `encoder_depth` `TransformerBlock`s (`num_heads` heads);
    3. fusion: concatenate PAN (`dim + 1` channels), 3x3 conv `-> dim`, ReLU,
       3x3 conv `dim -> dim`;
    4. body: `body_depth` `TransformerBlock`s;
    5. refine: 3x3 conv `dim -> dim`;
    6. output: 3x3 conv `dim -> bands`, plus the upsampled MS.

    Parameters: 81,744 for the default 4-band model (83,760 for 8 bands);
    the `"pantiny_large"` preset has 195,912 (198,792 for 8 bands).

    Args:
        bands: number of MS bands `C`.
        dim: feature channels.
        num_heads: attention heads per transformer block (must divide `dim`).
        encoder_depth: transformer blocks before the PAN fusion.
        body_depth: transformer blocks after the fusion.
        ffn_expansion_factor: FFN hidden width relative to `dim` (2.0).
        fusion: how PAN features enter. `"conv"` (the paper): the fusion
            output replaces the features. `"conv_skip"`: the fusion output is
            added to the encoder features (same parameter count).
        upsampler: `"interp23tap"` (default, toolbox-exact) or `"bicubic"`
            (the paper's own data pipeline), used only when `"lms"` is absent.
        calibrate_details: if True, a weightless `DetailCalibration` layer
            rescales each band's details at inference by gains chosen on
            the input image itself (`keras_pansharp.calibration`); training
            sees the raw output. The `"pantiny_multisensor"` preset sets it.
        **kwargs: `name`, `trainable`, ... passed to `keras.Model`.

    Example:
    >>> model = PanTiny()
    >>> model.count_params()
    81744
    >>> x = {"ms": np.random.rand(1, 16, 16, 4).astype("float32"),
    ...      "pan": np.random.rand(1, 64, 64, 1).astype("float32")}
    >>> tuple(model.predict(x, verbose=0).shape)
    (1, 64, 64, 4)
    """

    presets = PANTINY_PRESETS

    def __init__(
        self,
        bands: int = 4,
        dim: int = 28,
        num_heads: int = 2,
        encoder_depth: int = 3,
        body_depth: int = 3,
        ffn_expansion_factor: float = 2.0,
        fusion: str = "conv",
        upsampler: str = "interp23tap",
        calibrate_details: bool = False,
        **kwargs,
    ):
        if fusion not in FUSIONS:
            raise ValueError(
                f"Unknown fusion {fusion!r}; expected one of {list(FUSIONS)}."
            )
        if upsampler not in UPSAMPLERS:
            raise ValueError(
                f"Unknown upsampler {upsampler!r}; expected one of {list(UPSAMPLERS)}."
            )
        for key, value in (
            ("dim", dim),
            ("num_heads", num_heads),
            ("encoder_depth", encoder_depth + 1),
            ("body_depth", body_depth + 1),
        ):
            if isinstance(value, bool) or int(value) != value or value < 1:
                raise ValueError(f"`{key}` must be a positive integer, got {value!r}.")
        if dim % num_heads:
            raise ValueError(
                f"`dim` ({dim}) must be divisible by `num_heads` ({num_heads})."
            )

        # === Functional model ===
        inputs = pansharp_inputs(bands)
        lms = UpsampledMS(upsampler, name="upsampled_ms")(inputs["ms"], inputs["lms"])
        x = _conv3x3(dim, "embed")(lms)
        for i in range(encoder_depth):
            x = TransformerBlock(
                num_heads, ffn_expansion_factor, name=f"encoder_block_{i}"
            )(x)
        y = keras.layers.Concatenate(axis=-1, name="concat_pan")([x, inputs["pan"]])
        y = _conv3x3(dim, "fusion_conv_1", activation="relu")(y)
        y = _conv3x3(dim, "fusion_conv_2")(y)
        x = keras.layers.Add(name="fusion_skip")([x, y]) if fusion == "conv_skip" else y
        for i in range(body_depth):
            x = TransformerBlock(
                num_heads, ffn_expansion_factor, name=f"body_block_{i}"
            )(x)
        x = _conv3x3(dim, "refine")(x)
        x = _conv3x3(bands, "output")(x)
        outputs = keras.layers.Add(name="global_residual")([x, lms])
        if calibrate_details:
            outputs = DetailCalibration(name="detail_calibration")(
                [lms, outputs, inputs["pan"]]
            )
        super().__init__(inputs=inputs, outputs=outputs, **kwargs)

        # === Config ===
        self.bands = bands
        self.dim = dim
        self.num_heads = num_heads
        self.encoder_depth = encoder_depth
        self.body_depth = body_depth
        self.ffn_expansion_factor = ffn_expansion_factor
        self.fusion = fusion
        self.upsampler = upsampler
        self.calibrate_details = bool(calibrate_details)

    def get_config(self) -> dict:
        return {
            "bands": self.bands,
            "dim": self.dim,
            "num_heads": self.num_heads,
            "encoder_depth": self.encoder_depth,
            "body_depth": self.body_depth,
            "ffn_expansion_factor": self.ffn_expansion_factor,
            "fusion": self.fusion,
            "upsampler": self.upsampler,
            "calibrate_details": self.calibrate_details,
            "name": self.name,
            "trainable": self.trainable,
        }

    @classmethod
    def from_config(cls, config, custom_objects=None):
        return cls(**config)

    @classmethod
    def from_preset(cls, preset: str, **kwargs) -> PanTiny:
        """Build PanTiny from a preset, with its weights if it ships any.

        `"pantiny"` and `"pantiny_large"` are architecture configurations: the
        model is freshly initialised. `"pantiny_multisensor"` is pretrained:
        its weights are a file inside the package, loaded offline (nothing is
        downloaded) and checked against the SHA-256 recorded in the preset.

        Args:
            preset: `"pantiny"` (dim 28, 2 heads, 3 + 3 blocks),
                `"pantiny_large"` (dim 40, 4 heads, 4 + 4 blocks) or
                `"pantiny_multisensor"` (pretrained 4-band `"pantiny"`; its
                inputs are divided by the sensor's max DN; it calibrates its
                details on each image, `calibrate_details=True`).
            **kwargs: overrides of constructor arguments, e.g. `bands=8` or
                `upsampler="bicubic"`. For a pretrained preset only `name`,
                `trainable` and `calibrate_details` may be overridden
                (other values would not match the weights);
                `calibrate_details=False` gives the raw pretrained network.

        Returns:
            A new `PanTiny`.

        Raises:
            ValueError: unknown preset, an architecture override of a
                pretrained preset, or a weight file whose hash does not match.

        Example:
        >>> PanTiny.from_preset("pantiny_large", bands=8).count_params()
        198792
        >>> model = PanTiny.from_preset("pantiny_multisensor")
        >>> model.bands
        4
        """
        if preset not in PANTINY_PRESETS:
            raise ValueError(
                f"Unknown PanTiny preset {preset!r}; expected one of "
                f"{list(PANTINY_PRESETS)}."
            )
        config = copy.deepcopy(PANTINY_PRESETS[preset])
        config.pop("description", None)
        weights = config.pop("weights", None)
        sha256 = config.pop("sha256", None)
        if weights is not None:
            fixed = sorted(set(kwargs) - {"name", "trainable", "calibrate_details"})
            if fixed:
                raise ValueError(
                    f"Preset {preset!r} is pretrained; its architecture is fixed "
                    f"(cannot override {fixed}). Build PanTiny(...) and load or "
                    "fine-tune weights instead."
                )
        config.update(kwargs)
        model = cls(**config)
        if weights is not None:
            model.load_weights(preset_weights_path(weights, sha256))
        return model


def preset_weights_path(filename: str, sha256: str | None = None) -> str:
    """Path of a weight file shipped in `keras_pansharp/presets/`.

    Args:
        filename: file name inside the package's `presets` folder.
        sha256: expected hex digest; checked when given.

    Returns:
        The file's path (a real file of the installed package).

    Raises:
        ValueError: missing file or hash mismatch.
    """
    import hashlib
    from importlib import resources

    path = resources.files("keras_pansharp") / "presets" / filename
    if not path.is_file():
        raise ValueError(
            f"Pretrained weights {filename!r} are missing from the installed "
            f"package ({path}); reinstall keras-pansharp."
        )
    if sha256 is not None:
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        if digest != sha256:
            raise ValueError(
                f"Pretrained weights {path} have SHA-256 {digest}, expected "
                f"{sha256}: the file is corrupted or was replaced."
            )
    return str(path)
