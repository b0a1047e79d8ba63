"""Stop a SLURM run at its start when the plugin could not see its jobs finish.

The SLURM executor plugin reads job states with `sacct` (or `squeue`). Where `sacct` fails (no
accounting database) the plugin drops every job it submitted without a word and Snakemake
waits forever, so the main Snakemake checks the command once before submitting anything and
stops with one line naming the profile key to set.
"""

from __future__ import annotations

import re
import subprocess
from collections.abc import Callable

Run = Callable[..., subprocess.CompletedProcess]


def min_job_age(run: Run = subprocess.run) -> int | None:
    """slurmctld's MinJobAge in seconds: how long squeue still shows a finished job."""
    try:
        out = run(["scontrol", "show", "config"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return None
    found = re.search(r"^MinJobAge\s*=\s*(\d+)", out.stdout or "", re.MULTILINE)
    return int(found.group(1)) if found else None


def sacct_error(run: Run = subprocess.run) -> str | None:
    """None if `sacct` answers, else its first line of complaint."""
    cmd = ["sacct", "-X", "--noheader", "--parsable2", "--format=JobIdRaw,State"]
    try:
        out = run(cmd, capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired) as err:
        return str(err)
    if out.returncode == 0:
        return None
    lines = (out.stderr or out.stdout or "").strip().splitlines()
    return lines[0] if lines else f"exit status {out.returncode}"


def problem(status_command: str | None, init_seconds: int, run: Run = subprocess.run) -> str | None:
    """The one line to stop with, or None when the plugin's status command will work.

    With `squeue` the plugin still switches to `sacct` when MinJobAge is below 3 x the first
    status check's delay (a finished job could vanish from squeue unseen), so that case needs
    `sacct` too.
    """
    if status_command == "squeue":
        age = min_job_age(run)
        if age is not None and age >= 3 * init_seconds:
            return None
        error = sacct_error(run)
        if error is None:
            return None
        return (
            f"lbgap: sacct does not work on this cluster ({error}) and MinJobAge ({age} s) is "
            f"under 3 x slurm-init-seconds-before-status-checks ({init_seconds} s), so the "
            f"plugin would lose its jobs: set `slurm-init-seconds-before-status-checks: "
            f"{max(1, (age or 0) // 3)}` in your slurm profile (or ask for MinJobAge >= "
            f"{3 * init_seconds})"
        )
    error = sacct_error(run)
    if error is None:
        return None
    return (
        f"lbgap: sacct does not work on this cluster ({error}), so the SLURM plugin would lose "
        "track of every job: add `slurm-status-command: squeue` to your slurm profile's "
        "config.yaml"
    )


def check(workflow) -> None:
    """Stop with one line before the first submission if the main Snakemake runs the SLURM
    executor and its status command will not work."""
    plugin = getattr(workflow, "executor_plugin", None)
    if plugin is None or getattr(plugin, "name", None) != "slurm":
        return
    settings = workflow.executor_settings
    line = problem(
        getattr(settings, "status_command", None),
        int(getattr(settings, "init_seconds_before_status_checks", None) or 40),
    )
    if line:
        raise SystemExit(line)
