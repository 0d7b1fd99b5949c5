"""The ``jti`` replay cache of :class:`~planner.service.auth.TokenVerifier`: in memory, or in a SQLite file that
every worker process of ``planner serve --workers N`` shares.

A token's (``iss``, ``jti``) pair is claimed once; a second claim before the token's ``exp`` (plus leeway) is a
replay. In the shared file the pair is the table's primary key and a claim is one atomic upsert, so two workers
that receive the same token at the same moment cannot both accept it: SQLite serialises the writers (WAL mode,
a busy timeout) and exactly one of them sees its row inserted. Expired pairs are purged every few hundred claims.
The cache refuses (rather than forgets a live token) when it holds ``max_entries`` unexpired pairs.
"""

from __future__ import annotations

import os
import sqlite3
import threading
from pathlib import Path

from ..errors import ConfigError

__all__ = ["ReplayCache", "MemoryReplayCache", "SqliteReplayCache", "open_replay_cache", "REPLAY_MAX"]

REPLAY_MAX = 200_000
_PURGE_EVERY = 256


class ReplayCache:
    """Interface: ``claim`` says whether the pair is new (True) or a replay (False); raises ``CacheFull``."""

    def claim(self, iss: str, jti: str, keep_until: float, now: float) -> bool:  # pragma: no cover - interface
        raise NotImplementedError


class CacheFull(Exception):
    pass


class MemoryReplayCache(ReplayCache):
    """One process's cache (``planner serve`` with one worker and no ``replay_cache`` file)."""

    def __init__(self, max_entries: int = REPLAY_MAX) -> None:
        self.max_entries = max_entries
        self._seen: dict[tuple[str, str], float] = {}
        self._lock = threading.Lock()

    def claim(self, iss: str, jti: str, keep_until: float, now: float) -> bool:
        key = (iss, jti)
        with self._lock:
            if key in self._seen and self._seen[key] >= now:
                return False
            if len(self._seen) >= self.max_entries:
                self._seen = {k: t for k, t in self._seen.items() if t >= now}
                if len(self._seen) >= self.max_entries:
                    raise CacheFull()
            self._seen[key] = keep_until
            return True


class SqliteReplayCache(ReplayCache):
    """A cache in a SQLite file shared by processes. Thread-safe; one connection per process (opened lazily, so a
    process started by fork or spawn opens its own)."""

    def __init__(self, path: str | Path, max_entries: int = REPLAY_MAX) -> None:
        self.path = str(path)
        self.max_entries = max_entries
        self._lock = threading.Lock()
        self._con: sqlite3.Connection | None = None
        self._pid = 0
        self._claims = 0
        self._full = False
        try:
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
            self._connection()  # fail at start, not on the first token
        except (sqlite3.Error, OSError) as exc:
            raise ConfigError(
                f"cannot open the replay cache ({type(exc).__name__})",
                field="replay_cache",
                value=self.path,
                expected="a writable SQLite file path",
            ) from None

    def _connection(self) -> sqlite3.Connection:
        if self._con is None or self._pid != os.getpid():
            con = sqlite3.connect(self.path, timeout=10.0, isolation_level=None, check_same_thread=False)
            con.execute("PRAGMA journal_mode=WAL")
            con.execute("PRAGMA synchronous=NORMAL")
            con.execute(
                "CREATE TABLE IF NOT EXISTS seen_tokens (iss TEXT NOT NULL, jti TEXT NOT NULL,"
                " keep_until REAL NOT NULL, PRIMARY KEY (iss, jti)) WITHOUT ROWID"
            )
            self._con, self._pid = con, os.getpid()
        return self._con

    def claim(self, iss: str, jti: str, keep_until: float, now: float) -> bool:
        with self._lock:
            con = self._connection()
            self._claims += 1
            if self._claims % _PURGE_EVERY == 0 or self._full:
                con.execute("DELETE FROM seen_tokens WHERE keep_until < ?", (now,))
                (count,) = con.execute("SELECT COUNT(*) FROM seen_tokens").fetchone()
                self._full = count >= self.max_entries
            if self._full:
                raise CacheFull()
            # a new pair is inserted; a known pair is taken over only when its token has expired
            cur = con.execute(
                "INSERT INTO seen_tokens (iss, jti, keep_until) VALUES (?, ?, ?) ON CONFLICT (iss, jti)"
                " DO UPDATE SET keep_until = excluded.keep_until WHERE seen_tokens.keep_until < ?",
                (iss, jti, keep_until, now),
            )
            return cur.rowcount == 1


def open_replay_cache(path: str | Path | None) -> ReplayCache:
    return MemoryReplayCache() if path is None else SqliteReplayCache(path)
