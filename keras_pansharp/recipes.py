"""Training recipes: the PanTiny paper's optimiser, schedule and loss.

`paper(model, epochs=..., steps_per_epoch=...)` compiles a model the way the
paper's training code trains it (REFERENCE section 7):

- loss `1.5 * L1 + 4 * (1 - SSIM)` (`keras_pansharp.losses.PanSharpLoss`);
- Adam, lr 5e-4, beta_1 0.9, beta_2 0.999, epsilon 1e-8;
- **coupled** L2 weight decay 1e-4 exactly as PyTorch's
  `torch.optim.Adam(weight_decay=1e-4)`: `1e-4 * w` is added to every
  trainable variable's gradient *before* the Adam moments are updated
  (`AdamL2`). This is not AdamW's decoupled decay (Keras'
  `Adam(weight_decay=...)` is decoupled, so it is not used), and it applies to
  every trainable variable, as torch does when given `model.parameters()`;
- cosine decay of the learning rate from 5e-4 to 1e-6 over the whole run
  (the same curve as torch's `CosineAnnealingLR(T_max, eta_min=1e-6)`, but
  updated every step instead of every epoch);
- the paper's batch size (16) and patch size (128 x 128 at PAN scale) are
  exported as `PAPER_BATCH_SIZE` / `PAPER_PATCH_SIZE` for the data side.

`jit_compile="auto"` uses `keras_pansharp.utils.perf.default_jit_compile()`
(re-exported here), set from measurements on a 2-core CPU: under TensorFlow,
XLA-compiled PanTiny trained several times slower than TF's plain graph mode,
so the TF default on CPU is `False` (`True` with a GPU); JAX always compiles
with XLA (`True`); PyTorch runs eagerly (`False`).
"""

from __future__ import annotations

import keras
from keras import ops

from keras_pansharp.losses import PanSharpLoss
from keras_pansharp.utils.perf import default_jit_compile

__all__ = [
    "AdamL2",
    "paper",
    "paper_optimizer",
    "no_reference",
    "NO_REFERENCE_LOSS",
    "default_jit_compile",
    "PAPER_BATCH_SIZE",
    "PAPER_PATCH_SIZE",
    "PAPER_EPOCHS",
]

PAPER_BATCH_SIZE = 16
PAPER_PATCH_SIZE = 128
PAPER_EPOCHS = 500
PAPER_LEARNING_RATE = 5e-4
PAPER_FINAL_LEARNING_RATE = 1e-6
PAPER_WEIGHT_DECAY = 1e-4


@keras.saving.register_keras_serializable(package="keras_pansharp")
class AdamL2(keras.optimizers.Adam):
    """Adam with coupled L2 weight decay (PyTorch `Adam(weight_decay=...)`).

    Each step uses the gradient `g + l2_decay * w` for every trainable
    variable `w`, then the usual Adam update. This equals adding
    `l2_decay / 2 * ||w||^2` to the loss, without the extra term showing up in
    the reported loss. Other arguments are those of `keras.optimizers.Adam`
    (Keras' own `weight_decay` argument is the *decoupled* AdamW decay and
    stays available separately).

    Args:
        l2_decay: coefficient of the coupled L2 penalty (>= 0).
        **kwargs: forwarded to `keras.optimizers.Adam`.

    Example:
    >>> opt = AdamL2(learning_rate=5e-4, l2_decay=1e-4)
    """

    def __init__(self, l2_decay: float = PAPER_WEIGHT_DECAY, **kwargs):
        super().__init__(**kwargs)
        if l2_decay < 0:
            raise ValueError(f"l2_decay must be >= 0, got {l2_decay}")
        self.l2_decay = float(l2_decay)

    def update_step(self, gradient, variable, learning_rate):
        if self.l2_decay:
            gradient = ops.cast(gradient, variable.dtype)
            gradient = ops.add(
                gradient,
                ops.multiply(ops.cast(self.l2_decay, variable.dtype), variable),
            )
        return super().update_step(gradient, variable, learning_rate)

    def get_config(self):
        config = super().get_config()
        config["l2_decay"] = self.l2_decay
        return config


def _build_optimizer(model: keras.Model) -> None:
    """Create the optimizer's slot variables of a built model now.

    Keras otherwise creates them inside the first training step, and
    TensorFlow traces a function that created variables a second time: a
    few seconds per `fit` on CPU (measured for `keras_pansharp.adapt`).
    """
    if model.built and model.optimizer is not None and not model.optimizer.built:
        model.optimizer.build(model.trainable_variables)


def paper_optimizer(
    total_steps: int,
    learning_rate: float = PAPER_LEARNING_RATE,
    final_learning_rate: float = PAPER_FINAL_LEARNING_RATE,
    weight_decay: float = PAPER_WEIGHT_DECAY,
) -> AdamL2:
    """The paper's optimiser: `AdamL2` with a cosine-decayed learning rate.

    Args:
        total_steps: number of optimiser steps of the whole run (epochs x
            steps per epoch); the rate reaches `final_learning_rate` there.
        learning_rate: initial rate (5e-4).
        final_learning_rate: rate at the end of the run (1e-6).
        weight_decay: coupled L2 coefficient (1e-4).

    Returns:
        A configured `AdamL2` (beta_1 0.9, beta_2 0.999, epsilon 1e-8).
    """
    total_steps = int(total_steps)
    if total_steps < 1:
        raise ValueError(f"total_steps must be >= 1, got {total_steps}")
    if not 0 <= final_learning_rate <= learning_rate:
        raise ValueError(
            "expected 0 <= final_learning_rate <= learning_rate, got "
            f"{final_learning_rate} and {learning_rate}"
        )
    schedule = keras.optimizers.schedules.CosineDecay(
        initial_learning_rate=learning_rate,
        decay_steps=total_steps,
        alpha=final_learning_rate / learning_rate,
    )
    return AdamL2(
        learning_rate=schedule,
        beta_1=0.9,
        beta_2=0.999,
        epsilon=1e-8,
        l2_decay=weight_decay,
    )


