"""Where planner's knowledge lives, and how it is read.

All genes, drugs, codes, units, thresholds and effect sizes are data files under ``rules/`` (shipped inside
the wheel as ``planner/_rules``; in a source checkout the top-level ``rules/`` folder is used). A user may
point at their own rules folder; nothing is downloaded at run time.

Each data file is YAML or CSV. YAML files carry ``id``, ``version`` and ``source`` at the top; CSV files are
described in ``rules/manifest.yaml``, which pins every file's version and SHA-256 so that ``rules_version``
in every output names exactly the knowledge used.
"""

from __future__ import annotations

import csv
import functools
import io
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from .errors import RuleError
from .pins import sha256_file, verify_file

__all__ = ["default_rules_dir", "rules_dir", "folder_key", "read_yaml", "read_csv", "sha256_file"]

_ENV = "PLANNER_RULES_DIR"


@functools.lru_cache(maxsize=1)  # found once per process (it was resolved on every dose written)
def default_rules_dir() -> Path:
    """The rules folder shipped with the installed package (or the checkout's ``rules/``)."""
    here = Path(__file__).resolve().parent
    for candidate in (here / "_rules", here.parent / "rules"):
        if (candidate / "manifest.yaml").is_file() or candidate.is_dir():
            return candidate
    raise RuleError(
        "the packaged rules folder is missing",
        field="rules",
        expected=f"{here / '_rules'} or {here.parent / 'rules'}",
        hint="reinstall planner or pass --rules DIR",
    )


def rules_dir(path: str | os.PathLike[str] | None = None) -> Path:
    """The rules folder to use: an explicit path, else ``$PLANNER_RULES_DIR``, else the packaged one."""
    chosen = path or os.environ.get(_ENV)
    if not chosen:
        return default_rules_dir()
    p = Path(chosen).expanduser()
    if not p.is_dir():
        raise RuleError("rules folder not found", field="rules", value=str(p), expected="an existing folder")
    return p


def folder_key(folder: Path) -> str:
    """A rules folder as a cache key: absolute (a relative folder is resolved, so a changed working directory
    is another folder)."""
    return str(folder if folder.is_absolute() else folder.resolve())


if TYPE_CHECKING:
    _BaseLoader = yaml.SafeLoader
else:
    _BaseLoader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # C parser when built with libyaml


class _UniqueKeyLoader(_BaseLoader):
    """SafeLoader that refuses duplicate mapping keys (a silent overwrite in rule data is a bug)."""


def _construct_mapping(loader: _UniqueKeyLoader, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
    mapping: dict[Any, Any] = {}
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=deep)
        if key in mapping:
            raise yaml.constructor.ConstructorError(None, None, f"duplicate key {key!r}", key_node.start_mark)
        mapping[key] = loader.construct_object(value_node, deep=deep)
    return mapping


_UniqueKeyLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


@functools.lru_cache(maxsize=256)
def _read_yaml_cached(path: str, mtime: float) -> Any:
    try:
        with open(path, encoding="utf-8") as fh:
            return yaml.load(fh, Loader=_UniqueKeyLoader)  # noqa: S506 - SafeLoader subclass
    except yaml.YAMLError as exc:
        raise RuleError(f"invalid YAML: {exc}", file=path) from None
    except UnicodeDecodeError:
        raise RuleError("not UTF-8 text", file=path) from None


def read_yaml(path: str | os.PathLike[str]) -> Any:
    """Parse a YAML data file (cached per path and mtime). Errors name the file."""
    p = Path(path)
    if not p.is_file():
        raise RuleError("data file not found", file=str(p))
    _verify(p)
    return _read_yaml_cached(str(p), p.stat().st_mtime)


def _verify(p: Path) -> None:
    """A file of a rules folder must match the checksum its manifest pins (:func:`planner.pins.verify_file`)."""
    verify_file(p)


def read_csv(path: str | os.PathLike[str]) -> list[dict[str, str]]:
    """Read a CSV data file into a list of row dicts (lines starting with '#' are comments)."""
    p = Path(path)
    if not p.is_file():
        raise RuleError("data file not found", file=str(p))
    _verify(p)
    text = p.read_text(encoding="utf-8")
    lines = [ln for ln in text.splitlines() if ln.strip() and not ln.lstrip().startswith("#")]
    return list(csv.DictReader(io.StringIO("\n".join(lines))))
