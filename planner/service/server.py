"""Run the service under uvicorn (``planner serve``), with de-identified logs.

Logs carry the service path, status, a reason code for refused tokens and exception type names: never request
bodies, tokens, patient data or stack traces (uvicorn's access log is off; its error log would print tracebacks,
which the app's guard never lets through).
"""

from __future__ import annotations

import logging
import logging.config
import os
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

from .config import ServiceConfig, load_config

__all__ = ["run", "build", "worker_app", "LOG_CONFIG"]

LOG_CONFIG: dict[str, Any] = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s [%(process)d] %(name)s: %(message)s"}},
    "handlers": {"stderr": {"class": "logging.StreamHandler", "formatter": "plain", "stream": "ext://sys.stderr"}},
    "loggers": {
        "planner": {"handlers": ["stderr"], "level": "INFO", "propagate": False},
        "uvicorn": {"handlers": ["stderr"], "level": "INFO", "propagate": False},
        "uvicorn.error": {"level": "INFO"},
        "uvicorn.access": {"handlers": [], "level": "WARNING", "propagate": False},
    },
}


def startup_message(config: ServiceConfig) -> str:
    if not config.configured:
        return (
            "no trusted issuers configured: this service trusts no EHR, so every hook and feedback call is "
            "refused (401); discovery answers. Start with --config FILE to trust an issuer."
        )
    names = ", ".join(i.issuer for i in config.trusted_issuers)
    return f"trusting {len(config.trusted_issuers)} issuer(s): {names}; audience {config.service_url}/<service id>"


def build(config: ServiceConfig) -> Any:
    """The app, with the loaded planner (rules, models: about 330,000 objects) moved out of the garbage
    collector's view (``gc.freeze``): a full collection that walked them took about 470 ms on the shared
    2-core machine, and every request in flight waited for it (order-select p99 at 20 clients 448-490 ms with
    the pause, 136-200 ms without, same run and load)."""
    from .app import create_app
    from .pool import freeze_heap

    app = create_app(config)
    freeze_heap()
    return app


_ENV_CONFIG = "PLANNER_SERVE_CONFIG"  # set by `run` for its worker processes: the configuration file ("" none)
_ENV_REPLAY = "PLANNER_SERVE_REPLAY_CACHE"  # and the replay cache file they share
_ENV_PLANNERS = "PLANNER_SERVE_PLANNERS"  # and --planners


def worker_app() -> Any:
    """The app of one worker process of ``planner serve --workers N`` (a uvicorn app factory): the configuration
    the parent read, with the replay cache file the parent chose (the parent logged the startup message)."""
    path = os.environ.get(_ENV_CONFIG) or None
    replay = os.environ.get(_ENV_REPLAY) or None
    planners = os.environ.get(_ENV_PLANNERS) or None
    overrides: dict[str, Any] = {"replay_cache": Path(replay)} if replay else {}
    if planners is not None:
        overrides["planners"] = int(planners)
    return build(load_config(path, **overrides))


def run(
    *, host: str, port: int, config_path: Path | None, workers: int | None = None, planners: int | None = None
) -> None:
    """Serve until interrupted. ``workers`` (default: the configuration's ``workers``, 1) > 1 runs that many
    uvicorn worker processes on one socket; they share the jti replay cache (a SQLite file: the configured
    ``replay_cache``, else a temporary one removed at exit) and the audit store (SQLite). ``planners`` (default:
    the configuration's) > 0 gives each worker that many patient-view planner processes
    (:mod:`planner.service.pool`)."""
    import uvicorn

    config = load_config(config_path, **({} if planners is None else {"planners": planners}))
    n = workers or config.workers
    logging.config.dictConfig(LOG_CONFIG)
    log = logging.getLogger("planner.service")
    log.warning(startup_message(config)) if not config.configured else log.info(startup_message(config))
    common: dict[str, Any] = {
        "host": host,
        "port": port,
        "log_config": LOG_CONFIG,
        "access_log": False,
        "server_header": False,
        "timeout_graceful_shutdown": 5,
    }
    if config.planners:
        log.info("patient-view planned in %d planner process(es) per worker", config.planners)
    if n <= 1:
        uvicorn.run(build(config), **common)
        sys.stderr.flush()
        return
    tmp = None
    replay = config.replay_cache
    if replay is None:
        tmp = tempfile.mkdtemp(prefix="planner-serve-")
        replay = Path(tmp) / "replay.sqlite"
    from .replay import SqliteReplayCache

    SqliteReplayCache(replay)  # created (or refused with a clear error) once, before the workers start
    os.environ[_ENV_CONFIG] = "" if config_path is None else str(Path(config_path).resolve())
    os.environ[_ENV_REPLAY] = str(Path(replay).resolve())
    os.environ[_ENV_PLANNERS] = str(config.planners)
    log.info("%d worker processes; jti replay cache shared in %s", n, "a temporary file" if tmp else replay)
    try:
        uvicorn.run("planner.service.server:worker_app", factory=True, workers=n, **common)
    finally:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)
        sys.stderr.flush()
