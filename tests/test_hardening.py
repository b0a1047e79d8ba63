"""Faults heal or are named: damaged files, a full disk, file permissions, care settings."""

from __future__ import annotations

import copy
import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
import torch
from conftest import run_snakemake, tiny_config, write_config
from test_resume import assert_same_run, make_spec
from test_train import spec_file

from lbgap import io
from lbgap.analysis import checkpoints as runs
from lbgap.config import matrix
from lbgap.data import prepare as data
from lbgap.training import train


# ---------------------------------------------------------------- damaged files
def test_damaged_state_is_set_aside_and_the_run_starts_afresh(tmp_path, prepared_mnist, capsys):
    spec = make_spec(prepared_mnist)
    out = tmp_path / "run"
    out.mkdir()
    (out / train.STATE_FILE).write_bytes(b"PK\x03\x04 truncated")
    train.run(spec, out)
    said = capsys.readouterr().out
    assert "state.pt is damaged" in said and "set aside as" in said and "starting afresh" in said
    assert (out / "state.pt.corrupt").exists() and not (out / train.STATE_FILE).exists()
    train.run(spec, tmp_path / "clean")
    assert_same_run(out, tmp_path / "clean")


def test_damaged_checkpoint_is_named_with_the_fix(tmp_path, prepared_mnist):
    spec = make_spec(prepared_mnist)
    spec["schedule"]["epochs"] = 1
    train.run(spec, tmp_path)
    checkpoint = tmp_path / "checkpoint.pt"
    checkpoint.write_bytes(checkpoint.read_bytes()[:200])
    with pytest.raises(io.DamagedFile) as err:
        runs.load_run(tmp_path)
    message = str(err.value)
    assert "\n" not in message and str(checkpoint) in message and "rerun" in message


def test_damaged_prepared_data_is_named_by_its_checksum(tmp_path, prepared_mnist):
    copy_ = tmp_path / prepared_mnist.name
    copy_.write_bytes(prepared_mnist.read_bytes()[:-10])
    copy_.with_suffix(".json").write_text(prepared_mnist.with_suffix(".json").read_text())
    with pytest.raises(io.DamagedFile, match="does not match the SHA-256"):
        data.load_prepared(copy_)
    assert data.load_prepared(prepared_mnist)["n_train"] == 500


def test_train_says_damaged_files_in_one_line(tmp_path, prepared_mnist, capsys):
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a checkpoint")
    spec = make_spec(prepared_mnist, init_checkpoint=str(bad))
    argv = ["--spec", spec_file(tmp_path, spec), "--out", str(tmp_path / "run")]
    assert train.main(argv) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and str(bad) in err and "\n" not in err


def test_a_warm_start_whose_source_stopped_early_says_so_in_one_line(
    tmp_path, prepared_mnist, capsys
):
    """A source run that stopped on `patience` before the warm start's epoch saved no weights
    for it: one line names the file, the epoch the source stopped at and the fix."""
    source = tmp_path / "SB" / "seed0"
    source.mkdir(parents=True)
    (source / "summary.json").write_text(json.dumps({"status": "completed", "epochs": 3}))
    missing = source / "checkpoint_epoch10.pt"
    spec = make_spec(prepared_mnist, init_checkpoint=str(missing))
    argv = ["--spec", spec_file(tmp_path, spec), "--out", str(tmp_path / "run")]
    assert train.main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: warm start: ") and "\n" not in err
    assert str(missing) in err and "stopped after 3 epochs" in err and "patience" in err


