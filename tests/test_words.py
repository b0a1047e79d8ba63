"""Counts in messages, tables and figures read as English: "1 seed", never "1 seeds"."""

from __future__ import annotations

from lbgap.config import matrix
from lbgap.products import results
from lbgap.words import plural


def test_plural_is_singular_for_exactly_one():
    assert [plural(n, "seed") for n in (0, 1, 2)] == ["0 seeds", "1 seed", "2 seeds"]
    assert plural(1, "analysis", "analyses") == "1 analysis"
    assert plural(3, "analysis", "analyses") == "3 analyses"


def test_a_table_cell_of_one_diverged_seed():
    assert results.format_cell({"n": 0}, diverged=1) == "diverged (1 seed)"
    assert results.format_cell({"n": 0}, diverged=2) == "diverged (2 seeds)"


def test_a_warm_start_after_the_source_run_s_only_epoch(repo_config):
    config = matrix.prepare_config(repo_config)
    config["papers"]["keskar2017"]["experiments"]["F1"]["epochs"] = {"quick": 1}
    reason = matrix.variant_skip_reason(config, "keskar2017", "F1_warmstart", "k2")
    assert reason == "F1/SB trains only 1 epoch at this scale"
