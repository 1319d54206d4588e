"""`make book`: every page renders in Chromium with no console error and every image drawn; the pages it promises."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.learner.conftest import REPO, Browser, serve


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, str]]:
    from workshop import book

    out = tmp_path_factory.mktemp("book") / "html"
    assert book.build(REPO, out) == 0, "the book's build failed or warned (Sphinx -W): see its output above"
    url, server = serve(out)
    try:
        yield out, url
    finally:
        server.shutdown()


def _pages(out: Path) -> list[str]:
    return sorted(str(p.relative_to(out)) for p in out.rglob("*.html")
                  if not p.relative_to(out).parts[0].startswith("_") and p.name not in ("genindex.html", "search.html"))


def test_the_book_has_every_notebook_and_the_promised_pages(site: tuple[Path, str]) -> None:
    out, _ = site
    pages = set(_pages(out))
    for folder in ("notebooks", "exercises", "solutions"):
        for notebook in sorted((REPO / folder).glob("[0-9][0-9]_*.ipynb")):
            assert f"{folder}/{notebook.stem}.html" in pages
    for page in ("book/index.html", "book/glossary.html", "book/troubleshooting.html", "book/cheatsheet.html",
                 "book/talk_map.html", "book/_generated/times.html", "book/_generated/presenter.html"):
        assert page in pages, page
    assert 'url=book/index.html' in (out / "index.html").read_text()


def test_every_page_loads_clean_in_chromium_with_its_images_drawn(site: tuple[Path, str], chromium: Browser) -> None:
    out, url = site
    problems, drawn = {}, 0
    # a themed page first: the origin is new, as for a reader's first visit (nothing in localStorage yet)
    for page in [*_pages(out), "index.html", "search.html"]:
        found = chromium.problems(url + page)
        if found:
            problems[page] = found
        if page.startswith(("notebooks/", "exercises/", "solutions/")):
            drawn += chromium.images()
        if page not in ("index.html", "search.html"):  # the redirect and the search page have no text of their own
            assert "Run it yourself" in chromium.driver.page_source, f"{page} lacks the run-it-yourself note"
    assert problems == {}
    # the plots are inline: as many images on the notebook pages as PNG outputs stored in the notebooks
    stored = sum(1 for folder in ("notebooks", "exercises", "solutions")
                 for path in (REPO / folder).glob("*.ipynb")
                 for cell in json.loads(path.read_text())["cells"]
                 for output in cell.get("outputs", []) if "image/png" in output.get("data", {}))
    assert stored > 0 and drawn >= stored


def test_the_talk_map_links_to_the_sections_that_exist(site: tuple[Path, str], chromium: Browser) -> None:
    out, url = site
    chromium.open(url + "book/talk_map.html")
    links = chromium.driver.execute_script(
        "return Array.from(document.querySelectorAll('article a.reference.internal')).map(a => a.href)")
    targets = [link for link in links if "/notebooks/" in link]
    assert len(targets) >= 30
    missing = []
    for link in sorted(set(targets)):
        page, _, anchor = link.partition("#")
        if anchor:
            chromium.open(link)
            if not chromium.driver.execute_script("return document.getElementById(arguments[0]) !== null", anchor):
                missing.append(link)
    assert missing == []
