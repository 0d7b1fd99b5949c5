"""Run the service under uvicorn (``planner serve``), with de-identified logs.

Logs carry the service path, status, a reason code for refused tokens and exception type names: never request
bodies, tokens, patient data or stack traces (uvicorn's access log is off; its error log would print tracebacks,
which the app's guard never lets through).
"""

from __future__ import annotations

import logging
import logging.config
import sys
from pathlib import Path
from typing import Any

from .config import ServiceConfig, load_config

__all__ = ["run", "build", "LOG_CONFIG"]

LOG_CONFIG: dict[str, Any] = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
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
    from .app import create_app

    return create_app(config)


def run(*, host: str, port: int, config_path: Path | None) -> None:
    import uvicorn

    config = load_config(config_path)
    logging.config.dictConfig(LOG_CONFIG)
    log = logging.getLogger("planner.service")
    log.warning(startup_message(config)) if not config.configured else log.info(startup_message(config))
    app = build(config)
    uvicorn.run(
        app,
        host=host,
        port=port,
        log_config=LOG_CONFIG,
        access_log=False,
        server_header=False,
        timeout_graceful_shutdown=5,
    )
    sys.stderr.flush()
