"""Which folder a function's code runs from on this machine: ``sam build``'s output when built for it, else the source."""

from __future__ import annotations

import os
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


def use_host_native_packages(folder: Path) -> list[str]:
    """Swap the native packages of code built for another machine for this machine's; the INIT log's notes.

    A stub until the substitution lands: nothing is changed, nothing is said.
    """
    return []
