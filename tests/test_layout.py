"""lbgap.config.layout is the one owner of where files live: its paths and their inverses agree,
and the rules, the package and the products ask it instead of spelling folders by hand."""

from __future__ import annotations

import copy
import io
import re
import tokenize
from pathlib import Path

import pytest
from conftest import ROOT

from lbgap.config import layout, matrix

# A string that starts with one of these folders is a path spelled by hand ...
FOLDERS = re.compile(r"(results|reports|logs|data/prepared)/")
# ... and so is one that names a run's own files (alone or after a folder).
RUN_FILES = re.compile(
    r"(?:^|/)(?:summary\.json|metrics(?:_live)?\.csv|steps\.csv|state\.pt|spec\.json"
    r"|checkpoint(?:_epoch\S*)?\.pt)"
)
PREFIX = re.compile(r"^[rRbBuUfF]*('''|\"\"\"|'|\")")


def hand_spelled_paths(source: str) -> list[tuple[int, str]]:
    """(line, text) of every string literal of `source` (Python or a Snakemake file) that starts
    with a results/, reports/, logs/ or data/prepared/ path or names a run's own files
    (summary.json, metrics.csv, checkpoint.pt, ...). Docstrings (a string that is a
    whole statement) and comments are prose, not paths, and are left alone."""
    tokens = [
        t
        for t in tokenize.generate_tokens(io.StringIO(source).readline)
        if t.type not in (tokenize.COMMENT, tokenize.NL)
    ]
    found = []
    statement_start = {tokenize.NEWLINE, tokenize.INDENT, tokenize.DEDENT, None}
    for i, tok in enumerate(tokens):
        before = tokens[i - 1].type if i else None
        after = tokens[i + 1].type if i + 1 < len(tokens) else None
        if tok.type == tokenize.STRING:
            if before in statement_start and after == tokenize.NEWLINE:
                continue  # a docstring
            text = tok.string[PREFIX.match(tok.string).end() :]
        elif tok.type == getattr(tokenize, "FSTRING_MIDDLE", None) and before == getattr(
            tokenize, "FSTRING_START", None
        ):
            text = tok.string  # Python >= 3.12: an f-string's first literal part
        else:
            continue
        if FOLDERS.match(text) or RUN_FILES.search(text):
            found.append((tok.start[0], tok.line.strip()))
    return found


def sources() -> list[Path]:
    """The rule files, the Snakefile and the package, but the layout module itself."""
    files = [ROOT / "Snakefile", *sorted((ROOT / "workflow" / "rules").glob("*.smk"))]
    files += sorted(p for p in (ROOT / "src" / "lbgap").rglob("*.py") if p.name != "layout.py")
    return files


# ---------------------------------------------------------------- paths and their inverses
@pytest.mark.parametrize("scale", matrix.SCALES)
def test_every_run_folder_parses_back_to_its_run(repo_config, scale):
    config = matrix.prepare_config({**copy.deepcopy(repo_config), "scale": scale})
    runs = matrix.runs(config)
    assert runs
    for run in runs:
        assert matrix.Run(*layout.parse_run_dir(run.dir)) == run
        assert layout.parse_run_dir(Path("/any/where") / run.dir) == layout.parse_run_dir(run.dir)
        experiment = layout.experiment_dir_of(run.dir)
        assert layout.parse_experiment_dir(experiment) == (run.paper, run.experiment)
        assert layout.summary(run.dir).startswith(f"{experiment}/")


def test_the_rules_patterns_are_the_same_functions():
    """A rule's pattern (wildcards in) and a run's path (values in) come from one function."""
    pattern = layout.run_dir("{paper}", "{experiment}", "{variant}", "{seed}")
    run = matrix.Run("keskar2017", "F1", "+RA", 12)
    assert pattern.format(**vars(run)) == run.dir
    wildcard = layout.sharpness(pattern, "{space}", "{eps}")
    filled = wildcard.format(**vars(run), space="full", eps=layout.eps_name(1e-3))
    assert filled == layout.sharpness(run.dir, "full", 1e-3)
    assert layout.run_log("train", run.dir) == "logs/train/keskar2017/F1/+RA/seed12.log"


@pytest.mark.parametrize(
    "path", ["results/keskar2017/F1/SB", "results/keskar2017/F1/SB/seedX", "keskar2017/F1/SB/seed0"]
)
def test_a_path_that_is_no_run_folder_is_a_one_line_error(path):
    with pytest.raises(ValueError, match=r"not a run folder: give one of the form results/") as e:
        layout.parse_run_dir(path)
    assert "\n" not in str(e.value)


# ---------------------------------------------------------------- nobody else spells them
def test_the_scanner_finds_a_hand_spelled_path_and_skips_prose():
    source = (
        '"""results/ in a docstring is prose."""\n'
        "# reports/tables in a comment too\n"
        'path = "results/keskar2017/plan.json"\n'
        'name = f"reports/tables/{paper}_{name}.csv"\n'
        'ok = layout.table("{paper}", "{name}", "csv")\n'
        "rule x:\n"
        "    log:\n"
        '        "logs/x.log",\n'
        'weights = run / "checkpoint.pt"\n'
        'saved = f"{run}/checkpoint_epoch{k}.pt"\n'
        "ok = layout.summary(run)\n"
    )
    assert [line for line, _ in hand_spelled_paths(source)] == [3, 4, 8, 9, 10]


def test_no_rule_file_or_module_spells_the_folders_by_hand():
    found = [
        f"{path.relative_to(ROOT)}:{line}: {text}"
        for path in sources()
        for line, text in hand_spelled_paths(path.read_text())
    ]
    assert not found, "ask lbgap.config.layout instead:\n" + "\n".join(found)
