"""Typed msgspec structs of only the FHIR R4 fields planner reads.

Decoding into these structs checks each field's JSON type as it goes and skips every other field without building
Python objects for it, which is why the fast path is faster than ``json.loads``. Field names follow FHIR exactly.
Whole-resource conformance checking is :mod:`planner.ingest.strict` (fhir.resources R4B).
"""

from __future__ import annotations

import msgspec
from msgspec import Raw, Struct

__all__ = [
    "Coding", "CodeableConcept", "Quantity", "Reference", "Period", "Repeat", "Timing", "DoseAndRate", "Dosage",
    "Component", "Meta", "Head", "Entry", "BundleHead", "Patient", "Condition", "Observation", "MedicationRequest",
    "MedicationStatement", "Medication", "AllergyIntolerance", "Reaction", "Ingredient", "DispenseRequest",
    "TYPES",
]


class _S(Struct, kw_only=True, omit_defaults=True):
    pass


class Coding(_S):
    system: str | None = None
    code: str | None = None
    display: str | None = None


class CodeableConcept(_S):
    coding: list[Coding] = []
    text: str | None = None


class Quantity(_S):
    value: float | None = None
    unit: str | None = None
    system: str | None = None
    code: str | None = None
    comparator: str | None = None


class Reference(_S):
    reference: str | None = None
    display: str | None = None


class Period(_S):
    start: str | None = None
    end: str | None = None


class Repeat(_S):
    frequency: int | None = None
    frequencyMax: int | None = None
    period: float | None = None
    periodUnit: str | None = None


class Timing(_S):
    repeat: Repeat | None = None
    code: CodeableConcept | None = None


class DoseAndRate(_S):
    doseQuantity: Quantity | None = None


class Dosage(_S):
    text: str | None = None
    timing: Timing | None = None
    asNeededBoolean: bool | None = None
    doseAndRate: list[DoseAndRate] = []


class Component(_S):
    code: CodeableConcept | None = None
    valueQuantity: Quantity | None = None
    valueCodeableConcept: CodeableConcept | None = None
    valueString: str | None = None
    valueInteger: int | None = None


class Meta(_S):
    profile: list[str] = []


class Head(_S):
    """Enough of any resource to route it."""

    resourceType: str | None = None
    id: str | None = None


class Entry(_S):
    fullUrl: str | None = None
    resource: Raw = Raw(b"")


class BundleHead(_S):
    resourceType: str | None = None
    type: str | None = None
    id: str | None = None
    entry: list[Entry] | None = None


class Patient(_S):
    resourceType: str
    id: str | None = None
    birthDate: str | None = None
    gender: str | None = None
    deceasedDateTime: str | None = None
    deceasedBoolean: bool | None = None


class Condition(_S):
    resourceType: str
    id: str | None = None
    subject: Reference | None = None
    code: CodeableConcept | None = None
    clinicalStatus: CodeableConcept | None = None
    verificationStatus: CodeableConcept | None = None
    onsetDateTime: str | None = None
    onsetPeriod: Period | None = None
    abatementDateTime: str | None = None
    abatementPeriod: Period | None = None
    recordedDate: str | None = None


class Observation(_S):
    resourceType: str
    id: str | None = None
    meta: Meta | None = None
    status: str | None = None
    subject: Reference | None = None
    code: CodeableConcept | None = None
    effectiveDateTime: str | None = None
    effectivePeriod: Period | None = None
    effectiveInstant: str | None = None
    issued: str | None = None
    valueQuantity: Quantity | None = None
    valueCodeableConcept: CodeableConcept | None = None
    valueString: str | None = None
    valueInteger: int | None = None
    valueBoolean: bool | None = None
    component: list[Component] = []
    derivedFrom: list[Reference] = []


class DispenseRequest(_S):
    validityPeriod: Period | None = None


class MedicationRequest(_S):
    resourceType: str
    id: str | None = None
    status: str | None = None
    intent: str | None = None
    subject: Reference | None = None
    medicationCodeableConcept: CodeableConcept | None = None
    medicationReference: Reference | None = None
    authoredOn: str | None = None
    dosageInstruction: list[Dosage] = []
    dispenseRequest: DispenseRequest | None = None


class MedicationStatement(_S):
    resourceType: str
    id: str | None = None
    status: str | None = None
    subject: Reference | None = None
    medicationCodeableConcept: CodeableConcept | None = None
    medicationReference: Reference | None = None
    effectiveDateTime: str | None = None
    effectivePeriod: Period | None = None
    dateAsserted: str | None = None
    dosage: list[Dosage] = []


class Ingredient(_S):
    itemCodeableConcept: CodeableConcept | None = None
    itemReference: Reference | None = None


class Medication(_S):
    resourceType: str
    id: str | None = None
    code: CodeableConcept | None = None
    ingredient: list[Ingredient] = []


class Reaction(_S):
    manifestation: list[CodeableConcept] = []
    substance: CodeableConcept | None = None
    severity: str | None = None


class AllergyIntolerance(_S):
    resourceType: str
    id: str | None = None
    patient: Reference | None = None
    code: CodeableConcept | None = None
    category: list[str] = []
    criticality: str | None = None
    clinicalStatus: CodeableConcept | None = None
    verificationStatus: CodeableConcept | None = None
    recordedDate: str | None = None
    onsetDateTime: str | None = None
    reaction: list[Reaction] = []


TYPES: dict[str, type[Struct]] = {
    "Patient": Patient,
    "Condition": Condition,
    "Observation": Observation,
    "MedicationRequest": MedicationRequest,
    "MedicationStatement": MedicationStatement,
    "Medication": Medication,
    "AllergyIntolerance": AllergyIntolerance,
}

DECODERS: dict[str, msgspec.json.Decoder] = {name: msgspec.json.Decoder(t) for name, t in TYPES.items()}
HEAD_DECODER = msgspec.json.Decoder(Head)
BUNDLE_DECODER = msgspec.json.Decoder(BundleHead)
