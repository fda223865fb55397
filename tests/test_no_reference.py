"""No-reference loss, FullResolutionDataset and target adaptation."""

from __future__ import annotations

import keras
import numpy as np
import pytest
from numpy.lib.stride_tricks import sliding_window_view
from scipy.ndimage import correlate

import keras_pansharp as kp
from keras_pansharp.losses import NoReferenceLoss, no_reference_target
from keras_pansharp.metrics.q_index import _block_centered, _q2n_blocks
from keras_pansharp.scene_inputs import PAN_RANGE
from keras_pansharp.signal import interp23tap, mtf_filter, mtf_kernels
from keras_pansharp.signal.resize import cubic_kernel


def _smooth(rng, shape, scale=4.0):
    from scipy.ndimage import gaussian_filter

    x = rng.random(shape)
    return gaussian_filter(x, sigma=(scale, scale) + (0,) * (len(shape) - 2))


def _scene(rng, h=24, c=4, max_dn=2047.0):
    """A smooth random DN scene: ms (h, h, c), pan (4h, 4h) correlated."""
    pan = _smooth(rng, (4 * h, 4 * h), 3.0)
    pan = (pan - pan.min()) / np.ptp(pan)
    ms_hr = pan[..., None] * rng.uniform(0.5, 1.0, c) + 0.1 * _smooth(
        rng, (4 * h, 4 * h, c), 6.0
    )
    ms = ms_hr[2::4, 2::4] * 0.6 * max_dn
    return ms, pan * 0.6 * max_dn


# ----------------------------------------------------------- NumPy reference
def _local_corr_valid(x, y, w):
    k = 2 * w + 1
    xw = sliding_window_view(x, (k, k), axis=(0, 1))  # (H', W', C, k, k)
    yw = sliding_window_view(y, (k, k), axis=(0, 1))
    xc = xw - xw.mean(axis=(-2, -1), keepdims=True)
    yc = yw - yw.mean(axis=(-2, -1), keepdims=True)
    cov = (xc * yc).mean(axis=(-2, -1))
    vx = np.maximum((xc * xc).mean(axis=(-2, -1)), 1e-12)
    vy = np.maximum((yc * yc).mean(axis=(-2, -1)), 1e-12)
    return np.clip(cov / np.sqrt(vx * vy), -1, 1)


def _reference_terms(target, fused, gains_list, block, hw=2):
    """float64 NumPy lambda-PNN terms for one sample."""
    c = fused.shape[-1]
    lms, pan = target[..., :c], target[..., c : c + 1]
    pan_lp = target[..., c + 1 : c + 2]
    thr, sid = target[..., c + 2 : 2 * c + 2], int(target[0, 0, -1])
    k = mtf_kernels(gains_list[sid])
    low = np.stack(
        [correlate(fused[..., b], k[..., b], mode="nearest") for b in range(c)], -1
    )
    repro = low[2::4, 2::4]
    ms = lms[2::4, 2::4]
    mse = ((repro - ms) ** 2).mean(axis=(0, 1))
    ergas = 25.0 * np.sqrt(np.mean(mse / ms.mean(axis=(0, 1)) ** 2))
    n = 1 << (c - 1).bit_length()
    a, dg = _block_centered(ms.copy(), block, block)
    b, df = _block_centered(repro.copy(), block, block)
    d_lambda_k = 1.0 - float(np.mean(_q2n_blocks(a, dg, b, df, n)))
    # HQNR's D_lambda^K: LMS against the MTF-filtered fusion at PAN scale.
    a, dg = _block_centered(lms.copy(), 32, 32)
    b, df = _block_centered(low.copy(), 32, 32)
    d_lambda_k_pan = 1.0 - float(np.mean(_q2n_blocks(a, dg, b, df, n)))
    rho = _local_corr_valid(fused, np.repeat(pan, c, -1), hw)
    x = 1.0 - np.maximum(rho, -1.0)
    t = thr[hw:-hw, hw:-hw]
    structural = float(np.mean(x * (x > t)))

    def block_q(a, b, s=32):
        out = []
        for i in range(0, a.shape[0], s):
            for j in range(0, a.shape[1], s):
                x, y = a[i : i + s, j : j + s].ravel(), b[i : i + s, j : j + s].ravel()
                cov = np.cov(x, y)
                mx, my = x.mean(), y.mean()
                out.append(
                    4
                    * cov[0, 1]
                    * mx
                    * my
                    / ((cov[0, 0] + cov[1, 1]) * (mx**2 + my**2))
                )
        return np.mean(out)

    d_s = np.mean(
        [
            abs(
                block_q(fused[..., b], pan[..., 0])
                - block_q(lms[..., b], pan_lp[..., 0])
            )
            for b in range(c)
        ]
    )
    return {
        "ergas": ergas,
        "d_lambda_k": d_lambda_k,
        "structural": structural,
        "d_s": d_s,
        "d_lambda_k_pan": d_lambda_k_pan,
    }


