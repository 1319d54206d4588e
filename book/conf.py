"""Sphinx settings for `make book` (MyST-NB + the Sphinx Book Theme): the notebooks with their stored outputs.

The source folder is the repository's root, so that notebooks/, exercises/ and solutions/ are rendered where
they live (their links to each other keep working); `include_patterns` keeps Sphinx to them and book/.
"""

project = "Going serverless on AWS with Python & SAM"
author = "the workshop's authors"
copyright = "the workshop's authors"
extensions = ["myst_nb"]
root_doc = "book/index"
include_patterns = ["book/*.md", "book/_generated/*.md", "notebooks/*.ipynb", "exercises/*.ipynb", "solutions/*.ipynb"]
exclude_patterns = [".venv", "wheelhouse", "book/_build", "slides", "sam-app", "localcloud", "workshop", "tests",
                    "benchmarks", "**/.ipynb_checkpoints", "README.md"]

nb_execution_mode = "off"  # the stored outputs are the book's: CI (nbval) checks they are what the code prints
nb_merge_streams = True
myst_heading_anchors = 3  # links to a notebook's sections (the talk map's)
myst_enable_extensions = ["colon_fence", "deflist"]
suppress_warnings = ["myst.header"]  # the notebooks' "On your own" sections start at ##, not below a ### one

html_theme = "sphinx_book_theme"
html_title = "Going serverless with Python & SAM"
html_theme_options = {
    "show_toc_level": 2,
    "home_page_in_toc": True,
    "use_download_button": True,  # the .ipynb, to run it in one's own JupyterLab
}
# the theme's mode on a first visit; unset, its script logs "Got invalid theme mode" as a console error
# (https://pydata-sphinx-theme.readthedocs.io/en/stable/user_guide/light-dark.html)
html_context = {"default_mode": "auto"}
html_static_path = []
html_favicon = "favicon.svg"  # else browsers ask for /favicon.ico, a 404 in the console
html_last_updated_fmt = None
html_copy_source = True


def setup(app):
    from workshop.book import add_run_it_yourself

    app.connect("html-page-context", add_run_it_yourself)
