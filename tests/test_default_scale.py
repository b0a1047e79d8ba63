"""The default (quick) scale on real data, its fallback, and extending the matrix without edits:
a subset with `only`, derived experiments that follow their base, scales of one's own."""

from __future__ import annotations

import copy

import pytest
import yaml
from conftest import ROOT, run_snakemake, write_config
from test_data import write_mnist

from lbgap.config import matrix
from lbgap.data import prepare as data
from lbgap.products import outputs

KESKAR = "keskar2017"


def prepared(cfg: dict) -> dict:
    return matrix.prepare_config(copy.deepcopy(cfg))


def keskar_plan(cfg: dict) -> dict:
    specs = {r: matrix.spec(cfg, r) for r in matrix.runs(cfg, KESKAR)}
    return outputs.plan(cfg, KESKAR, specs)["experiments"]


@pytest.fixture
def with_fashion(monkeypatch):
    """As on a machine where Fashion-MNIST is installed (the system package or data_root)."""
    monkeypatch.setattr(matrix, "present", lambda name, root, system=True: True)


@pytest.fixture
def without_fashion(monkeypatch):
    monkeypatch.setattr(matrix, "present", lambda name, root, system=True: name != "fashion_mnist")


def test_system_package_files_are_read_gzipped_as_shipped(tmp_path, monkeypatch):
    package = tmp_path / "usr-share-datasets"
    arrays = write_mnist(package, "fashion-mnist", gz=True)
    (package / "fashion-mnist" / "raw").rename(package / "fm")  # the package's flat layout
    monkeypatch.setitem(data.SYSTEM_FOLDERS, "fashion_mnist", (package / "fm",))
    root, out = tmp_path / "data", tmp_path / "fm.pt"
    assert data.present("fashion_mnist", root) and not data.present("fashion_mnist", root, False)
    record = data.prepare("fashion_mnist", root, out, tmp_path / "fm.json")
    assert record["source"] == f"system package dataset-fashion-mnist ({package / 'fm'})"
    assert all(name.endswith(".gz") for name in record["source_files"])
    assert record["n_train"] == len(arrays["train"][1])
    with pytest.raises(data.DataUnavailable, match="dataset-fashion-mnist"):
        data.prepare("fashion_mnist", root, out, tmp_path / "fm.json", system=False)


def test_quick_runs_keskar_f1_on_60000_fashion_mnist_images_lb_ten_percent(
    repo_config, with_fashion
):
    cfg = prepared(repo_config)
    for experiment, variant in (("F1", "LB"), ("F1_warmstart", "k2")):
        spec = matrix.spec(cfg, matrix.Run(KESKAR, experiment, variant, 0))
        assert (spec.dataset, spec.n_train, spec.batch_size) == (
            "fashion_mnist", 60000, 6000)  # fmt: skip
    assert matrix.spec(cfg, matrix.Run(KESKAR, "F1", "SB", 2)).batch_size == 256
    plan = keskar_plan(cfg)
    assert plan["F1"]["label"] == "F1 (Fashion-MNIST)"
    assert "the paper's columns are its MNIST numbers" in plan["F1"]["note"]
    assert len(plan["F1"]["variants"]["SB"]["dirs"]) == 3  # every testable claim on 3 seeds
    assert "--train-size" not in matrix.size_args(cfg, "quick", "fashion_mnist")
    assert matrix.size_args(cfg, "quick", "mnist") == "--train-size 4000 --test-size 1000"


def test_without_fashion_mnist_quick_falls_back_to_the_bundled_digits_and_says_so(
    repo_config, without_fashion, capsys
):
    cfg = prepared(repo_config)
    spec = matrix.spec(cfg, matrix.Run(KESKAR, "F1", "LB", 0))
    assert (spec.dataset, spec.batch_size) == ("mnist", 400)
    plan = keskar_plan(cfg)
    assert plan["F1"]["label"] == "F1 (MNIST)"
    assert "Fashion-MNIST was not found" in plan["F1"]["note"]
    assert "cannot be tested" in plan["F1"]["note"]
    said = [line for line in capsys.readouterr().err.splitlines() if "not found" in line]
    assert len(said) <= 1  # said once per process, not once per run


def test_derived_experiments_follow_their_base(repo_config, with_fashion):
    overlay = yaml.safe_load((ROOT / "examples" / "f1_on_mnist.yaml").read_text())
    cfg = copy.deepcopy(repo_config)
    cfg["papers"][KESKAR]["experiments"]["F1"].update(
        overlay["papers"][KESKAR]["experiments"]["F1"]
    )
    cfg = prepared(cfg)
    for experiment, variant in (("F1", "SB"), ("F1_batch_sweep", "2.5pct"), ("F1_warmstart", "k2")):
        assert matrix.spec(cfg, matrix.Run(KESKAR, experiment, variant, 0)).dataset == "mnist"
    assert keskar_plan(cfg)["F1_batch_sweep"]["label"] == "F1 (MNIST), batch-size sweep"


