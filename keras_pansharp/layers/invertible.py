"""Invertible (normalising-flow) building blocks of PanFlow and PSCINN.

PanFlow (Yang et al., ICCV 2023; repository yggame/PanFlowNet, `pan_inn9.py`):

- `HinCABlock`: the coupling sub-network (`HIN_CA_Block`: a half-instance-
  normalised residual block followed by channel attention);
- `ConditionalAffineCoupling`: the Conditional Affine Coupling Block (CACB,
  `subnet_coupling_layer`), invertible in `x` for a fixed condition;
- `MeanLatent`: the latent PanFlow starts its inverse pass from.

PSCINN (Wang et al., Information Fusion 2024; repository jiaming-wang/PSCINN,
`psinn.py`, the same file as Zirconium233/PanTiny `model/PSCINN.py`):

- `DenseSubnet`: the 5-convolution densely connected sub-network
  (`FPNBlock`);
- `ConditionalInvBlockExp`: the conditional affine coupling block
  (`InvBlockExp`) with a sigmoid-bounded log-scale;
- `HaarDownsampling`: the invertible 2x2 Haar transform (`HaarDownsampling`);
- `LatentPad`: the deterministic latent PSCINN starts its inverse pass from.

Every invertible layer takes `reverse=False` in `call` (data -> latent) and
`reverse=True` (latent -> data); `x == layer(layer(x, ...), ..., reverse=True)`
up to rounding. Channels last; the channel order of every split, concatenation
and Haar sub-band matches the PyTorch reference (NCHW channel `k` is NHWC
channel `k`).
"""

from __future__ import annotations

import keras
import numpy as np
from keras import ops


def torch_default_init() -> keras.initializers.Initializer:
    """PyTorch's default `Conv2d` weight initialisation (`U(+-1/sqrt(fan_in))`)."""
    return keras.initializers.VarianceScaling(
        scale=1.0 / 3.0, mode="fan_in", distribution="uniform"
    )


# ----------------------------------------------------------------- PanFlow


def _check_int(cls_name: str, name: str, value, minimum: int = 1) -> int:
    if isinstance(value, bool) or int(value) != value or value < minimum:
        raise ValueError(
            f"{cls_name}: `{name}` must be an integer >= {minimum}, got {value!r}"
        )
    return int(value)


def _conv(filters, kernel_size, name, kernel_initializer=None):
    return keras.layers.Conv2D(
        filters,
        kernel_size,
        padding="same",
        use_bias=True,
        kernel_initializer=kernel_initializer or torch_default_init(),
        bias_initializer="zeros",
        name=name,
    )


def _with_channels(shape, channels):
    return tuple(shape[:-1]) + (channels,)


