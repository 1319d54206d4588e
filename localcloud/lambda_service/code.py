"""Code built for Lambda, run on this machine: which folder a function runs from, and native packages for this CPU.

``sam build`` makes packages for the function's architecture (``arm64``: Pillow's ``.so`` files for aarch64).
Such a package cannot load on an x86_64 laptop, and an x86_64 one cannot load on Apple silicon. The local
cloud runs each function with the Python that runs the cloud, so a package whose native code is for another
CPU is run with this machine's own copy of that distribution instead (``use_host_native_packages``), and the
function's INIT log says so.
"""

from __future__ import annotations

import importlib.metadata
import os
import shutil
import tomllib
from pathlib import Path

__all__ = ["host_code_dir", "use_host_native_packages"]

#: ELF ``e_machine`` of each CPU name ``os.uname()`` and ``sam build`` use
_ELF_MACHINES = {"x86_64": 0x3E, "amd64": 0x3E, "aarch64": 0xB7, "arm64": 0xB7}


def host_code_dir(source: Path, build: Path | None) -> tuple[Path, str]:
    """The folder a function's code runs from here, and why.

    ``.aws-sam/build/<Function>`` only when it exists and is known to be built for this machine:
    ``sam build``'s ``build.toml`` names this machine's architecture (when it names one) and its
    native extensions are ELF files for this machine, at least one of them (a build without
    any, with no ``build.toml`` to say what it is for, proves nothing). Otherwise the source
    folder (``CodeUri``), which runs with the packages installed beside the local cloud.
    ``sam build`` makes arm64 builds (the template says ``Architectures: [arm64]``): their Pillow
    cannot load on an x86_64 laptop.
    """
    if build is None or not build.is_dir():
        return source, "source (no sam build output)"
    host = _host_elf_machine()
    built_for = _built_architecture(build)
    if built_for is not None:
        if host is None or _ELF_MACHINES.get(built_for) != host:
            return source, f"source (sam build made {built_for} code, this machine is {os.uname().machine})"
    checked = 0
    for dirpath, _dirs, files in os.walk(build):
        for name in files:
            if name.endswith(".so") or ".so." in name:
                machine = _elf_machine(Path(dirpath) / name)
                if machine is None:
                    continue
                if host is None or machine != host:
                    return source, "source (the sam build output is for another architecture)"
                checked += 1
                if checked >= 3:
                    return build, "build (.aws-sam/build, built for this machine)"
    if checked or built_for is not None:
        return build, "build (.aws-sam/build, built for this machine)"
    return source, "source (the sam build output does not say what it was built for)"


def use_host_native_packages(folder: Path) -> list[str]:
    """Take out of ``folder`` (an unpacked deployment package) the top-level packages whose native code is for
    another CPU, so this machine's installed copy is imported instead. Returns the INIT log lines saying so."""
    host = _host_elf_machine()
    foreign: dict[str, int] = {}  # top-level entry -> the CPU its .so files are for
    for path in folder.rglob("*.so*"):
        if path.is_file() and (path.name.endswith(".so") or ".so." in path.name):
            machine = _elf_machine(path)
            if machine is not None and machine != host:
                foreign.setdefault(path.relative_to(folder).parts[0], machine)
    notes = []
    machines = {v: k for k, v in _ELF_MACHINES.items() if k in ("x86_64", "aarch64")}
    here = os.uname().machine
    for top, machine in sorted(foreign.items(), key=lambda item: item[0].endswith(".libs")):
        if not (folder / top).exists():  # a distribution's vendored libraries, gone with it
            continue
        if top.endswith(".libs"):  # libraries no package here ships any more
            shutil.rmtree(folder / top)
            continue
        built_for = machines.get(machine, "another CPU" if machine != -1 else "another system")
        dists = _distributions_of(folder, top)
        for entry in [top, *dists]:
            target = folder / entry
            if target.is_dir():
                shutil.rmtree(target)
            elif target.exists():
                target.unlink()
        shipped = sorted({tuple(d[: -len(".dist-info")].split("-", 1)) for d in dists if d.endswith(".dist-info")})
        for name, version in shipped or [(top, "")]:
            installed = _installed_version(name)
            notes.append(f"localcloud: {top} ({name} {version}) is built for {built_for}; this {here} machine "
                         + (f"runs the function with its own {name} {installed}" if installed
                            else f"has no {name} to run it with: the import will fail"))
    return notes


def _distributions_of(folder: Path, top: str) -> list[str]:
    """The ``*.dist-info`` folders (and ``pillow.libs``-style siblings) that ship the top-level entry ``top``."""
    out = []
    for meta in folder.glob("*.dist-info"):
        record = meta / "RECORD"
        try:
            lines = record.read_text().splitlines()
        except OSError:
            continue
        if any(line.split("/", 1)[0] == top or line.split(",", 1)[0] == top for line in lines):
            out.append(meta.name)
            out += sorted({line.split("/", 1)[0] for line in lines
                           if line.split("/", 1)[0].endswith(".libs") and (folder / line.split("/", 1)[0]).is_dir()})
    return sorted(set(out) - {top})


def _installed_version(distribution: str) -> str | None:
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return None


def _host_elf_machine() -> int | None:
    machine = os.uname().machine.lower() if hasattr(os, "uname") else ""
    return _ELF_MACHINES.get(machine)


def _elf_machine(path: Path) -> int | None:
    try:
        with open(path, "rb") as f:
            head = f.read(20)
    except OSError:
        return None
    if len(head) < 20 or head[:4] != b"\x7fELF":
        return -1  # not ELF (a Mach-O .so on macOS, for one): not loadable by the functions here
    order = "little" if head[5] == 1 else "big"
    return int.from_bytes(head[18:20], order)


def _built_architecture(build: Path) -> str | None:
    """The architecture ``sam build`` recorded for the function built in ``build`` (``.aws-sam/build.toml``)."""
    manifest = build.parent.parent / "build.toml"
    try:
        data = tomllib.loads(manifest.read_text())
    except (OSError, ValueError):
        return None
    for definition in (data.get("function_build_definitions") or {}).values():
        if build.name in (definition.get("functions") or []):
            return str(definition.get("architecture") or "x86_64")
    return None