def test_a_warm_start_from_another_dataset_is_a_one_line_error(repo_config, with_fashion):
    cfg = copy.deepcopy(repo_config)
    cfg["papers"][KESKAR]["experiments"]["F1_warmstart"]["dataset"] = "mnist"
    cfg = prepared(cfg)
    with pytest.raises(matrix.ConfigError) as err:
        matrix.spec(cfg, matrix.Run(KESKAR, "F1_warmstart", "k2", 0))
    assert str(err.value) == (
        "config error at papers.keskar2017.experiments.F1_warmstart.variants.k2.warm_start: "
        "F1/SB trains dataset fashion_mnist but F1_warmstart uses mnist; give both the same "
        "dataset (e.g. base: F1)"
    )


@pytest.mark.parametrize(
    ("base", "message"),
    [
        (
            "F9",
            "config error at papers.keskar2017.experiments.F1_warmstart.base: no experiment 'F9'",
        ),
        ("F1_warmstart", "bases form a cycle (F1_warmstart -> F1_warmstart)"),
    ],
)
def test_a_bad_base_is_a_one_line_error(repo_config, base, message):
    cfg = copy.deepcopy(repo_config)
    cfg["papers"][KESKAR]["experiments"]["F1_warmstart"]["base"] = base
    with pytest.raises(matrix.ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        prepared(cfg)


def test_an_error_in_a_base_is_named_where_it_was_written(repo_config):
    cfg = copy.deepcopy(repo_config)
    cfg["papers"][KESKAR]["experiments"]["F1"]["epochs"] = 2.5
    with pytest.raises(
        matrix.ConfigError, match=r"at papers\.keskar2017\.experiments\.F1\.epochs:"
    ):
        prepared(cfg)


def test_only_selects_papers_experiments_or_variants(repo_config, with_fashion):
    cfg = prepared({**repo_config, "only": "keskar2017/F1/SB"})
    assert {(r.paper, r.experiment, r.variant) for r in matrix.runs(cfg)} == {
        (KESKAR, "F1", "SB")}  # fmt: skip
    assert matrix.skipped(cfg, KESKAR)["F1_batch_sweep"] == "not selected (only=keskar2017/F1/SB)"
    assert matrix.runs(cfg, "hoffer2017") == []
    cfg = prepared({**repo_config, "only": ["hoffer2017", "keskar2017/F1_warmstart"]})
    assert {r.paper for r in matrix.runs(cfg)} == {KESKAR, "hoffer2017"}
    # the warm start's source is not selected, but its spec still names it (Snakemake runs it)
    spec = matrix.spec(cfg, matrix.Run(KESKAR, "F1_warmstart", "k2", 0))
    assert spec.warm_start["run"] == "results/keskar2017/F1/SB/seed0"
    with pytest.raises(matrix.ConfigError, match="only: 'keskar2017/F7' names no"):
        prepared({**repo_config, "only": "keskar2017/F7"})


def test_a_scale_of_ones_own(repo_config):
    cfg = copy.deepcopy(repo_config)
    cfg["scales"]["laptop"] = {"matrix": ["quick"], "datasets": ["mnist"], "seeds": [0],
                               "allow_bundled_mnist": True, "train_size": 1000}  # fmt: skip
    cfg = prepared({**cfg, "scale": "laptop"})
    runs = matrix.runs(cfg, "hoffer2017")
    assert runs and {r.seed for r in runs} == {0}
    assert matrix.spec(cfg, runs[0]).n_train == 1000
    with pytest.raises(matrix.ConfigError, match="no scale 'huge'; choose one of quick, small"):
        prepared({**repo_config, "scale": "huge"})


def test_the_readme_example_plans_f1_on_mnist_from_the_command_line(tmp_path, repo_config):
    readme = (ROOT / "README.md").read_text()
    example = (ROOT / "examples" / "f1_on_mnist.yaml").read_text()
    assert "examples/f1_on_mnist.yaml --config only=keskar2017/F1" in readme
    assert example.split("papers:")[1] in readme  # the README shows the overlay as it is
    write_config(tmp_path, repo_config)
    done = run_snakemake(tmp_path, "-n", "keskar2017", "--configfile",
                         str(ROOT / "examples" / "f1_on_mnist.yaml"),
                         "--config", "only=keskar2017/F1")  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "data/prepared/mnist_quick.pt" in done.stdout
    assert "fashion_mnist" not in done.stdout
    assert "results/keskar2017/F1/LB/seed2/" in done.stdout
    assert "results/keskar2017/F1_batch_sweep" not in done.stdout
