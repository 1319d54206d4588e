"""The set-up files agree with each other, so the pip route, the conda route and sam build install the same."""

import re
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]


def pins(path: Path) -> dict[str, str]:
    found = {}
    for line in path.read_text().splitlines():
        line = line.split("#")[0].strip()
        if line:
            match = re.fullmatch(r"([A-Za-z0-9_.\-]+)(\[[^\]]+\])?==([\w.]+)", line)
            assert match, f"{path.name}: '{line}' is not pinned with =="
            found[match.group(1).lower()] = match.group(3)
    return found


def test_every_requirement_is_pinned_exactly():
    assert len(pins(ROOT / "requirements.txt")) > 10


def test_the_conda_environment_is_python_313_and_installs_requirements_txt():
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    deps = env["dependencies"]
    assert "python=3.13" in deps and "pip" in deps
    [pip_section] = [d for d in deps if isinstance(d, dict)]
    assert pip_section["pip"] == ["-r requirements.txt"]


def test_the_python_version_is_the_lambda_runtimes():
    template = (ROOT / "sam-app" / "template.yaml").read_text()
    assert (ROOT / ".python-version").read_text().strip() == "3.13"
    assert "Runtime: python3.13" in template


def test_the_app_package_uses_the_workshops_pins():
    workshop, app = pins(ROOT / "requirements.txt"), pins(ROOT / "sam-app" / "src" / "requirements.txt")
    assert app == {name: workshop[name] for name in app}
