"""Bearer JWT verification for CDS Hooks calls (CDS Hooks 2.0, "Trusting CDS Clients").

A token is accepted only when all of these hold, and every failure is the same bare 401 for the caller
(the reason goes to the log as a short code, never the token or its claims):

* ``Authorization: Bearer <JWT>``; header ``alg`` RS384 or ES384 (``none`` and every HMAC algorithm refused,
  so a token "signed" with the issuer's public key as an HMAC secret never verifies); a ``kid``;
* ``iss`` is a configured trusted issuer; the key with that ``kid`` comes from the issuer's configured JWKS file,
  or from a ``jku`` URL that is on the issuer's allowlist (fetched over HTTP with a timeout, cached); the key type
  must fit the algorithm (RSA >= 2048 bits for RS384, EC P-384 for ES384) and be a public key;
* the signature verifies; ``aud`` equals ``service_url + "/" + service id``; ``exp``, ``iat`` and ``jti`` present;
  ``exp`` not passed and ``iat`` not in the future (both with the configured leeway); ``exp - iat`` at most
  ``max_token_lifetime_s``;
* the (``iss``, ``jti``) pair has not been seen before (replay cache, kept until the token expires; shared by
  every worker process through a SQLite file, see :mod:`planner.service.replay`).
"""

from __future__ import annotations

import logging
import time
from typing import Any

import httpx
import jwt
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import ECAlgorithm, RSAAlgorithm

from .config import Issuer, ServiceConfig
from .replay import CacheFull, MemoryReplayCache, ReplayCache, open_replay_cache

__all__ = ["AuthError", "TokenVerifier"]

log = logging.getLogger("planner.service.auth")

_ALGS = ("RS384", "ES384")
_JWKS_TTL_S = 300.0
_JWKS_MAX_BYTES = 256 * 1024


