"""``make book`` (``python -m workshop.book``): the workshop as a static site, to read without installing anything.

Sphinx with MyST-NB and the Sphinx Book Theme renders ``book/*.md`` and the notebooks, exercises and solutions
with their stored outputs (nothing is executed) into ``book/_build/html``. Before it runs, the pages that are
made from data are written into ``book/_generated/``: the presenter's outlines (from :mod:`workshop.talk`,
with cell numbers) and the time per notebook (measured: the last ``make notebooks`` run's
``.notebook-times.xml`` if there is one, else ``book/notebook-times.json``, where ``--save-times`` keeps it).
The talk-slide map, ``book/talk_map.md``, is committed so that GitHub shows it too: the build fails if it is
not what :mod:`workshop.talk` says (``--write-talk-map`` rewrites it).
"""

from __future__ import annotations

import argparse
import html
import json
import re
import sys
import time
import xml.etree.ElementTree as ET
from pathlib import Path

from workshop import config, talk

__all__ = ["add_run_it_yourself", "build", "main", "notebook_times", "outline", "write_generated"]

READING_WPM = 200  # words a minute, for prose a learner reads carefully
SECONDS_PER_CODE_CELL = 15  # to read a cell, run it and look at what it printed
MINUTES_PER_EXERCISE = 5  # the exercises are short; a rough figure, said as such on the page
FOLDERS = ("notebooks", "exercises", "solutions")


def _notebooks(root: Path, folder: str = "notebooks") -> list[Path]:
    return sorted((root / folder).glob("[0-9][0-9]_*.ipynb"))


def _cells(path: Path) -> list[dict]:
    return json.loads(path.read_text())["cells"]


def _title(path: Path) -> str:
    for cell in _cells(path):
        match = re.search(r"^#\s+(.+)$", "".join(cell["source"]), re.M)
        if cell["cell_type"] == "markdown" and match:
            return match.group(1).strip()
    return path.stem


def _anchor(heading: str) -> str:
    """MyST's heading anchor (myst_heading_anchors): GitHub's slug rules."""
    slug = re.sub(r"[^\w\- ]", "", heading.strip().lower().replace("`", ""))
    return slug.replace(" ", "-")


# --------------------------------------------------------------------------- times


def _junit_times(path: Path) -> dict[str, float]:
    """Seconds per notebook file (``notebooks/00_welcome`` or ``solutions/...``) from nbval's JUnit XML."""
    totals: dict[str, float] = {}
    for case in ET.parse(path).getroot().iter("testcase"):
        match = re.search(r"((?:notebooks|solutions|exercises)[./]\d\d_\w+)", case.get("classname", "") + " " + case.get("file", ""))
        if match:
            key = match.group(1).replace(".", "/", 1)
            totals[key] = totals.get(key, 0.0) + float(case.get("time", 0) or 0)
    return totals


def notebook_times(root: Path | None = None) -> tuple[dict[str, float], str]:
    """Measured seconds of kernel time per notebook, and where they come from."""
    root = root or config.repo_root()
    junit = root / ".notebook-times.xml"
    if junit.is_file():
        times = _junit_times(junit)
        if times:
            return times, f"the last `make notebooks` on this machine ({time.strftime('%Y-%m-%d', time.localtime(junit.stat().st_mtime))})"
    saved = root / "book" / "notebook-times.json"
    if saved.is_file():
        data = json.loads(saved.read_text())
        return {k: float(v) for k, v in data["seconds"].items()}, data["measured"]
    return {}, "not measured yet (run `make notebooks`)"


def _reading_seconds(path: Path) -> float:
    words = code = 0
    for cell in _cells(path):
        if cell["cell_type"] == "markdown":
            words += len(re.findall(r"\w+", "".join(cell["source"])))
        elif cell["cell_type"] == "code":
            code += 1
    return words / READING_WPM * 60 + code * SECONDS_PER_CODE_CELL


def _exercise_count(root: Path, stem: str) -> int:
    path = root / "exercises" / f"{stem}.ipynb"
    if not path.is_file():
        return 0
    return sum(1 for c in _cells(path) if c["cell_type"] == "markdown" and re.search(r"^#{2,4}\s+Exercise", "".join(c["source"]), re.M)) \
        or sum(1 for c in _cells(path) if c["cell_type"] == "code" and "TODO" in "".join(c["source"]))


