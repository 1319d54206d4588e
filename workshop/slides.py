"""``make slides`` (``python -m workshop.slides``): a reveal.js deck per notebook and a presenter outline beside it.

The stored notebooks carry no slide metadata (the lead's cell edits stay clean diffs): the cells are tagged here,
on a copy, at build time, by what they hold:

==============================  ================================================================================
cell                            slide type
==============================  ================================================================================
markdown with a ``#``/``##``    ``slide``: a new slide, left to right
markdown with a ``###``         ``subslide``: below its slide, top to bottom
other markdown                  ``-``: on the slide of the heading above it
code                            ``fragment``: appears, with its output, at the next key press
empty code                      ``skip``
==============================  ================================================================================

and each section that retells talk slides gets a speaker note (``S`` opens the speaker view) naming them, from the
talk map (:mod:`workshop.talk`). nbconvert's slides exporter renders each deck with ``book/reveal/templates``: its
reveal template without a CDN, reveal.js and require.js from ``book/reveal/package.json`` (``npm ci``), copied
beside the decks so that ``slides/`` works offline, from a USB stick or a laptop without Wi-Fi.
"""

from __future__ import annotations

import argparse
import copy
import html
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

from workshop import book, config, talk

__all__ = ["build", "main", "slide_positions", "tag"]

REVEAL_DIR = "reveal.js"  # beside the decks: dist/, plugin/ and require.js


def _heading_level(source: str) -> int | None:
    match = re.search(r"^(#{1,6})\s", source, re.M)
    return len(match.group(1)) if match else None


def slide_type(cell: dict) -> str:
    source = "".join(cell["source"])
    if cell["cell_type"] == "markdown":
        level = _heading_level(source)
        if level is not None and level <= 2:
            return "slide"
        return "subslide" if level == 3 else "-"
    if cell["cell_type"] == "code":
        return "fragment" if source.strip() else "skip"
    return "skip"


def tag(notebook: dict, notes: dict[int, list[talk.Section]] | None = None) -> dict:
    """A copy of the notebook with slide types, and a speaker note after each cell that ``notes`` names."""
    tagged = copy.deepcopy(notebook)
    cells = []
    for index, cell in enumerate(tagged["cells"]):
        cell.setdefault("metadata", {})["slideshow"] = {"slide_type": slide_type(cell)}
        cells.append(cell)
        for section in (notes or {}).get(index, []):
            cells.append({"cell_type": "markdown", "id": f"talk-{index}-{section.slides[0]}",
                          "metadata": {"slideshow": {"slide_type": "notes"}},
                          "source": f"Talk slides {section.slide_range}: {section.talk}."})
    tagged["cells"] = cells
    return tagged


def slide_positions(notebook: dict) -> dict[int, tuple[int, int]]:
    """Where each cell of a tagged notebook lands in reveal.js: (horizontal, vertical) indices, ``#/h/v``."""
    positions, h, v = {}, -1, 0
    for index, cell in enumerate(notebook["cells"]):
        kind = cell["metadata"]["slideshow"]["slide_type"]
        if kind == "slide" or h < 0:
            h, v = h + 1, 0
        elif kind == "subslide":
            v += 1
        positions[index] = (h, v)
    return positions


def _reveal_assets(root: Path, dest: Path) -> None:
    """reveal.js and require.js, installed from book/reveal's lock file (npm's cache serves it offline)."""
    package = root / "book" / "reveal"
    modules = package / "node_modules"
    if not (modules / "reveal.js" / "dist" / "reveal.js").is_file() or not (modules / "requirejs" / "require.js").is_file():
        npm = shutil.which("npm")
        if npm is None:
            raise SystemExit("make slides needs npm for reveal.js (Debian/Ubuntu: `apt-get install npm`; macOS: "
                             "`brew install node`), once: the decks then work offline")
        subprocess.run([npm, "ci", "--no-audit", "--no-fund", "--ignore-scripts", "--prefer-offline"], cwd=package, check=True)
    target = dest / REVEAL_DIR
    if target.exists():
        shutil.rmtree(target)
    for part in ("dist", "plugin"):
        shutil.copytree(modules / "reveal.js" / part, target / part)
    shutil.copy2(modules / "reveal.js" / "LICENSE", target / "LICENSE")
    shutil.copy2(modules / "requirejs" / "require.js", target / "require.js")


def _exporter(root: Path):
    from nbconvert import SlidesExporter

    return SlidesExporter(
        extra_template_basedirs=[str(root / "book" / "reveal" / "templates")], template_name="workshop_reveal",
        reveal_url_prefix=REVEAL_DIR, require_js_url=f"{REVEAL_DIR}/require.js", reveal_theme="white",
        reveal_transition="none", reveal_number="c/t", reveal_width="1280", reveal_height="800",
        exclude_input_prompt=True, exclude_output_prompt=True)


