"""Speed settings of a training run: bf16 autocast, channels_last, torch.compile, determinism.

They change how fast a run goes and, for bf16, its rounding, never its method. Each is resolved
against the device the run got (`auto` means: on a GPU yes, on a CPU no), and the resolved
values are recorded in the run's summary, so a result always says how it was computed.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import asdict, dataclass

import torch
from torch import nn

from lbgap.config.run_spec import RunSpec

AMP_MODES = ("auto", "bf16", "fp32")
# torch.compile modes; reduce-overhead adds CUDA graphs, which pay off where a step is short.
COMPILE_MODES = ("default", "reduce-overhead", "max-autotune")


@dataclass(frozen=True)
class Acceleration:
    amp: str  # "bf16" or "fp32"
    channels_last: bool
    compile: str | None  # a torch.compile mode, or None for eager
    deterministic: bool

    @classmethod
    def resolve(cls, spec: RunSpec, device: torch.device, model: nn.Module) -> Acceleration:
        """The settings this run uses on `device`; `auto` turns a switch on for GPUs only."""
        gpu = device.type == "cuda"
        amp = spec.amp
        if amp not in AMP_MODES:
            raise ValueError(f"amp must be one of {AMP_MODES}, got {amp!r}")
        bf16_gpu = gpu and torch.cuda.is_bf16_supported()
        if amp == "auto":
            amp = "bf16" if bf16_gpu else "fp32"
        if amp == "bf16" and gpu and not bf16_gpu:
            raise ValueError(
                "amp: bf16 needs a GPU with bfloat16 support (Ampere or newer); set amp: auto"
            )
        layout = spec.channels_last
        if layout == "auto":
            layout = gpu
        has_conv = any(isinstance(m, nn.Conv2d) for m in model.modules())
        return cls(
            amp=amp,
            channels_last=bool(layout) and has_conv,
            compile=compile_mode(spec.compile),
            deterministic=bool(spec.deterministic),
        )

    def autocast(self, device: torch.device) -> contextlib.AbstractContextManager:
        """bf16 autocast for the forward pass and loss, or nothing."""
        if self.amp == "bf16":
            return torch.autocast(device.type, dtype=torch.bfloat16)
        return contextlib.nullcontext()

    def prepare_model(self, model: nn.Module) -> nn.Module:
        return model.to(memory_format=torch.channels_last) if self.channels_last else model

    def prepare_inputs(self, x: torch.Tensor) -> torch.Tensor:
        if self.channels_last and x.dim() == 4:
            return x.contiguous(memory_format=torch.channels_last)
        return x

    def wrap(self, net: nn.Module) -> nn.Module:
        """torch.compile the training network (after DDP wrapping, as DDP's optimizer expects)."""
        return torch.compile(net, mode=self.compile) if self.compile else net

    def begin_step(self) -> None:
        """Tell CUDA graphs that a new training step starts (their outputs may be reused)."""
        if self.compile == "reduce-overhead":
            torch.compiler.cudagraph_mark_step_begin()

    def as_dict(self) -> dict:
        return asdict(self)


def compile_mode(value: bool | str | None) -> str | None:
    """The config's `compile`: false (eager), true (torch.compile's default mode) or a mode."""
    if value in (False, None):
        return None
    if value is True:
        return "default"
    if value not in COMPILE_MODES:
        raise ValueError(f"compile must be false, true or one of {COMPILE_MODES}, got {value!r}")
    return value


def configure_determinism(device: torch.device, deterministic: bool) -> None:
    """On GPUs, deterministic cuDNN/cuBLAS kernels (same seed, same numbers) or autotuned ones.

    Ops with no deterministic CUDA kernel warn instead of failing. Must run before the first
    cuBLAS call: cuBLAS reads its workspace setting when it starts.
    """
    if device.type != "cuda":
        return
    if deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    torch.backends.cudnn.benchmark = not deterministic
    torch.backends.cudnn.deterministic = deterministic
    torch.use_deterministic_algorithms(deterministic, warn_only=True)
