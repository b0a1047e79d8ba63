"""The experiment matrix: expansion, per-scale values, batch shares and one-line config errors."""

from __future__ import annotations

import copy
import dataclasses
import subprocess
import time

import pytest
from conftest import ROOT, VENV_BIN, run_snakemake, write_config

from lbgap.config import matrix
from lbgap.config.resources import allocation
from lbgap.config.schedules import Schedule


@pytest.fixture
def config(repo_config) -> dict:
    return matrix.prepare_config(copy.deepcopy(repo_config))


def test_quick_runs_only_experiments_with_offline_data(config):
    runs = matrix.runs(config, "keskar2017")
    assert {r.experiment for r in runs} >= {"F1"}
    exps = config["papers"]["keskar2017"]["experiments"]
    datasets = {matrix.experiment_dataset(config, exps[r.experiment]) for r in runs}
    assert datasets <= set(config["scales"]["quick"]["datasets"])
    skipped = matrix.skipped(config, "keskar2017")
    assert skipped["C1"] == "needs cifar10: run with scale=small"
    assert skipped["F2"] == "needs timit: run with scale=paper"


def test_every_variant_and_seed_is_a_run(config):
    exp = config["papers"]["keskar2017"]["experiments"]["F1"]
    runs = [r for r in matrix.runs(config, "keskar2017") if r.experiment == "F1"]
    assert len(runs) == len(exp["variants"]) * len(config["scales"]["quick"]["seeds"])
    assert runs[0].dir == f"results/keskar2017/F1/{runs[0].variant}/seed{runs[0].seed}"


def test_scale_picks_per_scale_values_and_lb_is_ten_percent(config):
    run = matrix.Run("keskar2017", "F1", "LB", 0)
    quick = matrix.spec(config, run)
    # 10% of the 60,000 Fashion-MNIST images, or of the 4,000 bundled digits it falls back to
    assert quick.batch_size == matrix.train_size(config, quick.dataset) // 10
    assert (quick.dataset, quick.batch_size) in {("fashion_mnist", 6000), ("mnist", 400)}
    assert (
        quick.schedule["epochs"]
        == config["papers"]["keskar2017"]["experiments"]["F1"]["epochs"]["quick"]
    )
    paper = matrix.spec({**config, "scale": "paper"}, run)
    assert paper.batch_size == 6000  # 10% of MNIST's 60,000
    assert paper.schedule["epochs"] == 100


def test_spec_is_deterministic(config):
    run = matrix.runs(config)[0]
    assert matrix.spec(config, run) == matrix.spec(copy.deepcopy(config), run)


def test_impossible_batch_is_a_one_line_error(config):
    config["papers"]["keskar2017"]["experiments"]["F1"]["variants"]["LB"] = {"batch_size": 90000}
    with pytest.raises(matrix.ConfigError) as err:
        matrix.spec(config, matrix.Run("keskar2017", "F1", "LB", 0))
    message = str(err.value)
    assert "\n" not in message
    n_train = str(
        matrix.train_size(
            config,
            matrix.experiment_dataset(config, config["papers"]["keskar2017"]["experiments"]["F1"]),
        )
    )
    assert "batch_size" in message and "90000" in message and n_train in message


@pytest.mark.parametrize(
    ("edit", "expected"),
    [
        (lambda c: c.update(scale="huge"), "config error at scale"),
        (lambda c: c.update(colour="red"), "colour"),
        (
            lambda c: c["papers"]["keskar2017"]["experiments"]["F1"].update(
                variants={"SB": {"batch_size": 256}, "LB": {"batchsize": 3}}
            ),
            "papers.keskar2017.experiments.F1.variants.LB",
        ),
        (
            lambda c: c["papers"]["keskar2017"]["experiments"]["F1"].update(network="F9"),
            "papers.keskar2017.experiments.F1.network",
        ),
        (lambda c: c.update(compile="fast"), "config error at compile"),
        (lambda c: c.update(amp="fp16"), "config error at amp"),
        (lambda c: c.update(deterministic="maybe"), "config error at deterministic"),
    ],
)
def test_bad_config_names_the_key(repo_config, edit, expected):
    config = copy.deepcopy(repo_config)
    edit(config)
    with pytest.raises(matrix.ConfigError) as err:
        matrix.prepare_config(config)
    assert expected in str(err.value)
    assert "\n" not in str(err.value)


