"""LR / batch schedules against hand-computed values from the papers' rules."""

import math

import pytest

from lbgap.config.schedules import (
    Schedule,
    adapt_regime,
    noise_scale,
    rescale_momentum_buffers,
    scaled_lr,
)

# Goyal et al.'s ImageNet setting: eta = 0.1 per 256 images, k = 32 (batch 8192).
GOYAL = dict(base_lr=0.1, base_batch=256, batch_size=8192, epochs=90)


def goyal(**kw) -> Schedule:
    return Schedule(**{**GOYAL, **kw})


@pytest.mark.parametrize(
    ("rule", "batch", "expected"),
    [
        ("none", 8192, 0.1),
        ("linear", 8192, 3.2),
        ("sqrt", 8192, 0.1 * math.sqrt(32)),
        ("linear", 128, 0.05),
        ("sqrt", 64, 0.05),
    ],
)
def test_scaled_lr(rule, batch, expected):
    assert scaled_lr(0.1, 256, batch, rule) == pytest.approx(expected, rel=1e-12)


def test_scaling_applies_without_warmup():
    assert goyal(lr_scaling="linear").lr_at(0, 0, 100) == pytest.approx(3.2)
    assert goyal(lr_scaling="sqrt").lr_at(0, 0, 100) == pytest.approx(0.565685424949238)
    assert goyal().lr_at(0, 0, 100) == pytest.approx(0.1)


@pytest.mark.parametrize(
    ("epoch", "iteration", "expected"),
    [
        (0, 0, 0.1),  # starts at the unscaled eta
        (0, 10, 0.1 + 3.1 * 0.1 / 5),  # t = 0.1 epoch
        (2, 50, 1.65),  # t = 2.5: half way from 0.1 to 3.2
        (4, 99, 0.1 + 3.1 * 4.99 / 5),
        (5, 0, 3.2),  # warmup over: k * eta
        (29, 99, 3.2),
    ],
)
def test_gradual_warmup_ramps_per_iteration(epoch, iteration, expected):
    s = goyal(lr_scaling="linear", warmup="gradual", warmup_epochs=5, decay_epochs=(30, 60, 80))
    assert s.lr_at(epoch, iteration, 100) == pytest.approx(expected, rel=1e-12)


def test_constant_warmup_uses_unscaled_lr_then_jumps():
    s = goyal(lr_scaling="linear", warmup="constant", warmup_epochs=5)
    assert [s.lr_at(e, i, 100) for e, i in [(0, 0), (4, 99), (5, 0), (6, 3)]] == pytest.approx(
        [0.1, 0.1, 3.2, 3.2]
    )


def test_fractional_warmup_ends_mid_epoch():
    s = goyal(lr_scaling="linear", warmup="constant", warmup_epochs=0.5)
    assert s.lr_at(0, 49, 100) == pytest.approx(0.1)
    assert s.lr_at(0, 50, 100) == pytest.approx(3.2)


def test_step_decay_at_milestones():
    s = goyal(lr_scaling="linear", warmup="gradual", warmup_epochs=5, decay_epochs=(30, 60, 80))
    got = [s.lr_at(e, 0, 100) for e in (29, 30, 59, 60, 79, 80, 89)]
    assert got == pytest.approx([3.2, 0.32, 0.32, 0.032, 0.032, 0.0032, 0.0032], rel=1e-12)
    assert s.lr_at(29, 99, 100) == pytest.approx(3.2)  # decay waits for the epoch boundary
    assert all(s.batch_at(e) == 8192 for e in range(90))


def test_fractional_milestone_acts_at_next_epoch():
    s = goyal(decay_epochs=(30.5,), decay_factor=2)
    assert [s.lr_at(e, 0, 10) for e in (30, 31)] == pytest.approx([0.1, 0.05])


# Smith et al. 2018: same milestones and factor, decay the LR or grow the batch.
# n_train is divisible by every batch so the sample counts are exact.
SMITH = dict(base_lr=0.1, base_batch=128, batch_size=128, epochs=10, decay_epochs=(2, 4, 6, 8))
N_SMITH = 20480


def test_smith_decay_vs_increase_batch():
    decay = Schedule(**SMITH, decay_factor=2)
    grow = Schedule(**SMITH, decay_factor=2, batch_growth="increase")

    assert [grow.batch_at(e) for e in range(10)] == [128] * 2 + [256] * 2 + [512] * 2 + [
        1024
    ] * 2 + [2048] * 2
    assert [grow.lr_at(e, 0, 10) for e in range(10)] == pytest.approx([0.1] * 10)
    assert [decay.lr_at(e, 0, 10) for e in (1, 2, 4, 6, 8)] == pytest.approx(
        [0.1, 0.05, 0.025, 0.0125, 0.00625]
    )
    # Same samples: 10 epochs x 20480; updates 10 x 160 vs 2 x (160 + 80 + 40 + 20 + 10).
    assert decay.total_samples(N_SMITH) == grow.total_samples(N_SMITH) == 204800
    assert decay.total_updates(N_SMITH) == 1600
    assert grow.total_updates(N_SMITH) == 620


