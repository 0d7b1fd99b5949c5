"""The ``planner`` command line.

Each stage package owns its commands in a ``cli`` module with a ``register(app)`` function; this module only
assembles them and turns errors into exit codes: a :class:`~planner.errors.PlannerError` (bad input, bad data)
prints its message and exits 2; anything else is a bug and prints one line asking for a report (the traceback
only with ``PLANNER_DEBUG=1``). Heavy imports (torch, pyro, pandas) happen inside commands, not here, so the
CLI starts fast.
"""

from __future__ import annotations

import importlib
import os
import sys
from typing import Annotated

import typer

from .errors import PlannerError

app = typer.Typer(
    name="planner",
    help="Personalized treatment plan recommendations from FHIR R4 records.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

# Modules that add commands; each defines register(app: typer.Typer) -> None.
_COMMAND_MODULES = (
    "planner.ingest.cli",  # inspect
    "planner.safety.cli",  # check, rules
    "planner.episodes.cli",  # simulate, episodes
    "planner.model.cli",  # fit
    "planner.api.cli",  # recommend (the Planner)
    "planner.cohort.cli",  # cohort run / report
    "planner.service.cli",  # serve
)


def _register_all() -> None:
    for name in _COMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name and name.startswith(exc.name):  # the command module itself is not there (yet)
                continue
            raise
        module.register(app)


@app.callback(invoke_without_command=True)
def _root(
    version: Annotated[bool, typer.Option("--version", help="Print the version and exit.", is_eager=True)] = False,
) -> None:
    if version:
        from .version import __version__

        typer.echo(f"planner {__version__}")
        raise typer.Exit()


def main(argv: list[str] | None = None) -> int:
    """Entry point: run the CLI, mapping errors to exit codes (0 ok, 1 findings/usage, 2 bad input, 70 bug)."""
    _register_all()
    try:
        app(args=argv, standalone_mode=True)
    except PlannerError as exc:
        typer.secho(f"error: {exc}", err=True, fg=typer.colors.RED)
        return 2
    except SystemExit as exc:
        code = exc.code
        return code if isinstance(code, int) else (0 if code is None else 1)
    except KeyboardInterrupt:
        typer.echo("interrupted", err=True)
        return 130
    except Exception as exc:  # a bug: never a traceback at a user unless asked for
        if os.environ.get("PLANNER_DEBUG"):
            raise
        typer.secho(
            f"internal error ({type(exc).__name__}); this is a bug in planner. "
            "Re-run with PLANNER_DEBUG=1 for the traceback and report it.",
            err=True,
            fg=typer.colors.RED,
        )
        return 70
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
