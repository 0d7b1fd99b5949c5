"""The rules manifest: every data file under ``rules/`` with its version and SHA-256.

``rules/manifest.yaml`` pins the knowledge a run used: ``rules_version`` (the manifest's own version plus a
short digest of all file checksums) appears in every output. ``verify`` refuses a rules folder whose files
do not match the manifest (edited by hand without re-pinning), naming the file.

Regenerate after editing data: ``python -m planner.manifest [RULES_DIR] [--version X.Y.Z]``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import functools
import hashlib
from pathlib import Path
from typing import Any

import yaml

from .errors import RuleError
from .rule_files import read_yaml, rules_dir, sha256_file

MANIFEST = "manifest.yaml"
_DATA_SUFFIXES = {".yaml", ".yml", ".csv", ".tsv", ".json"}


def _data_files(root: Path) -> list[Path]:
    return sorted(
        p
        for p in root.rglob("*")
        if p.is_file() and p.suffix in _DATA_SUFFIXES and p.name != MANIFEST and "__pycache__" not in p.parts
    )


def _file_version(path: Path) -> str:
    if path.suffix in {".yaml", ".yml"}:
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8"))
        except yaml.YAMLError:
            return "unversioned"
        if isinstance(data, dict) and "version" in data:
            return str(data["version"])
    if path.suffix in {".csv", ".tsv"}:
        first = path.read_text(encoding="utf-8").splitlines()[:5]
        for line in first:
            if line.startswith("#") and "version:" in line:
                return line.split("version:", 1)[1].strip().split()[0]
    return "unversioned"


def build(root: Path, *, version: str) -> dict[str, Any]:
    files = {}
    for p in _data_files(root):
        rel = p.relative_to(root).as_posix()
        files[rel] = {"version": _file_version(p), "sha256": sha256_file(p)}
    return {
        "id": "planner-rules",
        "version": version,
        "generated": dt.date.today().isoformat(),
        "files": files,
    }


def _digest(files: dict[str, Any]) -> str:
    h = hashlib.sha256()
    for rel in sorted(files):
        h.update(f"{rel}\0{files[rel]['sha256']}\n".encode())
    return h.hexdigest()[:12]


@functools.lru_cache(maxsize=8)
def _verify_cached(root: str, strict: bool) -> str:
    path = Path(root)
    mpath = path / MANIFEST
    if not mpath.is_file():
        if strict:
            raise RuleError(
                "rules manifest missing", file=str(mpath), hint="run: python -m planner.manifest " + str(path)
            )
        return "unpinned"
    manifest = read_yaml(mpath)
    files = manifest.get("files") or {}
    present = {p.relative_to(path).as_posix(): p for p in _data_files(path)}
    for rel, meta in files.items():
        if rel not in present:
            raise RuleError("file listed in the manifest is missing", file=str(path / rel))
        if sha256_file(present[rel]) != meta.get("sha256"):
            raise RuleError(
                "checksum does not match the manifest (edited without re-pinning?)",
                file=str(path / rel),
                hint="run: python -m planner.manifest " + str(path),
            )
    extra = sorted(set(present) - set(files))
    if extra:
        raise RuleError(
            "data file not listed in the manifest",
            file=str(path / extra[0]),
            hint="run: python -m planner.manifest " + str(path),
        )
    return f"{manifest.get('version', '0')}+{_digest(files)}"


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
    if root is None or p.suffix not in _DATA_SUFFIXES:
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


def verify(root: str | Path | None = None, *, strict: bool = True) -> str:
    """Check every file against the manifest; return the ``rules_version`` string (e.g. ``1.0.0+3fa2...``)."""
    return _verify_cached(str(rules_dir(root)), strict)


def rules_version(root: str | Path | None = None) -> str:
    return verify(root)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("root", nargs="?", default=None, help="rules folder (default: the packaged one)")
    ap.add_argument("--version", default=None, help="manifest version (default: keep the current one)")
    args = ap.parse_args(argv)
    root = rules_dir(args.root)
    old = root / MANIFEST
    version = args.version or (read_yaml(old).get("version") if old.is_file() else "1.0.0")
    data = build(root, version=str(version))
    old.write_text(
        "# Generated by `python -m planner.manifest`; do not edit by hand.\n" + yaml.safe_dump(data, sort_keys=False),
        encoding="utf-8",
    )
    _verify_cached.cache_clear()
    _check_file.cache_clear()
    print(f"{len(data['files'])} files pinned; rules_version {verify(root)}")
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
