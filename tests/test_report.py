"""The review report end to end: a tiny run, its report, the overview page, a real browser.

One run of `reproduce_all` at a tiny scale in a temporary folder, then `--report`; every test
reads that one run. The run is Smith et al.'s MNIST analog with two schedules and two seeds on
500 digits: the cheapest paper with claims and no per-run analyses (Keskar's table2 claim is
checked on its real table in test_claims.py). The browser test renders the report in headless
Chromium and leaves a screenshot next to the results (reports/report_screenshot.png).
"""

from __future__ import annotations

import hashlib
import html
import json
import re
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import pandas as pd
import pytest
import yaml
from conftest import ROOT, run_snakemake, tiny_config, write_config

from lbgap.products import summary as lbgap_summary

pytestmark = pytest.mark.e2e

REPORT = "reports/report.html"


PAPER, EXPERIMENT = "smith2018", "F1_SGD_analog"


def report_config(repo_config: dict) -> dict:
    """One experiment, two schedules; batch 4 so that three growths by 5 fit 500 digits."""
    cfg = tiny_config(repo_config, [PAPER])
    exp = cfg["papers"][PAPER]["experiments"][EXPERIMENT]
    variants = {v: exp["variants"][v] for v in ("decaying_lr", "increasing_batch")}
    exp |= {"batch_size": 4, "ghost_batch": 4, "variants": variants}
    cfg["papers"][PAPER]["experiments"] = {EXPERIMENT: exp}
    return cfg


@pytest.fixture(scope="module")
def run(tmp_path_factory, repo_config) -> Path:
    workdir = tmp_path_factory.mktemp("report")
    write_config(workdir, report_config(repo_config))
    # As `make reproduce`: the run, its summary, then the report, in one command.
    out = run_snakemake(
        workdir, "--cores", "2", "reproduce_all", "--report", REPORT, "--report-after-run"
    )
    assert out.returncode == 0, out.stderr[-3000:]
    (workdir / "reproduce.out").write_text(out.stdout)
    return workdir


def produced(workdir: Path) -> list[str]:
    """Every table (CSV) and figure (PNG, PDF) the run wrote, as paths from the workdir."""
    files = [*workdir.glob("reports/tables/*.csv"), *workdir.glob("reports/figures/*.p[nd][gf]")]
    return sorted(str(f.relative_to(workdir)) for f in files)


def embedded(report: Path, name: str) -> dict:
    """One of the JSON objects the Snakemake report embeds (`var <name> = {...};`)."""
    text = report.read_text()
    block = text.index(f'<script id="{name}">')
    start = text.index(f"var {name} = ", block) + len(f"var {name} = ")
    return json.JSONDecoder().raw_decode(text, start)[0]


def test_report_holds_every_table_and_figure_grouped_by_paper(run):
    from lbgap.products import papers

    report = run / REPORT
    results = embedded(report, "results")
    files = produced(run)
    products = papers.products(PAPER)
    for product in products:
        assert set(product.files(PAPER)) <= {str(f.relative_to(run)) for f in run.rglob("*")}
    assert "reports/tables/claims.csv" in files and "reports/tables/provenance.csv" in files
    missing = [f for f in files if f not in results]
    assert not missing, f"produced but not in the report: {missing}"
    categories = embedded(report, "categories")
    assert set(categories[PAPER]) == {p.name for p in products}
    assert set(categories["Claims and provenance"]) == {"claims", "provenance"}
    for product in products:
        first = product.files(PAPER)[0]
        caption = html.unescape(results[first]["caption"])
        build = getattr(product.build, "func", product.build)
        what = product.caption or build.__doc__.strip().splitlines()[0]
        assert what in caption, caption  # what is shown
        assert "Seeds" in caption and "0, 1" in caption and "quick" in caption


