"""Plain, self-contained HTML for tables and pages, so they read in a browser and in the report.

No Markdown library is a dependency: `markdown_to_html` handles what our own writers emit
(headings, paragraphs, bullet lists, fenced code and pandas pipe tables). Pages carry no
<html>/<head>/<body> tags (optional in HTML5), so the same file can be opened on its own or
inserted into Snakemake's report, and their style is scoped to `.lbgap`.
"""

from __future__ import annotations

import argparse
import html
import re
import sys
from collections.abc import Iterable
from pathlib import Path

from lbgap.io import write_text

CSS = """
.lbgap { font: 14px/1.45 system-ui, sans-serif; color: #1f2937; max-width: 1400px; }
.lbgap h1 { font-size: 1.35em; margin: .4em 0; }
.lbgap h2 { font-size: 1.15em; margin: 1em 0 .3em; }
.lbgap table { border-collapse: collapse; margin: .5em 0 1em; font-size: 13px; }
.lbgap th, .lbgap td { border: 1px solid #d1d5db; padding: 3px 7px; text-align: left;
  vertical-align: top; }
.lbgap th { background: #f3f4f6; } .lbgap .nums { white-space: nowrap; }
.lbgap code, .lbgap pre { font: 12px ui-monospace, monospace; background: #f3f4f6; }
.lbgap code::before, .lbgap code::after { content: none; }
.lbgap pre { padding: .6em; overflow-x: auto; max-height: 30em; }
.lbgap .verdict { font-weight: 600; white-space: nowrap; padding: 1px 6px; border-radius: 4px; }
.lbgap .reproduced { background: #d1fae5; color: #065f46; }
.lbgap .not-reproduced { background: #fee2e2; color: #991b1b; }
.lbgap .inconclusive { background: #fef3c7; color: #92400e; }
.lbgap .not-run { background: #e5e7eb; color: #374151; }
.lbgap img.thumb { max-width: 420px; border: 1px solid #d1d5db; }
"""


def page(title: str, body: str) -> str:
    """A standalone HTML5 document whose content sits in one scoped `.lbgap` block."""
    return (
        '<!doctype html>\n<meta charset="utf-8">\n'
        f"<title>{html.escape(title)}</title>\n<style>{CSS}</style>\n"
        f'<div class="lbgap">\n{body}\n</div>\n'
    )


def verdict_class(verdict: str) -> str:
    return {"not run at this scale": "not-run"}.get(verdict, verdict.replace(" ", "-"))


def table(
    header: list[str],
    rows: Iterable[list[str]],
    html_cells: Iterable[int] = (),
    min_widths: dict[int, str] | None = None,
) -> str:
    """An HTML table; cells are escaped except the columns listed in `html_cells`, and the
    columns in `min_widths` (index -> CSS length) never get narrower than that."""
    raw, widths = set(html_cells), min_widths or {}

    def td(i: int, cell: str) -> str:
        style = f' style="min-width: {widths[i]}"' if i in widths else ""
        return f"<td{style}>{cell if i in raw else html.escape(str(cell))}</td>"

    out = ["<table>", "<tr>" + "".join(f"<th>{html.escape(h)}</th>" for h in header) + "</tr>"]
    out += ["<tr>" + "".join(td(i, c) for i, c in enumerate(row)) + "</tr>" for row in rows]
    out.append("</table>")
    return "\n".join(out)


def escape_lines(text: str) -> str:
    """Escaped text whose newlines become line breaks, kept from wrapping (number cells)."""
    lines = "<br>".join(html.escape(line) for line in str(text).split("\n"))
    return f'<span class="nums">{lines}</span>'


def inline(text: str) -> str:
    """Escape, then render `code`, **bold** and [text](href)."""
    text = html.escape(text, quote=False)
    text = re.sub(r"`([^`]+)`", r"<code>\1</code>", text)
    text = re.sub(r"\*\*([^*]+)\*\*", r"<strong>\1</strong>", text)
    return re.sub(r"\[([^\]]+)\]\(([^)\s]+)\)", r'<a href="\2">\1</a>', text)


def _pipe_table(lines: list[str]) -> str:
    def cells(line: str) -> list[str]:
        inner = line.strip().removeprefix("|").removesuffix("|")
        return [c.strip().replace("\\|", "|") for c in re.split(r"(?<!\\)\|", inner)]

    header, body = cells(lines[0]), [cells(line) for line in lines[2:]]
    out = ["<table>", "<tr>" + "".join(f"<th>{inline(h)}</th>" for h in header) + "</tr>"]
    out += ["<tr>" + "".join(f"<td>{inline(c)}</td>" for c in row) + "</tr>" for row in body]
    return "\n".join(out + ["</table>"])


def markdown_to_html(text: str) -> str:
    """Our Markdown subset as HTML (see the module docstring)."""
    out, lines, i = [], text.splitlines(), 0
    while i < len(lines):
        line = lines[i]
        if line.startswith("```"):
            end = next((j for j in range(i + 1, len(lines)) if lines[j].startswith("```")), None)
            end = len(lines) if end is None else end
            out.append("<pre>" + html.escape("\n".join(lines[i + 1 : end])) + "</pre>")
            i = end + 1
        elif m := re.match(r"(#{1,6}) (.*)", line):
            level = len(m.group(1))
            out.append(f"<h{level}>{inline(m.group(2))}</h{level}>")
            i += 1
        elif line.startswith("|"):
            j = i
            while j < len(lines) and lines[j].startswith("|"):
                j += 1
            out.append(_pipe_table(lines[i:j]))
            i = j
        elif re.match(r"[-*] ", line):
            items: list[str] = []
            while i < len(lines) and re.match(r"[-*] |  \S", lines[i]):
                if re.match(r"[-*] ", lines[i]):
                    items.append(lines[i][2:].strip())
                else:  # an indented continuation of the item above
                    items[-1] += " " + lines[i].strip()
                i += 1
            out.append("<ul>" + "".join(f"<li>{inline(x)}</li>" for x in items) + "</ul>")
        elif line.strip():
            j = i
            while j < len(lines) and lines[j].strip() and not re.match(r"[#|`]|[-*] ", lines[j]):
                j += 1
            out.append("<p>" + inline(" ".join(lines[i:j])) + "</p>")
            i = j
        else:
            i += 1
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Render one of our Markdown tables as HTML.")
    parser.add_argument("--md", required=True)
    parser.add_argument("--html", required=True)
    args = parser.parse_args(argv)
    text = Path(args.md).read_text()
    title = next((ln[2:] for ln in text.splitlines() if ln.startswith("# ")), Path(args.md).stem)
    write_text(args.html, page(title, markdown_to_html(text)))
    print(f"wrote {args.html}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
