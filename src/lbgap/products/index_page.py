"""reports/index.html: every table and figure by file name, for readers who open the folder.

It needs no JavaScript and no server: relative links, the claims table inline, a thumbnail per
figure. Only files this run produced are listed (they are passed in, never globbed), so a stale
file from another scale never shows up.
"""

from __future__ import annotations

import argparse
import html
import json
import os
import sys
from pathlib import Path

import pandas as pd

from lbgap.io import write_text
from lbgap.products import claims, htmlview


def _title(md: Path) -> str:
    """A table's title: the first heading of its Markdown file."""
    if md.exists():
        for line in md.read_text().splitlines():
            if line.startswith("# "):
                return line[2:].strip()
    return ""


def _link(path: Path, base: Path, text: str | None = None) -> str:
    rel = os.path.relpath(path, base)
    return f'<a href="{html.escape(rel)}">{html.escape(text or path.name)}</a>'


def _by_stem(files: list[Path]) -> dict[str, list[Path]]:
    grouped: dict[str, list[Path]] = {}
    for f in files:
        grouped.setdefault(f.stem, []).append(f)
    return grouped


def not_run_section(not_run: dict[str, dict[str, str]], base: Path) -> str:
    """Figures no run of this scale feeds, in one table with why: drawn, they would be blank."""
    rows = [
        [paper, _link(Path(png), base, Path(png).stem), html.escape(why)]
        for paper, figures in not_run.items()
        for png, why in figures.items()
    ]
    if not rows:
        return ""
    head = "<h2>Figures not run at this scale</h2>"
    return head + htmlview.table(["paper", "figure", "why"], rows, html_cells=[1, 2])


def paper_section(
    paper: str, title: str, files: list[Path], base: Path, not_run: frozenset[str] = frozenset()
) -> str:
    tables = _by_stem([f for f in files if f.parent.name == "tables"])
    figures = _by_stem([f for f in files if f.parent.name == "figures" and f.stem not in not_run])
    out = [f"<h2>{html.escape(title or paper)}</h2>"]
    if tables:
        rows = []
        for stem, group in sorted(tables.items()):
            md = next((f for f in group if f.suffix == ".md"), Path(f"{stem}.md"))
            links = " · ".join(_link(f, base, f.suffix[1:]) for f in sorted(group))
            rows.append([stem, html.escape(_title(md)), links])
        out.append(htmlview.table(["table", "what", "files"], rows, html_cells=[1, 2]))
    for stem, group in sorted(figures.items()):
        png = next((f for f in group if f.suffix == ".png"), None)
        links = " · ".join(_link(f, base) for f in sorted(group))
        thumb = f'<br><img class="thumb" src="{os.path.relpath(png, base)}" alt="{stem}">'
        out.append(f"<p><strong>{stem}</strong>: {links}{thumb if png else ''}</p>")
    if not tables and not figures:
        out.append("<p>No tables or figures for this paper yet.</p>")
    return "\n".join(out)


def build(
    out: Path,
    products: dict[str, list[Path]],
    titles: dict[str, str],
    claims_csv: Path,
    extra: list[Path],
    scale: str,
    not_run: dict[str, dict[str, str]] | None = None,
) -> str:
    base = out.parent
    not_run = not_run or {}
    table = pd.read_csv(claims_csv)
    parts = [
        f"<h1>lbgap results at scale <code>{html.escape(scale)}</code></h1>",
        "<p>Every table and figure of this run, by file name. The interactive Snakemake report "
        f"({_link(base / 'report.html', base)}) is built by <code>make report</code> and holds the "
        "same files with captions and the provenance.</p>",
        claims.html_body(table, scale, level=2),
        "<h2>Claims and provenance files</h2>",
        "<p>" + " · ".join(_link(f, base) for f in [claims_csv, *extra]) + "</p>",
    ]
    for p, fs in products.items():
        blank = frozenset(Path(f).stem for f in not_run.get(p, {}))
        parts.append(paper_section(p, titles.get(p, p), fs, base, blank))
    parts.append(not_run_section(not_run, base))
    return htmlview.page(f"lbgap results ({scale})", "\n".join(parts))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Write the overview page of reports/.")
    parser.add_argument("--out", required=True)
    parser.add_argument("--scale", required=True)
    parser.add_argument("--claims", required=True, help="claims CSV")
    parser.add_argument("--extra", nargs="*", default=[], help="other files to link")
    parser.add_argument(
        "--products",
        required=True,
        type=Path,
        help="JSON file: paper -> {title, files, not_run: {png: why}}",
    )
    args = parser.parse_args(argv)
    given = json.loads(args.products.read_text())
    products = {p: [Path(f) for f in v["files"]] for p, v in given.items()}
    titles = {p: v.get("title", p) for p, v in given.items()}
    not_run = {p: v["not_run"] for p, v in given.items() if v.get("not_run")}
    extra = [Path(f) for f in args.extra]
    page = build(Path(args.out), products, titles, Path(args.claims), extra, args.scale, not_run)
    write_text(args.out, page)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