def paper(
    model: keras.Model,
    epochs: int = PAPER_EPOCHS,
    steps_per_epoch: int = 1000,
    learning_rate: float = PAPER_LEARNING_RATE,
    final_learning_rate: float = PAPER_FINAL_LEARNING_RATE,
    weight_decay: float = PAPER_WEIGHT_DECAY,
    loss: keras.losses.Loss | None = None,
    metrics: list | None = None,
    jit_compile: bool | str = "auto",
    **compile_kwargs,
) -> keras.Model:
    """Compile `model` with the PanTiny paper's training recipe.

    Args:
        model: a pan-sharpening `keras.Model` (dict inputs, fused output).
        epochs: number of epochs the run will last (the cosine decay spans
            `epochs * steps_per_epoch` steps; the paper uses 500).
        steps_per_epoch: optimiser steps per epoch (e.g. `len(dataset)`).
        learning_rate: initial learning rate (5e-4).
        final_learning_rate: learning rate at the last step (1e-6).
        weight_decay: coupled L2 weight decay (1e-4; see `AdamL2`).
        loss: training loss; default `PanSharpLoss()` = 1.5 L1 + 4 (1 - SSIM).
        metrics: optional metrics passed to `compile`.
        jit_compile: `"auto"` uses `default_jit_compile()` for the current
            backend; or an explicit bool.
        **compile_kwargs: other `model.compile` arguments.

    Returns:
        The same model, compiled.

    Example:
    >>> model = keras_pansharp.PanTiny()
    >>> keras_pansharp.recipes.paper(model, epochs=500, steps_per_epoch=len(ds))
    >>> model.fit(ds, epochs=500)
    """
    if not isinstance(model, keras.Model):
        raise ValueError(f"expected a keras.Model, got {type(model).__name__}")
    if int(epochs) < 1 or int(steps_per_epoch) < 1:
        raise ValueError(
            f"epochs and steps_per_epoch must be >= 1, got {epochs} and "
            f"{steps_per_epoch}"
        )
    if jit_compile == "auto":
        jit_compile = default_jit_compile()
    optimizer = paper_optimizer(
        int(epochs) * int(steps_per_epoch),
        learning_rate=learning_rate,
        final_learning_rate=final_learning_rate,
        weight_decay=weight_decay,
    )
    model.compile(
        optimizer=optimizer,
        loss=loss if loss is not None else PanSharpLoss(),
        metrics=metrics,
        jit_compile=jit_compile,
        **compile_kwargs,
    )
    _build_optimizer(model)
    return model


#: `NoReferenceLoss` weights of the pretraining recipe
#: (`examples/pretrain.py`) and of `keras_pansharp.adapt`: lambda-PNN's
#: alpha and gamma, a doubled spectral weight, QNR's D_s term and 8-pixel
#: (MS-scale) Q2n blocks, i.e. the 32-pixel PAN-scale blocks of HQNR's
#: D_lambda^K (measured in docs/generalization.md).
NO_REFERENCE_LOSS = {
    "alpha": 0.05,
    "beta": 2.5,
    "gamma": 3.75,
    "delta": 1.0,
    "block_size": 8,
}

#: Learning rate of `no_reference` (lambda-PNN's from-scratch WV3 rate is
#: 2e-4 at batch 4; measured here at batch 8 on 64 x 64 crops).
NO_REFERENCE_LEARNING_RATE = 5e-4


def no_reference(
    model: keras.Model,
    loss: keras.losses.Loss,
    total_steps: int,
    learning_rate: float = NO_REFERENCE_LEARNING_RATE,
    final_learning_rate: float = PAPER_FINAL_LEARNING_RATE,
    weight_decay: float = PAPER_WEIGHT_DECAY,
    jit_compile: bool | str = "auto",
    **compile_kwargs,
) -> keras.Model:
    """Compile `model` for full-resolution training without ground truth.

    The paper's optimiser (`AdamL2`, cosine decay over `total_steps`) with a
    no-reference loss, typically `FullResolutionDataset.loss()` (a
    `keras_pansharp.losses.NoReferenceLoss`).

    Args:
        model: a pan-sharpening `keras.Model`.
        loss: the no-reference loss (its `y_true` is the packed target that
            `FullResolutionDataset` yields).
        total_steps: optimiser steps of the whole run.
        learning_rate: initial learning rate.
        final_learning_rate: learning rate at the last step.
        weight_decay: coupled L2 weight decay.
        jit_compile: `"auto"` (the backend's measured default) or a bool.
        **compile_kwargs: other `model.compile` arguments.

    Returns:
        The same model, compiled.

    Example:
    >>> ds = keras_pansharp.FullResolutionDataset(scenes, steps_per_epoch=100)
    >>> recipes.no_reference(model, ds.loss(), total_steps=10 * len(ds))
    >>> model.fit(ds, epochs=10)
    """
    if not isinstance(model, keras.Model):
        raise ValueError(f"expected a keras.Model, got {type(model).__name__}")
    if jit_compile == "auto":
        jit_compile = default_jit_compile()
    model.compile(
        optimizer=paper_optimizer(
            total_steps,
            learning_rate=learning_rate,
            final_learning_rate=final_learning_rate,
            weight_decay=weight_decay,
        ),
        loss=loss,
        jit_compile=jit_compile,
        **compile_kwargs,
    )
    _build_optimizer(model)
    return model