def test_speed_settings_from_the_command_line_reach_the_spec(repo_config):
    """Snakemake's --config passes text: "false" must become the boolean, not an error."""
    edited = {**repo_config, "compile": "reduce-overhead", "deterministic": "false"}
    edited["download"] = "True"
    config = matrix.prepare_config(edited)
    assert config["deterministic"] is False and config["download"] is True
    spec = matrix.spec(config, matrix.Run("keskar2017", "F1", "LB", 0))
    assert (spec.compile, spec.deterministic, spec.amp) == (
        "reduce-overhead",
        False,
        "auto",
    )


def test_variant_overrides_do_not_leak_defaults(config):
    exp = config["papers"]["keskar2017"]["experiments"]["F1"]
    exp["lr_scaling"] = "sqrt"
    exp["variants"]["LB"] = {"batch_size": 1000}
    spec = matrix.spec(config, matrix.Run("keskar2017", "F1", "LB", 0))
    assert spec.schedule["lr_scaling"] == "sqrt"
    assert spec.schedule["base_batch"] == 256


def test_resources_come_from_scale_and_experiment(config):
    assert allocation(config, "keskar2017", "F1")["gpus"] == 0
    config["scale"] = "paper"
    config["papers"]["keskar2017"]["experiments"]["F1"]["resources"] = {"paper": {"gpus": 8}}
    res = allocation(config, "keskar2017", "F1")
    assert res["gpus"] == 8 and res["tasks"] == 8


def test_a_variant_may_run_on_fewer_gpus(config):
    """Goyal's kn = 128 with n = 32 per GPU is k = 4 GPUs: 8 would hold 16 samples each."""
    config["scale"] = "paper"
    res = [allocation(config, "goyal2017", "ResNet50_ImageNet", v) for v in ("kn128", "kn1k")]
    assert (res[0]["tasks"], res[1]["tasks"]) == (4, 8)
    spec = matrix.spec(config, matrix.Run("goyal2017", "ResNet50_ImageNet", "kn128", 0))
    assert spec.batch_size // res[0]["tasks"] == spec.ghost_batch == 32


