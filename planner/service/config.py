"""The service's configuration (YAML) and its CDS service definitions (data under ``rules/service/``).

Configuration file (every key but ``service_url`` optional)::

    service_url: http://127.0.0.1:8931/cds-services   # a token's aud must be service_url + "/" + service id
    trusted_issuers:
      - issuer: https://ehr.example.org
        jwks_file: keys/ehr.jwks.json                # relative to the config file
      - issuer: https://other-ehr.example.org
        jku: [https://other-ehr.example.org/.well-known/jwks.json]   # allowlisted JWKS URLs
    audit: audit.sqlite            # audit store (recommendations, issued cards, feedback); default: none
    include_identifiers: false     # store patient ids / full dates in the audit (default: de-identified)
    max_request_bytes: 10485760    # larger requests get 413
    leeway_s: 30                   # clock skew allowed on exp / iat
    max_token_lifetime_s: 300      # exp - iat at most this (CDS Hooks: 5 minutes)
    fhir_timeout_s: 5              # per request to the EHR's fhirServer
    fhir_max_pages: 20             # searchset paging limit per prefetch key
    allowed_fhir_servers: [https://ehr.example.org/fhir]   # fhirServer must start with one (default: any)
    num_samples: 1000              # posterior draws per candidate on patient-view (default: rules/ranking.yaml)
    model: models/                 # fitted models (default: literature priors)
    rules: rules/                  # rules folder (default: packaged)
    top: 3                         # plans per area on patient-view cards
    batch_window_ms: 4             # patient-view: new patients arriving within this window are planned together (0: off)
    batch_max: 8                   # patient-view: at most this many patients in one batch
    workers: 1                     # worker processes (planner serve --workers N wins); each loads the planner
    planners: 0                    # patient-view planner processes per worker, fed from one queue (--planners N;
                                   # 0: planned in the worker's own threads)
    replay_cache: replay.sqlite    # jti replay cache file shared by the workers (default: in memory with one
                                   # worker; a temporary file for the run with more)

Without a configuration file the service trusts no issuer: every hook call is 401 (discovery still answers).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import orjson
import yaml

from ..errors import ConfigError
from ..rule_files import read_yaml, rules_dir

__all__ = ["Issuer", "ServiceConfig", "ServiceDefinitions", "load_config", "load_definitions"]

_HOOKS = ("order-select", "order-sign", "patient-view")


@dataclass(frozen=True)
class Issuer:
    issuer: str
    jwks: tuple[dict[str, Any], ...] = ()  # keys from jwks_file, loaded at start
    jku: tuple[str, ...] = ()  # allowlisted JWKS URLs


@dataclass(frozen=True)
class ServiceConfig:
    service_url: str = "http://127.0.0.1:8931/cds-services"
    trusted_issuers: tuple[Issuer, ...] = ()
    audit: Path | None = None
    include_identifiers: bool = False
    max_request_bytes: int = 10 * 1024 * 1024
    leeway_s: int = 30
    max_token_lifetime_s: int = 300
    fhir_timeout_s: float = 5.0
    fhir_max_pages: int = 20
    allowed_fhir_servers: tuple[str, ...] = ()
    num_samples: int | None = None
    model: Path | None = None
    rules: Path | None = None
    top: int = 3
    batch_window_ms: int = 4
    batch_max: int = 8
    workers: int = 1
    planners: int = 0
    replay_cache: Path | None = None
    today: dt.date | None = None  # fixed "today" (tests); default: the UTC date of each call
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def configured(self) -> bool:
        return bool(self.trusted_issuers)

    def fhir_server_allowed(self, url: str) -> bool:
        """Whether the service may fetch from this fhirServer (any, unless ``allowed_fhir_servers`` is set)."""
        base = url.rstrip("/")
        return not self.allowed_fhir_servers or any(
            base == a or base.startswith(a + "/") for a in self.allowed_fhir_servers
        )

    def audience(self, service_id: str) -> str:
        return self.service_url.rstrip("/") + "/" + service_id


_INT_KEYS = {
    "max_request_bytes": (1024, 1 << 30),
    "leeway_s": (0, 300),
    "max_token_lifetime_s": (10, 3600),
    "fhir_max_pages": (1, 1000),
    "top": (1, 20),
    "num_samples": (100, 100_000),
    "batch_window_ms": (0, 1000),
    "batch_max": (1, 256),
    "workers": (1, 64),
    "planners": (0, 64),
}


def _read_jwks(path: Path, where: str) -> tuple[dict[str, Any], ...]:
    try:
        doc = orjson.loads(path.read_bytes())
    except OSError:
        raise ConfigError(
            "JWKS file not found",
            file=where,
            field="jwks_file",
            value=str(path),
            expected="a readable JSON Web Key Set file",
        ) from None
    except orjson.JSONDecodeError:
        raise ConfigError(
            "JWKS file is not JSON", file=where, field="jwks_file", value=str(path), expected='{"keys": [...]}'
        ) from None
    keys = doc.get("keys") if isinstance(doc, dict) else None
    if not isinstance(keys, list) or not all(isinstance(k, dict) for k in keys):
        raise ConfigError(
            "JWKS file has no key list", file=where, field="jwks_file", value=str(path), expected='{"keys": [...]}'
        )
    for k in keys:
        if any(p in k for p in ("d", "p", "q", "k")):
            raise ConfigError(
                "JWKS file holds private or symmetric key material",
                file=where,
                field="jwks_file",
                value=str(path),
                expected="public keys only",
            )
    return tuple(keys)


def _url(value: Any, where: str, name: str) -> str:
    if not isinstance(value, str) or urlsplit(value).scheme not in {"http", "https"} or not urlsplit(value).netloc:
        raise ConfigError("not an http(s) URL", file=where, field=name, value=value, expected="http(s)://host/...")
    return value


def _issuers(items: Any, base: Path, where: str) -> tuple[Issuer, ...]:
    if items is None:
        return ()
    if not isinstance(items, list):
        raise ConfigError(
            "trusted_issuers must be a list",
            file=where,
            field="trusted_issuers",
            expected="a list of {issuer, jwks_file | jku}",
        )
    out = []
    for i, item in enumerate(items):
        name = f"trusted_issuers[{i}]"
        if not isinstance(item, dict) or not isinstance(item.get("issuer"), str) or not item["issuer"]:
            raise ConfigError(
                "issuer entry needs an 'issuer' string",
                file=where,
                field=name,
                expected="{issuer: ..., jwks_file: ... | jku: [...]}",
            )
        unknown = set(item) - {"issuer", "jwks_file", "jku"}
        if unknown:
            raise ConfigError(
                "unknown keys in issuer entry",
                file=where,
                field=name,
                value=sorted(unknown),
                expected="issuer, jwks_file, jku",
            )
        jwks: tuple[dict[str, Any], ...] = ()
        if item.get("jwks_file") is not None:
            p = Path(str(item["jwks_file"])).expanduser()
            jwks = _read_jwks(p if p.is_absolute() else base / p, where)
        jku_raw = item.get("jku") or []
        jku_list = [jku_raw] if isinstance(jku_raw, str) else jku_raw
        if not isinstance(jku_list, list):
            raise ConfigError("jku must be a list of URLs", file=where, field=f"{name}.jku", expected="[https://...]")
        jku = tuple(_url(u, where, f"{name}.jku") for u in jku_list)
        if not jwks and not jku:
            raise ConfigError(
                "issuer has no keys",
                file=where,
                field=name,
                value=item["issuer"],
                expected="jwks_file or a jku allowlist",
            )
        out.append(Issuer(issuer=item["issuer"], jwks=jwks, jku=jku))
    return tuple(out)


def load_config(path: str | Path | None, **overrides: Any) -> ServiceConfig:
    """Read the YAML configuration (None: the unconfigured service, which trusts no issuer)."""
    if path is None:
        return ServiceConfig(**overrides)
    p = Path(path).expanduser()
    where = str(p)
    try:
        doc = yaml.safe_load(p.read_text(encoding="utf-8"))
    except OSError:
        raise ConfigError(
            "configuration file not found", field="--config", value=where, expected="a readable YAML file"
        ) from None
    except yaml.YAMLError as exc:
        line = getattr(getattr(exc, "problem_mark", None), "line", None)
        raise ConfigError(
            "configuration is not valid YAML" + ("" if line is None else f" (line {line + 1})"), file=where
        ) from None
    if not isinstance(doc, dict):
        raise ConfigError("configuration must be a mapping", file=where, expected="service_url: ... etc.")
    known = set(ServiceConfig.__dataclass_fields__) - {"extra", "today"}
    unknown = sorted(set(doc) - known)
    if unknown:
        raise ConfigError("unknown configuration keys", file=where, value=unknown, expected=", ".join(sorted(known)))
    kw: dict[str, Any] = {"service_url": _url(doc.get("service_url"), where, "service_url").rstrip("/")}
    kw["trusted_issuers"] = _issuers(doc.get("trusted_issuers"), p.parent, where)
    for key in ("audit", "model", "rules", "replay_cache"):
        if doc.get(key) is not None:
            q = Path(str(doc[key])).expanduser()
            kw[key] = q if q.is_absolute() else p.parent / q
    if "include_identifiers" in doc:
        if not isinstance(doc["include_identifiers"], bool):
            raise ConfigError(
                "must be true or false", file=where, field="include_identifiers", value=doc["include_identifiers"]
            )
        kw["include_identifiers"] = doc["include_identifiers"]
    for key, (lo, hi) in _INT_KEYS.items():
        if key in doc:
            v = doc[key]
            if not isinstance(v, int) or isinstance(v, bool):
                raise ConfigError(
                    "must be an integer", file=where, field=key, value=v, expected=f"an integer {lo}-{hi}"
                )
            if not lo <= v <= hi:
                raise ConfigError("out of range", file=where, field=key, value=v, expected=f"an integer {lo}-{hi}")
            kw[key] = v
    servers = doc.get("allowed_fhir_servers") or []
    if not isinstance(servers, list):
        raise ConfigError("must be a list of URLs", file=where, field="allowed_fhir_servers", expected="[https://...]")
    kw["allowed_fhir_servers"] = tuple(_url(u, where, "allowed_fhir_servers").rstrip("/") for u in servers)
    if "fhir_timeout_s" in doc:
        v = doc["fhir_timeout_s"]
        if not isinstance(v, (int, float)) or isinstance(v, bool):
            raise ConfigError("must be a number", file=where, field="fhir_timeout_s", value=v, expected="0-60 seconds")
        if not 0 < v <= 60:
            raise ConfigError("out of range", file=where, field="fhir_timeout_s", value=v, expected="0-60 seconds")
        kw["fhir_timeout_s"] = float(v)
    kw.update(overrides)
    return ServiceConfig(**kw)


@dataclass(frozen=True)
class ServiceDefinitions:
    """What GET /cds-services says, plus the card vocabulary (indicators, labels, override reasons)."""

    services: tuple[dict[str, Any], ...]
    optional_prefetch: frozenset[str]
    indicators: tuple[dict[str, str], ...]
    source_labels: dict[str, str]
    plan_source_label: str
    override_system: str
    override_codes: tuple[dict[str, str], ...]
    max_alternatives: int
    version: str

    def service(self, service_id: str) -> dict[str, Any] | None:
        return next((s for s in self.services if s["id"] == service_id), None)

    def indicator(self, action: str, strength: str | None) -> str:
        for row in self.indicators:
            if row["action"] == action and row.get("strength", "*") in ("*", strength):
                return row["indicator"]
        return "info"


def load_definitions(rules: str | Path | None = None) -> ServiceDefinitions:
    path = rules_dir(rules) / "service" / "cds_services.yaml"
    where = str(path)
    doc = read_yaml(path)
    services = doc.get("services")
    if not isinstance(services, list) or not services:
        raise ConfigError("no services defined", file=where, field="services", expected="a list of services")
    seen = set()
    for s in services:
        if not isinstance(s, dict) or s.get("hook") not in _HOOKS or not isinstance(s.get("id"), str):
            raise ConfigError(
                "bad service definition",
                file=where,
                field="services",
                value=s.get("id") if isinstance(s, dict) else s,
                expected="id, hook (" + ", ".join(_HOOKS) + "), title",
            )
        if s["id"] in seen:
            raise ConfigError("duplicate service id", file=where, field="services", value=s["id"])
        seen.add(s["id"])
    ovr = doc.get("override_reasons") or {}
    return ServiceDefinitions(
        services=tuple(dict(s) for s in services),
        optional_prefetch=frozenset(doc.get("optional_prefetch") or ()),
        indicators=tuple(doc.get("indicators") or ()),
        source_labels=dict(doc.get("source_labels") or {}),
        plan_source_label=str(doc.get("plan_source_label") or "planner"),
        override_system=str(ovr.get("system") or ""),
        override_codes=tuple(ovr.get("codes") or ()),
        max_alternatives=int(doc.get("max_alternatives", 3)),
        version=str(doc.get("version", "")),
    )
