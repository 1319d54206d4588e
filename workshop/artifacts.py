"""What `sam build` makes and what SAM expands a template into: package sizes, native code's CPU, resource counts.

Pure functions on folders and template dicts, for the build notebook and its exercises::

    from workshop import artifacts

    artifacts.elf_machine(path)                  # "AArch64", "x86-64", ... or None (not an ELF file)
    artifacts.package_size(folder)               # (unzipped bytes, zipped bytes), zipped in memory
    artifacts.expand(template, {"Dispatch": "sns"})   # the CloudFormation SAM makes of it, offline
    artifacts.count_types(expanded["Resources"]) # {"AWS::Lambda::Function": 7, ...}
"""

from __future__ import annotations

import hashlib
import io
import os
import struct
import zipfile
from collections import Counter
from pathlib import Path
from typing import Any, Mapping

__all__ = ["ELF_MACHINES", "elf_machine", "files_of", "tree_digest", "package_size", "expand", "count_types"]

#: ``e_machine`` values of the ELF header (offset 18, 2 bytes) that a Lambda or a laptop may have.
ELF_MACHINES = {3: "x86 (32-bit)", 40: "ARM (32-bit)", 62: "x86-64", 183: "AArch64"}


def elf_machine(path: str | os.PathLike[str]) -> str | None:
    """The CPU an ELF file (a ``.so``) was built for, from its header; None if it is not ELF (e.g. Mach-O)."""
    with open(path, "rb") as f:
        header = f.read(20)
    if len(header) < 20 or header[:4] != b"\x7fELF":
        return None
    byte_order = "<" if header[5] == 1 else ">"  # EI_DATA: 1 little-endian, 2 big-endian
    (machine,) = struct.unpack_from(byte_order + "H", header, 18)
    return ELF_MACHINES.get(machine, f"e_machine {machine}")


def files_of(folder: str | os.PathLike[str]) -> list[Path]:
    """Every file under ``folder`` (symlinks not followed), sorted: what a deployment package holds."""
    root = Path(folder)
    return sorted(p for p in root.rglob("*") if p.is_file() and not p.is_symlink())


def tree_digest(folder: str | os.PathLike[str]) -> str:
    """A SHA-256 of the folder's file names and contents: equal digests, byte-identical packages."""
    root = Path(folder)
    digest = hashlib.sha256()
    for path in files_of(root):
        digest.update(str(path.relative_to(root)).encode() + b"\0")
        digest.update(path.read_bytes())
    return digest.hexdigest()


def package_size(folder: str | os.PathLike[str], compresslevel: int = 6) -> tuple[int, int]:
    """(unzipped bytes, zipped bytes) of the deployment package ``folder`` would make (DEFLATE, in memory)."""
    root = Path(folder)
    unzipped = 0
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED, compresslevel=compresslevel) as archive:
        for path in files_of(root):
            unzipped += path.stat().st_size
            archive.write(path, path.relative_to(root))
    return unzipped, buffer.getbuffer().nbytes


def expand(template: Mapping[str, Any], parameters: Mapping[str, str] | None = None,
           code_uri: str = "s3://workshop/code.zip", *, region: str = "us-east-1") -> dict:
    """The plain CloudFormation the SAM transform makes of ``template``, offline, in ``region``.

    The transform wants each function's code in S3 (``sam deploy`` uploads it there first), so every
    local ``CodeUri`` is replaced by ``code_uri``. It is the local cloud's own transform
    (``localcloud.sam_transform``), the one every stack the local cloud deploys goes through.
    """
    from localcloud import sam_transform

    return sam_transform(template, parameters, region=region, code_uri=code_uri).template


def count_types(resources: Mapping[str, Mapping[str, Any]]) -> Counter:
    """How many resources of each ``Type``."""
    return Counter(resource["Type"] for resource in resources.values())
