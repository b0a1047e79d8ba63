"""The run spec as a file: written and read back byte for byte, and refused in one line when a
key is missing, unknown or inconsistent."""

from __future__ import annotations

import dataclasses
import json

import pytest
from paper_fakes import quick_config
from test_train import make_spec

from lbgap.config import matrix
from lbgap.config.run_spec import RunSpec, SpecError
from lbgap.training import train


@pytest.fixture(scope="module")
def specs() -> list[RunSpec]:
    """A plain run, a warm start and, with patience, a run with an optional key set."""
    config = quick_config()
    stopping = quick_config()
    stopping["papers"]["keskar2017"]["experiments"]["F1"]["patience"] = 3
    return [
        matrix.spec(config, matrix.Run("keskar2017", "F1", "LB", 0)),
        matrix.spec(config, matrix.Run("keskar2017", "F1_warmstart", "k2", 0)),
        matrix.spec(stopping, matrix.Run("keskar2017", "F1", "SB", 1)),
    ]


def write(tmp_path, keys: dict) -> str:
    """A spec file as the workflow has always written one: sorted JSON and a newline."""
    path = tmp_path / "spec.json"
    path.write_text(json.dumps(keys, sort_keys=True) + "\n")
    return str(path)


def test_a_spec_round_trips_through_its_file_byte_for_byte(tmp_path, specs):
    for spec in specs:
        path = tmp_path / "spec.json"
        path.write_text(spec.to_json())
        again = RunSpec.read(path)
        assert again == spec and again.to_json() == path.read_text()
    plain, warm, stopping = specs
    assert warm.warm_start["epoch"] == 2 and warm.init_checkpoint.endswith("epoch2.pt")
    assert stopping.patience == 3
    # Unset optional keys stay out of the file, as before they existed.
    for key in ("patience", "warm_start", "init_checkpoint", "decode", "loader_workers"):
        assert key not in json.loads(plain.to_json())


def test_an_existing_spec_file_is_rewritten_unchanged(tmp_path):
    keys = make_spec("data/prepared/mnist_quick.pt", patience=2, save_epochs=[1])
    path = write(tmp_path, keys)
    assert RunSpec.read(path).to_json() == (tmp_path / "spec.json").read_text()
    assert RunSpec.read(path).to_dict() == keys


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda k: k.pop("bn_eval"), "spec.json lacks 'bn_eval': rerun snakemake to rewrite"),
        (lambda k: k.update(bn_mode="batch"), "spec.json has the unknown key 'bn_mode': rerun"),
        (lambda k: k["optimizer"].update(mom=0.9), "unknown key 'optimizer.mom': rerun"),
        (lambda k: k.update(batch_size=32), "batch_size 32 differs from schedule.batch_size 64"),
    ],
)
def test_a_spec_file_with_a_missing_unknown_or_inconsistent_key_is_one_line(
    tmp_path, edit, message
):
    keys = make_spec("data/prepared/mnist_quick.pt")
    edit(keys)
    with pytest.raises(SpecError) as err:
        RunSpec.read(write(tmp_path, keys))
    assert message in str(err.value) and "\n" not in str(err.value)


def test_training_refuses_an_outdated_spec_file_before_it_starts(tmp_path, capsys):
    keys = make_spec("data/prepared/mnist_quick.pt")
    del keys["eval_chunk"]
    assert train.main(["--spec", write(tmp_path, keys), "--out", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "lacks 'eval_chunk'" in err and "\n" not in err
    assert not (tmp_path / "run").exists()


def test_a_spec_is_frozen_and_its_optimizer_defaults_come_from_the_schema():
    spec = RunSpec.from_dict(make_spec("x.pt", optimizer={"name": "adam", "lr": 0.1}))
    with pytest.raises(dataclasses.FrozenInstanceError):
        spec.seed = 4  # type: ignore[misc]
    schema = matrix.load_schema()["$defs"]["settings"]["properties"]["optimizer"]["properties"]
    settings = spec.optimizer_settings()
    assert settings["momentum"] == schema["momentum"]["default"]
    assert settings["name"] == "adam" and "momentum" not in spec.to_dict()["optimizer"]
