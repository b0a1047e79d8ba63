"""Progress lines of long jobs: share done, elapsed time and ETA, and the analyses' logging."""

from __future__ import annotations

import logging

import numpy as np
import pytest
import torch
from torch import nn

from lbgap import progress
from lbgap.analysis import sharpness
from lbgap.analysis.hessian import hutchinson_trace


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(0.4, "0s"), (42, "42s"), (59.6, "1m00s"), (185, "3m05s"), (7620, "2h07m")],
)
def test_duration(seconds, text):
    assert progress.duration(seconds) == text


def test_eta_is_the_rest_at_the_rate_so_far():
    assert progress.done_and_eta(2, 5, 10.0) == "40% done, ETA 15s"
    assert progress.done_and_eta(0, 5, 10.0) == "0% done, ETA unknown"
    # Resumed after 4 of 10 units: 2 more in 60 s leave 4 units, 120 s.
    assert progress.done_and_eta(6, 10, 60.0, done_before=4) == "60% done, ETA 2m00s"


def test_progress_times_from_its_start():
    now = [100.0]
    bar = progress.Progress(8, done=2, clock=lambda: now[0])
    now[0] = 130.0
    assert bar.line(5) == "elapsed 30s, 62% done, ETA 30s"


def test_sharpness_logs_every_iteration_of_every_start(caplog):
    h = np.array([1.0, 2.0, 3.0])

    def fn(x):
        return 0.5 * float(np.sum(h * x * x)), h * x

    converge = sharpness.Convergence(max_iter=4, random_starts=1, tol=0.0, patience=10)
    with caplog.at_level(logging.INFO, logger="lbgap.analysis.sharpness"):
        res = sharpness.sharpness_of_function(fn, np.ones(3), 0.1, max_iter=2, converge=converge)
    lines = [r.getMessage() for r in caplog.records]
    per_start = [res["converge_iterations"], res["starts"][0]["iterations"]]
    assert len(lines) == sum(per_start)
    assert lines[0].startswith("sharpness: start 1/2 iteration 1/4, f ")
    assert lines[-1].startswith(f"sharpness: start 2/2 iteration {per_start[1]}/4, f ")
    assert all("% done, ETA " in line and "elapsed " in line for line in lines)


def test_hutchinson_logs_each_probe(caplog):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 3))
    x, y = torch.randn(20, 4), torch.randint(0, 3, (20,))
    with caplog.at_level(logging.INFO, logger="lbgap.analysis.hessian"):
        hutchinson_trace(model, x, y, n_samples=4)
    lines = [r.getMessage() for r in caplog.records]
    assert [line.split(",")[0] for line in lines] == [
        f"hessian: trace probe {k}/4" for k in range(1, 5)
    ]
    assert "100% done, ETA 0s" in lines[-1]