def _times_page(root: Path) -> str:
    times, source = notebook_times(root)
    rows = ["| notebook | reading and running | of which the kernel runs | exercises |", "|---|---:|---:|---:|"]
    total = reading = 0.0
    fits = "none"
    for path in _notebooks(root):
        run = times.get(f"notebooks/{path.stem}", 0.0)
        minutes = (_reading_seconds(path) + run) / 60
        reading += minutes
        if reading <= 120:
            fits = path.stem[:2]
        exercises = _exercise_count(root, path.stem)
        total += minutes + exercises * MINUTES_PER_EXERCISE
        run_text = f"{run:.0f} s" if run else "–"
        rows.append(f"| [{path.stem}](../../notebooks/{path.stem}.ipynb) | {minutes:.0f} min | {run_text} | "
                    f"{exercises} (about {exercises * MINUTES_PER_EXERCISE} min) |")
    return "\n".join([
        "# Time per notebook", "",
        "How long each notebook takes a learner, **estimated from measurements**: the kernel's running time is "
        f"measured ({source}), the reading time is the notebook's prose at {READING_WPM} words a minute plus "
        f"{SECONDS_PER_CODE_CELL} s per code cell to read it and look at its output; each exercise counts "
        f"{MINUTES_PER_EXERCISE} minutes, a rough figure.", "",
        *rows, "",
        f"Altogether about **{total / 60:.1f} hours** with every exercise. A two-hour meetup session, exercises "
        f"left for home, reaches notebook {fits}; the rest makes a second session.", "",
        "The first `make lab` also installs (a few minutes, from PyPI or a wheelhouse), and the "
        "first `sam build` in notebook 04 downloads the functions' arm64 wheels unless a wheelhouse holds them.",
    ]) + "\n"


# --------------------------------------------------------------------------- the talk map and outlines


def outline(root: Path, stem: str) -> list[tuple[talk.Section, int]]:
    """One notebook's talk sections with the cell that retells each, in the notebook's order."""
    path = root / "notebooks" / f"{stem}.ipynb"
    return sorted(((s, talk.locate(s, path)) for s in talk.slides_of(stem)), key=lambda pair: (pair[1], pair[0].slides))


def _talk_map_page(root: Path) -> str:
    titles = {p.stem: _title(p) for p in _notebooks(root)}
    rows = ["| talk slides | the talk shows | retold in |", "|---|---|---|"]
    for section in talk.sections():
        path = root / "notebooks" / f"{section.notebook}.ipynb"
        talk.locate(section, path)  # fails the build if the heading is gone
        where = f"../notebooks/{section.notebook}.ipynb" + (f"#{_anchor(section.heading)}" if section.heading else "")
        label = f"{section.notebook} § {section.heading}" if section.heading else f"{section.notebook}: {titles[section.notebook]}"
        rows.append(f"| {section.slide_range} | {section.talk} | [{label.replace('|', '/')}]({where}) |")
    return "\n".join([
        "# The talk, slide by slide", "",
        f"The workshop retells the talk *{talk.TALK}* in Python, one notebook per part. The table maps each "
        "slide (or run of slides) to the notebook section that shows the same thing running; the slides left out "
        "are section dividers. The presenter's outlines (one per notebook, with cell numbers) are on "
        "the book's *For the presenter* page (`make book`) and beside each deck made by `make slides`.", "",
        *rows,
    ]) + "\n"


def _presenter_page(root: Path) -> str:
    lines = ["# For the presenter", "",
             "`make slides` turns each notebook into a reveal.js deck (`slides/NN_….slides.html`, offline, "
             "`S` opens the speaker view) and writes this outline beside each. Cell numbers count from 0, as "
             "nbconvert and `jupyter nbconvert --to slides` do. Run `make doctor` with the room first.", ""]
    for path in _notebooks(root):
        lines += [f"## {path.stem}: {_title(path)}", ""]
        rows = outline(root, path.stem)
        if not rows:
            lines += ["No talk slides: this notebook is the workshop's own.", ""]
            continue
        lines += ["| talk slides | the talk shows | cell | section |", "|---|---|---:|---|"]
        for section, cell in rows:
            lines.append(f"| {section.slide_range} | {section.talk} | {cell} | {section.heading or '(title)'} |")
        lines.append("")
    return "\n".join(lines)


