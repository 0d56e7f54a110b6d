"""Basic auth for the web config's `basic_auth_users`: no user enumeration by timing, bounded bcrypt cost.

- An unknown user is checked against a placeholder hash made at start-up with the cost of the
  configured hashes, so it costs exactly one bcrypt at the same cost as a known user with a wrong
  password (exporter-toolkit uses a fixed cost-10 placeholder, which leaks when users use cost 12).
- The computed hash is compared with `hmac.compare_digest`.
- Verdicts are cached, successes and failures alike, under an HMAC of (user, stored hash, password)
  with a per-process key: the cache never holds a password, and changing a hash in the config
  misses it. A success stays cached while it is used (a scraper every 15 s never pays bcrypt
  again); a failure is cached for a minute, so a client retrying one wrong password burns nothing.
- The caller runs `verify` one at a time (the server's auth lane): bcrypt never takes more than
  one core, however many connections flood wrong passwords.
"""

from __future__ import annotations

import base64
import binascii
import collections
import dataclasses
import hashlib
import hmac
import os
import threading
import time

import bcrypt

SUCCESS_TTL = 300.0   # seconds since last use
FAILURE_TTL = 60.0    # seconds since the failure
CACHE_SIZE = 1024
BCRYPT_MAX_PASSWORD = 72   # bcrypt reads only 72 bytes; longer passwords never match (as Go's bcrypt)

_placeholders: dict[int, tuple[bytes, float]] = {}
_placeholder_lock = threading.Lock()


def bcrypt_cost(hashed: bytes) -> int:
    """The cost field of a `$2a$/$2b$/$2y$` hash: `$2b$12$...` -> 12."""
    return int(hashed[4:6])


def placeholder(cost: int) -> tuple[bytes, float]:
    """A hash of a random secret at `cost`, and how long making it took (made once per cost per process)."""
    with _placeholder_lock:
        if cost not in _placeholders:
            began = time.perf_counter()
            hashed = bcrypt.hashpw(os.urandom(18).hex().encode(), bcrypt.gensalt(rounds=cost))
            _placeholders[cost] = (hashed, time.perf_counter() - began)
        return _placeholders[cost]


def typical_cost(hashes: list[bytes]) -> int:
    """The cost most configured hashes use (ties: the higher one); 10 when there are none."""
    if not hashes:
        return 10
    counts = collections.Counter(bcrypt_cost(h) for h in hashes)
    return max(counts, key=lambda c: (counts[c], c))


@dataclasses.dataclass(frozen=True)
class Attempt:
    """One set of credentials from an Authorization header, ready to check."""

    user: str
    password: bytes
    hashed: bytes       # the user's hash, or the placeholder for an unknown user
    known: bool
    key: bytes          # cache key: HMAC of user, hash and password


class BasicAuth:
    """Checks `Authorization: Basic` headers against bcrypt hashes; see the module docstring."""

    def __init__(self, users: dict[str, bytes]) -> None:
        self.users = dict(users)
        self.cost = typical_cost(list(self.users.values()))
        self.placeholder, self.bcrypt_seconds = placeholder(self.cost) if self.users else (b"", 0.0)
        self._key = os.urandom(32)
        self._cache: collections.OrderedDict[bytes, tuple[bool, float]] = collections.OrderedDict()
        self._lock = threading.Lock()
        # (known user?, cost) -> bcrypt runs: lets tests and the benchmark check the work is the same.
        self.bcrypt_runs: collections.Counter[tuple[bool, int]] = collections.Counter()

    @property
    def enabled(self) -> bool:
        return bool(self.users)

    def attempt(self, header: str) -> Attempt | None:
        """Credentials from the header value; None when there are none or they are malformed."""
        scheme, _, token = header.strip().partition(" ")
        if scheme.lower() != "basic":
            return None
        try:
            raw = base64.b64decode(token.strip(), validate=True).decode("utf-8")
        except (binascii.Error, ValueError, UnicodeDecodeError):
            return None
        user, sep, password = raw.partition(":")
        if not sep:
            return None
        hashed = self.users.get(user)
        known = hashed is not None
        if hashed is None:
            hashed = self.placeholder
        pw = password.encode("utf-8")
        key = hmac.new(self._key, b"\0".join((user.encode("utf-8"), hashed, pw)), hashlib.sha256).digest()
        return Attempt(user, pw, hashed, known, key)

    def cached(self, attempt: Attempt) -> bool | None:
        """The cached verdict for these credentials, or None when bcrypt must run."""
        now = time.monotonic()
        with self._lock:
            entry = self._cache.get(attempt.key)
            if entry is None:
                return None
            ok, stamp = entry
            if now - stamp > (SUCCESS_TTL if ok else FAILURE_TTL):
                del self._cache[attempt.key]
                return None
            if ok:  # successes expire when unused, failures a fixed time after they happened
                self._cache[attempt.key] = (ok, now)
            self._cache.move_to_end(attempt.key)
            return ok

    def verify(self, attempt: Attempt) -> bool:
        """One bcrypt at the configured cost, known user or not; caches and returns the verdict."""
        pw = attempt.password[:BCRYPT_MAX_PASSWORD]
        try:
            computed = bcrypt.hashpw(pw, attempt.hashed)
        except ValueError:
            computed = b""
        ok = (hmac.compare_digest(computed, attempt.hashed) and attempt.known
              and len(attempt.password) <= BCRYPT_MAX_PASSWORD)
        with self._lock:
            self.bcrypt_runs[(attempt.known, bcrypt_cost(attempt.hashed))] += 1
            self._cache[attempt.key] = (ok, time.monotonic())
            self._cache.move_to_end(attempt.key)
            while len(self._cache) > CACHE_SIZE:
                self._cache.popitem(last=False)
        return ok
