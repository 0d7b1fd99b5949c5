"""Optional dependencies (the extras of pyproject.toml): imported when a feature needs them, with an error that
says which extra to install when they are absent (never a bare ImportError at a user)."""

from __future__ import annotations

import importlib
from types import ModuleType

from .errors import ConfigError

__all__ = ["require"]


def require(module: str, *, extra: str, purpose: str) -> ModuleType:
    """``module``, imported; a :class:`ConfigError` naming ``extra`` when it is not installed."""
    try:
        return importlib.import_module(module)
    except ImportError:
        raise ConfigError(
            f"{purpose} needs {module.split('.')[0]}, which is not installed",
            field=module,
            expected=f"pip install 'planner[{extra}]'",
        ) from None
