"""`make slides`: a reveal.js deck per notebook that runs offline in Chromium, with the talk's slides in its notes."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import nbformat
import pytest

from tests.learner.conftest import REPO, Browser, serve
from workshop import slides, talk


def test_cells_are_tagged_by_what_they_hold_on_a_copy() -> None:
    notebook = nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_markdown_cell("# Title\nintro"), nbformat.v4.new_code_cell("x = 1"),
        nbformat.v4.new_markdown_cell("### A detail"), nbformat.v4.new_markdown_cell("prose"),
        nbformat.v4.new_code_cell("  "), nbformat.v4.new_markdown_cell("## Next part")])
    section = talk.Section((11, 13), "lifecycle", "x", "A detail")
    tagged = slides.tag(notebook, {2: [section]})
    kinds = [c["metadata"]["slideshow"]["slide_type"] for c in tagged["cells"]]
    assert kinds == ["slide", "fragment", "subslide", "notes", "-", "skip", "slide"]
    assert tagged["cells"][3]["source"] == "Talk slides 11–13: lifecycle."
    assert all("slideshow" not in c["metadata"] for c in notebook["cells"])  # the stored notebook is untouched
    assert slides.slide_positions(tagged) == {0: (0, 0), 1: (0, 0), 2: (0, 1), 3: (0, 1), 4: (0, 1), 5: (0, 1), 6: (1, 0)}


def test_a_talk_map_heading_that_is_gone_fails_loudly(tmp_path: Path) -> None:
    path = tmp_path / "nb.ipynb"
    nbformat.write(nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell("# T\n## Kept")]), path)
    assert talk.locate(talk.Section((1, 1), "t", "nb", "Kept"), path) == 0
    with pytest.raises(KeyError, match="Gone"):
        talk.locate(talk.Section((1, 1), "t", "nb", "Gone"), path)


@pytest.fixture(scope="module")
def decks(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, str, list[Path]]]:
    import shutil

    if not (REPO / "book" / "reveal" / "node_modules").is_dir() and shutil.which("npm") is None:
        pytest.skip("no npm to install reveal.js from book/reveal/package-lock.json (apt-get install npm)")
    dest = tmp_path_factory.mktemp("slides")
    built = slides.build(REPO, dest)
    url, server = serve(dest)
    try:
        yield dest, url, built
    finally:
        server.shutdown()


def test_every_deck_runs_offline_with_its_slides_notes_and_images(decks: tuple[Path, str, list[Path]],
                                                                  chromium: Browser) -> None:
    dest, url, built = decks
    assert [d.name for d in built] == [f"{p.stem}.slides.html" for p in sorted((REPO / "notebooks").glob("[0-9][0-9]_*.ipynb"))]
    problems = {}
    for deck in built:
        source = deck.read_text()
        assert "unpkg.com" not in source and "cdnjs" not in source, f"{deck.name} loads from a CDN"
        chromium.open(url + deck.name)
        ready = chromium.wait("document.querySelector('.reveal.ready')")
        found = [f"console: {m}" for m in chromium.console_errors()]
        found += [f"image not rendered: {src}" for src in chromium.broken_images()]
        found += [] if ready else ["reveal.js did not start"]
        horizontal = chromium.driver.execute_script("return document.querySelectorAll('.reveal .slides > section').length")
        stored = nbformat.read(REPO / "notebooks" / deck.name.replace(".slides.html", ".ipynb"), as_version=4)
        expected = sum(1 for c in slides.tag(stored)["cells"] if c["metadata"]["slideshow"]["slide_type"] == "slide")
        found += [] if horizontal == expected else [f"{horizontal} slides, expected {expected}"]
        notes = chromium.driver.execute_script("return document.querySelectorAll('aside.notes').length")
        mapped = len(talk.slides_of(deck.name.removesuffix(".slides.html")))
        found += [] if notes == mapped else [f"{notes} speaker notes, expected {mapped}"]
        if found:
            problems[deck.name] = found
    assert problems == {}


def test_the_outlines_link_each_talk_slide_to_its_place_in_the_deck(decks: tuple[Path, str, list[Path]],
                                                                   chromium: Browser) -> None:
    dest, url, _ = decks
    assert chromium.problems(url + "index.html") == []
    assert chromium.problems(url + "02_lambda_lifecycle.outline.html") == []
    link = chromium.driver.execute_script(
        "return Array.from(document.querySelectorAll('td a')).map(a => a.href).find(h => h.includes('#/'))")
    assert link and "02_lambda_lifecycle.slides.html#/" in link
    chromium.open(link)
    assert chromium.wait("document.querySelector('.reveal.ready')")
    title = chromium.driver.execute_script(
        "const s = document.querySelector('.reveal.ready section.present section.present, .reveal.ready > .slides > section.present');"
        "return s ? s.innerText : ''")
    # the first mapped section of notebook 02 is 'Separate init from the handler' (talk slide 11)
    assert "separate init from the handler" in title.lower()  # the theme sets headings in capitals
