"""``planner serve``: the CDS Hooks service under uvicorn."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer


def register(app: typer.Typer) -> None:
    @app.command("serve")
    def serve(
        host: Annotated[str, typer.Option("--host", help="Address to listen on.")] = "127.0.0.1",
        port: Annotated[
            int, typer.Option("--port", min=0, max=65535, help="Port to listen on (0: any free port).")
        ] = 8931,
        config: Annotated[
            Optional[Path], typer.Option("--config", help="Service configuration (YAML; see README).")
        ] = None,
        workers: Annotated[
            Optional[int],
            typer.Option(
                "--workers",
                min=1,
                max=64,
                help="Worker processes (default: the configuration's workers, 1); they share the replay cache.",
            ),
        ] = None,
        planners: Annotated[
            Optional[int],
            typer.Option(
                "--planners",
                min=0,
                max=64,
                help="patient-view planner processes per worker, fed from one queue (default: the configuration's"
                " planners, 0: in the worker's threads).",
            ),
        ] = None,
    ) -> None:
        """Serve CDS Hooks 2.0 (discovery, order-select, order-sign, patient-view, feedback)."""
        from ..optional import require

        for module in ("fastapi", "uvicorn", "httpx", "jwt", "cryptography"):
            require(module, extra="service", purpose="planner serve")
        from .server import run

        run(host=host, port=port, config_path=config, workers=workers, planners=planners)
