"""Reading input into raw FHIR resources: paths, folders, bytes, text, dicts; Bundles, NDJSON, single resources.

Everything is checked before any resource is decoded: size limit, UTF-8, JSON well-formedness (NaN, Infinity and
very deep nesting are refused), top-level shape. Each resource is kept as raw JSON bytes with where it came from,
so the typed decode of :mod:`planner.ingest.fhir_types` touches only the resource types planner reads.
"""

from __future__ import annotations

import dataclasses
import os
import re
from pathlib import Path
from typing import Any, Iterator

import msgspec
import orjson

from ..errors import FhirError, InputError, PlannerError
from ..record import DataWarning
from .fhir_types import BUNDLE_DECODER, HEAD_DECODER

__all__ = ["RawResource", "load_resources", "DEFAULT_MAX_BYTES", "BUNDLE_TYPES"]

DEFAULT_MAX_BYTES = 200_000_000
BUNDLE_TYPES = frozenset(
    {
        "collection",
        "transaction",
        "searchset",
        "batch",
        "document",
        "message",
        "transaction-response",
        "batch-response",
        "history",
    }
)
_TYPE_NAMES: dict[bytes, str] = {}
_SUFFIXES = (".json", ".ndjson", ".jsonl")
_TYPE_AT_START = re.compile(rb'\s*\{\s*"resourceType"\s*:\s*"([A-Za-z]+)"')
_BULK_LOG = re.compile(rb'"(?:exportId|eventId)"\s*:')
_BULK_LOG_FILES = frozenset({"log.ndjson"})  # a Bulk Data export's own log, not resources
_MAX_NESTED_BUNDLES = 3
_DEEP = "JSON nested at most about 1,000 levels deep (FHIR needs a few dozen)"


@dataclasses.dataclass(slots=True)
class RawResource:
    """One resource as raw JSON, with its type and where it was found (file name, entry or line number)."""

    resource_type: str
    raw: bytes | msgspec.Raw
    where: str  # e.g. "entry[3]" or "line 7"
    full_url: str | None = None
    file: str | None = None


_JSON_TYPES = {
    "str": "a string",
    "float": "a number",
    "int": "an integer",
    "array": "a list",
    "object": "an object",
    "bool": "true or false",
    "null": "null",
}


def explain_validation(exc: msgspec.ValidationError) -> tuple[str, str | None]:
    """A msgspec type error as (readable message, field path): ``("a string where a number belongs", "a.b")``."""
    text = str(exc)
    head, _, at = text.partition(" - at ")
    path = at.strip().strip("`").removeprefix("$").removeprefix(".") or None
    m = re.match(r"Expected `([^`]*)`, got `([^`]*)`", head)
    if m:
        want = [t.strip() for t in m.group(1).split("|") if t.strip() != "null"]
        words = " or ".join(_JSON_TYPES.get(t, t) for t in want)
        got = _JSON_TYPES.get(m.group(2), m.group(2))
        return f"{got} where {words} belongs", path
    return head, path


def _json_error(exc: Exception, data: bytes, file: str, line: int | None = None) -> InputError:
    msg = str(exc)
    where = f" line {line}" if line is not None else ""
    m = re.search(r"\(byte (\d+)\)", msg)
    if m:
        pos = int(m.group(1))
        ahead = data[pos : pos + 12]
        for token in (b"NaN", b"Infinity", b"-Infinity"):
            if ahead.startswith(token) or data[max(0, pos - 1) : pos + 12].startswith(token):
                return InputError(
                    f"{token.decode()} is not valid JSON{where}",
                    file=file,
                    expected="finite numbers (JSON has no NaN or Infinity)",
                )
        # no snippet of the text around the failure: it may hold a patient's name or birth date
        return InputError(
            f"not valid JSON{where}: {msg.split(' (byte')[0].replace('JSON is malformed: ', '')} at byte {pos}",
            file=file,
            expected="a JSON object",
        )
    return InputError(f"not valid JSON{where}: {msg}", file=file, expected="a JSON object")


