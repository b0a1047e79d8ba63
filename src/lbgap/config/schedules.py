"""Learning-rate and batch-size schedules for large-batch training.

Implements the rules the reproduced papers compare:

- LR scaling with the batch size: linear (Goyal et al. 2017) or square root (Hoffer et al. 2017).
- Warmup: constant or gradual (Goyal et al. 2017, section 2.2).
- Step decay at milestones, or increasing the batch instead of decaying the LR (Smith et al.
  2018), optionally up to a maximum batch after which the LR decays ("hybrid").
- Regime adaptation: stretching the schedule in epochs (Hoffer et al. 2017, section 5).

Kept free of torch (except the lazily used optimizer helper) so the per-iteration calls from
the training loop are cheap.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, fields, replace
from typing import Any

LR_SCALING = ("none", "linear", "sqrt")
WARMUP = ("none", "constant", "gradual")
BATCH_GROWTH = ("none", "increase")

_REQUIRED_KEYS = ("base_lr", "base_batch", "batch_size", "epochs")


def _check_choice(key: str, value: Any, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise ValueError(f"{key} must be one of {', '.join(allowed)}; got {value!r}")


def _check_int(key: str, value: Any, minimum: int = 1) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{key} must be an integer >= {minimum}; got {value!r}")


def _check_real(key: str, value: Any, *, positive: bool) -> float:
    ok = isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
    if not ok or value < 0 or (positive and value == 0):
        kind = "a positive" if positive else "a non-negative"
        raise ValueError(f"{key} must be {kind} finite number; got {value!r}")
    return float(value)


def scaled_lr(base_lr: float, base_batch: int, batch_size: int, rule: str) -> float:
    """LR for ``batch_size`` given ``base_lr`` tuned at ``base_batch``.

    ``none`` keeps ``base_lr``; ``linear`` multiplies it by k = B/B0 (Goyal et al.), so the
    expected update per sample is unchanged; ``sqrt`` multiplies by sqrt(k) (Hoffer et al.),
    so the covariance of the update per sample is unchanged.
    """
    _check_choice("lr_scaling", rule, LR_SCALING)
    _check_int("base_batch", base_batch)
    _check_int("batch_size", batch_size)
    ratio = batch_size / base_batch
    if rule == "linear":
        return base_lr * ratio
    if rule == "sqrt":
        return base_lr * math.sqrt(ratio)
    return base_lr


@dataclass(frozen=True)
class Schedule:
    """Optimisation schedule of one run: LR and global batch per epoch and iteration.

    Semantics:

    - The peak LR is ``scaled_lr(base_lr, base_batch, batch_size, lr_scaling)`` with the
      INITIAL batch; scaling applies to the LR reached after warmup.
    - Warmup runs over the fractional epoch t = epoch + iteration / iterations_per_epoch for
      t < warmup_epochs. ``constant`` uses the unscaled ``base_lr`` then jumps to the peak LR;
      ``gradual`` ramps linearly per iteration from ``base_lr`` at t = 0 to the peak LR at
      t = warmup_epochs (Goyal et al.: from eta to k*eta over 5 epochs).
    - A milestone m takes effect from the first iteration of the first epoch >= m (so a
      fractional milestone acts at the next epoch boundary). Milestones at or beyond
      ``epochs`` never act.
    - ``batch_growth="none"``: each milestone divides the LR by ``decay_factor``.
    - ``batch_growth="increase"`` (Smith et al. 2018): each milestone multiplies the batch by
      ``decay_factor`` instead, as long as the new batch is <= ``max_batch``; the LR is NOT
      re-scaled when the batch grows. Once a growth would exceed ``max_batch``, that and all
      later milestones divide the LR ("hybrid"). ``max_batch=None`` means unbounded.
    """

    base_lr: float
    base_batch: int
    batch_size: int
    epochs: int
    lr_scaling: str = "none"
    warmup: str = "none"
    warmup_epochs: float = 0.0
    decay_epochs: tuple[float, ...] = ()
    decay_factor: float = 10.0
    batch_growth: str = "none"
    max_batch: int | None = None
    # At most this many updates per epoch (the rest of the epoch's batches are skipped): a size
    # for rehearsals of long runs; None trains every full batch.
    max_iterations: int | None = None
    # Derived in __post_init__: ((first_epoch, batch, n_lr_decays), ...) starting at epoch 0.
    _phases: tuple[tuple[int, int, int], ...] = field(init=False, repr=False, compare=False)
    _peak_lr: float = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        set_ = object.__setattr__
        set_(self, "base_lr", _check_real("base_lr", self.base_lr, positive=True))
        _check_int("base_batch", self.base_batch)
        _check_int("batch_size", self.batch_size)
        _check_int("epochs", self.epochs)
        _check_choice("lr_scaling", self.lr_scaling, LR_SCALING)
        _check_choice("warmup", self.warmup, WARMUP)
        _check_choice("batch_growth", self.batch_growth, BATCH_GROWTH)
        warm = _check_real("warmup_epochs", self.warmup_epochs, positive=self.warmup != "none")
        set_(self, "warmup_epochs", warm)
        factor = _check_real("decay_factor", self.decay_factor, positive=True)
        if factor <= 1.0:
            raise ValueError(f"decay_factor must be > 1; got {self.decay_factor!r}")
        set_(self, "decay_factor", factor)
        set_(self, "decay_epochs", self._checked_milestones())
        if self.max_batch is not None:
            _check_int("max_batch", self.max_batch, minimum=self.batch_size)
        if self.max_iterations is not None:
            _check_int("max_iterations", self.max_iterations)
        set_(self, "_phases", self._build_phases())
        peak = scaled_lr(self.base_lr, self.base_batch, self.batch_size, self.lr_scaling)
        set_(self, "_peak_lr", peak)

    def _checked_milestones(self) -> tuple[float, ...]:
        raw = self.decay_epochs
        if isinstance(raw, str) or not isinstance(raw, list | tuple):
            raise ValueError(f"decay_epochs must be a list of epochs; got {raw!r}")
        ms = tuple(_check_real("decay_epochs", m, positive=True) for m in raw)
        if any(b <= a for a, b in zip(ms, ms[1:], strict=False)):
            raise ValueError(f"decay_epochs must be strictly increasing; got {list(raw)!r}")
        if ms and self.warmup != "none" and ms[0] < self.warmup_epochs:
            raise ValueError(
                f"decay_epochs must start at or after warmup_epochs={self.warmup_epochs}; "
                f"got {list(raw)!r}"
            )
        return ms

    def _build_phases(self) -> tuple[tuple[int, int, int], ...]:
        """Resolve each milestone into a batch growth or an LR decay, in order."""
        batch, decays = self.batch_size, 0
        phases = [(0, batch, decays)]
        growing = self.batch_growth == "increase"
        for m in self.decay_epochs:
            grown = batch * self.decay_factor
            # Once a growth is refused the batch stays put, so every later one is refused too.
            if growing and (self.max_batch is None or grown <= self.max_batch):
                if abs(grown - round(grown)) > 1e-9 * grown:
                    raise ValueError(
                        f"decay_factor={self.decay_factor} must grow batch {batch} to an "
                        "integer in batch_growth=increase"
                    )
                batch = round(grown)
            else:
                decays += 1
            phases.append((math.ceil(m), batch, decays))
        return tuple(phases)

    @classmethod
    def from_config(cls, cfg: dict, *, ignore_unknown: bool = False) -> Schedule:
        """Build from a config mapping with the field names as keys.

        Unknown keys are an error (a misspelt key would otherwise silently fall back to a
        default) unless ``ignore_unknown`` is set, e.g. to pass a whole flat run config.
        """
        allowed = [f.name for f in fields(cls) if f.init]
        missing = [k for k in _REQUIRED_KEYS if k not in cfg]
        if missing:
            raise ValueError(f"schedule config is missing required key(s): {', '.join(missing)}")
        unknown = sorted(set(cfg) - set(allowed))
        if unknown and not ignore_unknown:
            raise ValueError(
                f"unknown schedule key(s) {', '.join(map(str, unknown))}; "
                f"allowed: {', '.join(allowed)}"
            )
        return cls(**{k: cfg[k] for k in allowed if k in cfg})

    @property
    def peak_lr(self) -> float:
        """LR after warmup and before any decay (scaled at the initial batch)."""
        return self._peak_lr

    def _phase(self, epoch: int) -> tuple[int, int, int]:
        if epoch < 0:
            raise ValueError(f"epoch must be >= 0; got {epoch}")
        for phase in reversed(self._phases):
            if phase[0] <= epoch:
                return phase
        return self._phases[0]

    def batch_at(self, epoch: int) -> int:
        """Global batch size used throughout ``epoch``."""
        return self._phase(epoch)[1]

    def batches(self) -> list[int]:
        """Every global batch the run trains with, in order: one, unless the batch grows.

        Milestones at or after the last epoch never act, so their batches are not among them.
        """
        return list(dict.fromkeys(b for start, b, _ in self._phases if start < self.epochs))

    def iterations_in_epoch(self, epoch: int, n_train: int) -> int:
        """Number of updates in ``epoch``: the last partial batch is dropped."""
        batch = self.batch_at(epoch)
        n = n_train // batch
        if n == 0:
            raise ValueError(
                f"batch_size {batch} at epoch {epoch} is larger than the training set "
                f"(n_train={n_train}); no full batch to train on"
            )
        return n if self.max_iterations is None else min(n, self.max_iterations)

    def lr_at(self, epoch: int, iteration: int, iterations_per_epoch: int) -> float:
        """LR for update ``iteration`` (0-based) of ``epoch`` (0-based)."""
        if not 0 <= iteration < iterations_per_epoch:
            raise ValueError(f"iteration must be in [0, {iterations_per_epoch}); got {iteration}")
        if self.warmup != "none":
            t = epoch + iteration / iterations_per_epoch
            if t < self.warmup_epochs:
                if self.warmup == "constant":
                    return self.base_lr
                return self.base_lr + (self._peak_lr - self.base_lr) * t / self.warmup_epochs
        return self._peak_lr / self.decay_factor ** self._phase(epoch)[2]

    def _stretches(self) -> list[tuple[int, int]]:
        """(first epoch, epochs) of each stretch of epochs with one batch: the sums below go
        per stretch, not per epoch, since planning checks every run (e.g. 90 epochs x 1,000)."""
        starts = sorted({0} | {s for s, _, _ in self._phases if 0 < s < self.epochs})
        return [(s, e - s) for s, e in zip(starts, starts[1:] + [self.epochs], strict=True)]

    def total_updates(self, n_train: int) -> int:
        """Optimizer steps over the whole run."""
        return sum(self.iterations_in_epoch(s, n_train) * n for s, n in self._stretches())

    def total_samples(self, n_train: int) -> int:
        """Training samples actually processed (dropped partial batches excluded)."""
        return sum(
            self.iterations_in_epoch(s, n_train) * self.batch_at(s) * n
            for s, n in self._stretches()
        )

    def table(self, n_train: int) -> list[dict]:
        """Per-epoch rows (epoch, batch, lr at the epoch's first iteration, iterations, samples)."""
        rows = []
        for e in range(self.epochs):
            batch, its = self.batch_at(e), self.iterations_in_epoch(e, n_train)
            rows.append(
                {
                    "epoch": e,
                    "batch": batch,
                    "lr": self.lr_at(e, 0, its),
                    "iterations": its,
                    "samples": its * batch,
                }
            )
        return rows


def adapt_regime(schedule: Schedule, factor: float) -> Schedule:
    """Hoffer et al.'s regime adaptation: train ``factor`` times longer (in epochs).

    Epochs become round-half-up(epochs * factor); every milestone and ``warmup_epochs`` are
    multiplied by ``factor`` exactly (they may become fractional). With factor = B_large /
    B_small the large-batch run makes as many updates as the small-batch one.
    """
    factor = _check_real("factor", factor, positive=True)
    epochs = math.floor(schedule.epochs * factor + 0.5)
    if epochs < 1:
        raise ValueError(f"factor={factor} leaves fewer than 1 epoch of {schedule.epochs}")
    return replace(
        schedule,
        epochs=epochs,
        warmup_epochs=schedule.warmup_epochs * factor,
        decay_epochs=tuple(m * factor for m in schedule.decay_epochs),
    )


def noise_scale(lr: float, n_train: int, batch: int, momentum: float = 0.0) -> float:
    """Smith et al. 2018's SGD noise scale g = eps * (N/B - 1) / (1 - m).

    The exact form is returned; the paper mostly uses the approximation eps*N / (B*(1 - m))
    valid for B << N. Note g = 0 for full-batch training (B = N).
    """
    _check_int("n_train", n_train)
    _check_int("batch", batch)
    if batch > n_train:
        raise ValueError(f"batch must be <= n_train={n_train}; got {batch}")
    if not 0.0 <= momentum < 1.0:
        raise ValueError(f"momentum must be in [0, 1); got {momentum!r}")
    return lr * (n_train / batch - 1.0) / (1.0 - momentum)


def rescale_momentum_buffers(optimizer: Any, old_lr: float, new_lr: float) -> None:
    """Multiply every SGD ``momentum_buffer`` by old_lr / new_lr, in place.

    torch.optim.SGD (without nesterov or dampening) uses u <- m*u + g; w <- w - lr*u. Goyal
    et al. (section 2.1) call this form, with the LR outside the buffer, the one that needs no
    "momentum correction": changing the LR changes the next step smoothly. The UNcorrected
    form keeps the LR inside the buffer: v <- m*v + lr*g; w <- w - v, so v = lr*u as long as
    the LR is constant. Calling this at an LR change from old_lr to new_lr makes torch's next
    update equal the uncorrected one, m*old_lr*u + new_lr*g, i.e. it emulates the UNcorrected
    form (used to show why the correction matters). Do not call it for the default behaviour.
    """
    old_lr = _check_real("old_lr", old_lr, positive=True)
    new_lr = _check_real("new_lr", new_lr, positive=True)
    if old_lr == new_lr:
        return
    ratio = old_lr / new_lr
    for state in optimizer.state.values():
        buf = state.get("momentum_buffer")
        if buf is not None:
            buf.mul_(ratio)
