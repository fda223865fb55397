"""Losses (L1, SSIM, the paper's combination) and the paper's training recipe."""

import keras
import numpy as np
import pytest
from skimage.metrics import structural_similarity

from keras_pansharp import losses, recipes


def _pair(rng, shape=(2, 32, 32, 4)):
    gt = rng.random(shape).astype("float32")
    pred = np.clip(gt + 0.1 * rng.standard_normal(shape), 0, 1).astype("float32")
    return gt, pred


def test_ssim_matches_scikit_image(rng):
    gt, pred = _pair(rng, (2, 40, 36, 3))
    got = keras.ops.convert_to_numpy(losses.ssim(gt, pred))
    ref = [
        structural_similarity(
            gt[i],
            pred[i],
            data_range=1.0,
            gaussian_weights=True,
            sigma=1.5,
            use_sample_covariance=False,
            channel_axis=-1,
        )
        for i in range(2)
    ]
    np.testing.assert_allclose(got, ref, atol=1e-5)


def test_losses_values(rng):
    gt, pred = _pair(rng)
    l1 = float(losses.L1Loss()(gt, pred))
    np.testing.assert_allclose(l1, np.abs(gt - pred).mean(), rtol=1e-5)
    s = keras.ops.convert_to_numpy(losses.ssim(gt, pred)).mean()
    np.testing.assert_allclose(float(losses.SSIMLoss()(gt, pred)), 1 - s, rtol=1e-5)
    total = float(losses.PanSharpLoss()(gt, pred))
    np.testing.assert_allclose(total, 1.5 * l1 + 4.0 * (1 - s), rtol=1e-5)
    assert float(losses.PanSharpLoss()(gt, gt)) == pytest.approx(0.0, abs=1e-5)


@pytest.mark.parametrize(
    "loss",
    [losses.L1Loss(), losses.SSIMLoss(sigma=1.2), losses.PanSharpLoss(l1_weight=2.0)],
)
def test_loss_serialization(loss, rng):
    config = keras.losses.serialize(loss)
    revived = keras.losses.deserialize(config)
    assert type(revived) is type(loss)
    assert revived.get_config() == loss.get_config()
    gt, pred = _pair(rng)
    np.testing.assert_allclose(float(revived(gt, pred)), float(loss(gt, pred)))


def test_loss_bad_input():
    with pytest.raises(ValueError, match="batch, height"):
        losses.PanSharpLoss()(np.zeros((8, 8, 4)), np.zeros((8, 8, 4)))
    with pytest.raises(ValueError, match="odd"):
        losses.SSIMLoss(window_size=10)


def _keras_adam_reference(w, grads, lr, wd, b1=0.9, b2=0.999, eps=1e-8):
    m = np.zeros_like(w)
    v = np.zeros_like(w)
    for t, g in enumerate(grads, start=1):
        g = g + wd * w  # coupled L2, as torch.optim.Adam(weight_decay=wd)
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g * g
        alpha = lr * np.sqrt(1 - b2**t) / (1 - b1**t)
        w = w - alpha * m / (np.sqrt(v) + eps)
    return w


def test_adam_l2_is_coupled_decay():
    w0 = np.array([1.0, -2.0, 0.5], dtype="float64")
    grads = [np.array([0.1, 0.0, -0.3]), np.array([-0.2, 0.05, 0.01])]
    for wd in (0.0, 0.5):
        var = keras.Variable(w0.astype("float32"))
        opt = recipes.AdamL2(learning_rate=0.1, l2_decay=wd)
        for g in grads:
            opt.apply_gradients([(keras.ops.convert_to_tensor(g, "float32"), var)])
        ref = _keras_adam_reference(w0, grads, 0.1, wd)
        np.testing.assert_allclose(keras.ops.convert_to_numpy(var), ref, atol=2e-5)
    # Decay really changes the trajectory (second component has zero first grad).
    assert not np.allclose(
        _keras_adam_reference(w0, grads, 0.1, 0.5),
        _keras_adam_reference(w0, grads, 0.1, 0.0),
    )
    revived = recipes.AdamL2.from_config(recipes.AdamL2(l2_decay=0.3).get_config())
    assert revived.l2_decay == 0.3


def _tiny_model(bands=4):
    ms = keras.Input((None, None, bands), name="ms")
    pan = keras.Input((None, None, 1), name="pan")
    up = keras.layers.UpSampling2D(4, interpolation="bilinear")(ms)
    x = keras.layers.Concatenate()([up, pan])
    x = keras.layers.Conv2D(bands, 3, padding="same")(x)
    return keras.Model({"ms": ms, "pan": pan}, keras.layers.Add()([x, up]))


def test_paper_recipe_compiles_and_trains(rng):
    model = recipes.paper(_tiny_model(), epochs=3, steps_per_epoch=2)
    opt = model.optimizer
    assert isinstance(opt, recipes.AdamL2)
    assert opt.l2_decay == pytest.approx(1e-4)
    assert float(opt.beta_1) == 0.9 and float(opt.beta_2) == 0.999
    assert float(opt.epsilon) == 1e-8
    assert isinstance(model.loss, losses.PanSharpLoss)
    sched = opt.learning_rate if callable(opt.learning_rate) else opt._learning_rate
    np.testing.assert_allclose(float(sched(0)), 5e-4, rtol=1e-6)
    np.testing.assert_allclose(float(sched(3)), 0.5 * (5e-4 + 1e-6), rtol=1e-5)
    np.testing.assert_allclose(float(sched(6)), 1e-6, rtol=1e-4)
    expected_jit = keras.backend.backend() == "jax"
    assert recipes.default_jit_compile() is expected_jit
    x = {
        "ms": rng.random((2, 8, 8, 4)).astype("float32"),
        "pan": rng.random((2, 32, 32, 1)).astype("float32"),
    }
    y = rng.random((2, 32, 32, 4)).astype("float32")
    hist = model.fit(x, y, batch_size=2, epochs=1, verbose=0)
    assert np.isfinite(hist.history["loss"][0])
    with pytest.raises(ValueError, match="steps_per_epoch"):
        recipes.paper(_tiny_model(), epochs=0, steps_per_epoch=2)