def _check_utf8(data: bytes, file: str) -> None:
    if data.isascii():  # fast (no copy) and the common case; ASCII is valid UTF-8
        return
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InputError(
            f"not UTF-8 text (byte 0x{data[exc.start]:02x} at offset {exc.start})",
            file=file,
            expected="UTF-8 encoded JSON",
        ) from None


def _resource_type(raw: bytes | msgspec.Raw, where: str, file: str) -> tuple[str, str | None]:
    m = _TYPE_AT_START.match(raw, 0, 200)  # type: ignore[call-overload]  # any bytes-like object; no copy
    if m:
        name = m.group(1)
        return _TYPE_NAMES.get(name) or _TYPE_NAMES.setdefault(name, name.decode()), None
    try:
        h = HEAD_DECODER.decode(raw)
    except msgspec.ValidationError as exc:
        msg, path = explain_validation(exc)
        raise FhirError(
            f"{where}: {msg}",
            file=file,
            field=path or "resourceType",
            expected="a JSON object with a string resourceType",
        ) from None
    except msgspec.DecodeError as exc:
        raise InputError(f"{where}: {exc}", file=file) from None
    if not h.resourceType:
        raise FhirError(
            f"{where} has no resourceType",
            file=file,
            field="resourceType",
            expected="a FHIR resource type such as Patient or Observation",
        )
    return h.resourceType, h.id


def _from_document(
    data: bytes, file: str, depth: int = 0, problems: list[DataWarning] | None = None
) -> Iterator[RawResource]:
    """Resources of one JSON document: a Bundle (entries, recursively) or a single resource."""
    stripped = data.lstrip()
    if not stripped:
        raise InputError("empty input", file=file, expected="a FHIR resource, Bundle or NDJSON")
    if stripped[:1] == b"[":
        raise InputError("a JSON array", file=file, expected="a JSON object (a FHIR resource or Bundle) or NDJSON")
    if stripped[:1] != b"{":
        # the file's own bytes are not echoed: they may be a patient's data
        raise InputError(
            "not a JSON object (its first character is not '{')",
            file=file,
            expected="a JSON object (a FHIR resource or Bundle) or NDJSON",
        )
    try:
        rtype, _ = _resource_type(data, "document", file)
    except RecursionError:
        raise InputError("JSON is nested too deeply", file=file, expected=_DEEP) from None
    if rtype != "Bundle":
        HEAD_DECODER.decode(data)  # syntax of the whole document (DecodeError -> caller: NDJSON or a clear error)
        yield RawResource(rtype, data, rtype, None, file)
        return
    yield from _from_bundle(data, file, depth, prefix="", problems=problems)


def _from_bundle(
    data: bytes | msgspec.Raw, file: str, depth: int, prefix: str, problems: list[DataWarning] | None = None
) -> Iterator[RawResource]:
    try:
        bundle = BUNDLE_DECODER.decode(data)
    except msgspec.ValidationError as exc:
        msg, path = explain_validation(exc)
        raise FhirError(msg, file=file, resource=f"Bundle{prefix}", field=path, expected="a FHIR Bundle") from None
    except RecursionError:
        raise InputError("JSON is nested too deeply", file=file, expected=_DEEP) from None
    btype = bundle.type
    if btype is not None and btype not in BUNDLE_TYPES:
        raise FhirError(
            "unknown Bundle.type",
            file=file,
            resource=f"Bundle{prefix}",
            field="type",
            value=btype,
            expected="one of " + ", ".join(sorted(BUNDLE_TYPES)),
        )
    if not bundle.entry:
        raise FhirError(
            "Bundle has no entries",
            file=file,
            resource=f"Bundle{prefix}",
            field="entry",
            expected="at least one entry with a resource (a Patient)",
        )
    for i, entry in enumerate(bundle.entry):
        where = f"{prefix}entry[{i}]"
        try:
            if len(entry.resource) == 0 or (len(entry.resource) <= 8 and bytes(entry.resource).strip() == b"null"):
                raise FhirError(
                    "entry has no resource",
                    file=file,
                    resource=f"Bundle{prefix}",
                    field=f"{where}.resource",
                    expected="a resource in every entry",
                )
            raw = entry.resource
            rtype, _ = _resource_type(raw, where, file)
        except PlannerError as exc:
            if problems is None:
                raise
            problems.append(_problem(exc, file, where))
            continue
        if rtype == "Bundle":
            if depth >= _MAX_NESTED_BUNDLES:
                raise FhirError(
                    "Bundles nested too deeply",
                    file=file,
                    field=where,
                    expected=f"at most {_MAX_NESTED_BUNDLES} levels of Bundle",
                )
            yield from _from_bundle(raw, file, depth + 1, prefix=f"{where}.", problems=problems)
            continue
        yield RawResource(rtype, raw, where, entry.fullUrl, file)