def test_claims_table_holds_our_numbers_and_a_verdict(run):
    claims = pd.read_csv(run / "reports/tables/claims.csv").set_index("claim")
    table = pd.read_csv(run / f"reports/tables/{PAPER}_table.csv").set_index("experiment")
    match, updates = claims.loc["smith2018-match"], claims.loc["smith2018-updates"]
    ours = table.loc[EXPERIMENT]
    assert match["a_mean"] == pytest.approx(ours["increasing_batch_acc_mean"])
    assert match["b_mean"] == pytest.approx(ours["decaying_lr_acc_mean"])
    assert match["a_n"] == match["b_n"] == 2
    seeds = [
        json.loads((run / f"results/{PAPER}/{EXPERIMENT}/increasing_batch/seed{s}/summary.json")
                   .read_text())["final"]["test_acc"]
        for s in (0, 1)
    ]  # fmt: skip
    assert match["a_seeds"] == ";".join(f"{v:g}" for v in seeds)
    within = abs(match["a_mean"] - match["b_mean"]) <= 0.5
    assert match["verdict"] == ("inconclusive" if within else "not reproduced")  # 2 seeds
    fewer = ours["increasing_batch_updates"] < ours["decaying_lr_updates"]
    # true by construction: it counts only together with the accuracy claim it serves
    assert updates["verdict"] == (match["verdict"] if fewer else "not reproduced")
    assert updates["note"].startswith("by construction")
    assert set(claims.loc[claims["paper"] != PAPER, "verdict"]) == {"not run at this scale"}
    # A table this run produced is always read: no claim on it may be left unwired.
    tables = {p.name for p in (run / "reports/tables").glob("*.csv")}
    unwired = claims[claims["table"].isin(tables) & claims["note"].str.contains("not wired")]
    assert unwired.empty, unwired[["note"]].to_string()


def test_provenance_records_code_config_data_and_compute(run):
    prov = pd.read_csv(run / "reports/tables/provenance.csv")
    facts = {(r.section, r.item): str(r.value) for r in prov.itertuples()}
    assert re.fullmatch(r"[0-9a-f]{40}", facts[("code", "commit")])
    config_sha = hashlib.sha256((run / "config.yaml").read_bytes()).hexdigest()
    assert any(v == f"sha256 {config_sha}" for (s, _), v in facts.items() if s == "configuration")
    manifest = json.loads((run / "data/prepared/mnist_quick.json").read_text())
    assert facts[("data", "mnist prepared sha256")] == manifest["prepared_sha256"]
    assert facts[("software", "torch")] and facts[("software", "snakemake")][0].isdigit()
    assert float(facts[("compute", f"{PAPER} wall_h")]) > 0
    assert float(facts[("compute", f"{PAPER} gpu_h")]) == 0  # CPU runs
    assert int(float(facts[("compute", f"{PAPER} jobs")])) == 4  # 2 schedules x 2 seeds
    effective = yaml.safe_load((run / "reports/config.effective.yaml").read_text())
    assert effective["scales"]["quick"]["train_size"] == 500


