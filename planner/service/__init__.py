"""The CDS Hooks 2.0 service (``planner serve``): discovery, order-select, order-sign, patient-view, feedback.

Python use::

    from planner.service import create_app, load_config
    app = create_app(load_config("service.yaml"))       # an ASGI app; run it with uvicorn

Security, data and card rules are described in :mod:`planner.service.auth`, :mod:`planner.service.fhirdata`
and :mod:`planner.service.cards`; the service definitions are data (``rules/service/cds_services.yaml``).
"""

from .config import ServiceConfig, load_config, load_definitions

__all__ = ["ServiceConfig", "load_config", "load_definitions", "create_app"]


def create_app(*args, **kwargs):  # noqa: ANN002, ANN003 - lazy import: fastapi loads only when serving
    from .app import create_app as _create

    return _create(*args, **kwargs)