class AuthError(Exception):
    """A token was refused; ``reason`` is a short code for the log."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def _public_key(jwk: dict[str, Any], alg: str) -> Any:
    """The cryptography public key of a JWK, if it fits the algorithm (else AuthError)."""
    if jwk.get("alg") not in (None, alg) or jwk.get("use") not in (None, "sig"):
        raise AuthError("key-alg-mismatch")
    if any(p in jwk for p in ("d", "k")):
        raise AuthError("key-not-public")
    try:
        if alg == "RS384":
            if jwk.get("kty") != "RSA":
                raise AuthError("key-type-mismatch")
            key = RSAAlgorithm.from_jwk(jwk)
            if not isinstance(key, rsa.RSAPublicKey) or key.key_size < 2048:
                raise AuthError("key-weak")
            return key
        if jwk.get("kty") != "EC" or jwk.get("crv") != "P-384":
            raise AuthError("key-type-mismatch")
        key = ECAlgorithm.from_jwk(jwk)
        if not isinstance(key, ec.EllipticCurvePublicKey) or key.curve.name != "secp384r1":
            raise AuthError("key-type-mismatch")
        return key
    except AuthError:
        raise
    except Exception:  # noqa: BLE001 - malformed key material of any kind is a refusal
        raise AuthError("key-invalid") from None


class TokenVerifier:
    """Verifies CDS Hooks bearer tokens against a :class:`ServiceConfig`. Thread-safe."""

    def __init__(
        self, config: ServiceConfig, *, http: httpx.Client | None = None, replay: ReplayCache | None = None
    ) -> None:
        self.config = config
        self._issuers: dict[str, Issuer] = {i.issuer: i for i in config.trusted_issuers}
        # the (iss, jti) pairs seen: in memory, or the file every worker shares (config.replay_cache)
        self._replay = replay or open_replay_cache(config.replay_cache)
        self._jwks_cache: dict[str, tuple[float, tuple[dict[str, Any], ...]]] = {}
        self._http = http

    @property
    def may_block(self) -> bool:
        """Whether :meth:`verify` may wait on I/O: a ``jku`` key set to fetch, or the replay cache file shared
        with other worker processes (else it is CPU only, well under a millisecond)."""
        return any(i.jku for i in self._issuers.values()) or not isinstance(self._replay, MemoryReplayCache)

    # ---- keys --------------------------------------------------------------------------------------------
    def _fetch_jwks(self, url: str) -> tuple[dict[str, Any], ...]:
        now = time.monotonic()
        hit = self._jwks_cache.get(url)
        if hit is not None and now - hit[0] < _JWKS_TTL_S:
            return hit[1]
        try:
            client = self._http or httpx.Client(timeout=self.config.fhir_timeout_s, follow_redirects=False)
            try:
                resp = client.get(url, headers={"Accept": "application/json"})
            finally:
                if self._http is None:
                    client.close()
            if resp.status_code != 200 or len(resp.content) > _JWKS_MAX_BYTES:
                raise AuthError("jku-fetch-failed")
            keys = resp.json().get("keys")
        except AuthError:
            raise
        except Exception:  # noqa: BLE001 - any failure to fetch or parse a JWKS is a refusal
            raise AuthError("jku-fetch-failed") from None
        if not isinstance(keys, list):
            raise AuthError("jku-not-jwks")
        out = tuple(k for k in keys if isinstance(k, dict))
        self._jwks_cache[url] = (now, out)
        return out

    def _keys_for(self, issuer: Issuer, header: dict[str, Any]) -> tuple[dict[str, Any], ...]:
        jku = header.get("jku")
        if jku is not None:
            if not isinstance(jku, str) or jku not in issuer.jku:
                raise AuthError("jku-not-allowlisted")
            return self._fetch_jwks(jku)
        if issuer.jwks:
            return issuer.jwks
        keys: list[dict[str, Any]] = []
        for url in issuer.jku:  # no jku header: the issuer's allowlisted key sets
            keys += self._fetch_jwks(url)
        return tuple(keys)

    # ---- verification ------------------------------------------------------------------------------------
    def verify(self, authorization: str | None, audiences: tuple[str, ...]) -> dict[str, Any]:
        """The verified claims, or AuthError."""
        if not self._issuers:
            raise AuthError("no-trusted-issuers")
        if not authorization or not isinstance(authorization, str):
            raise AuthError("no-token")
        scheme, _, token = authorization.strip().partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token or token.count(".") != 2 or len(token) > 16384:
            raise AuthError("not-bearer-jwt")
        try:
            header = jwt.get_unverified_header(token)
            unverified = jwt.decode(token, options={"verify_signature": False})
        except Exception:  # noqa: BLE001 - any undecodable token is a refusal
            raise AuthError("malformed") from None
        alg = header.get("alg")
        if alg not in _ALGS:
            raise AuthError("alg-refused")
        kid = header.get("kid")
        iss = unverified.get("iss")
        if not isinstance(kid, str) or not kid:
            raise AuthError("no-kid")
        issuer = self._issuers.get(iss) if isinstance(iss, str) else None
        if issuer is None:
            raise AuthError("issuer-not-trusted")
        jwk = next((k for k in self._keys_for(issuer, header) if k.get("kid") == kid), None)
        if jwk is None:
            raise AuthError("unknown-kid")
        key = _public_key(jwk, alg)
        claims = self._decode(token, key, alg, issuer.issuer, audiences)
        self._check_replay(issuer.issuer, claims)
        return claims

    def _decode(self, token: str, key: Any, alg: str, iss: str, audiences: tuple[str, ...]) -> dict[str, Any]:
        cfg = self.config
        try:
            claims = jwt.decode(
                token,
                key,
                algorithms=[alg],
                audience=list(audiences),
                issuer=iss,
                leeway=cfg.leeway_s,
                options={"require": ["exp", "iat", "jti", "iss", "aud"], "verify_iat": True},
            )
        except jwt.ExpiredSignatureError:
            raise AuthError("expired") from None
        except jwt.InvalidAudienceError:
            raise AuthError("wrong-audience") from None
        except jwt.InvalidIssuerError:
            raise AuthError("wrong-issuer") from None
        except jwt.ImmatureSignatureError:
            raise AuthError("issued-in-future") from None
        except jwt.MissingRequiredClaimError:
            raise AuthError("missing-claim") from None
        except jwt.InvalidSignatureError:
            raise AuthError("bad-signature") from None
        except Exception:  # noqa: BLE001 - any other PyJWT failure is a refusal
            raise AuthError("invalid-token") from None
        exp, iat, jti = claims.get("exp"), claims.get("iat"), claims.get("jti")
        if not isinstance(exp, (int, float)) or not isinstance(iat, (int, float)):
            raise AuthError("bad-time-claims")
        if iat > time.time() + cfg.leeway_s:
            raise AuthError("issued-in-future")
        if exp - iat > cfg.max_token_lifetime_s:
            raise AuthError("lifetime-too-long")
        if not isinstance(jti, str) or not jti or len(jti) > 256:
            raise AuthError("bad-jti")
        if isinstance(claims.get("aud"), list) and len(claims["aud"]) != 1:
            raise AuthError("wrong-audience")  # one audience: the service being called
        return claims

    def _check_replay(self, iss: str, claims: dict[str, Any]) -> None:
        keep_until = float(claims["exp"]) + self.config.leeway_s
        try:
            fresh = self._replay.claim(iss, str(claims["jti"]), keep_until, time.time())
        except CacheFull:
            raise AuthError("replay-cache-full") from None  # refuse rather than forget a live token
        if not fresh:
            raise AuthError("replayed")
