"""Typed msgspec structs of only the FHIR R4 fields planner reads.

Decoding into these structs checks each field's JSON type as it goes and skips every other field without building
Python objects for it, which is why the fast path is faster than ``json.loads``. Field names follow FHIR exactly.
Whole-resource conformance checking is :mod:`planner.ingest.strict` (fhir.resources R4B).
"""

from __future__ import annotations

from typing import TypeAlias

import msgspec
from msgspec import Raw, Struct

__all__ = [
    "Coding",
    "CodeableConcept",
    "Quantity",
    "Reference",
    "Period",
    "Repeat",
    "Timing",
    "DoseAndRate",
    "Dosage",
    "Component",
    "Meta",
    "Head",
    "Entry",
    "BundleHead",
    "Resource",
    "ObservationHead",
    "Reaction",
    "Ingredient",
    "DispenseRequest",
    "Range",
    "READ_TYPES",
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


class Range(_S):
    low: Quantity | None = None
    high: Quantity | None = None


class DoseAndRate(_S):
    type: CodeableConcept | None = None  # ordered | calculated
    doseQuantity: Quantity | None = None
    doseRange: Range | None = None


class Dosage(_S):
    text: str | None = None
    timing: Timing | None = None
    asNeededBoolean: bool | None = None
    asNeededCodeableConcept: CodeableConcept | None = None
    doseAndRate: list[DoseAndRate] = []


class Component(_S):
    code: CodeableConcept | None = None
    valueQuantity: Quantity | None = None
    valueCodeableConcept: CodeableConcept | None = None
    valueString: str | None = None
    valueInteger: int | None = None
    dataAbsentReason: CodeableConcept | None = None


class Extension(_S):
    url: str | None = None
    valueCode: str | None = None


class Meta(_S):
    profile: list[str] = []
    lastUpdated: str | None = None


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


class Ingredient(_S):
    itemCodeableConcept: CodeableConcept | None = None
    itemReference: Reference | None = None


class Reaction(_S):
    manifestation: list[CodeableConcept] = []
    substance: CodeableConcept | None = None
    severity: str | None = None


class DispenseRequest(_S):
    validityPeriod: Period | None = None


class Resource(_S):
    """The fields planner reads from Patient, Condition, Observation, MedicationRequest, MedicationStatement,
    Medication and AllergyIntolerance, in one struct (FHIR gives each name one type across these resources).

    ``category`` is kept raw: it is a list of strings in AllergyIntolerance and of CodeableConcepts elsewhere.
    """

    resourceType: str
    id: str | None = None
    meta: Meta | None = None
    status: str | None = None
    intent: str | None = None
    subject: Reference | None = None
    patient: Reference | None = None
    code: CodeableConcept | None = None
    # Patient
    birthDate: str | None = None
    gender: str | None = None
    deceasedDateTime: str | None = None
    deceasedBoolean: bool | None = None
    extension: list[Extension] = []  # Patient: US Core sex / birth sex when gender is absent
    # Condition / AllergyIntolerance
    clinicalStatus: CodeableConcept | None = None
    verificationStatus: CodeableConcept | None = None
    onsetDateTime: str | None = None
    onsetPeriod: Period | None = None
    abatementDateTime: str | None = None
    abatementPeriod: Period | None = None
    abatementAge: Quantity | None = None
    abatementRange: Range | None = None
    abatementString: str | None = None
    recordedDate: str | None = None
    category: Raw = Raw(b"")
    criticality: str | None = None
    reaction: list[Reaction] = []
    # Observation
    effectiveDateTime: str | None = None
    effectivePeriod: Period | None = None
    effectiveInstant: str | None = None
    issued: str | None = None
    valueQuantity: Quantity | None = None
    valueCodeableConcept: CodeableConcept | None = None
    valueString: str | None = None
    valueInteger: int | None = None
    valueBoolean: bool | None = None
    dataAbsentReason: CodeableConcept | None = None
    component: list[Component] = []
    derivedFrom: list[Reference] = []
    # MedicationRequest / MedicationStatement / Medication
    medicationCodeableConcept: CodeableConcept | None = None
    medicationReference: Reference | None = None
    authoredOn: str | None = None
    doNotPerform: bool | None = None
    dosageInstruction: list[Dosage] = []
    dispenseRequest: DispenseRequest | None = None
    dateAsserted: str | None = None
    dosage: list[Dosage] = []
    statusReason: Raw = Raw(b"")  # one CodeableConcept on a MedicationRequest, a list on a MedicationStatement
    ingredient: list[Ingredient] = []
    contained: list["Resource"] = []  # e.g. a Medication referenced as "#med1"


# Names for type hints: every resource planner reads is a Resource.
Patient: TypeAlias = Resource
Condition: TypeAlias = Resource
Observation: TypeAlias = Resource
MedicationRequest: TypeAlias = Resource
MedicationStatement: TypeAlias = Resource
Medication: TypeAlias = Resource
AllergyIntolerance: TypeAlias = Resource


class SubjectHead(_S):
    """Who a resource is about, read alone when the rest of the resource cannot be used."""

    resourceType: str | None = None
    subject: Reference | None = None
    patient: Reference | None = None


class ObservationHead(_S):
    """What decides whether planner reads an Observation at all (its code, profile and component codes)."""

    resourceType: str
    id: str | None = None
    meta: Meta | None = None
    status: str | None = None
    code: CodeableConcept | None = None
    component: list["_ComponentHead"] = []


class _ComponentHead(_S):
    code: CodeableConcept | None = None


READ_TYPES = frozenset(
    {
        "Patient",
        "Condition",
        "Observation",
        "MedicationRequest",
        "MedicationStatement",
        "DiagnosticReport",
        "Medication",
        "AllergyIntolerance",
    }
)
RESOURCE_DECODER = msgspec.json.Decoder(Resource)
OBSERVATION_HEAD_DECODER = msgspec.json.Decoder(ObservationHead)
CATEGORY_DECODER = msgspec.json.Decoder(list[str])
STATUS_REASON_DECODER = msgspec.json.Decoder(CodeableConcept | list[CodeableConcept])
HEAD_DECODER = msgspec.json.Decoder(Head)
BUNDLE_DECODER = msgspec.json.Decoder(BundleHead)