def test_increase_keeps_lr_scaled_at_initial_batch():
    s = Schedule(
        base_lr=0.1,
        base_batch=256,
        batch_size=512,
        epochs=4,
        lr_scaling="linear",
        decay_epochs=(2,),
        decay_factor=4,
        batch_growth="increase",
    )
    assert s.batch_at(2) == 2048
    assert [s.lr_at(e, 0, 5) for e in range(4)] == pytest.approx([0.2] * 4)


def test_hybrid_grows_to_max_batch_then_decays_lr():
    s = Schedule(
        **{**SMITH, "decay_epochs": (3, 6, 8)},
        decay_factor=5,
        batch_growth="increase",
        max_batch=3200,
    )
    rows = s.table(n_train=16000)
    assert [r["batch"] for r in rows] == [128] * 3 + [640] * 3 + [3200] * 4
    assert [r["lr"] for r in rows] == pytest.approx([0.1] * 8 + [0.02] * 2)
    assert [r["iterations"] for r in rows] == [125] * 3 + [25] * 3 + [5] * 4
    assert all(r["samples"] == 16000 for r in rows)
    assert [r["epoch"] for r in rows] == list(range(10))


def test_hybrid_cap_stops_growth_for_good():
    # 128 * 5 = 640 exceeds 600: every milestone decays the LR instead.
    s = Schedule(**SMITH, decay_factor=5, batch_growth="increase", max_batch=600)
    assert {s.batch_at(e) for e in range(10)} == {128}
    assert s.lr_at(9, 0, 1) == pytest.approx(0.1 / 5**4)


def test_adapt_regime_stretches_exactly():
    s = goyal(warmup="gradual", warmup_epochs=5, decay_epochs=(30, 60, 80))
    a = adapt_regime(s, 4)
    assert (a.epochs, a.warmup_epochs, a.decay_epochs) == (360, 20.0, (120.0, 240.0, 320.0))
    assert (a.base_lr, a.batch_size, a.warmup) == (0.1, 8192, "gradual")

    b = adapt_regime(Schedule(0.1, 128, 128, epochs=5, decay_epochs=(2, 4)), 0.5)
    assert (b.epochs, b.decay_epochs) == (3, (1.0, 2.0))  # 2.5 epochs round half up


def test_adapt_regime_matches_small_batch_update_count():
    small = Schedule(0.1, 128, 128, epochs=3, decay_epochs=(2,))
    large = adapt_regime(Schedule(0.1, 128, 1024, epochs=3, decay_epochs=(2,)), 1024 / 128)
    assert large.total_updates(4096) == small.total_updates(4096) == 96
    assert large.lr_at(15, 0, 4) == pytest.approx(0.1) and large.lr_at(16, 0, 4) == 0.01


def test_from_config_builds_and_normalises():
    s = Schedule.from_config(
        {
            "base_lr": 0.1,
            "base_batch": 256,
            "batch_size": 1024,
            "epochs": 90,
            "lr_scaling": "sqrt",
            "decay_epochs": [30, 60],
            "max_batch": None,
        }
    )
    assert s.decay_epochs == (30.0, 60.0)
    assert s.peak_lr == pytest.approx(0.2)
    same = Schedule(0.1, 256, 1024, 90, lr_scaling="sqrt", decay_epochs=(30.0, 60.0))
    assert s == same and hash(s) == hash(same)  # hashable: usable as a cache key


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("warmup", "linear", r"^warmup must be one of none, constant, gradual; got 'linear'$"),
        ("lr_scaling", "cubic", r"^lr_scaling must be one of none, linear, sqrt; got 'cubic'$"),
        ("batch_growth", "hybrid", r"^batch_growth must be one of none, increase"),
        ("batch_size", 0, r"^batch_size must be an integer >= 1"),
        ("epochs", 2.5, r"^epochs must be an integer"),
        ("base_lr", -1.0, r"^base_lr must be a positive"),
        ("decay_factor", 1.0, r"^decay_factor must be > 1"),
        ("decay_epochs", [60, 30], r"^decay_epochs must be strictly increasing"),
        ("max_batch", 4096, r"^max_batch must be an integer >= 8192"),
        ("warmup_epoch", 5, r"^unknown schedule key\(s\) warmup_epoch; allowed: base_lr"),
    ],
)
def test_from_config_rejects_bad_values(key, value, message):
    with pytest.raises(ValueError, match=message):
        Schedule.from_config({**GOYAL, key: value})


def test_from_config_missing_and_ignored_keys():
    with pytest.raises(ValueError, match="missing required key\\(s\\): epochs"):
        Schedule.from_config({k: v for k, v in GOYAL.items() if k != "epochs"})
    s = Schedule.from_config({**GOYAL, "model": "resnet20"}, ignore_unknown=True)
    assert s.epochs == 90


def test_warmup_requires_epochs_and_precedes_milestones():
    with pytest.raises(ValueError, match="^warmup_epochs must be a positive"):
        goyal(warmup="gradual")
    with pytest.raises(ValueError, match="^decay_epochs must start at or after warmup_epochs"):
        goyal(warmup="gradual", warmup_epochs=5, decay_epochs=(4,))