def _from_ndjson(data: bytes, file: str, problems: list[DataWarning] | None = None) -> Iterator[RawResource]:
    """One resource per line. With ``problems``, a line that cannot be read becomes a warning there and the other
    lines are read; a Bulk Data export log line (``exportId``/``eventId``, no resourceType) is ignored."""
    count = 0
    for n, line in enumerate(data.split(b"\n"), start=1):
        if not line.strip():
            continue
        try:
            if line.lstrip()[:1] != b"{":
                raise InputError(
                    f"NDJSON line {n} is not a JSON object", file=file, expected="one FHIR resource per line"
                )
            try:
                if _BULK_LOG.search(line[:200]) and not _TYPE_AT_START.match(line, 0, 200):
                    count += 1
                    continue  # a Bulk Data export log entry, not a resource
                rtype, _ = _resource_type(line, f"line {n}", file)
                msgspec.json.decode(line, type=msgspec.Raw)  # well-formed as a whole (Raw skips, validates syntax)
            except msgspec.DecodeError as exc:
                raise _json_error(exc, line, file, line=n) from None
            except RecursionError:
                raise InputError(f"JSON is nested too deeply on line {n}", file=file) from None
        except PlannerError as exc:
            if problems is None:
                raise
            problems.append(_problem(exc, file, f"line {n}"))
            count += 1
            continue
        if rtype == "Bundle":
            yield from _from_bundle(line, file, 1, prefix=f"line {n} ", problems=problems)
        else:
            yield RawResource(rtype, line, f"line {n}", None, file)
        count += 1
    if count == 0:
        raise InputError("empty input", file=file, expected="a FHIR resource, Bundle or NDJSON")


def _problem(exc: PlannerError, file: str, where: str) -> DataWarning:
    why = "; ".join(p for p in (exc.detail, exc.expected and f"expected {exc.expected}") if p) or str(exc)
    return DataWarning(
        code="input-skipped",
        resource=f"{Path(file).name} {where}",
        message=f"{where} of {Path(file).name} could not be read ({why}); it was skipped, so "
        "whatever it held is missing from this record",
    )


def _parse_bytes(
    data: bytes, file: str, *, ndjson_hint: bool = False, problems: list[DataWarning] | None = None
) -> list[RawResource]:
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    _check_utf8(data, file)
    if not data.strip():
        raise InputError("empty input", file=file, expected="a FHIR resource, Bundle or NDJSON")
    if ndjson_hint and data.strip().count(b"\n") > 0:
        return list(_from_ndjson(data, file, problems))
    try:
        return list(_from_document(data, file, problems=problems))
    except msgspec.DecodeError as exc:
        if "trailing characters" in str(exc) and b"\n" in data.strip():
            return list(_from_ndjson(data, file, problems))
        raise _json_error(exc, data, file) from None
    except RecursionError:
        raise InputError("JSON is nested too deeply", file=file, expected=_DEEP) from None


def _read_file(path: Path, max_bytes: int) -> bytes:
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise InputError(f"cannot read file ({exc.strerror})", file=str(path)) from None
    if size > max_bytes:
        raise InputError(
            f"file is {size:,} bytes, over the size limit",
            file=str(path),
            expected=f"at most {max_bytes:,} bytes",
            hint="raise max_bytes if this is intended",
        )
    try:
        with open(path, "rb") as fh:  # pipes, FIFOs and /dev/stdin report size 0: the limit holds while reading
            return _read_limited(fh, max_bytes, str(path))
    except OSError as exc:
        raise InputError(f"cannot read file ({exc.strerror})", file=str(path)) from None