def _outline_html(stem: str, title: str, rows: list[tuple[talk.Section, int, tuple[int, int]]]) -> str:
    deck = f"{stem}.slides.html"
    lines = [f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><link rel="icon" href="data:,"><title>{html.escape(stem)}: presenter outline</title>',
             "<style>body{font-family:system-ui,sans-serif;max-width:60em;margin:2em auto;padding:0 1em}"
             "table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:.3em .6em;text-align:left}</style></head><body>",
             f"<h1>{html.escape(stem)}: {html.escape(title)}</h1>",
             f'<p>The deck: <a href="{deck}">{deck}</a> (<kbd>S</kbd> opens the speaker view with these notes). '
             f'The talk: <i>{html.escape(talk.TALK)}</i>. <a href="index.html">All decks</a>.</p>']
    if not rows:
        lines.append("<p>No talk slides: this notebook is the workshop's own.</p>")
    else:
        lines.append("<table><tr><th>talk slides</th><th>the talk shows</th><th>notebook cell</th><th>section</th><th>deck</th></tr>")
        for section, cell, (h, v) in rows:
            lines.append(f"<tr><td>{section.slide_range}</td><td>{html.escape(section.talk)}</td><td>{cell}</td>"
                         f"<td>{html.escape(section.heading or '(title)')}</td><td><a href=\"{deck}#/{h}/{v}\">slide {h + 1}</a></td></tr>")
        lines.append("</table>")
    lines.append("</body></html>\n")
    return "\n".join(lines)


def build(root: Path | None = None, dest: Path | None = None) -> list[Path]:
    """Write every deck, its outline and an index into ``dest`` (default ``slides/``); answers the decks."""
    import nbformat

    root = root or config.repo_root()
    dest = dest or root / "slides"
    dest.mkdir(parents=True, exist_ok=True)
    _reveal_assets(root, dest)
    exporter = _exporter(root)
    decks, index_rows = [], []
    for path in sorted((root / "notebooks").glob("[0-9][0-9]_*.ipynb")):
        notebook = nbformat.read(path, as_version=4)
        located = book.outline(root, path.stem)  # KeyError if a mapped heading is gone
        notes: dict[int, list[talk.Section]] = {}
        for section, cell in located:
            notes.setdefault(cell, []).append(section)
        tagged = tag(notebook, notes)
        # where each original cell went: the notes inserted before it shift it
        shift, original_to_tagged = 0, {}
        for index in range(len(notebook["cells"])):
            original_to_tagged[index] = index + shift
            shift += len(notes.get(index, []))
        positions = slide_positions(tagged)
        body, _ = exporter.from_notebook_node(nbformat.from_dict(tagged), resources={"metadata": {"name": path.stem}})
        deck = dest / f"{path.stem}.slides.html"
        deck.write_text(body)
        decks.append(deck)
        title = book._title(path)
        rows = [(s, c, positions[original_to_tagged[c]]) for s, c in located]
        (dest / f"{path.stem}.outline.html").write_text(_outline_html(path.stem, title, rows))
        index_rows.append(f'<li><a href="{deck.name}">{html.escape(path.stem)}: {html.escape(title)}</a> '
                          f'(<a href="{path.stem}.outline.html">presenter outline</a>, talk slides '
                          f"{', '.join(s.slide_range for s, _ in located) or 'none'})</li>")
    (dest / "index.html").write_text(
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><link rel="icon" href="data:,"><title>The workshop, as slides</title>'
        "<style>body{font-family:system-ui,sans-serif;max-width:60em;margin:2em auto;padding:0 1em}</style></head><body>"
        "<h1>Going serverless on AWS with Python &amp; SAM: the decks</h1>"
        "<p>One deck per notebook: arrows move, <kbd>S</kbd> opens the speaker view (the talk's slides in its notes), "
        "<kbd>Esc</kbd> the overview. Everything here works offline.</p><ol start=\"0\">"
        + "".join(index_rows) + "</ol></body></html>\n")
    return decks


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m workshop.slides", description=__doc__.split("\n\n")[0])
    parser.add_argument("--dest", type=Path, help="where the decks go (default slides/)")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    decks = build(dest=args.dest)
    where = args.dest or config.repo_root() / "slides"
    print(f"{len(decks)} decks in {where} ({time.perf_counter() - started:.0f} s): open {where / 'index.html'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