# ---------------------------------------------------------------- disk and permissions
@pytest.fixture
def tiny_disk(tmp_path):
    """A 256 KiB tmpfs (root only); skipped where mounting is not allowed."""
    where = tmp_path / "disk"
    where.mkdir()
    mount = ["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(where)]
    if subprocess.run(mount, capture_output=True).returncode:
        pytest.skip("cannot mount a tmpfs here (needs root)")
    yield where
    subprocess.run(["umount", str(where)], check=False)


def test_full_disk_says_so_and_keeps_the_last_good_copy(tiny_disk):
    path = tiny_disk / "state.pt"
    io.save_torch(path, {"w": torch.zeros(10)})
    good = path.read_bytes()
    with pytest.raises(io.DiskFull) as err:
        io.save_torch(path, {"w": torch.zeros(200_000)})  # 800 KB
    assert "No space left on device" in str(err.value) and str(path) in str(err.value)
    assert path.read_bytes() == good
    assert [p.name for p in tiny_disk.iterdir()] == ["state.pt"]  # no temporary left behind


@pytest.mark.parametrize(("umask", "mode"), [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
def test_files_get_the_permissions_the_umask_allows(tmp_path, umask, mode):
    old = os.umask(umask)
    try:
        path = io.write_text(tmp_path / "table.md", "x")
    finally:
        os.umask(old)
    assert path.stat().st_mode & 0o777 == mode


# ---------------------------------------------------------------- care settings
def test_how_a_run_is_looked_after_is_not_part_of_it(repo_config):
    config = matrix.prepare_config(copy.deepcopy(repo_config))
    other = matrix.prepare_config({**copy.deepcopy(repo_config), "checkpoint_minutes": 1})
    run = matrix.Run("keskar2017", "F1", "SB", 0)
    assert matrix.spec(config, run) == matrix.spec(other, run)
    assert "checkpoint_minutes" not in matrix.spec(config, run).to_dict()


@pytest.mark.e2e
def test_changing_care_settings_reruns_nothing(repo_config, tmp_path):
    cfg = tiny_config(repo_config, papers=["keskar2017"], epochs=1)
    write_config(tmp_path, cfg)
    target = "results/keskar2017/F1/SB/seed0/summary.json"
    done = run_snakemake(tmp_path, "--cores", "2", target)
    assert done.returncode == 0, done.stderr[-3000:]
    care = ["--config", "checkpoint_minutes=1", "retries=3"]
    again = run_snakemake(tmp_path, "-n", target, *care)
    assert again.returncode == 0 and "Nothing to be done" in again.stdout + again.stderr


def test_checkpoint_minutes_reaches_the_run_from_the_command_line(tmp_path, prepared_mnist):
    seen = []
    real = train.Trainer.__init__

    def spy(self, *args, **kwargs):
        real(self, *args, **kwargs)
        seen.append(self.checkpoint_s)

    spec = make_spec(prepared_mnist)
    spec["schedule"]["epochs"] = 1
    argv = ["--spec", spec_file(tmp_path, spec), "--out", str(tmp_path)]
    with pytest.MonkeyPatch.context() as m:
        m.setattr(train.Trainer, "__init__", spy)
        assert train.main([*argv, "--checkpoint-minutes", "2.5"]) == 0
    assert seen == [150.0]
    assert Path(tmp_path / "summary.json").exists()


@pytest.mark.e2e
def test_a_damaged_prepared_dataset_is_prepared_again(repo_config, tmp_path):
    cfg = tiny_config(repo_config, papers=["keskar2017"], epochs=1)
    write_config(tmp_path, cfg)
    prepared = "data/prepared/mnist_quick.pt"
    assert run_snakemake(tmp_path, "--cores", "1", prepared).returncode == 0
    good = (tmp_path / prepared).read_bytes()
    (tmp_path / prepared).write_bytes(good[:-100])
    dry = run_snakemake(tmp_path, "-n", prepared)  # a dry run says so and writes nothing
    assert dry.returncode == 0 and "preparing it again" in dry.stderr
    assert (tmp_path / prepared).read_bytes() == good[:-100]
    healed = run_snakemake(tmp_path, "--cores", "1", prepared)
    assert healed.returncode == 0, healed.stderr[-3000:]
    assert "does not match the SHA-256" in healed.stderr and "preparing it again" in healed.stderr
    assert (tmp_path / prepared).read_bytes() == good


def test_write_if_changed_keeps_an_unchanged_file_untouched(tmp_path):
    """Specs and plans are inputs whose modification time must only move with their content."""
    path = tmp_path / "spec.json"
    assert io.write_if_changed(path, "{}\n") is True
    os.utime(path, (1_000_000, 1_000_000))
    assert io.write_if_changed(path, "{}\n") is False
    assert path.stat().st_mtime == 1_000_000
    assert io.write_if_changed(path, '{"epochs": 3}\n') is True
    assert path.read_text() == '{"epochs": 3}\n' and path.stat().st_mtime > 1_000_000


@pytest.mark.e2e
def test_a_new_version_of_a_rules_command_reruns_nothing(repo_config, tmp_path):
    """Updating lbgap must not throw away finished training: the train rule's command changing
    (as it does when the launcher gains an option) is not a reason to rerun; a spec change is."""
    from conftest import ROOT

    work = tmp_path / "work"
    write_config(work, tiny_config(repo_config, papers=["keskar2017"], epochs=1))
    flow = tmp_path / "flow"
    flow.mkdir()
    shutil.copy(ROOT / "Snakefile", flow / "Snakefile")
    shutil.copytree(ROOT / "workflow", flow / "workflow")
    for shared in ("src", "profiles", "envs"):
        (flow / shared).symlink_to(ROOT / shared)
    target = "results/keskar2017/F1/SB/seed0/summary.json"
    args = ["-s", str(flow / "Snakefile"), "--workflow-profile", str(flow / "profiles/default")]
    done = run_snakemake(work, *args, "--cores", "2", target)
    assert done.returncode == 0, done.stderr[-3000:]
    train_rule = flow / "workflow/rules/train.smk"
    text = train_rule.read_text()
    assert '"exec python -m lbgap.training.launch ' in text
    train_rule.write_text(
        text.replace(
            '"exec python -m lbgap.training.launch ', '"exec python -m lbgap.training.launch  '
        )
    )
    again = run_snakemake(work, *args, "-n", target)
    assert again.returncode == 0 and "Nothing to be done" in again.stdout + again.stderr
    (work / "narrower.yaml").write_text("scales:\n  quick:\n    width: 0.3\n")
    more = ["--configfile", str(work / "config.yaml"), str(work / "narrower.yaml")]
    changed = run_snakemake(work, *args, "-n", target, *more)
    assert "Updated input files: results/keskar2017/F1/SB/seed0/spec.json" in changed.stdout