def _read_limited(fh: Any, max_bytes: int, name: str) -> bytes:
    data = fh.read(max_bytes + 1)
    if len(data) > max_bytes:
        raise InputError(
            "input is over the size limit",
            file=name,
            expected=f"at most {max_bytes:,} bytes",
            hint="raise max_bytes if this is intended",
        )
    return bytes(data)


def _load_folder(path: Path, *, max_bytes: int, problems: list[DataWarning] | None) -> list[RawResource]:
    """Every .json / .ndjson file under a folder (Bulk Data log files excluded), sorted by path, under one size
    limit in all."""
    files = sorted(
        p
        for p in path.rglob("*")
        if p.is_file() and p.suffix.lower() in _SUFFIXES and p.name.lower() not in _BULK_LOG_FILES
    )
    if not files:
        raise InputError("folder holds no .json or .ndjson files", file=str(path))
    out: list[RawResource] = []
    total = 0
    for p in files:
        data = _read_file(p, max_bytes)
        total += len(data)
        if total > max_bytes:
            raise InputError(
                f"folder holds over {max_bytes:,} bytes",
                file=str(path),
                expected=f"at most {max_bytes:,} bytes in all",
            )
        out.extend(_parse_bytes(data, str(p), ndjson_hint=p.suffix.lower() in (".ndjson", ".jsonl"), problems=problems))
    return out


def load_resources(
    source: Any, *, max_bytes: int = DEFAULT_MAX_BYTES, problems: list[DataWarning] | None = None
) -> list[RawResource]:
    """All resources in ``source`` (path to a file or folder, bytes, JSON text, or a dict), in input order.

    With ``problems``, a part that cannot be read (one NDJSON line, one Bundle entry) is reported there and the rest
    is read; without it, it raises."""
    if isinstance(source, dict):
        try:
            data = orjson.dumps(source)
        except (TypeError, orjson.JSONEncodeError) as exc:
            raise InputError(f"dict is not JSON-serialisable ({exc})", file="<dict>") from None
        if len(data) > max_bytes:
            raise InputError(
                f"input is {len(data):,} bytes, over the size limit",
                file="<dict>",
                expected=f"at most {max_bytes:,} bytes",
            )
        return _parse_bytes(data, "<dict>", problems=problems)
    if isinstance(source, (bytes, bytearray, memoryview)):
        data = bytes(source)
        if len(data) > max_bytes:
            raise InputError(
                f"input is {len(data):,} bytes, over the size limit",
                file="<bytes>",
                expected=f"at most {max_bytes:,} bytes",
                hint="raise max_bytes if this is intended",
            )
        return _parse_bytes(data, "<bytes>", problems=problems)
    if isinstance(source, str):
        head = source.lstrip("\ufeff \t\r\n")[:1]
        if head in ("{", "["):
            data = source.encode("utf-8", "surrogatepass")
            if len(data) > max_bytes:
                raise InputError(
                    f"input is {len(data):,} bytes, over the size limit",
                    file="<text>",
                    expected=f"at most {max_bytes:,} bytes",
                )
            return _parse_bytes(data, "<text>", problems=problems)
        if not source.strip():
            raise InputError("empty input", file="<text>", expected="a path, JSON text, bytes or a dict")
        if source.strip() == "-":  # standard input, under the same size limit
            import sys

            return _parse_bytes(_read_limited(sys.stdin.buffer, max_bytes, "<stdin>"), "<stdin>", problems=problems)
        source = Path(source)
    if isinstance(source, os.PathLike) and str(source) == "-":
        return load_resources("-", max_bytes=max_bytes, problems=problems)
    if isinstance(source, os.PathLike):
        path = Path(source)
        if path.is_dir():
            return _load_folder(path, max_bytes=max_bytes, problems=problems)
        if not path.exists():
            raise InputError("no such file or folder", file=str(path))
        data = _read_file(path, max_bytes)
        return _parse_bytes(
            data, str(path), ndjson_hint=path.suffix.lower() in (".ndjson", ".jsonl"), problems=problems
        )
    raise InputError(f"unsupported input type {type(source).__name__}", expected="a path, bytes, JSON text or a dict")