def _sample_targets(rng, sensors=("qb", "geoeye1")):
    targets, fused = [], []
    for i, s in enumerate(sensors):
        ms, pan = _scene(rng)
        t = no_reference_target(ms, pan, s, sensor_index=i)[:64, :64]
        targets.append(t)
        fused.append(t[..., :4] + 0.02 * _smooth(rng, (64, 64, 4), 1.0))
    return np.stack(targets), np.stack(fused)


def test_loss_terms_match_numpy_reference():
    rng = np.random.default_rng(0)
    sensors = ("qb", "geoeye1")
    y_true, y_pred = _sample_targets(rng, sensors)
    loss = NoReferenceLoss(list(sensors), block_size=8, delta=0.5, epsilon=0.7)
    terms = loss.terms(y_true.astype("float32"), y_pred.astype("float32"))
    gains = [kp.get_sensor(s).ms_gnyq for s in sensors]
    for i in range(2):
        ref = _reference_terms(y_true[i].astype("float64"), y_pred[i], gains, 8)
        for key, value in ref.items():
            got = float(keras.ops.convert_to_numpy(terms[key])[i])
            assert got == pytest.approx(value, rel=2e-3, abs=2e-5), key
    total = keras.ops.convert_to_numpy(
        loss.call(y_true.astype("float32"), y_pred.astype("float32"))
    )
    expect = [
        0.05 * r["ergas"]
        + 1.25 * r["d_lambda_k"]
        + 3.75 * r["structural"]
        + 0.5 * r["d_s"]
        + 0.7 * r["d_lambda_k_pan"]
        for r in (
            _reference_terms(y_true[i].astype("float64"), y_pred[i], gains, 8)
            for i in range(2)
        )
    ]
    np.testing.assert_allclose(total, expect, rtol=2e-3)


def test_loss_is_zero_spectral_for_consistent_image_and_has_gradients():
    rng = np.random.default_rng(1)
    y_true, _ = _sample_targets(rng, ("qb",))
    loss = NoReferenceLoss("qb", block_size=16)
    # The LMS re-projects close to the MS but has little PAN correlation.
    t_lms = loss.terms(y_true, y_true[..., :4])
    assert float(keras.ops.convert_to_numpy(t_lms["d_lambda_k"])[0]) < 0.05
    x = keras.Variable(y_true[..., :4])
    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        with tf.GradientTape() as tape:
            value = loss(y_true, x)
        grad = tape.gradient(value, x)
    elif keras.backend.backend() == "jax":
        import jax

        grad = jax.grad(lambda v: loss(y_true, v))(x.value)
    else:
        pytest.skip("gradient check for TF and JAX")
    grad = keras.ops.convert_to_numpy(grad)
    assert np.isfinite(grad).all() and np.abs(grad).sum() > 0


def test_loss_config_round_trip_and_errors():
    loss = NoReferenceLoss(["qb", "wv3_rgbn"], alpha=0.1, gamma=5.0, epsilon=2.0)
    config = loss.get_config()
    again = NoReferenceLoss.from_config(config)
    assert again.sensors == loss.sensors and again.gamma == 5.0
    assert again.epsilon == 2.0
    restored = keras.losses.deserialize(keras.losses.serialize(loss))
    assert isinstance(restored, NoReferenceLoss) and restored.alpha == 0.1
    with pytest.raises(ValueError, match="same band count"):
        NoReferenceLoss(["qb", "wv3"])
    with pytest.raises(ValueError, match="2C \\+ 3"):
        loss(np.zeros((1, 32, 32, 5), "float32"), np.zeros((1, 32, 32, 4), "float32"))
    with pytest.raises(ValueError, match="alpha"):
        NoReferenceLoss("qb", alpha=-1)
    with pytest.raises(ValueError, match="epsilon"):
        NoReferenceLoss("qb", epsilon=float("nan"))


