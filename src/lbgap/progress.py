"""How far a long job is and when it should end, for its log lines (training, analyses).

Only what is printed uses these: no result depends on a clock, so results stay deterministic.
"""

from __future__ import annotations

import logging
import sys
import time


def duration(seconds: float) -> str:
    """Seconds as a reader wants them in a log line: "42s", "3m05s", "2h07m"."""
    s = max(int(round(seconds)), 0)
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s // 3600}h{s % 3600 // 60:02d}m"


def done_and_eta(done: float, total: float, elapsed: float, done_before: float = 0.0) -> str:
    """ "40% done, ETA 1m05s": the share of `total` done, and the rest at the rate of the
    `done - done_before` units that took `elapsed` seconds."""
    if total <= 0:
        return "100% done"
    share = min(max(done / total, 0.0), 1.0)
    rate_done = done - done_before
    if rate_done <= 0 or elapsed <= 0:
        return f"{100 * share:.0f}% done, ETA unknown"
    left = max(total - done, 0.0)
    return f"{100 * share:.0f}% done, ETA {duration(elapsed * left / rate_done)}"


class Progress:
    """Elapsed time and ETA of `total` units of work, timed from its creation, when `done`
    units were already done (a resumed run): the ETA uses this process's rate."""

    def __init__(self, total: float, done: float = 0.0, clock=time.monotonic) -> None:
        self.total, self.done_before, self.clock, self.start = total, done, clock, clock()

    def elapsed(self) -> float:
        return self.clock() - self.start

    def line(self, done: float) -> str:
        """ "elapsed 12s, 40% done, ETA 18s" after `done` units."""
        elapsed = self.elapsed()
        eta = done_and_eta(done, self.total, elapsed, self.done_before)
        return f"elapsed {duration(elapsed)}, {eta}"


def log_to_stderr() -> None:
    """The analyses' progress (module loggers at INFO) as plain lines in the job's log."""
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
