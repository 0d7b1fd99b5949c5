"""``planner serve``: the CDS Hooks service under uvicorn."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer


def register(app: typer.Typer) -> None:
    @app.command("serve")
    def serve(
        host: str = typer.Option("127.0.0.1", "--host", help="Address to listen on."),
        port: int = typer.Option(8931, "--port", min=0, max=65535, help="Port to listen on (0: any free port)."),
        config: Optional[Path] = typer.Option(None, "--config", help="Service configuration (YAML; see README)."),
    ) -> None:
        """Serve CDS Hooks 2.0 (discovery, order-select, order-sign, patient-view, feedback)."""
        from .server import run

        run(host=host, port=port, config_path=config)
