"""Strict mode: validate whole resources against the FHIR R4B models of ``fhir.resources`` (conformance checking).

R4B, not the package's R5 default, because R5 models reject R4 data such as Synthea's. Slow (about 9 MB/s);
the fast path in :mod:`planner.ingest.normalize` checks only the fields planner reads.
"""

from __future__ import annotations

import functools
from typing import Any

from ..errors import FhirError
from .source import RawResource

__all__ = ["validate_strict"]


@functools.lru_cache(maxsize=256)
def _model(resource_type: str) -> Any:
    from fhir.resources.R4B import get_fhir_model_class

    try:
        return get_fhir_model_class(resource_type)
    except (KeyError, ValueError, AttributeError, ImportError):
        return None


def validate_strict(resources: list[RawResource]) -> None:
    """Validate each resource; the first invalid one raises a FhirError naming it and the first bad field."""
    from pydantic import ValidationError

    from .fhir_types import HEAD_DECODER

    for raw in resources:
        model = _model(raw.resource_type)
        if model is None:
            raise FhirError(
                "unknown resource type",
                file=raw.file,
                resource=raw.where,
                field="resourceType",
                value=raw.resource_type,
                expected="a FHIR R4 resource type",
            )
        try:
            model.model_validate_json(bytes(raw.raw))
        except ValidationError as exc:
            try:
                rid = HEAD_DECODER.decode(raw.raw).id
            except Exception:  # noqa: BLE001 - only for naming the resource in the message
                rid = None
            where = f"{raw.resource_type}/{rid} ({raw.where})" if rid else raw.where
            err = exc.errors()[0]
            loc = ".".join(str(p) for p in err.get("loc", ()) if p != "__root__")
            raise FhirError(
                f"not valid FHIR R4 ({err.get('msg')})",
                file=raw.file,
                resource=where,
                field=loc or None,
                expected=f"a {raw.resource_type} valid against fhir.resources R4B",
            ) from None
        except ValueError as exc:  # fhir.resources raises plain ValueErrors for some checks
            raise FhirError(
                f"not valid FHIR R4 ({str(exc)[:200]})",
                file=raw.file,
                resource=raw.where,
                expected=f"a {raw.resource_type} valid against fhir.resources R4B",
            ) from None
