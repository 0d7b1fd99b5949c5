"""Cohort input as *units* of work, read with bounded memory.

A unit is what one worker reads and plans in one go: one bundle file, one Bundle line of an NDJSON file, or
one patient's resources gathered from NDJSON files (a Bulk Data ``$export`` folder: one NDJSON file per
resource type beside ``log.ndjson``). Units have a stable id (``file:<relative path>``, ``line:<file>:<n>``,
``patient:<Patient id>``): the id is what a resumed run uses to skip finished work, and it names nothing the
input did not give.

NDJSON is joined per patient through an on-disk index (SQLite next to the results): one pass over each file
records, per line, the patient it belongs to (``Patient.id``, ``subject``/``patient``/``beneficiary``
reference) and its byte offset and length; resources of no patient that a patient's resources reference
(``Medication`` for ``medicationReference``) are indexed by id and attached on reading. Reading a unit is a
few ``pread`` calls; the export is never loaded whole. The Bulk ``log.ndjson`` (OperationOutcome lines and
export events) is not patient data and is skipped; so are ``OperationOutcome`` error files.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import sqlite3
from pathlib import Path
from typing import Iterator

import msgspec

from ..errors import ConfigError, InputError

__all__ = ["Unit", "CohortSource", "open_source"]

_JSON = (".json",)
_NDJSON = (".ndjson", ".jsonl")
_SKIP_FILES = {"log.ndjson", "manifest.json"}
_PATIENT_LINKS = ("subject", "patient", "beneficiary")
_SHARED_TYPES = {"Medication"}  # resources of no patient that patients' resources reference


class _Ref(msgspec.Struct):
    reference: str | None = None


class _Head(msgspec.Struct):
    """The few fields the index reads from every NDJSON line (everything else is skipped, not decoded)."""

    resourceType: str = ""
    id: str | None = None
    subject: _Ref | None = None
    patient: _Ref | None = None
    beneficiary: _Ref | None = None
    medicationReference: _Ref | None = None


_HEAD = msgspec.json.Decoder(_Head)


@dataclasses.dataclass(frozen=True)
class Unit:
    """One piece of work: an id and where its bytes are (a whole file, or (file, offset, length) slices)."""

    id: str
    path: str | None = None  # a whole file
    slices: tuple[tuple[str, int, int], ...] = ()  # (file, offset, length) of NDJSON lines

    def read(self) -> bytes:
        if self.path is not None:
            with open(self.path, "rb") as fh:
                return fh.read()
        parts = []
        handles: dict[str, int] = {}
        try:
            for file, off, length in self.slices:
                fd = handles.get(file)
                if fd is None:
                    fd = handles[file] = os.open(file, os.O_RDONLY)
                parts.append(os.pread(fd, length, off).rstrip(b"\r\n"))
        finally:
            for fd in handles.values():
                os.close(fd)
        return b"\n".join(parts) + b"\n"


def _patient_key(head: _Head) -> str | None:
    if head.resourceType == "Patient":
        return head.id
    for name in _PATIENT_LINKS:
        ref = getattr(head, name)
        if ref is not None and ref.reference:
            r = ref.reference
            if r.startswith("Patient/"):
                return r[len("Patient/") :]
            if r.startswith("urn:uuid:"):
                return r[len("urn:uuid:") :]
            if "/Patient/" in r:  # absolute URL
                return r.rsplit("/Patient/", 1)[1]
    return None


class CohortSource:
    """Units of a cohort input (a folder of bundles, NDJSON files, a Bulk export folder, or one file)."""

    def __init__(self, root: Path, files: list[Path], ndjson: list[Path], index_path: Path) -> None:
        self.root = root
        self.files = files  # bundle (or single-resource) files: one unit each
        self.ndjson = ndjson  # NDJSON files: joined per patient through the index
        self.index_path = index_path
        self.notes: dict[str, int] = {}

    # ---- description -----------------------------------------------------------------------------------
    @property
    def kind(self) -> str:
        if self.ndjson and not self.files:
            names = {p.name for p in self.root.iterdir()} if self.root.is_dir() else set()
            return "bulk-export" if "log.ndjson" in names else "ndjson"
        return "bundles" if not self.ndjson else "mixed"

    def fingerprint(self) -> str:
        """Names, sizes and modification times of every input file: a resumed run must see the same input."""
        h = hashlib.sha256()
        for p in [*self.files, *self.ndjson]:
            st = p.stat()
            h.update(f"{self._rel(p)}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
        return h.hexdigest()

    def _rel(self, p: Path) -> str:
        try:
            return p.relative_to(self.root).as_posix() if self.root.is_dir() else p.name
        except ValueError:
            return p.name

    # ---- units -----------------------------------------------------------------------------------------
    def units(self) -> Iterator[Unit]:
        """Every unit, in a stable order (files by path, then NDJSON patients by id)."""
        for p in self.files:
            yield Unit(id=f"file:{self._rel(p)}", path=str(p))
        if self.ndjson:
            yield from self._ndjson_units()

    def count(self) -> int:
        n = len(self.files)
        if self.ndjson:
            con = self._index()
            n += con.execute("SELECT COUNT(DISTINCT pkey) FROM res").fetchone()[0]
            n += con.execute("SELECT COUNT(*) FROM bundles").fetchone()[0]
            con.close()
        return n

    def _ndjson_units(self) -> Iterator[Unit]:
        con = self._index()
        files = [f for (f,) in con.execute("SELECT path FROM files ORDER BY id")]
        for fid, off, length, line in con.execute("SELECT file, off, len, line FROM bundles ORDER BY file, off"):
            yield Unit(id=f"line:{self._rel(Path(files[fid]))}:{line}", slices=((files[fid], off, length),))
        cur = con.execute(
            "SELECT pkey, file, off, len FROM res UNION ALL "
            "SELECT r.pkey, s.file, s.off, s.len FROM refs r JOIN shared s ON s.rid = r.rid "
            "ORDER BY 1, 2, 3"
        )
        key: str | None = None
        slices: list[tuple[str, int, int]] = []
        for pkey, fid, off, length in cur:
            if pkey != key:
                if key is not None:
                    yield Unit(id=f"patient:{key}", slices=tuple(dict.fromkeys(slices)))
                key, slices = pkey, []
            slices.append((files[fid], off, length))
        if key is not None:
            yield Unit(id=f"patient:{key}", slices=tuple(dict.fromkeys(slices)))
        con.close()

    # ---- the on-disk index -----------------------------------------------------------------------------
    def _index(self) -> sqlite3.Connection:
        fp = self.fingerprint() + "\0" + str(self.root)  # the index holds absolute paths: rebuilt if moved
        if self.index_path.is_file():
            con = sqlite3.connect(self.index_path)
            try:
                row = con.execute("SELECT value FROM meta WHERE key='fingerprint'").fetchone()
            except sqlite3.DatabaseError:
                row = None
            if row is not None and row[0] == fp:
                self._load_notes(con)
                return con
            con.close()
            self.index_path.unlink()
        tmp = self.index_path.with_suffix(".tmp")
        if tmp.exists():
            tmp.unlink()
        con = sqlite3.connect(tmp)
        self._build(con)
        con.execute("INSERT INTO meta VALUES ('fingerprint', ?)", (fp,))
        con.commit()
        con.close()
        os.replace(tmp, self.index_path)
        con = sqlite3.connect(self.index_path)
        self._load_notes(con)
        return con

    def _load_notes(self, con: sqlite3.Connection) -> None:
        self.notes = {k: int(v) for k, v in con.execute("SELECT key, value FROM meta WHERE key LIKE 'note:%'")}

    def _build(self, con: sqlite3.Connection) -> None:  # one pass over every NDJSON file; long but linear
        con.executescript(
            "PRAGMA journal_mode=OFF; PRAGMA synchronous=OFF;"
            "CREATE TABLE meta(key TEXT PRIMARY KEY, value TEXT);"
            "CREATE TABLE files(id INTEGER PRIMARY KEY, path TEXT);"
            "CREATE TABLE res(pkey TEXT, file INTEGER, off INTEGER, len INTEGER);"
            "CREATE TABLE bundles(file INTEGER, off INTEGER, len INTEGER, line INTEGER);"
            "CREATE TABLE shared(rid TEXT PRIMARY KEY, file INTEGER, off INTEGER, len INTEGER);"
            "CREATE TABLE refs(pkey TEXT, rid TEXT);"
        )
        notes: dict[str, int] = {}
        for fid, path in enumerate(self.ndjson):
            con.execute("INSERT INTO files VALUES (?, ?)", (fid, str(path)))
            rows: list[tuple[str, int, int, int]] = []
            refs: list[tuple[str, str]] = []
            off = 0
            with open(path, "rb") as fh:
                for n, line in enumerate(fh, start=1):
                    length = len(line)
                    if line.strip():
                        self._index_line(con, line, path, fid, off, length, n, rows, refs, notes)
                    off += length
                    if len(rows) >= 50_000:
                        con.executemany("INSERT INTO res VALUES (?, ?, ?, ?)", rows)
                        rows.clear()
            con.executemany("INSERT INTO res VALUES (?, ?, ?, ?)", rows)
            con.executemany("INSERT INTO refs VALUES (?, ?)", refs)
        con.execute("CREATE INDEX res_pkey ON res(pkey, file, off)")
        con.execute("DELETE FROM refs WHERE rowid NOT IN (SELECT MIN(rowid) FROM refs GROUP BY pkey, rid)")
        missing = con.execute("SELECT COUNT(*) FROM refs WHERE rid NOT IN (SELECT rid FROM shared)").fetchone()[0]
        if missing:
            notes["note:reference-not-in-export"] = notes.get("note:reference-not-in-export", 0) + missing
        con.executemany("INSERT INTO meta VALUES (?, ?)", sorted(notes.items()))

    @staticmethod
    def _index_line(
        con: sqlite3.Connection,
        line: bytes,
        path: Path,
        fid: int,
        off: int,
        length: int,
        n: int,
        rows: list,
        refs: list,
        notes: dict[str, int],
    ) -> None:
        try:
            head = _HEAD.decode(line)
        except (msgspec.DecodeError, msgspec.ValidationError):
            # an unreadable line belongs to no patient we can name: counted, and reported in the run summary
            notes["note:unreadable-ndjson-line"] = notes.get("note:unreadable-ndjson-line", 0) + 1
            return
        rtype = head.resourceType
        if rtype == "Bundle":
            con.execute("INSERT INTO bundles VALUES (?, ?, ?, ?)", (fid, off, length, n))
            return
        if rtype == "OperationOutcome":
            notes["note:operation-outcome"] = notes.get("note:operation-outcome", 0) + 1
            return
        if rtype in _SHARED_TYPES and head.id:
            con.execute("INSERT OR IGNORE INTO shared VALUES (?, ?, ?, ?)", (f"{rtype}/{head.id}", fid, off, length))
            return
        pkey = _patient_key(head)
        if pkey is None:
            key = f"note:no-patient-{rtype or 'unknown'}"
            notes[key] = notes.get(key, 0) + 1
            return
        rows.append((pkey, fid, off, length))
        med = head.medicationReference
        if med is not None and med.reference and not med.reference.startswith("#"):
            parts = med.reference.split("/_history/")[0].rstrip("/").split("/")
            if len(parts) >= 2:
                refs.append((pkey, f"{parts[-2]}/{parts[-1]}"))


def open_source(path: str | os.PathLike[str], index_path: Path) -> CohortSource:
    """The units of ``path``: a folder (bundles and/or NDJSON, searched recursively) or one file."""
    root = Path(path).resolve()  # absolute: Dask workers elsewhere read the same paths
    if not root.exists():
        raise ConfigError(
            "cohort input not found",
            field="INPUT",
            value=str(root),
            expected="a folder of FHIR bundles, NDJSON files or a Bulk Data export, or one file",
        )
    if root.is_file():
        candidates = [root]
    else:
        candidates = sorted(p for p in root.rglob("*") if p.is_file())
    files = [p for p in candidates if p.suffix.lower() in _JSON and p.name not in _SKIP_FILES]
    ndjson = [p for p in candidates if p.suffix.lower() in _NDJSON and p.name not in _SKIP_FILES]
    if not files and not ndjson:
        raise InputError(
            "no .json or .ndjson files", file=str(root), expected="FHIR bundles (.json) or NDJSON (.ndjson) files"
        )
    return CohortSource(root, files, ndjson, index_path)