def test_increase_requires_integer_batches():
    with pytest.raises(ValueError, match="must grow batch 3 to an integer"):
        Schedule(0.1, 3, 3, epochs=4, decay_epochs=(1,), decay_factor=1.5, batch_growth="increase")


def test_batch_larger_than_training_set():
    with pytest.raises(ValueError, match="batch_size 8192 at epoch 0 is larger than the training"):
        goyal().iterations_in_epoch(0, n_train=5000)
    grow = Schedule(**SMITH, decay_factor=2, batch_growth="increase")
    assert grow.iterations_in_epoch(7, 1500) == 1  # batch 1024
    with pytest.raises(ValueError, match="batch_size 2048 at epoch 8"):
        grow.total_updates(1500)


def test_iterations_drop_last_partial_batch():
    assert goyal().iterations_in_epoch(0, 50000) == 6  # 6 * 8192 = 49152
    assert goyal(epochs=2).total_samples(50000) == 2 * 49152


def test_lr_at_rejects_out_of_range_iteration():
    with pytest.raises(ValueError, match=r"iteration must be in \[0, 100\)"):
        goyal().lr_at(0, 100, 100)


def test_noise_scale_formula():
    # eps (N/B - 1) / (1 - m) = 0.1 * (50000/128 - 1) / 0.1 = 389.625
    assert noise_scale(0.1, 50000, 128, momentum=0.9) == pytest.approx(389.625)
    assert noise_scale(0.1, 50000, 128) == pytest.approx(38.9625)
    assert noise_scale(0.1, 50000, 50000) == 0.0
    with pytest.raises(ValueError, match="momentum"):
        noise_scale(0.1, 50000, 128, momentum=1.0)


def _sgd_run(lrs, grads, rescale: bool):
    torch = pytest.importorskip("torch")
    w = torch.nn.Parameter(torch.zeros(3, dtype=torch.float64))
    opt = torch.optim.SGD([w], lr=lrs[0], momentum=0.9)
    for lr, g in zip(lrs, grads, strict=True):
        old = opt.param_groups[0]["lr"]
        if rescale and opt.state:
            rescale_momentum_buffers(opt, old, lr)
        opt.param_groups[0]["lr"] = lr
        w.grad = torch.tensor(g, dtype=torch.float64)
        opt.step()
    return w.detach().tolist()


def _manual_run(lrs, grads, corrected: bool):
    m, w, v = 0.9, [0.0] * 3, [0.0] * 3
    for lr, g in zip(lrs, grads, strict=True):
        if corrected:  # v = m v + g; w -= lr v
            v = [m * vi + gi for vi, gi in zip(v, g, strict=True)]
            w = [wi - lr * vi for wi, vi in zip(w, v, strict=True)]
        else:  # v = m v + lr g; w -= v
            v = [m * vi + lr * gi for vi, gi in zip(v, g, strict=True)]
            w = [wi - vi for wi, vi in zip(w, v, strict=True)]
    return w


LRS = [0.1, 0.1, 0.5, 0.5, 0.02]
GRADS = [[1.0, -2.0, 0.5], [0.3, 1.0, -1.0], [2.0, 0.0, 1.0], [-1.0, 1.0, 1.0], [0.5, 0.5, 3.0]]


def test_torch_sgd_is_the_corrected_form():
    assert _sgd_run(LRS, GRADS, rescale=False) == pytest.approx(_manual_run(LRS, GRADS, True))


def test_rescale_momentum_buffers_emulates_uncorrected_form():
    got = _sgd_run(LRS, GRADS, rescale=True)
    assert got == pytest.approx(_manual_run(LRS, GRADS, corrected=False), rel=1e-12)
    assert got != pytest.approx(_manual_run(LRS, GRADS, corrected=True))


def test_warmup_epochs_ignored_without_warmup():
    # Lets a sweep toggle `warmup` while keeping one `warmup_epochs` in the config.
    s = goyal(lr_scaling="linear", warmup="none", warmup_epochs=5)
    assert s.lr_at(0, 0, 100) == pytest.approx(3.2)


@pytest.mark.parametrize(
    "settings",
    [
        dict(SMITH, decay_factor=2, batch_growth="increase"),
        dict(SMITH, decay_factor=2, batch_growth="increase", max_batch=512),
        dict(SMITH, decay_factor=2, decay_epochs=(1, 3, 10, 12), batch_growth="increase"),
        dict(SMITH, decay_epochs=(2.5, 7.5), batch_growth="increase", max_iterations=50),
        dict(SMITH, decay_epochs=()),
    ],
)
def test_totals_per_stretch_equal_the_sums_over_epochs(settings):
    """total_updates and total_samples sum per stretch of one batch; epoch by epoch agrees."""
    s = Schedule(**settings)
    n = N_SMITH + 77  # partial batches dropped
    per_epoch = [s.iterations_in_epoch(e, n) for e in range(s.epochs)]
    assert s.total_updates(n) == sum(per_epoch)
    assert s.total_samples(n) == sum(k * s.batch_at(e) for e, k in enumerate(per_epoch))
