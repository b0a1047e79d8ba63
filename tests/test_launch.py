"""The launcher's commands, without a cluster (the jobs' resources: test_resources.py)."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from lbgap.training import launch

TRAIN = ["--spec", "{}", "--out", "results/x"]


def args(*argv: str):
    return launch.parse_args([*argv, "--", *TRAIN])


def test_one_process_runs_the_trainer_directly():
    cmd = launch.command(args(), {})
    assert cmd == [sys.executable, "-m", "lbgap.training.train", *TRAIN]


def test_one_node_is_standalone_torchrun():
    cmd = launch.command(args("--nproc-per-node", "2"), {})
    assert cmd[:4] == [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node=2"]
    assert "--standalone" in cmd and not any(c.startswith("--rdzv") for c in cmd)
    assert cmd[-6:] == ["-m", "lbgap.training.train", *TRAIN]


def fake_tool(folder: Path, name: str, body: str) -> None:
    script = folder / name
    script.write_text(f"#!/bin/sh\n{body}\n")
    script.chmod(script.stat().st_mode | stat.S_IEXEC)


@pytest.fixture
def fake_scontrol(tmp_path, monkeypatch) -> None:
    """`scontrol show hostnames` and `squeue -j 4711` answering for a two-node allocation."""
    fake_tool(tmp_path, "scontrol", '[ "$3" = "gpu[07-08]" ] && printf "gpu07\\ngpu08\\n"')
    fake_tool(tmp_path, "squeue", '[ "$3" = 4711 ] && [ "$5" = "%N %D" ] && echo "gpu[07-08] 2"')
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}{os.environ['PATH']}")


SLURM_ENV = {"SLURM_JOB_ID": "4711", "SLURM_JOB_NODELIST": "gpu[07-08]", "SLURM_JOB_NUM_NODES": "2"}


def test_several_nodes_meet_at_the_first_node(fake_scontrol):
    cmd = launch.command(args("--nproc-per-node", "8", "--nodes", "2", "--threads", "4"), SLURM_ENV)
    srun = cmd[: cmd.index(sys.executable)]
    assert srun[:2] == ["srun", "--overlap"]
    assert {"--nodes=2", "--ntasks=2", "--ntasks-per-node=1", "--cpus-per-task=32"} <= set(srun)
    torchrun = cmd[len(srun) :]
    assert "--nnodes=2" in torchrun and "--rdzv-backend=c10d" in torchrun
    assert "--rdzv-endpoint=gpu07:30211" in torchrun and "--rdzv-id=lbgap4711" in torchrun
    assert "--standalone" not in torchrun


def test_allocation_from_squeue_when_the_plugin_cleared_it(fake_scontrol):
    """The SLURM plugin removes SLURM_JOB_NODELIST and SLURM_JOB_NUM_NODES from jobs' commands."""
    cmd = launch.command(args("--nodes", "2"), {"SLURM_JOB_ID": "4711"})
    assert "--nnodes=2" in cmd and "--rdzv-endpoint=gpu07:30211" in cmd


def test_rendezvous_port_can_be_set(fake_scontrol):
    env = {**SLURM_ENV, "LBGAP_RDZV_PORT": "31000"}
    cmd = launch.command(args("--nodes", "2"), env)
    assert "--rdzv-endpoint=gpu07:31000" in cmd


def test_forced_c10d_on_one_node_uses_the_allocation(fake_scontrol):
    env = {**SLURM_ENV, "SLURM_JOB_NUM_NODES": "1"}
    cmd = launch.command(args("--rendezvous", "c10d"), env)
    assert cmd[0] == "srun" and "--nnodes=1" in cmd


@pytest.mark.parametrize(
    ("argv", "env", "message"),
    [
        (("--nodes", "2"), {}, "inside a SLURM job"),
        (("--nodes", "2"), {**SLURM_ENV, "SLURM_JOB_NUM_NODES": "1"}, "allocation has 1"),
        (("--nodes", "2", "--rendezvous", "standalone"), SLURM_ENV, "c10d"),
    ],
)
def test_impossible_requests_are_clear_errors(argv, env, message):
    with pytest.raises(SystemExit, match=message):
        launch.command(args(*argv), env)


def test_launcher_execs_torchrun_with_signals_handled(tmp_path):
    """The launcher becomes torchrun (same pid), so SLURM's signals reach it directly."""
    fake = tmp_path / "python"
    fake.write_text('#!/bin/sh\necho "pid $$ $OMP_NUM_THREADS $TORCHELASTIC_SIGNALS_TO_HANDLE"\n')
    fake.chmod(0o755)
    code = (
        "import os, sys; from lbgap.training import launch; print('pid', os.getpid(), flush=True); "
        f"sys.executable = {str(fake)!r}; launch.main(['--threads', '3', '--', '--out', 'x'])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    pids = [line.split()[1] for line in out.stdout.splitlines() if line.startswith("pid")]
    assert len(pids) == 2 and pids[0] == pids[1]
    assert f"pid {pids[0]} 3 " in out.stdout and "SIGUSR1" in out.stdout


def test_the_signal_relay_is_only_for_a_process_that_becomes_training(monkeypatch):
    """srun passes step signals on itself; a relay to it would send a second TERM, on which srun
    forces the job's end before the checkpoint is written."""
    started = []
    monkeypatch.setattr(launch.subprocess, "Popen", lambda cmd, **kw: started.append(cmd))
    env = {"SLURM_JOB_ID": "7"}
    args = launch.parse_args(["--nodes", "1", "--", "--spec", "s.json"])
    launch.start_relay(args, env, ["srun", "--overlap"])
    assert started == []
    launch.start_relay(args, env, [sys.executable, "-m", "lbgap.training.train"])
    assert len(started) == 1 and "--relay-to" in started[0]
