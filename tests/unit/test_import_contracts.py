"""The house rules hold: the import contracts of pyproject.toml, and notebooks that use only localcloud's public names.

`make lint` runs import-linter on the tree; these tests prove that each contract is kept today and that
breaking it on purpose (one forbidden import added to a copy of the tree) fails the run.
"""

from __future__ import annotations

import ast
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import localcloud

REPO = Path(__file__).resolve().parents[2]
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")


def _lint_imports(root: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(root), str(root / "sam-app" / "src")]),
           "NO_COLOR": "1", "TERM": "dumb"}
    return subprocess.run([str(LINT_IMPORTS), "--no-cache"], cwd=root, env=env, capture_output=True,
                          text=True, timeout=120)


@pytest.fixture(scope="module")
def tree_copy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("house")
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for package in ("localcloud", "workshop", "sam-app/src/thumbnailr"):
        shutil.copytree(REPO / package, root / package, ignore=ignore)
    shutil.copy(REPO / "pyproject.toml", root / "pyproject.toml")
    return root


def test_every_contract_is_kept() -> None:
    done = _lint_imports(REPO)
    assert done.returncode == 0, done.stdout + done.stderr


BREAKS = [
    ("The app never imports the local cloud or the workshop",
     "sam-app/src/thumbnailr/services.py", "import localcloud"),
    ("The app's core knows no AWS: no boto3, botocore or Powertools",
     "sam-app/src/thumbnailr/model.py", "import botocore.exceptions"),
    ("The app's core knows no AWS: no boto3, botocore or Powertools",
     "sam-app/src/thumbnailr/processing.py", "from aws_lambda_powertools import Logger"),
    ("The local cloud knows nothing of the workshop or the app",
     "localcloud/cloud.py", "from workshop import config"),
    ("The local cloud knows nothing of the workshop or the app",
     "localcloud/http.py", "import thumbnailr.model"),
    ("The workshop uses the local cloud through its public names only",
     "workshop/lab.py", "from localcloud.cfn import stack"),
]


@pytest.mark.parametrize(("contract", "path", "line"), BREAKS, ids=[f"{p}: {line}" for _, p, line in BREAKS])
def test_a_contract_broken_on_purpose_fails_the_run(tree_copy: Path, contract: str, path: str, line: str) -> None:
    target = tree_copy / path
    original = target.read_text()
    target.write_text(original + f"\n{line}  # broken on purpose\n")
    try:
        done = _lint_imports(tree_copy)
    finally:
        target.write_text(original)
    assert done.returncode != 0, done.stdout
    broken = done.stdout.split("Broken contracts", 1)[-1]
    assert contract in broken, done.stdout


# --------------------------------------------------------------------------- notebooks


def internal_imports(source: str) -> list[str]:
    """The imports in ``source`` that reach past localcloud's public names (``localcloud.__all__``)."""
    try:
        tree = ast.parse(source)
    except SyntaxError:  # IPython magics: check the lines that are Python
        tree = ast.parse("\n".join(line for line in source.splitlines() if not line.lstrip().startswith(("%", "!"))))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [a.name for a in node.names if a.name.startswith("localcloud.")]
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "localcloud":
            if node.module != "localcloud":
                found.append(node.module)
            else:
                found += [f"localcloud.{a.name}" for a in node.names if a.name not in localcloud.__all__]
    return found


def test_the_notebook_check_catches_internals() -> None:
    assert internal_imports("from localcloud import LocalCloud, FunctionSpec\nimport localcloud") == []
    assert internal_imports("from localcloud.cfn.stack import Stack") == ["localcloud.cfn.stack"]
    assert internal_imports("import localcloud.lambda_service.runtime as rt") == ["localcloud.lambda_service.runtime"]
    assert internal_imports("from localcloud import _PUBLIC") == ["localcloud._PUBLIC"]
    assert internal_imports("%matplotlib inline\nfrom localcloud.http import HttpServer") == ["localcloud.http"]


@pytest.mark.parametrize("notebook", sorted(p.relative_to(REPO).as_posix() for folder in ("notebooks", "exercises", "solutions")
                                             for p in (REPO / folder).glob("*.ipynb")))
def test_notebooks_import_no_localcloud_internals(notebook: str) -> None:
    cells = json.loads((REPO / notebook).read_text())["cells"]
    found = [name for cell in cells if cell["cell_type"] == "code" for name in internal_imports("".join(cell["source"]))]
    assert found == [], f"{notebook} imports localcloud internals: {found}; use `from localcloud import ...` names"