def test_threshold_matches_sliding_window_correlation():
    rng = np.random.default_rng(2)
    ms, pan = _scene(rng, h=12)
    t = no_reference_target(ms, pan, "qb")
    lms = interp23tap(ms)
    pan_lp = mtf_filter(np.repeat(pan[..., None], 4, -1), "qb")
    ref = 1.0 - _local_corr_valid(pan_lp, lms, 8)
    np.testing.assert_allclose(t[8:-8, 8:-8, 6:10], ref, atol=2e-5)
    pan_lp = interp23tap(kp.imresize_bicubic(pan, 0.25)[..., None])[..., 0]
    np.testing.assert_allclose(t[..., 5], pan_lp / 2047.0, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(t[..., :4], lms / 2047.0, rtol=1e-6, atol=1e-7)
    assert (t[..., -1] == 0).all()
    with pytest.raises(ValueError, match="bands"):
        no_reference_target(ms, pan, "wv3")
    with pytest.raises(ValueError, match="pan"):
        no_reference_target(ms, pan[:-4], "qb")


# ----------------------------------------------------------------- dataset
def _scenes(rng):
    ms4, pan4 = _scene(rng, h=24)
    ms8 = np.concatenate([ms4, ms4[..., ::-1]], -1)
    return {
        "qb": kp.data.Scene(ms4, pan4, kp.get_sensor("qb")),
        "wv3": kp.data.Scene(ms8, pan4, kp.get_sensor("wv3")),
    }


def test_dataset_keeps_ms_grid_and_is_deterministic():
    rng = np.random.default_rng(3)
    aug = kp.data.RadiometricAugmentation(noise_std=0.01, quantize_prob=0.5)
    ds = kp.FullResolutionDataset(
        _scenes(rng), batch_size=6, patch_size=32, seed=5, radiometric=aug
    )
    assert [s.name for s in ds.sensors] == ["QB", "WV3_RGBN"]
    for i in range(10):
        x, y = ds[i]
        assert x["ms"].shape == (6, 8, 8, 4) and y.shape == (6, 32, 32, 11)
        np.testing.assert_array_equal(x["lms"][:, 2::4, 2::4], x["ms"])
        np.testing.assert_array_equal(x["pan"], y[..., 4:5])
    x2, y2 = ds[3]
    ds_again = kp.FullResolutionDataset(
        _scenes(np.random.default_rng(3)),
        batch_size=6,
        patch_size=32,
        seed=5,
        radiometric=aug,
    )
    np.testing.assert_array_equal(ds_again[3][1], y2)


def test_dataset_errors():
    rng = np.random.default_rng(4)
    scenes = _scenes(rng)
    with pytest.raises(ValueError, match="too small"):
        kp.FullResolutionDataset(scenes, patch_size=96)
    with pytest.raises(ValueError, match="multiple of 4"):
        kp.FullResolutionDataset(scenes, patch_size=30)
    with pytest.raises(ValueError, match="band counts"):
        kp.FullResolutionDataset(scenes, patch_size=32, bands="native")
    with pytest.raises(ValueError, match="Scene"):
        kp.FullResolutionDataset({"x": np.zeros((4, 4))}, patch_size=32)


def _tiny_pantiny():
    return kp.PanTiny(bands=4, dim=8, num_heads=1, encoder_depth=1, body_depth=1)


def test_fit_with_no_reference_loss():
    rng = np.random.default_rng(6)
    ds = kp.FullResolutionDataset(
        _scenes(rng), batch_size=4, patch_size=32, steps_per_epoch=2, seed=0
    )
    model = _tiny_pantiny()
    kp.recipes.no_reference(model, ds.loss(), total_steps=2)
    history = model.fit(ds, epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"][0])


# ------------------------------------------------------------------- adapt
def test_adapt_lowers_loss_and_keeps_shape_and_scale():
    rng = np.random.default_rng(7)
    ms, pan = _scene(rng, h=25)  # PAN 100: scores on the 96 x 96 crop
    keras.utils.set_random_seed(0)
    model = _tiny_pantiny()
    before_weights = [w.copy() for w in model.get_weights()]
    res = kp.adapt(
        model,
        ms,
        pan,
        sensor="qb",
        steps=15,
        batch_size=4,
        patch_size=32,
        learning_rate=2e-3,
        time_limit=None,  # all 15 steps, however busy the machine
        verbose=0,
    )
    assert res.improved and res.loss_after < res.loss_before
    assert res.steps == 15
    assert res.fused.shape == (100, 100, 4)
    # DN in, DN out: same scale as the MS.
    assert 0.5 < res.fused.mean() / ms.mean() < 1.5
    assert set(res.before) >= {"hqnr", "d_s", "d_lambda_k"}
    for a, b in zip(model.get_weights(), before_weights):
        np.testing.assert_array_equal(a, b)  # the input model is untouched
    assert res.model is not model


def test_adapt_calibrates_and_keeps_only_a_higher_hqnr(monkeypatch):
    rng = np.random.default_rng(11)
    ms, pan = _scene(rng, h=25)
    keras.utils.set_random_seed(0)
    model = _tiny_pantiny()
    kw = {"sensor": "qb", "steps": 4, "batch_size": 4, "patch_size": 32, "verbose": 0}
    res = kp.adapt(model, ms, pan, learning_rate=2e-3, **kw)
    if res.improved:
        assert res.gains.shape == (4,) and res.after["hqnr"] > res.before["hqnr"]
        # The gains are folded into the returned model.
        x = {"ms": (ms / 2047.0)[None], "pan": (pan / 2047.0)[None, ..., None]}
        np.testing.assert_allclose(
            np.asarray(res.model.predict_on_batch(x))[0] * 2047.0, res.fused, atol=0.05
        )
    else:
        assert res.gains is None and res.after == res.before
    # Nothing learned (no training step) and nothing calibrated: HQNR cannot
    # rise, so the input weights come back.
    monkeypatch.setattr(type(model), "fit", lambda self, *a, **k: None)
    same = kp.adapt(model, ms, pan, calibrate=False, **kw)
    assert not same.improved and same.gains is None
    assert same.after == same.before
    for a, b in zip(same.model.get_weights(), model.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_adapt_keeps_the_best_blend(monkeypatch):
    from keras_pansharp import adaptation

    rng = np.random.default_rng(12)
    ms, pan = _scene(rng, h=25)
    model = _tiny_pantiny()
    start = [w.copy() for w in model.get_weights()]
    kw = {"sensor": "qb", "steps": 1, "batch_size": 4, "patch_size": 32}
    # Fine-tuning moves every weight by +0.01; the scene's HQNR is scripted:
    # input 0.5, fine-tuned 0.4, blends 0.25 -> 0.7 and 0.5 -> 0.6.
    monkeypatch.setattr(
        type(model),
        "fit",
        lambda self, *a, **k: self.set_weights([w + 0.01 for w in self.get_weights()]),
    )
    hqnr = iter([0.5, 0.4, 0.7, 0.6])
    monkeypatch.setattr(adaptation, "_scores", lambda *a: {"hqnr": next(hqnr)})
    res = kp.adapt(model, ms, pan, blends=(0.25, 0.5), calibrate=False, **kw)
    assert res.improved and res.blend == 0.25
    assert res.candidates == {1.0: 0.4, 0.25: 0.7, 0.5: 0.6}
    assert res.after == {"hqnr": 0.7} and res.before == {"hqnr": 0.5}
    for got, w0 in zip(res.model.get_weights(), start):
        np.testing.assert_allclose(got, w0 + 0.0025, atol=1e-6)
    # The returned fused scene is the kept candidate's prediction.
    x = {"ms": (ms / 2047.0)[None], "pan": (pan / 2047.0)[None, ..., None]}
    np.testing.assert_allclose(
        np.asarray(res.model.predict_on_batch(x))[0] * 2047.0, res.fused, atol=0.05
    )
    assert "0.25 of the way" in res.summary()
    # No candidate above the input: the input weights come back.
    hqnr = iter([0.5, 0.4, 0.3])
    same = kp.adapt(model, ms, pan, blends=(0.5,), calibrate=False, **kw)
    assert not same.improved and same.blend is None and same.after == same.before
    for got, w0 in zip(same.model.get_weights(), start):
        np.testing.assert_array_equal(got, w0)
    assert "input model kept" in same.summary()
    with pytest.raises(ValueError, match="blends must lie in"):
        kp.adapt(model, ms, pan, blends=(1.5,), **kw)


def test_adapt_with_self_supervision_trains_on_the_degraded_copy():
    rng = np.random.default_rng(9)
    ms, pan = _scene(
        rng, h=40
    )  # PAN 160: its Wald-degraded copy (PAN 40) fits 32 crops
    keras.utils.set_random_seed(0)
    model = _tiny_pantiny()
    res = kp.adapt(
        model,
        ms,
        pan,
        sensor="qb",
        steps=8,
        batch_size=4,
        patch_size=32,
        learning_rate=2e-3,
        supervised_weight=1.0,
        evaluate=False,
        verbose=0,
    )
    # The check loss includes the supervised term on reduced-resolution crops.
    assert np.isfinite(res.loss_before) and np.isfinite(res.loss_after)
    plain = kp.adapt(
        model,
        ms,
        pan,
        sensor="qb",
        steps=1,
        batch_size=4,
        patch_size=32,
        evaluate=False,
        verbose=0,
    )
    assert res.loss_before != plain.loss_before
    with pytest.raises(ValueError, match="supervised_weight"):
        kp.adapt(model, ms, pan, sensor="qb", supervised_weight=-1.0, verbose=0)


def test_adapt_errors():
    rng = np.random.default_rng(8)
    ms, pan = _scene(rng, h=12)
    model = _tiny_pantiny()
    with pytest.raises(ValueError, match="normalised"):
        kp.adapt(model, ms / 2047, pan / 2047, sensor="qb")
    with pytest.raises(ValueError, match="exceed the max DN"):
        kp.adapt(model, ms * 4, pan * 4, sensor="qb")
    with pytest.raises(ValueError, match="rgbn_indices"):
        kp.adapt(model, np.concatenate([ms, ms], -1), pan, sensor="wv3")
    bad = ms.copy()
    bad[0, 0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        kp.adapt(model, bad, pan, sensor="qb")
    with pytest.raises(ValueError, match="pan"):
        kp.adapt(model, ms, pan[:-4], sensor="qb")
    with pytest.raises(ValueError, match="learning_rate must be > 0"):
        kp.adapt(model, ms, pan, sensor="qb", learning_rate=0.0)
    with pytest.raises(ValueError, match="time_limit must be > 0"):
        kp.adapt(model, ms, pan, sensor="qb", time_limit=0.0)


def _edgy_scene(h=32, max_dn=2047.0):
    """A DN scene whose PAN is 8 x 8 squares of max DN on 0, on a 16-pixel
    grid placed so that the 1/4 bicubic kernel's positive taps fall on a
    square and its negative ones on the dark gaps: the most it overshoots."""
    ms, _ = _scene(np.random.default_rng(11), h=h, max_dn=max_dn)
    idx = np.arange(4 * h) % 16
    line = ((idx >= 2) & (idx < 10)).astype(float)
    return np.clip(ms, 0, max_dn), np.outer(line, line) * max_dn


def test_pan_range_is_what_wald_degrade_can_reach():
    low, high = PAN_RANGE
    # The worst pattern for the 1/4 bicubic kernel reaches the bound exactly.
    taps = cubic_kernel(np.arange(7.5, -8.0, -1.0) / 4.0)
    taps = taps / taps.sum()
    row = (taps > 0).astype(float)
    worst = np.outer(row, row) + np.outer(1 - row, 1 - row)
    assert np.isclose(float((np.outer(taps, taps) * worst).sum()), high)
    assert high < 1.19 and -0.19 < low < 0
    ms, pan = _edgy_scene()
    ms_lr, pan_lr = kp.wald_degrade(ms, pan, "qb")
    assert pan_lr.max() > 2047 and pan_lr.min() < 0  # the overshoot is real
    assert low * 2047 <= pan_lr.min() and pan_lr.max() <= high * 2047


def test_wald_degraded_pairs_are_accepted_beyond_bounds_refused():
    ms, pan = _edgy_scene()
    ms_lr, pan_lr = kp.wald_degrade(ms, pan, "qb")
    model = _tiny_pantiny()
    kw = dict(sensor="qb", steps=1, batch_size=2, patch_size=16, verbose=0)
    res = kp.adapt(model, ms_lr, pan_lr, evaluate=False, **kw)
    assert res.steps == 1
    cal = kp.calibrate_detail_gain(model, ms_lr, pan_lr, sensor="qb")
    assert cal.gains.shape == (4,)
    # Beyond what the degradation can produce: the errors stay.
    low, high = PAN_RANGE
    over = pan_lr.copy()
    over[0, 0] = high * 2047 * 1.01
    with pytest.raises(ValueError, match="pan values up to .* exceed the max DN"):
        kp.adapt(model, ms_lr, over, evaluate=False, **kw)
    under = pan_lr.copy()
    under[0, 0] = low * 2047 * 1.01
    with pytest.raises(ValueError, match="pan contains negative values"):
        kp.adapt(model, ms_lr, under, evaluate=False, **kw)
    # The MS is MTF-filtered (no overshoot): above the max DN is an error.
    bright = ms_lr.copy()
    bright[0, 0, 0] = 2047 * 1.01
    with pytest.raises(ValueError, match="ms values up to .* exceed the max DN"):
        kp.adapt(model, bright, pan_lr, evaluate=False, **kw)


@pytest.mark.parametrize(
    "first, steps_run",
    [
        # A 4 s first step (tracing), then 1 s steps; 3 s of work after
        # fitting: it stops at t = 17 s, as 17 + one 1 s step + 3 s would
        # pass 20 s.
        (4.0, 14),
        # A 12 s first step is not the estimate of a step (12 + 12 + 3 s
        # would pass 20 s after one step): the same stop at 17 s.
        (12.0, 6),
    ],
)
def test_time_limit_projects_the_next_step_and_the_reserve(
    monkeypatch, first, steps_run
):
    from keras_pansharp import adaptation

    start = int(first)
    clock = iter([0.0, first] + [t for s in range(start, 40) for t in (s, s + 1.0)])
    monkeypatch.setattr(adaptation.time, "perf_counter", lambda: next(clock))

    class Model:
        stop_training = False

    cb = adaptation._TimeLimit(start=0.0, limit=20.0, reserve=3.0)
    cb.set_model(Model())
    while not cb.model.stop_training:
        cb.on_train_batch_begin(0)
        cb.on_train_batch_end(0)
    assert cb.model.stop_training and len(cb.durations) == steps_run
    assert cb.durations[0] == first and cb.durations[-1] == 1.0


def test_adapt_default_loss_adds_hqnr_spectral_term_drops_structural(monkeypatch):
    from keras_pansharp import adaptation

    seen = []

    class Spy(NoReferenceLoss):
        def __init__(self, *args, **kwargs):
            seen.append(kwargs)
            super().__init__(*args, **kwargs)

    monkeypatch.setattr(adaptation, "NoReferenceLoss", Spy)
    rng = np.random.default_rng(13)
    ms, pan = _scene(rng, h=12)
    model = _tiny_pantiny()
    kw = {"sensor": "qb", "steps": 1, "batch_size": 2, "patch_size": 32}
    kp.adapt(model, ms, pan, evaluate=False, verbose=0, **kw)
    kp.adapt(
        model,
        ms,
        pan,
        evaluate=False,
        verbose=0,
        loss_weights={"epsilon": 0.0, "gamma": 1.0},
        **kw,
    )
    recipe = kp.recipes.NO_REFERENCE_LOSS
    assert seen[0] == {**recipe, "epsilon": 2.5, "gamma": 0.0}
    assert seen[1] == {**recipe, "epsilon": 0.0, "gamma": 1.0}


def test_adapt_stops_at_the_time_limit():
    rng = np.random.default_rng(12)
    ms, pan = _scene(rng, h=12)
    keras.utils.set_random_seed(0)
    model = _tiny_pantiny()
    kw = {"sensor": "qb", "steps": 5, "batch_size": 2, "patch_size": 32}
    # A limit already passed: the first step still runs, then it stops.
    res = kp.adapt(model, ms, pan, time_limit=1e-3, verbose=0, **kw)
    assert res.steps == 1
    assert "1 step," in res.summary()
    res = kp.adapt(model, ms, pan, time_limit=None, verbose=0, **kw)
    assert res.steps == 5


@pytest.mark.large
def test_adapt_on_real_crop(shared_path):
    data = shared_path / "data"
    scene = kp.data.read_scene(
        data / "qb_abfnet" / "fr_ms.tif",
        data / "qb_abfnet" / "fr_pan.tif",
        sensor="qb",
    )
    ms, pan = scene.ms[:32, :32], scene.pan[:128, :128]
    keras.utils.set_random_seed(0)
    res = kp.adapt(
        _tiny_pantiny(),
        ms,
        pan,
        sensor="qb",
        steps=10,
        batch_size=4,
        time_limit=None,
        verbose=0,
    )
    assert res.loss_after < res.loss_before
    assert res.fused.shape == (128, 128, 4)
    assert 0.5 < res.fused.mean() / ms.mean() < 1.5


# ------------------------------------------------------------ pretrained
def test_pretrained_preset_loads_offline_and_predicts():
    model = kp.PanTiny.from_preset("pantiny_multisensor")
    assert model.count_params() == 81744
    rng = np.random.default_rng(9)
    ms, pan = _scene(rng, h=16)
    out = model.predict(
        {"ms": ms[None] / 2047.0, "pan": pan[None, ..., None] / 2047.0}, verbose=0
    )
    assert out.shape == (1, 64, 64, 4) and np.isfinite(out).all()
    with pytest.raises(ValueError, match="architecture is fixed"):
        kp.PanTiny.from_preset("pantiny_multisensor", bands=8)


def test_shipped_weights_hash_matches_docs():
    import hashlib
    import re
    from pathlib import Path

    from keras_pansharp.models.pantiny import PANTINY_PRESETS, preset_weights_path

    preset = PANTINY_PRESETS["pantiny_multisensor"]
    path = preset_weights_path(preset["weights"])
    digest = hashlib.sha256(Path(path).read_bytes()).hexdigest()
    assert digest == preset["sha256"]
    card = Path(__file__).resolve().parents[1] / "docs" / "model_card.md"
    found = re.findall(r"SHA-256[^`]*`([0-9a-f]{64})`", card.read_text())
    assert found and found[0] == digest


def test_get_model_pretrained_name():
    model = kp.get_model("pantiny_multisensor")
    ref = kp.PanTiny.from_preset("pantiny_multisensor")
    for a, b in zip(model.get_weights(), ref.get_weights()):
        np.testing.assert_array_equal(a, b)
    with pytest.raises(ValueError, match="4-band"):
        kp.get_model("pantiny_multisensor", bands=8)


def test_reduced_resolution_crops_and_mixed_loss():
    rng = np.random.default_rng(10)
    ms, pan = _scene(rng, h=48)
    scene = kp.data.Scene(ms, pan, kp.get_sensor("qb"))
    ds = kp.FullResolutionDataset(
        {"qb": scene},
        batch_size=8,
        patch_size=32,
        seed=1,
        reduced_resolution=True,
        radiometric=kp.data.RadiometricAugmentation(),
    )
    assert ds.names == ["qb", "qb (reduced x4)"] and ds.num_bands == 4
    x, y = ds[0]
    assert y.shape == (8, 32, 32, 3 * 4 + 4)
    np.testing.assert_array_equal(x["lms"][:, 2::4, 2::4], x["ms"])
    has_gt = y[:, 0, 0, -1]
    assert set(np.unique(has_gt)) <= {0.0, 1.0}
    # Reduced-resolution crops: the reference is the original MS, whose
    # Wald-degraded samples are the crop's MS (up to the MTF blur): close.
    for i in np.flatnonzero(has_gt):
        gt = y[i, ..., 11:15]
        assert np.all(y[i, ..., -1] == 1.0) and gt.max() > 0
        assert abs(gt.mean() / x["ms"][i].mean() - 1) < 0.1
    for i in np.flatnonzero(has_gt == 0):
        assert np.all(y[i, ..., 11:] == 0)
    w = 0.7
    mixed = NoReferenceLoss("qb", supervised_weight=w)
    plain = NoReferenceLoss("qb")
    pred = x["lms"] + 0.01
    got = keras.ops.convert_to_numpy(mixed.call(y, pred))
    base = keras.ops.convert_to_numpy(plain.call(y, pred))
    sup = keras.ops.convert_to_numpy(kp.losses.PanSharpLoss().call(y[..., 11:15], pred))
    np.testing.assert_allclose(got, base + w * has_gt * sup, rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="reference"):
        mixed(y[..., :11], pred)


def test_adapt_small_scene_crop_size():
    rng = np.random.default_rng(11)
    ms, pan = _scene(rng, h=13)  # PAN 52: crops of 32, scores on 32 x 32
    res = kp.adapt(_tiny_pantiny(), ms, pan, sensor="qb", steps=2, verbose=0)
    assert res.fused.shape == (52, 52, 4) and np.isfinite(res.after["hqnr"])
