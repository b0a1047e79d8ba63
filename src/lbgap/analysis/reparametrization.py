"""Is sharpness a property of the function? Dinh et al.'s rescaling and a measure immune to it.

Dinh, Pascanu, Bengio, Bengio 2017 ("Sharp Minima Can Generalize For Deep Nets"): ReLU is
positively homogeneous, relu(a z) = a relu(z) for a > 0, so multiplying what a layer feeds into
a ReLU by alpha and the next layer's weights by 1 / alpha computes the same function with other
parameters. Keskar's phi and the Hessian's top eigenvalue are not invariant to that: one
minimum can be made as sharp or as flat as one likes without changing a single prediction.

`rescale` applies the move at every ReLU of a feed-forward stack. Where batch norm feeds the
ReLU (every Keskar network), its gamma and beta take the alpha: the normalization itself is
untouched, so the function is the same in both batch-norm evaluation modes, up to float
rounding. (Scaling the weights *before* a batch norm instead would leave its output unchanged
only up to its eps, and in running mode only with rescaled running statistics.)

`adaptive_sharpness` is Keskar's phi with Kwon et al. 2021's (ASAM) elementwise box, scaled
by |w|: the largest relative loss increase over |y_i| <= eps |x_i|. Any positive per-parameter
rescaling that keeps the function maps that box onto itself, so the measure is invariant. It
is maximized like phi (L-BFGS-B from y = 0, the same budget), in coordinates u = y / |x| with
|u_i| <= eps: in them the maximized function is the same for every rescaling of the network,
so L-BFGS-B takes the same steps, and the invariance holds numerically, not only in exact
arithmetic. A parameter at exactly 0 cannot move (ASAM's eta offset would break invariance).
"""

from __future__ import annotations

import copy
import logging

import numpy as np
import torch
from torch import Tensor, nn

from lbgap.analysis import sharpness as sharp

log = logging.getLogger(__name__)

# Modules that commute with a positive scalar factor: relu(a z) = a relu(z), max-pooling and
# average pooling, dropout (the identity in evaluation mode), reshaping.
HOMOGENEOUS = (
    nn.ReLU,
    nn.MaxPool1d,
    nn.MaxPool2d,
    nn.AvgPool2d,
    nn.AdaptiveAvgPool2d,
    nn.Dropout,
    nn.Flatten,
    nn.Identity,
)
AFFINE = (nn.Linear, nn.Conv1d, nn.Conv2d)
NORMS = (nn.modules.batchnorm._BatchNorm,)


def layers(model: nn.Module) -> list[nn.Module]:
    """The leaf modules of a feed-forward stack in the order they apply.

    Only nested nn.Sequential containers guarantee that order; a network with branches
    (residual blocks) is refused, since its leaves do not form one chain.
    """
    out: list[nn.Module] = []

    def walk(module: nn.Module) -> None:
        children = list(module.children())
        if not children:
            out.append(module)
            return
        if not isinstance(module, nn.Sequential):
            raise ValueError(
                f"rescaling needs a feed-forward stack (nested nn.Sequential); "
                f"{type(module).__name__} has branches or its own forward"
            )
        for child in children:
            walk(child)

    walk(model)
    return out


def rescaling_pairs(model: nn.Module) -> list[tuple[nn.Module, nn.Module]]:
    """(producer, consumer) around each ReLU: the batch norm (or linear/conv layer) whose output
    enters the ReLU, and the next linear/conv layer, reached through homogeneous modules only."""
    stack = layers(model)
    pairs = []
    for i, module in enumerate(stack):
        if not isinstance(module, nn.ReLU):
            continue
        producer = stack[i - 1] if i > 0 else None
        if not isinstance(producer, NORMS + AFFINE):
            raise ValueError(
                f"the ReLU at layer {i} follows {type(producer).__name__}: rescaling needs a "
                "batch norm or a linear/convolutional layer there"
            )
        if isinstance(producer, NORMS) and not producer.affine:
            raise ValueError(f"the batch norm at layer {i - 1} has no gamma and beta to rescale")
        consumer = None
        for after in stack[i + 1 :]:
            if isinstance(after, AFFINE):
                consumer = after
                break
            if not isinstance(after, HOMOGENEOUS):
                raise ValueError(
                    f"{type(after).__name__} after the ReLU at layer {i} is not positively "
                    "homogeneous: the rescaling would change the function"
                )
        if consumer is None:
            raise ValueError(f"no linear or convolutional layer after the ReLU at layer {i}")
        pairs.append((producer, consumer))
    if not pairs:
        raise ValueError("the network has no ReLU to rescale around")
    return pairs


@torch.no_grad()
def rescale(model: nn.Module, alpha: float) -> dict:
    """Apply Dinh et al.'s function-preserving rescaling in place and say what it scaled.

    At every ReLU: the producer's weight and bias (a batch norm's gamma and beta) times alpha,
    the consumer's weight times 1 / alpha (its bias is untouched: its input is unchanged). The
    first layer's weights and the last layer's bias keep their values.
    """
    if not (alpha > 0 and np.isfinite(alpha)):
        raise ValueError(f"alpha must be a positive number, got {alpha!r}")
    up = down = 0
    for producer, consumer in rescaling_pairs(model):
        for p in (producer.weight, producer.bias):
            if p is not None:
                p.mul_(alpha)
                up += p.numel()
        consumer.weight.div_(alpha)
        down += consumer.weight.numel()
    total = sum(p.numel() for p in model.parameters())
    return {"alpha": alpha, "scaled_up": up, "scaled_down": down, "n_params": total}


def rescaled(model: nn.Module, alpha: float) -> tuple[nn.Module, dict]:
    """A rescaled copy of `model` (the original is untouched) and what `rescale` scaled."""
    copied = copy.deepcopy(model)
    return copied, rescale(copied, alpha)


def adaptive_sharpness(
    model: nn.Module,
    inputs: Tensor,
    targets: Tensor,
    eps: float,
    max_iter: int = 10,
    seed: int = 0,
    chunk_size: int = 8192,
    optimizer: str = "scipy",
) -> dict:
    """Keskar's phi over Kwon et al.'s box |y_i| <= eps |x_i|, invariant to rescaling.

    Call with the model in its evaluation mode (as for `lbgap.analysis.sharpness.sharpness`); the
    model's parameters are never modified. The result has phi's keys (`phi` is the adaptive
    measure) and `zero_params`, the parameters at exactly 0, which the box holds fixed.
    `optimizer` "device" maximizes on the model's device (see `sharp.sharpness_of_function`).
    """
    if optimizer == "device":
        x0 = sharp.flat_params(model).double()
        fn = sharp.flat_loss_and_grad_tensor(model, inputs, targets, chunk_size)
    else:
        x0 = sharp.flat_params(model).double().cpu().numpy()
        fn = sharp.flat_loss_and_grad(model, inputs, targets, chunk_size)
    scale = abs(x0)

    def in_units(u):  # noqa: ANN001, ANN202 (numpy or tensor, as the optimizer works)
        f, grad = fn(x0 + scale * u)
        return f, scale * grad

    # From u = 0 with the box |u_i| <= eps (x0 = 0 gives phi's box eps (|0| + 1) = eps).
    u0 = x0.new_zeros(x0.shape) if optimizer == "device" else np.zeros_like(x0)
    result = sharp.sharpness_of_function(
        in_units, u0, eps, max_iter=max_iter, seed=seed, optimizer=optimizer
    )
    result["zero_params"] = int((scale == 0).sum())
    result["seed"] = seed
    return result