def write_generated(root: Path | None = None) -> Path:
    """Write the pages made from data into book/_generated/ (the book's toctree names them)."""
    root = root or config.repo_root()
    out = root / "book" / "_generated"
    out.mkdir(parents=True, exist_ok=True)
    talk_map = root / "book" / "talk_map.md"
    if not talk_map.is_file() or talk_map.read_text() != _talk_map_page(root):
        raise SystemExit(f"{talk_map} is not what workshop/talk.py says: run `python -m workshop.book --write-talk-map`")
    pages = {"times.md": _times_page(root), "presenter.md": _presenter_page(root)}
    for stale in out.glob("*.md"):  # a page no longer made would be a page in no toctree
        if stale.name not in pages:
            stale.unlink()
    for name, text in pages.items():
        target = out / name
        if not target.is_file() or target.read_text() != text:  # untouched pages keep Sphinx's cache valid
            target.write_text(text)
    return out


# --------------------------------------------------------------------------- Sphinx


def run_it_yourself(pagename: str) -> str:
    """The note at the top of every page: how to run this page's notebook (or the workshop) on one's own laptop."""
    folder, _, stem = pagename.partition("/")
    where = f"then open <code>{html.escape(pagename)}.ipynb</code>" if folder in FOLDERS else "it opens notebook 00"
    extra = {"exercises": " (the answers are in <code>solutions/</code>)",
             "solutions": " (try <code>exercises/</code> first)"}.get(folder, "")
    return ('<div class="admonition tip run-it-yourself"><p class="admonition-title">Run it yourself</p>'
            "<p><code>git clone</code> the repository, run <code>make lab</code> (Python 3.13; it sets itself up, "
            f"offline from a <code>wheelhouse/</code> if you have one) and {where}{extra}. "
            "<code>make doctor</code> checks your laptop first.</p></div>")


def add_run_it_yourself(app, pagename: str, templatename: str, context: dict, doctree) -> None:
    """Sphinx's html-page-context hook: the run-it-yourself note above each page's body."""
    if doctree is not None and "body" in context:
        context["body"] = run_it_yourself(pagename) + context["body"]


def build(root: Path | None = None, out: Path | None = None, quiet: bool = True) -> int:
    """Render the book; answers Sphinx's exit code (warnings fail it: a broken link or a lost image is a bug)."""
    from sphinx.cmd.build import build_main

    root = root or config.repo_root()
    out = out or root / "book" / "_build" / "html"
    write_generated(root)
    args = ["-b", "html", "-c", str(root / "book"), "-W", "--keep-going", "-j", "auto",
            "-d", str(out.parent / "doctrees"), str(root), str(out)]
    code = build_main((["-q"] if quiet else []) + args)
    if code == 0:  # the site's front door: index.html at the top, as a static host serves it
        (out / "index.html").write_text('<!DOCTYPE html><meta charset="utf-8"><link rel="icon" href="data:,"><title>Redirecting</title>'
                                        '<meta http-equiv="refresh" content="0; url=book/index.html">'
                                        '<a href="book/index.html">The workshop</a>\n')
    return code


def save_times(root: Path | None = None) -> Path:
    root = root or config.repo_root()
    times = _junit_times(root / ".notebook-times.xml")
    target = root / "book" / "notebook-times.json"
    target.write_text(json.dumps({"measured": f"`make notebooks` on a 2-core machine, {time.strftime('%Y-%m-%d')}",
                                  "seconds": {k: round(v, 1) for k, v in sorted(times.items())}}, indent=1) + "\n")
    return target


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m workshop.book", description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, help="where the site goes (default book/_build/html)")
    parser.add_argument("--save-times", action="store_true",
                        help="keep .notebook-times.xml's measurements in book/notebook-times.json, and stop")
    parser.add_argument("--write-talk-map", action="store_true",
                        help="write book/talk_map.md from workshop/talk.py (committed: GitHub shows it too), and stop")
    parser.add_argument("--verbose", action="store_true")
    args = parser.parse_args(argv)
    if args.write_talk_map:
        target = config.repo_root() / "book" / "talk_map.md"
        target.write_text(_talk_map_page(config.repo_root()))
        print(f"wrote {target}")
        return 0
    if args.save_times:
        print(f"wrote {save_times()}")
        return 0
    started = time.perf_counter()
    code = build(out=args.out, quiet=not args.verbose)
    out = args.out or config.repo_root() / "book" / "_build" / "html"
    if code == 0:
        print(f"The book is in {out} ({time.perf_counter() - started:.0f} s): open {out / 'index.html'}")
    return code


if __name__ == "__main__":
    sys.exit(main())