class Links(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.links: set[str] = set()

    def handle_starttag(self, tag, attrs):
        self.links |= {v for k, v in attrs if k in ("href", "src") and v}


def test_index_links_every_table_and_figure_by_file_name(run):
    index = run / "reports/index.html"
    parser = Links()
    parser.feed(index.read_text())
    linked = {str((index.parent / link).resolve().relative_to(run)) for link in parser.links}
    missing = [f for f in produced(run) if f not in linked]
    assert not missing, f"not linked from index.html: {missing}"
    assert f"reports/tables/{PAPER}_table.md" in linked
    assert "Increasing the batch matches decaying the LR" in index.read_text()  # claims, inline


def test_figures_come_as_png_and_pdf(run):
    figures = run / "reports/figures"
    for png in figures.glob("*.png"):
        assert png.read_bytes()[:4] == b"\x89PNG"
        assert png.with_suffix(".pdf").read_bytes()[:5] == b"%PDF-"


# ---------------------------------------------------------------- a real browser
def chromium() -> str:
    """Debian's chromium, installed by scripts/install_test_deps.sh if it is missing."""
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if not found:
        subprocess.run([ROOT / "scripts/install_test_deps.sh"], capture_output=True, timeout=900)
        found = shutil.which("chromium") or shutil.which("chromium-browser")
    if not found:
        pytest.skip("chromium is not installed and could not be (needs root and apt-get)")
    return found


def headless(browser: str, profile: Path, *args: str) -> subprocess.CompletedProcess:
    flags = [
        "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync",
        f"--user-data-dir={profile}", "--window-size=1400,1000", "--virtual-time-budget=5000",
    ]  # fmt: skip
    return subprocess.run(
        ["timeout", "-s", "KILL", "90", browser, *flags, *args], capture_output=True, timeout=120
    )


def rendered_app(dom: str) -> str:
    """The part of the DOM that React rendered (not the scripts that carry the data)."""
    start = dom.index('<div id="app">')
    return dom[start : dom.index("<script", start)]


def test_report_renders_the_claims_table_in_a_browser(run, tmp_path):
    browser = chromium()
    url = (run / REPORT).resolve().as_uri()
    dom = headless(browser, tmp_path / "dom-profile", "--dump-dom", url)
    assert dom.returncode == 0, dom.stderr.decode()[-2000:]
    app = rendered_app(dom.stdout.decode())
    assert "Claims checked at scale" in app
    assert "Increasing the batch matches decaying the LR" in app and "<table" in app
    assert re.search(r'class="verdict [a-z-]+"', app)
    shot = run / "reports/report_screenshot.png"
    out = headless(browser, tmp_path / "shot-profile", f"--screenshot={shot}", url)
    assert out.returncode == 0 and shot.stat().st_size > 20_000, out.stderr.decode()[-2000:]
    print(f"screenshot: {shot}")


def test_the_run_ends_with_a_summary_of_its_files(run):
    """Verdict counts as in claims.csv, the compute of provenance.csv, where to look."""
    printed = (run / "reproduce.out").read_text()
    assert printed.count("lbgap: run finished") == 1
    shown = printed[printed.index("lbgap: run finished") :].splitlines()
    claims = pd.read_csv(run / "reports/tables/claims.csv")
    assert shown[1] == lbgap_summary.verdict_line(claims)
    prov = pd.read_csv(run / "reports/tables/provenance.csv")
    assert lbgap_summary.compute_line(prov) in shown
    assert {"Overview: reports/index.html", f"Report: {REPORT} (written next)"} <= set(shown)
    assert any(line.startswith("This run's wall time: ") for line in shown)
    again = run_snakemake(run, "--cores", "1", "reproduce_all", "--forcerun", "index", "-n")
    assert again.returncode == 0 and "lbgap: run finished" not in again.stdout + again.stderr


# The page measures itself once React has drawn it: which element is on top at points spread
# over the claims table (the nav or the rule graph drawn over it shows up here), and whether
# the table lies inside the window. The answer is written into the DOM that --dump-dom prints.
LAYOUT_PROBE = """<script>
setTimeout(() => {
  const table = document.querySelector("#app .lbgap table");
  const out = {found: !!table, width: innerWidth, covered: []};
  if (table) {
    const r = table.getBoundingClientRect();
    Object.assign(out, {left: r.left, right: r.right, top: r.top});
    const bottom = Math.min(r.bottom, innerHeight) - 2;
    for (let i = 0; i <= 8; i++) for (let j = 0; j <= 4; j++) {
      const x = r.left + 2 + (r.width - 4) * i / 8, y = r.top + 2 + (bottom - r.top - 2) * j / 4;
      const hit = document.elementFromPoint(x, y);
      if (!hit || !table.contains(hit)) out.covered.push([Math.round(x), Math.round(y),
        hit ? hit.tagName + "." + hit.className : "outside the window"]);
    }
  }
  const pre = document.createElement("pre");
  pre.id = "lbgap-layout";
  pre.textContent = JSON.stringify(out);
  document.body.append(pre);
}, 2000);
</script>"""


@pytest.mark.parametrize("width", [1280, 1400, 1920])
def test_report_claims_table_is_not_covered_in_a_browser(run, tmp_path, width):
    """At common screen widths, the claims table is in the window and nothing is drawn over it."""
    browser = chromium()
    page = tmp_path / "report.html"
    text = (run / REPORT).read_text()
    end = text.rindex("</body>")  # the page's own; embedded files hold theirs too
    page.write_text(text[:end] + LAYOUT_PROBE + text[end:])
    size = f"--window-size={width},1000"
    dom = headless(browser, tmp_path / "profile", size, "--dump-dom", page.as_uri())
    assert dom.returncode == 0, dom.stderr.decode()[-2000:]
    found = re.search(r'<pre id="lbgap-layout">(.*?)</pre>', dom.stdout.decode())
    assert found, "the page did not finish drawing"
    layout = json.loads(html.unescape(found.group(1)))
    assert layout["found"] and layout["width"] == width, layout
    assert 0 <= layout["left"] and layout["right"] <= width and layout["top"] < 1000, layout
    assert layout["covered"] == [], f"drawn over the claims table at {width} px: {layout}"
    shot = run / f"reports/report_screenshot_{width}.png"
    url = (run / REPORT).as_uri()
    headless(browser, tmp_path / "shot-profile", size, f"--screenshot={shot}", url)
