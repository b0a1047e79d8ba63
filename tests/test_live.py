"""Curves of a running sweep: finished runs' metrics.csv beside running runs' live files."""

from __future__ import annotations

import pandas as pd

from lbgap.training import live


def test_sweep_reads_finished_and_running_runs(tmp_path):
    done, running = tmp_path / "SB" / "seed0", tmp_path / "LB" / "seed0"
    for folder, name, epochs in ((done, "metrics.csv", 3), (running, live.LIVE_FILE, 2)):
        folder.mkdir(parents=True)
        acc = [50.0 + e for e in range(1, epochs + 1)]
        pd.DataFrame({"epoch": range(1, epochs + 1), "test_acc": acc}).to_csv(
            folder / name, index=False
        )
    frame = live.sweep(tmp_path)
    assert frame.groupby("run")["epoch"].max().to_dict() == {"LB/seed0": 2, "SB/seed0": 3}
    assert live.main([str(tmp_path), "--png", str(tmp_path / "sweep.png")]) == 0
    assert (tmp_path / "sweep.png").stat().st_size > 0
    assert (
        live.main([str(tmp_path / "SB"), "--metric", "lr", "--png", str(tmp_path / "x.png")]) == 1
    )
