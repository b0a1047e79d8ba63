"""The report's parts on constructed inputs: compute hours, provenance facts, HTML, index."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from paper_fakes import quick_config

from lbgap.products import htmlview, index_page, provenance

BENCH_HEADER = "s\th:m:s\tmax_rss\tmax_vms\tmax_uss\tmax_pss\tio_in\tio_out\tmean_load\tcpu_time\n"


def bench(path: Path, wall_s: float, cpu_s: float) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(BENCH_HEADER + f"{wall_s}\t0:00:00\t1\t1\t1\t1\t0\t0\t50\t{cpu_s}\n")


def test_compute_sums_wall_cpu_and_gpu_hours_per_paper(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    config = quick_config()
    config["scales"]["quick"]["threads"] = 2
    cpu_run = Path("results/keskar2017/F1/SB/seed0")
    gpu_run = Path("results/keskar2017/F1/LB/seed0")
    bench(cpu_run / "benchmark.tsv", 3600, 1800)
    bench(cpu_run / "benchmark_sharpness_full_eps1e-3.tsv", 1800, 900)  # an analysis job
    bench(gpu_run / "benchmark.tsv", 7200, 3600)
    bench(gpu_run / "benchmark_earlier_attempts.tsv", 720, 360)  # preempted once: same job
    (gpu_run / "summary.json").write_text(json.dumps({"device": "cuda:0", "world_size": 2}))
    bench(Path("results/keskar2017/F1/benchmark_parametric_seed0.tsv"), 360, 360)
    bench(Path("results/keskar2017/F1/OLD/seed0/benchmark.tsv"), 10**6, 10**6)  # not in matrix
    table = provenance.compute(config, [cpu_run, gpu_run]).set_index("paper")
    row = table.loc["keskar2017"]
    assert row["jobs"] == 4
    assert row["wall_h"] == pytest.approx(1 + 0.5 + 2 + 0.2 + 0.1)
    assert row["cpu_h"] == pytest.approx(2 * 3.8)  # 2 threads x 1 task each
    assert row["gpu_h"] == pytest.approx(2 * 2.2)  # the CUDA run: 2.2 h x world size 2
    assert row["cpu_time_h"] == pytest.approx(0.5 + 0.25 + 1 + 0.1 + 0.1)
    assert table.loc["total", "wall_h"] == pytest.approx(row["wall_h"])


def test_runs_devices_say_how_they_computed(tmp_path):
    runs = {
        "cpu": {"device": "cpu", "world_size": 1, "acceleration": {"amp": "fp32",
                "channels_last": False, "compile": None, "deterministic": True}},
        "gpu": {"device": "cuda:0", "world_size": 8, "acceleration": {"amp": "bf16",
                "channels_last": True, "compile": "reduce-overhead", "deterministic": False}},
        "old": {"device": "cpu", "world_size": 1},
    }  # fmt: skip
    dirs = []
    for name, summary in runs.items():
        run_dir = tmp_path / "results" / "paper_x" / "exp" / name / "seed0"
        run_dir.mkdir(parents=True)
        (run_dir / "summary.json").write_text(json.dumps({**summary, "spec": {"paper": "p"}}))
        dirs.append(run_dir)
    labels = provenance.run_devices(dirs)["p"]
    assert labels == (
        "1 run on cpu x 1; 1 run on cpu x 1, fp32; 1 run on cuda:0 x 8, bf16, "
        "channels_last, compile reduce-overhead, autotuned (not bit-exact) kernels"
    )


def test_git_state_outside_a_checkout_says_unknown(tmp_path):
    assert provenance.git_state(tmp_path)["commit"].startswith("unknown")


def test_provenance_lists_each_data_manifest_with_its_checksums(tmp_path):
    manifest = tmp_path / "mnist_quick.json"
    manifest.write_text(
        json.dumps(
            {
                "dataset": "mnist",
                "source": "bundled",
                "n_train": 500,
                "n_test": 200,
                "prepared_sha256": "ab" * 32,
                "source_files": {"a.gz": "cd" * 32},
            }
        )
    )
    (entry,) = provenance.manifests([str(manifest)])
    assert entry["prepared sha256"] == "ab" * 32
    assert entry["source files"] == f"a.gz sha256 {'cd' * 32}"
    flat = provenance.flat({"data": [entry]})
    assert ("data", "mnist prepared sha256", "ab" * 32) in set(flat.itertuples(index=False))


def test_config_hash_ignores_key_order():
    assert provenance.config_hash({"a": 1, "b": [1, 2]}) == provenance.config_hash(
        {"b": [1, 2], "a": 1}
    )
    assert provenance.config_hash({"a": 1}) != provenance.config_hash({"a": 2})


def test_markdown_tables_and_text_become_html():
    md = (
        "# Title `x`\n\nSome **bold** text\nacross lines.\n\n"
        "| a | b |\n|:--|--:|\n| 1 \\| 2 | <3> |\n\n- one\n  more\n- two\n\n```yaml\nk: v\n```\n"
    )
    out = htmlview.markdown_to_html(md)
    assert "<h1>Title <code>x</code></h1>" in out
    assert "<p>Some <strong>bold</strong> text across lines.</p>" in out
    assert "<td>1 | 2</td><td>&lt;3&gt;</td>" in out
    assert "<li>one more</li><li>two</li>" in out
    assert "<pre>k: v</pre>" in out


def test_index_links_the_files_it_is_given(tmp_path):
    reports = tmp_path / "reports"
    for name in ("tables/p_t.csv", "tables/p_t.md", "figures/p_f.png", "figures/p_f.pdf"):
        (reports / name).parent.mkdir(parents=True, exist_ok=True)
        (reports / name).write_text("# A title\n" if name.endswith(".md") else "x")
    claims_csv = reports / "tables/claims.csv"
    pd.DataFrame(
        [{"claim": "c", "paper": "p", "statement": "S", "case": "-", "a": "A", "b": "B",
          "a_n": 0, "b_n": 0, "verdict": "not run at this scale", "note": "no table"}]
    ).to_csv(claims_csv, index=False)  # fmt: skip
    files = [reports / f for f in ("tables/p_t.csv", "tables/p_t.md", "figures/p_f.png")]
    page = index_page.build(
        reports / "index.html", {"p": files}, {"p": "Paper P"}, claims_csv, [], "quick"
    )
    for href in ("tables/p_t.csv", "tables/p_t.md", "figures/p_f.png", "tables/claims.csv"):
        assert f'href="{href}"' in page
    assert "figures/p_f.pdf" not in page  # only what it was given
    assert "A title" in page and "Paper P" in page and "not run at this scale" in page