@keras.saving.register_keras_serializable(package="keras_pansharp")
class HinCABlock(keras.layers.Layer):
    """PanFlow's coupling sub-network (`HIN_CA_Block` of PanFlowNet).

    A half-instance-normalisation residual block (`HinResBlock`) followed by
    squeeze-and-excitation channel attention (`CALayer`):

    `r = lrelu(conv3x3(x -> features))`; the first `features / 2` channels of
    `r` are instance-normalised (affine, eps 1e-5); `r = lrelu(conv3x3(r))`;
    `y = conv3x3(concat(x, r) -> filters)`; then
    `y * sigmoid(W2 relu(W1 mean_hw(y)))` with `W1`: `filters -> filters //
    reduction` and `W2` back (1x1 convolutions with bias, here `Dense`).
    Leaky ReLU slope 0.2. The 3x3 convolutions keep PyTorch's default
    initialisation, the attention uses `0.1 * kaiming_normal` and zero biases,
    as in the reference.

    Args:
        filters: output channels.
        features: hidden channels (64 in PanFlowNet).
        reduction: channel-attention reduction (4 in PanFlowNet); the squeezed
            width is `max(1, filters // reduction)`.
        **kwargs: standard `keras.layers.Layer` arguments.

    Call args:
        inputs: `(B, H, W, C_in)`.

    Returns:
        `(B, H, W, filters)`.
    """

    def __init__(self, filters: int, features: int = 64, reduction: int = 4, **kwargs):
        super().__init__(**kwargs)
        self.filters = _check_int("HinCABlock", "filters", filters)
        self.features = _check_int("HinCABlock", "features", features, 2)
        if self.features % 2:
            raise ValueError(f"HinCABlock: `features` must be even, got {features}")
        self.reduction = _check_int("HinCABlock", "reduction", reduction)
        squeeze = max(1, self.filters // self.reduction)
        ca_init = keras.initializers.VarianceScaling(
            scale=2.0 * 0.01, mode="fan_in", distribution="untruncated_normal"
        )
        self.conv1 = _conv(self.features, 3, "conv1")
        self.conv2 = _conv(self.features, 3, "conv2")
        self.conv3 = _conv(self.filters, 3, "conv3")
        self.norm = keras.layers.GroupNormalization(
            groups=self.features // 2, epsilon=1e-5, name="half_instance_norm"
        )
        self.ca_down = keras.layers.Dense(
            squeeze, activation="relu", kernel_initializer=ca_init, name="ca_down"
        )
        self.ca_up = keras.layers.Dense(
            self.filters, activation="sigmoid", kernel_initializer=ca_init, name="ca_up"
        )

    def build(self, input_shape):
        c_in = int(input_shape[-1])
        self.conv1.build(input_shape)
        self.norm.build(_with_channels(input_shape, self.features // 2))
        self.conv2.build(_with_channels(input_shape, self.features))
        self.conv3.build(_with_channels(input_shape, self.features + c_in))
        self.ca_down.build((None, self.filters))
        self.ca_up.build((None, max(1, self.filters // self.reduction)))
        self.built = True

    def call(self, inputs):
        half = self.features // 2
        r = keras.activations.leaky_relu(self.conv1(inputs), negative_slope=0.2)
        r = ops.concatenate([self.norm(r[..., :half]), r[..., half:]], axis=-1)
        r = keras.activations.leaky_relu(self.conv2(r), negative_slope=0.2)
        y = self.conv3(ops.concatenate([inputs, r], axis=-1))
        w = self.ca_up(self.ca_down(ops.mean(y, axis=(1, 2))))
        return y * w[:, None, None, :]

    def compute_output_shape(self, input_shape):
        return _with_channels(input_shape, self.filters)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "filters": self.filters,
                "features": self.features,
                "reduction": self.reduction,
            }
        )
        return config


@keras.saving.register_keras_serializable(package="keras_pansharp")
class ConditionalAffineCoupling(keras.layers.Layer):
    """PanFlow's Conditional Affine Coupling Block (CACB).

    `subnet_coupling_layer` of PanFlowNet. `x` (`C` channels) is split into
    `x1` (the first `C // 2`) and `x2` (the rest); with `c` the condition and
    `e(s) = exp(clamp * 0.636 * atan(s / clamp))` (a soft clamp of the log
    scale to about `+-clamp`), the forward (data -> latent) pass is

        s2, t2 = split(G2(concat(x2, c)));  y1 = e(s2) * x1 + t2
        s1, t1 = split(G1(concat(y1, c)));  y2 = e(s1) * x2 + t1

    and the output is `concat(y1, y2)`; `reverse=True` undoes it exactly.
    `G1`, `G2` are `HinCABlock`s; their outputs are split into the log-scale
    (first half) and the shift (second half). The log-determinant of the
    Jacobian is `sum(log e(s1)) + sum(log e(s2))`
    (`call_with_log_det`).

    Args:
        features: hidden channels of the sub-networks (64).
        reduction: channel-attention reduction of the sub-networks (4).
        clamp: soft clamp of the log-scale (5.0).
        **kwargs: standard `keras.layers.Layer` arguments.

    Call args:
        x: `(B, H, W, C)`, `C >= 2`.
        condition: `(B, H, W, C_c)`.
        reverse: `False` for data -> latent, `True` for latent -> data.

    Returns:
        `(B, H, W, C)`.

    Example:
    >>> layer = ConditionalAffineCoupling()
    >>> x = np.random.rand(1, 8, 8, 4).astype("float32")
    >>> c = np.random.rand(1, 8, 8, 5).astype("float32")
    >>> back = layer(layer(x, c), c, reverse=True)
    >>> bool(np.allclose(back, x, atol=1e-5))
    True
    """

    def __init__(
        self, features: int = 64, reduction: int = 4, clamp: float = 5.0, **kwargs
    ):
        super().__init__(**kwargs)
        self.features = _check_int("ConditionalAffineCoupling", "features", features, 2)
        self.reduction = _check_int("ConditionalAffineCoupling", "reduction", reduction)
        if not clamp > 0:
            raise ValueError(
                f"ConditionalAffineCoupling: `clamp` must be > 0, got {clamp!r}"
            )
        self.clamp = float(clamp)

    def build(self, x_shape, condition_shape):
        channels = int(x_shape[-1])
        if channels < 2:
            raise ValueError(
                f"ConditionalAffineCoupling needs at least 2 channels, got {x_shape}"
            )
        cond = int(condition_shape[-1])
        self._split1 = channels // 2
        self._split2 = channels - self._split1
        # Reference names: s1 acts on y1 and outputs (scale, shift) of x2.
        self.subnet1 = HinCABlock(
            2 * self._split2, self.features, self.reduction, name="subnet1"
        )
        self.subnet2 = HinCABlock(
            2 * self._split1, self.features, self.reduction, name="subnet2"
        )
        self.subnet1.build(_with_channels(x_shape, self._split1 + cond))
        self.subnet2.build(_with_channels(x_shape, self._split2 + cond))
        self.built = True

    def _log_e(self, s):
        return self.clamp * 0.636 * ops.arctan(s / self.clamp)

    def call_with_log_det(self, x, condition, reverse=False):
        """Transform `x` and return `(y, log_det)`.

        `log_det` is `(B,)`: the log-determinant of the Jacobian of this
        direction (data -> latent for `reverse=False`; its negative for the
        inverse).
        """
        a, b = x[..., : self._split1], x[..., self._split1 :]
        p, q = self._split1, self._split2
        if not reverse:
            r2 = self.subnet2(ops.concatenate([b, condition], axis=-1))
            ls2, t2 = self._log_e(r2[..., :p]), r2[..., p:]
            y1 = ops.exp(ls2) * a + t2
            r1 = self.subnet1(ops.concatenate([y1, condition], axis=-1))
            ls1, t1 = self._log_e(r1[..., :q]), r1[..., q:]
            y2 = ops.exp(ls1) * b + t1
            sign = 1.0
        else:
            r1 = self.subnet1(ops.concatenate([a, condition], axis=-1))
            ls1, t1 = self._log_e(r1[..., :q]), r1[..., q:]
            y2 = (b - t1) * ops.exp(-ls1)
            r2 = self.subnet2(ops.concatenate([y2, condition], axis=-1))
            ls2, t2 = self._log_e(r2[..., :p]), r2[..., p:]
            y1 = (a - t2) * ops.exp(-ls2)
            sign = -1.0
        log_det = sign * (ops.sum(ls1, axis=(1, 2, 3)) + ops.sum(ls2, axis=(1, 2, 3)))
        return ops.concatenate([y1, y2], axis=-1), log_det

    def call(self, x, condition, reverse=False):
        return self.call_with_log_det(x, condition, reverse=reverse)[0]

    def compute_output_shape(self, x_shape, condition_shape):
        return tuple(x_shape)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "features": self.features,
                "reduction": self.reduction,
                "clamp": self.clamp,
            }
        )
        return config


@keras.saving.register_keras_serializable(package="keras_pansharp")
class MeanLatent(keras.layers.Layer):
    """The latent PanFlow inverts: each image's mean, or mean + noise.

    PanFlowNet samples its latent as `N(mean(u), std(u))` i.i.d. per pixel,
    `u` the upsampled MS (scalar statistics of the whole batch). This layer
    returns, per image, `mean(u) + temperature * std(u) * eps` broadcast to
    `u`'s shape, with `eps ~ N(0, 1)` (statistics over height, width and
    bands of each image, so a result does not depend on the batch it is in).
    With the default `temperature=0` it is the deterministic mode of that
    distribution (no random op at all); `temperature > 0` draws fresh noise
    at every call (PanFlow's diverse samples, not reproducible).

    Args:
        temperature: noise scale (>= 0; 0 for deterministic output).
        seed: seed of the noise generator (only with `temperature > 0`).
        **kwargs: standard `keras.layers.Layer` arguments.

    Call args:
        inputs: `(B, H, W, C)` upsampled MS.

    Returns:
        `(B, H, W, C)` latent.
    """

    def __init__(self, temperature: float = 0.0, seed: int | None = None, **kwargs):
        kwargs.setdefault("trainable", False)
        super().__init__(**kwargs)
        if not temperature >= 0:
            raise ValueError(
                f"MeanLatent: `temperature` must be >= 0, got {temperature!r}"
            )
        self.temperature = float(temperature)
        self.seed = seed
        self._seed_generator = (
            keras.random.SeedGenerator(seed) if self.temperature > 0 else None
        )

    def call(self, inputs):
        mean = ops.mean(inputs, axis=(1, 2, 3), keepdims=True)
        z = ops.zeros_like(inputs) + mean
        if self.temperature > 0:
            std = ops.std(inputs, axis=(1, 2, 3), keepdims=True)
            eps = keras.random.normal(
                ops.shape(inputs), dtype=inputs.dtype, seed=self._seed_generator
            )
            z = z + self.temperature * std * eps
        return z

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)

    def get_config(self):
        config = super().get_config()
        config.update({"temperature": self.temperature, "seed": self.seed})
        return config


# ------------------------------------------------------------------ PSCINN


@keras.saving.register_keras_serializable(package="keras_pansharp")
class DenseSubnet(keras.layers.Layer):
    """PSCINN's sub-network (`FPNBlock`): a 5-convolution dense block.

    `x1 = lrelu(conv(x))`, `x2 = lrelu(conv(concat(x, x1)))`, ...,
    `x4 = lrelu(conv(concat(x, x1, x2, x3)))`, output
    `conv(concat(x, x1, x2, x3, x4))`: 3x3 convolutions with bias, `growth`
    channels each except the last (`filters`), leaky ReLU slope 0.2 (the
    residual dense block of ESRGAN / IRN). Initialisation as the reference:
    `0.1 * xavier_normal` and zero biases for the first four convolutions,
    PyTorch's default for the last.

    Args:
        filters: output channels.
        growth: channels of the four inner convolutions (32 in PSCINN).
        **kwargs: standard `keras.layers.Layer` arguments.

    Call args:
        inputs: `(B, H, W, C_in)`.

    Returns:
        `(B, H, W, filters)`.
    """

    def __init__(self, filters: int, growth: int = 32, **kwargs):
        super().__init__(**kwargs)
        self.filters = _check_int("DenseSubnet", "filters", filters)
        self.growth = _check_int("DenseSubnet", "growth", growth)
        xavier = keras.initializers.VarianceScaling(
            scale=0.01, mode="fan_avg", distribution="untruncated_normal"
        )
        self.convs = [
            _conv(self.growth, 3, f"conv{i + 1}", kernel_initializer=xavier)
            for i in range(4)
        ]
        self.convs.append(_conv(self.filters, 3, "conv5"))

    def build(self, input_shape):
        c_in = int(input_shape[-1])
        for i, conv in enumerate(self.convs):
            conv.build(_with_channels(input_shape, c_in + i * self.growth))
        self.built = True

    def call(self, inputs):
        feats = [inputs]
        for conv in self.convs[:4]:
            x = conv(ops.concatenate(feats, axis=-1) if len(feats) > 1 else inputs)
            feats.append(keras.activations.leaky_relu(x, negative_slope=0.2))
        return self.convs[4](ops.concatenate(feats, axis=-1))

    def compute_output_shape(self, input_shape):
        return _with_channels(input_shape, self.filters)

    def get_config(self):
        config = super().get_config()
        config.update({"filters": self.filters, "growth": self.growth})
        return config


@keras.saving.register_keras_serializable(package="keras_pansharp")
class ConditionalInvBlockExp(keras.layers.Layer):
    """PSCINN's conditional affine coupling block (`InvBlockExp`).

    `x` is split into `x1` (first `C // 2` channels) and `x2`; with `c` the
    condition (the PAN at this block's scale) and
    `s(u) = clamp * (2 sigmoid(u) - 1)`, the forward (data -> latent) pass is

        v1 = x1 * exp(s(Fs1(concat(x2, c)))) + Ft1(concat(x2, c))
        v2 = x2 * exp(s(Fs2(concat(v1, c)))) + Ft2(concat(v1, c))

    returning `concat(v1, v2)`; `reverse=True` undoes it exactly. `Fs1`,
    `Ft1`, `Fs2`, `Ft2` are `DenseSubnet`s. The log-determinant of the
    forward Jacobian is the sum of both log-scales (`call_with_log_det`).

    Args:
        growth: inner channels of the sub-networks (32).
        clamp: bound of the log-scale (1.0).
        **kwargs: standard `keras.layers.Layer` arguments.

    Call args:
        x: `(B, H, W, C)`, `C >= 2`.
        condition: `(B, H, W, C_c)`.
        reverse: `False` for data -> latent, `True` for latent -> data.

    Returns:
        `(B, H, W, C)`.

    Example:
    >>> layer = ConditionalInvBlockExp()
    >>> x = np.random.rand(1, 8, 8, 4).astype("float32")
    >>> c = np.random.rand(1, 8, 8, 1).astype("float32")
    >>> back = layer(layer(x, c), c, reverse=True)
    >>> bool(np.allclose(back, x, atol=1e-5))
    True
    """

    def __init__(self, growth: int = 32, clamp: float = 1.0, **kwargs):
        super().__init__(**kwargs)
        self.growth = _check_int("ConditionalInvBlockExp", "growth", growth)
        if not clamp > 0:
            raise ValueError(
                f"ConditionalInvBlockExp: `clamp` must be > 0, got {clamp!r}"
            )
        self.clamp = float(clamp)

    def build(self, x_shape, condition_shape):
        channels = int(x_shape[-1])
        if channels < 2:
            raise ValueError(
                f"ConditionalInvBlockExp needs at least 2 channels, got {x_shape}"
            )
        cond = int(condition_shape[-1])
        self._split1 = channels // 2
        self._split2 = channels - self._split1
        p, q = self._split1, self._split2
        self.fs1 = DenseSubnet(p, self.growth, name="fs1")
        self.ft1 = DenseSubnet(p, self.growth, name="ft1")
        self.fs2 = DenseSubnet(q, self.growth, name="fs2")
        self.ft2 = DenseSubnet(q, self.growth, name="ft2")
        for net in (self.fs1, self.ft1):
            net.build(_with_channels(x_shape, q + cond))
        for net in (self.fs2, self.ft2):
            net.build(_with_channels(x_shape, p + cond))
        self.built = True

    def _scale(self, u):
        return self.clamp * (ops.sigmoid(u) * 2.0 - 1.0)

    def call_with_log_det(self, x, condition, reverse=False):
        """Transform `x` and return `(y, log_det)` (`log_det`: `(B,)`)."""
        a, b = x[..., : self._split1], x[..., self._split1 :]
        if not reverse:
            h = ops.concatenate([b, condition], axis=-1)
            s1 = self._scale(self.fs1(h))
            v1 = a * ops.exp(s1) + self.ft1(h)
            h = ops.concatenate([v1, condition], axis=-1)
            s2 = self._scale(self.fs2(h))
            v2 = b * ops.exp(s2) + self.ft2(h)
            sign = 1.0
        else:
            h = ops.concatenate([a, condition], axis=-1)
            s2 = self._scale(self.fs2(h))
            v2 = (b - self.ft2(h)) * ops.exp(-s2)
            h = ops.concatenate([v2, condition], axis=-1)
            s1 = self._scale(self.fs1(h))
            v1 = (a - self.ft1(h)) * ops.exp(-s1)
            sign = -1.0
        log_det = sign * (ops.sum(s1, axis=(1, 2, 3)) + ops.sum(s2, axis=(1, 2, 3)))
        return ops.concatenate([v1, v2], axis=-1), log_det

    def call(self, x, condition, reverse=False):
        return self.call_with_log_det(x, condition, reverse=reverse)[0]

    def compute_output_shape(self, x_shape, condition_shape):
        return tuple(x_shape)

    def get_config(self):
        config = super().get_config()
        config.update({"growth": self.growth, "clamp": self.clamp})
        return config


def haar_filters() -> np.ndarray:
    """The four 2x2 Haar filters `(4, 2, 2)` of PSCINN (rows, columns).

    Order: average (all ones), horizontal detail (right column -1), vertical
    detail (bottom row -1), diagonal (anti-diagonal -1).
    """
    w = np.ones((4, 2, 2))
    w[1, 0, 1] = w[1, 1, 1] = -1
    w[2, 1, 0] = w[2, 1, 1] = -1
    w[3, 1, 0] = w[3, 0, 1] = -1
    return w


@keras.saving.register_keras_serializable(package="keras_pansharp")
class HaarDownsampling(keras.layers.Layer):
    """Invertible 2x2 Haar transform (PSCINN's / IRN's `HaarDownsampling`).

    Forward: `(B, H, W, C)` -> `(B, H/2, W/2, 4C)`; sub-band `k` of channel
    `c` (`haar_filters()[k]` over each 2x2 block, divided by 4) goes to
    channel `k * C + c`, so the first `C` channels are the 2x2 block means.
    `reverse=True` is the exact inverse. The filters are stored as a frozen
    `(2, 2, C, 4)` weight (the reference keeps them as a
    `requires_grad=False` parameter of `4C x 1 x 2 x 2`, which its parameter
    count includes).

    Args:
        **kwargs: standard `keras.layers.Layer` arguments.

    Call args:
        inputs: `(B, H, W, C)` (even `H`, `W`) for `reverse=False`;
            `(B, h, w, 4C)` for `reverse=True`.
        reverse: `False` for the transform, `True` for its inverse.

    Returns:
        `(B, H/2, W/2, 4C)`, or `(B, 2h, 2w, C)` with `reverse=True`.

    Example:
    >>> x = np.random.rand(1, 8, 8, 3).astype("float32")
    >>> haar = HaarDownsampling()
    >>> tuple(haar(x).shape)
    (1, 4, 4, 12)
    >>> bool(np.allclose(haar(haar(x), reverse=True), x, atol=1e-6))
    True
    """

    def __init__(self, **kwargs):
        kwargs.setdefault("trainable", False)
        super().__init__(**kwargs)

    def build(self, input_shape):
        # The forward input has C channels; `build` always sees that shape
        # (a reverse-first call would be ambiguous, so it is refused).
        self._channels = int(input_shape[-1])
        c = self._channels
        init = np.transpose(haar_filters(), (1, 2, 0))[:, :, None, :]
        init = np.tile(init, (1, 1, c, 1))
        self.haar = self.add_weight(
            name="haar",
            shape=(2, 2, c, 4),
            initializer=keras.initializers.Constant(init),
            trainable=False,
        )
        self.built = True

    def __call__(self, inputs, reverse=False, **kwargs):
        if reverse and not self.built:
            raise ValueError(
                "HaarDownsampling: call the layer forward once (or build it "
                "with the forward input shape) before using reverse=True."
            )
        return super().__call__(inputs, reverse=reverse, **kwargs)

    def call(self, inputs, reverse=False):
        c = self._channels
        k = ops.cast(self.haar, inputs.dtype)
        shape = ops.shape(inputs)
        h, w = shape[1], shape[2]
        if not reverse:
            x = ops.reshape(inputs, (-1, h // 2, 2, w // 2, 2, c))
            y = ops.einsum("biajdc,adck->bijkc", x, k) / 4.0
            return ops.reshape(y, (-1, h // 2, w // 2, 4 * c))
        y = ops.reshape(inputs, (-1, h, w, 4, c))
        x = ops.einsum("bijkc,adck->biajdc", y, k)
        return ops.reshape(x, (-1, 2 * h, 2 * w, c))

    def compute_output_shape(self, input_shape, reverse=False):
        b, h, w, c = input_shape
        if not reverse:
            return (
                b,
                None if h is None else h // 2,
                None if w is None else w // 2,
                4 * c,
            )
        return (b, None if h is None else 2 * h, None if w is None else 2 * w, c // 4)

    def compute_output_spec(self, inputs, reverse=False):
        shape = self.compute_output_shape(tuple(inputs.shape), reverse=reverse)
        return keras.KerasTensor(shape, dtype=inputs.dtype)

    def get_config(self):
        return super().get_config()


@keras.saving.register_keras_serializable(package="keras_pansharp")
class LatentPad(keras.layers.Layer):
    """PSCINN's inverse-pass input: the LR MS followed by a zero latent.

    Returns `concat(ms, 0)` with `channels` channels in all: the forward
    PSCINN maps the HR MS to `16 C` channels at MS size whose first `C` (the
    Haar low-low band, i.e. 4x4 block means) play the LR MS; the remaining
    `15 C` are the latent, set to its mean, 0, for a deterministic output.

    Args:
        channels: total output channels (`16 C` for PSCINN).
        **kwargs: standard `keras.layers.Layer` arguments.

    Call args:
        inputs: `(B, h, w, C)` with `C <= channels`.

    Returns:
        `(B, h, w, channels)`.
    """

    def __init__(self, channels: int, **kwargs):
        kwargs.setdefault("trainable", False)
        super().__init__(**kwargs)
        self.channels = _check_int("LatentPad", "channels", channels)

    def build(self, input_shape):
        c = int(input_shape[-1])
        if c > self.channels:
            raise ValueError(
                f"LatentPad: input has {c} channels, more than channels={self.channels}"
            )
        self._extra = self.channels - c
        self.built = True

    def call(self, inputs):
        if not self._extra:
            return inputs
        zeros = ops.zeros_like(inputs[..., :1])
        return ops.concatenate(
            [inputs, ops.repeat(zeros, self._extra, axis=-1)], axis=-1
        )

    def compute_output_shape(self, input_shape):
        return _with_channels(input_shape, self.channels)

    def get_config(self):
        config = super().get_config()
        config.update({"channels": self.channels})
        return config
