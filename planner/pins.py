"""Pinned rules files, one file at a time: the SHA-256 a rules folder's ``manifest.yaml`` pins for a data file.

The lowest layer of rule reading (it imports nothing of planner but its errors): :mod:`planner.rule_files`
calls :func:`verify_file` on every file it reads, and :mod:`planner.manifest` builds and checks the whole
manifest with :func:`sha256_file`. A file outside any rules folder (no ``manifest.yaml`` above it) is not
pinned.
"""

from __future__ import annotations

import functools
import hashlib
import os
from pathlib import Path
from typing import Any

import yaml

from .errors import RuleError

__all__ = ["MANIFEST", "DATA_SUFFIXES", "sha256_file", "verify_file", "forget"]

MANIFEST = "manifest.yaml"
DATA_SUFFIXES = {".yaml", ".yml", ".csv", ".tsv", ".json"}


def sha256_file(path: str | os.PathLike[str]) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 16), b""):
            h.update(chunk)
    return h.hexdigest()


def _rules_root(path: Path) -> Path | None:
    """The nearest folder above ``path`` holding a manifest (a rules folder), or None."""
    for parent in list(path.parents)[:6]:
        if (parent / MANIFEST).is_file():
            return parent
    return None


@functools.lru_cache(maxsize=64)
def _pinned(manifest_path: str, mtime_ns: int) -> dict[str, Any]:
    try:
        data = yaml.safe_load(Path(manifest_path).read_text(encoding="utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise RuleError(f"rules manifest unreadable: {exc}", file=manifest_path) from None
    files = data.get("files") if isinstance(data, dict) else None
    if not isinstance(files, dict):
        raise RuleError("rules manifest has no files mapping", file=manifest_path, field="files")
    return files


@functools.lru_cache(maxsize=1024)
def _check_file(path: str, mtime_ns: int, size: int) -> None:
    p = Path(path)
    root = _rules_root(p)
    if root is None or p.suffix not in DATA_SUFFIXES:
        return  # not inside a rules folder: nothing pins it
    rel = p.relative_to(root).as_posix()
    if rel == MANIFEST:
        return
    mpath = root / MANIFEST
    meta = _pinned(str(mpath), mpath.stat().st_mtime_ns).get(rel)
    if not isinstance(meta, dict):
        raise RuleError(
            "data file not listed in the manifest", file=path, hint="run: python -m planner.manifest " + str(root)
        )
    if sha256_file(p) != meta.get("sha256"):
        raise RuleError(
            "checksum does not match the manifest (edited without re-pinning?)",
            file=path,
            hint="run: python -m planner.manifest " + str(root),
        )


def verify_file(path: str | Path) -> None:
    """Refuse a data file of a rules folder whose SHA-256 is not the one ``rules/manifest.yaml`` pins (or that
    the manifest does not list), naming the file. Every stage reads rule data through
    :mod:`planner.rule_files`, which calls this; files outside any rules folder are not pinned."""
    p = Path(path).resolve()
    st = p.stat()
    _check_file(str(p), st.st_mtime_ns, st.st_size)


def forget() -> None:
    """Drop what :func:`verify_file` remembers (after the manifest is re-pinned in this process)."""
    _check_file.cache_clear()
    _pinned.cache_clear()