def test_paper_scale_dag_builds_in_seconds(tmp_path):
    start = time.perf_counter()
    out = subprocess.run(
        [str(VENV_BIN / "snakemake"), "-s", str(ROOT / "Snakefile"), "-d", str(tmp_path),
         "--configfile", str(ROOT / "config.yaml"), "-n", "--quiet", "rules",
         "--config", "scale=paper", "--", "reproduce_all"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr[-2000:]
    train_jobs = [ln for ln in out.stdout.splitlines() if ln.strip().startswith("train ")]
    assert train_jobs and int(train_jobs[0].split()[1]) >= 60
    assert time.perf_counter() - start < 60


def test_unknown_scale_fails_at_start_with_one_line(tmp_path):
    out = subprocess.run(
        [str(VENV_BIN / "snakemake"), "-s", str(ROOT / "Snakefile"), "-d", str(tmp_path),
         "--configfile", str(ROOT / "config.yaml"), "-n", "--config", "scale=huge"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert out.returncode != 0
    lines = [ln for ln in (out.stderr + out.stdout).splitlines() if "config error" in ln]
    assert lines and "scale" in lines[0]


# ---------------------------------------------------------------- hardening: one-line errors
def edited(repo_config: dict, edit) -> dict:
    config = copy.deepcopy(repo_config)
    edit(config)
    return config


def experiment(config: dict, paper: str, name: str) -> dict:
    return config["papers"][paper]["experiments"][name]


def with_variant(config: dict, paper: str, name: str, variant: str, settings: dict) -> None:
    """Add a variant to one experiment only (YAML anchors share `variants` between several)."""
    exp = experiment(config, paper, name)
    exp["variants"] = {**exp["variants"], variant: settings}


PER_SCALE = "(or one per scale as {quick: .., small: .., paper: ..})"
F1 = "papers.keskar2017.experiments.F1"


@pytest.mark.parametrize(
    ("key", "value", "expected"),
    [
        ("epochs", 2.5, f"{F1}.epochs: 2.5 is not an integer {PER_SCALE}"),
        ("warmup_epochs", "long", f"{F1}.warmup_epochs: 'long' is not a number {PER_SCALE}"),
        ("decay_epochs", 5, f"{F1}.decay_epochs: 5 is not a list {PER_SCALE}"),
        ("epochs", -1, f"{F1}.epochs: -1 is less than the minimum of 0"),
        ("epochs", {"quick": 2.5}, f"{F1}.epochs.quick: 2.5 is not an integer"),
        ("ghost_batch", 2.5, f"{F1}.ghost_batch: 2.5 is not an integer or null"),
    ],
)
def test_a_value_of_the_wrong_kind_says_which_kinds_it_takes(repo_config, key, value, expected):
    config = edited(repo_config, lambda c: experiment(c, "keskar2017", "F1").update({key: value}))
    with pytest.raises(matrix.ConfigError) as err:
        matrix.prepare_config(config)
    assert f"config error at {expected}" in str(err.value)
    assert "\n" not in str(err.value)


@pytest.mark.parametrize("name", ["plain sgd", "a/b", ".hidden", "-x", "LB;rm"])
def test_names_that_break_a_folder_or_the_command_are_refused(repo_config, name):
    config = edited(repo_config, lambda c: with_variant(c, "keskar2017", "F1", name, {}))
    with pytest.raises(matrix.ConfigError) as err:
        matrix.prepare_config(config)
    assert f"config error at {F1}.variants: name {name!r}" in str(err.value)
    renamed = edited(repo_config, lambda c: c["papers"]["keskar2017"]["experiments"].update(
        {name: experiment(c, "keskar2017", "F1")}
    ))  # fmt: skip
    with pytest.raises(matrix.ConfigError, match="at papers.keskar2017.experiments: name"):
        matrix.prepare_config(renamed)


@pytest.mark.parametrize("scale", matrix.SCALES)
def test_every_shipped_name_and_spec_passes_at_every_scale(config, scale):
    """The shipped names (+LR, 2.5pct, k10, ...) and every run's checks of its batches."""
    at_scale = {**config, "scale": scale}
    schema = matrix.load_schema()
    specs = [matrix.spec(at_scale, run, schema) for run in matrix.runs(at_scale)]
    assert specs
    assert {"+LR", "+GBN", "+RA", "2.5pct", "k10"} <= {s.variant for s in specs}
    for paper in config["papers"]:
        matrix.analysis(at_scale, paper)


def test_a_value_missing_for_the_scale_names_the_key_it_is_missing_from(config):
    small = {**config, "scale": "small"}
    with_variant(small, "keskar2017", "F1", "LB", {"batch_size": "10%", "epochs": {"quick": 3}})
    with pytest.raises(matrix.ConfigError, match=rf"at {F1}\.variants\.LB\.epochs: no value for"):
        matrix.runs(small)
    small = {**config, "scale": "small"}
    small["papers"]["keskar2017"]["analysis"]["parametric"]["points"] = {"quick": 25}
    with pytest.raises(matrix.ConfigError) as err:
        matrix.analysis(small, "keskar2017")
    assert "at papers.keskar2017.analysis.parametric.points: no value for scale small" in str(
        err.value
    )


@pytest.mark.parametrize(
    ("warm", "missing"),
    [
        ({"experiment": "F1", "variant": "XX", "epoch": 2}, "F1 has no variant XX (it has SB, LB)"),
        ({"experiment": "NOPE", "variant": "SB", "epoch": 2}, "has no experiment NOPE"),
    ],
)
def test_warm_start_from_an_unknown_run_names_the_key(config, warm, missing):
    exp = experiment(config, "keskar2017", "F1_warmstart")
    exp["variants"]["k2"] = {"warm_start": warm}
    with pytest.raises(matrix.ConfigError) as err:
        matrix.runs(config)
    where = "papers.keskar2017.experiments.F1_warmstart.variants.k2.warm_start"
    assert str(err.value).startswith(f"config error at {where}: no run ")
    assert missing in str(err.value)


def goyal(config: dict) -> dict:
    return experiment(config, "goyal2017", "F1_analog")


def hoffer(config: dict) -> dict:
    return experiment(config, "hoffer2017", "F1_analog")


def smith(config: dict) -> dict:
    return experiment(config, "smith2018", "F1_SGD_analog")


@pytest.mark.parametrize(
    ("edit", "run", "expected"),
    [
        (  # a warmup as long as training never reaches the LR
            lambda c: goyal(c).update(warmup_epochs=15, decay_epochs=[]),
            ("goyal2017", "F1_analog", "gradual_warmup"),
            "warmup_epochs 15 is not shorter than the 15 training epochs",
        ),
        (  # 800 samples per rank in micro-batches of 96
            lambda c: goyal(c).update(micro_batch=96),
            ("goyal2017", "F1_analog", "gradual_warmup"),
            "micro_batch 96 does not divide the per-rank batch 800",
        ),
        (  # ghost 120 with batch 500: the last chunk had 20 samples, without a word
            lambda c: hoffer(c)["variants"]["+GBN"].update(ghost_batch=120),
            ("hoffer2017", "F1_analog", "+GBN"),
            "ghost_batch 120 does not divide the per-rank batch 500 (batch 500 over 1 rank)",
        ),
        (  # ghost 499 with batch 500: a last chunk of one sample crashed at the first step
            lambda c: hoffer(c)["variants"]["+GBN"].update(ghost_batch=499),
            ("hoffer2017", "F1_analog", "+GBN"),
            "ghost_batch 499 does not divide the per-rank batch 500",
        ),
        (  # micro-batches of 100 with ghost 125: normalized over 100, without a word
            lambda c: hoffer(c)["variants"]["+GBN"].update(micro_batch=100),
            ("hoffer2017", "F1_analog", "+GBN"),
            "micro_batch 100 is not a multiple of ghost_batch 125",
        ),
        (  # 16 per rank with ghost 32 (Goyal's kn 128 on 8 GPUs): normalized over 16 silently
            lambda c: goyal(c).update(resources={"quick": {"nproc_per_node": 2}}),
            ("goyal2017", "F1_analog", "baseline"),
            "ghost_batch 32 does not divide the per-rank batch 16 (batch 32 over 2 ranks)",
        ),
        (  # batch norm without ghost batches would normalize each micro-batch on its own
            lambda c: hoffer(c)["variants"]["LB"].update(micro_batch=250),
            ("hoffer2017", "F1_analog", "LB"),
            "micro_batch 250 would make batch norm normalize over 250 samples instead of the "
            "batch 500; set micro_batch: null, or a ghost_batch that divides 250",
        ),
        (  # batch 32 fits one micro-batch; the first growth (to 160) does not split into 64s
            lambda c: smith(c).update(micro_batch=64),
            ("smith2018", "F1_SGD_analog", "increasing_batch"),
            "micro_batch 64 does not divide the per-rank batch 160 (batch 160 over 1 rank)",
        ),
        (  # ghost batch norm needs whole ghost batches in a micro-batch
            lambda c: goyal(c).update(micro_batch=48),
            ("goyal2017", "F1_analog", "baseline"),
            "micro_batch 48 is not a multiple of ghost_batch 32",
        ),
        (  # 3 processes on each of 2 nodes cannot share 1000 samples
            lambda c: goyal(c).update(resources={"quick": {"nproc_per_node": 3, "nodes": 2}}),
            ("goyal2017", "F1_analog", "gradual_warmup"),
            "batch 800 cannot be split equally over the job's 6 ranks",
        ),
    ],
)
def test_impossible_settings_fail_when_the_spec_is_built(config, edit, run, expected):
    edit(config)
    with pytest.raises(matrix.ConfigError) as err:
        matrix.spec(config, matrix.Run(*run, 0))
    where = f"papers.{run[0]}.experiments.{run[1]}.variants.{run[2]}"
    assert str(err.value).startswith(f"config error at {where}: ")
    assert expected in str(err.value) and "\n" not in str(err.value)


def test_schedule_batches_are_the_grown_ones_that_train():
    grow = Schedule(base_lr=0.1, base_batch=32, batch_size=32, epochs=7, decay_factor=5,
                    decay_epochs=(3, 6, 8), batch_growth="increase")  # fmt: skip
    assert grow.batches() == [32, 160, 800]  # the milestone at 8 never acts
    assert Schedule(base_lr=0.1, base_batch=8, batch_size=8, epochs=3).batches() == [8]


@pytest.mark.parametrize(
    ("edit", "scale", "expected"),
    [
        (  # a per-scale value missing at small: was a traceback from common.smk
            lambda c: experiment(c, "keskar2017", "F1").update(epochs={"quick": 20}),
            "small",
            f"{F1}.epochs: no value for scale small",
        ),
        (  # an analysis setting missing at small: was a traceback from the plans
            lambda c: c["papers"]["keskar2017"]["analysis"]["parametric"].update(
                points={"quick": 25}
            ),
            "small",
            "papers.keskar2017.analysis.parametric.points: no value for scale small",
        ),
        (  # a warm start from a run that does not exist: was a traceback
            lambda c: experiment(c, "keskar2017", "F1_warmstart")["variants"].update(
                k2={"warm_start": {"experiment": "F1", "variant": "XX", "epoch": 2}}
            ),
            "quick",
            "papers.keskar2017.experiments.F1_warmstart.variants.k2.warm_start: no run F1/XX",
        ),
        (  # a variant name with a space: passed the dry run, then failed in the job
            lambda c: with_variant(c, "keskar2017", "F1", "plain sgd", {}),
            "quick",
            f"{F1}.variants: name 'plain sgd'",
        ),
        (  # a micro-batch that the grown batch cannot be split into: failed in the job
            lambda c: smith(c).update(micro_batch=64),
            "quick",
            "papers.smith2018.experiments.F1_SGD_analog.variants.hybrid: micro_batch 64 does not",
        ),
    ],
)
def test_config_errors_end_the_dry_run_in_one_line(tmp_path, repo_config, edit, scale, expected):
    write_config(tmp_path, edited(repo_config, edit))
    out = run_snakemake(tmp_path, "-n", "reproduce_all", "--config", f"scale={scale}")
    assert out.returncode != 0
    text = out.stdout + out.stderr
    assert f"lbgap: config error at {expected}" in text, text[-2000:]
    assert "Traceback" not in text and 'File "' not in text, text[-2000:]


def test_a_yaml_syntax_error_names_file_line_and_column(tmp_path, repo_config):
    path = write_config(tmp_path, repo_config)
    assert matrix.yaml_syntax_error(path) is None
    assert matrix.yaml_syntax_error(ROOT / "config.yaml") is None
    lines = path.read_text().splitlines()
    lines[3] = "scale: [quick"  # an unclosed list on line 4
    path.write_text("\n".join(lines) + "\n")
    error = matrix.yaml_syntax_error(path)
    assert error is not None and error.startswith(f"{path.resolve()}:5:")
    assert "YAML syntax error" in error and "\n" not in error
    # Snakemake's own message names neither the file nor the line: the workflow's is first.
    out = subprocess.run(
        [str(VENV_BIN / "snakemake"), "-s", str(ROOT / "Snakefile"), "-d", str(tmp_path), "-n"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert out.returncode != 0
    assert f"lbgap: {error}" in out.stderr.splitlines()


def test_patience_reaches_the_spec_only_when_set(repo_config):
    """Keskar's stopping rule is opt-in: without it every spec (and so every run's results)
    stays as it was; with it the run's spec carries it, and a value below 1 is refused."""
    run = matrix.Run("keskar2017", "F1", "LB", 0)
    plain = matrix.spec(matrix.prepare_config(copy.deepcopy(repo_config)), run)
    assert plain.patience is None and "patience" not in plain.to_dict()

    def set_patience(value):
        return lambda cfg: experiment(cfg, "keskar2017", "F1").update(patience=value)

    stopping = matrix.prepare_config(edited(repo_config, set_patience(5)))
    assert matrix.spec(stopping, run) == dataclasses.replace(plain, patience=5)
    with pytest.raises(matrix.ConfigError, match="patience"):
        matrix.prepare_config(edited(repo_config, set_patience(0)))


def test_ghost_batch_norm_without_batch_norm_is_not_run_twice(config):
    """Hoffer's AlexNet has no batch norm: its +GBN would train +LR again, so it is not planned
    (its table cell says n/a), while +RA, which trains longer, still runs."""
    config["scale"] = "paper"
    hoffer = {(r.experiment, r.variant) for r in matrix.runs(config, "hoffer2017")}
    assert ("AlexNet_8192", "+LR") in hoffer and ("AlexNet_8192", "+RA") in hoffer
    assert ("AlexNet_8192", "+GBN") not in hoffer and ("C1", "+GBN") in hoffer
    why = matrix.variant_skip_reason(config, "hoffer2017", "AlexNet_8192", "+GBN")
    assert why == "would repeat +LR: alexnet has no batch norm for ghost batch norm"
