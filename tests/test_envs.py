"""The conda environments pin the same versions as pyproject.toml."""

from __future__ import annotations

import re
import tomllib

import pytest
import yaml
from conftest import ROOT

PINS = dict(
    re.fullmatch(r"([A-Za-z0-9_.-]+)==(\S+)", dep).groups()
    for dep in tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    if "==" in dep
)


@pytest.mark.parametrize("env", sorted((ROOT / "envs").glob("*.yaml")), ids=lambda p: p.stem)
def test_env_pins_match_pyproject(env):
    spec = yaml.safe_load(env.read_text())
    pip = next(d["pip"] for d in spec["dependencies"] if isinstance(d, dict))
    assert pip, env
    for line in pip:
        name, version = line.split("==")
        assert PINS.get(name) == version, f"{env.name}: {line} differs from pyproject.toml"
    assert "python=3.11" in spec["dependencies"]


def test_every_rule_family_has_an_environment():
    rules = "".join(p.read_text() for p in (ROOT / "workflow" / "rules").glob("*.smk"))
    used = set(re.findall(r'"\.\./\.\./envs/([a-z_]+)\.yaml"', rules))
    assert used and all((ROOT / "envs" / f"{name}.yaml").exists() for name in used)
