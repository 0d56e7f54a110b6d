"""Basic auth: unknown users cost one bcrypt at the configured cost (no enumeration by timing), verdicts are
cached without keeping passwords, failures and successes expire, header parsing refuses what it must."""

import base64

import bcrypt
import pytest
from hpcwatch.exporters import webauth
from hpcwatch.exporters.webauth import BasicAuth, bcrypt_cost, placeholder, typical_cost


def _hash(pw: bytes, cost: int, prefix: bytes = b"2b") -> bytes:
    return bcrypt.hashpw(pw, bcrypt.gensalt(rounds=cost, prefix=prefix))


def _header(user: str, pw: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{pw}".encode()).decode()


@pytest.fixture(scope="module")
def users():
    return {"prom": _hash(b"s3cret", 6), "grafana": _hash(b"other", 6, b"2a")}


def test_unknown_user_costs_one_bcrypt_at_the_configured_cost(users):
    auth = BasicAuth(users)
    assert bcrypt_cost(auth.placeholder) == 6 == auth.cost  # exporter-toolkit's placeholder is always cost 10
    for i in range(5):
        assert auth.verify(auth.attempt(_header("nobody", f"guess{i}"))) is False
        assert auth.verify(auth.attempt(_header("prom", f"guess{i}"))) is False
    # The same work for both: one bcrypt each, at the same cost.
    assert auth.bcrypt_runs == {(False, 6): 5, (True, 6): 5}


def test_typical_cost_is_the_most_common_then_the_highest():
    assert typical_cost([b"$2b$12$x", b"$2b$12$y", b"$2y$10$z"]) == 12
    assert typical_cost([b"$2b$10$x", b"$2b$12$y"]) == 12
    assert typical_cost([]) == 10
    assert placeholder(5)[0] is placeholder(5)[0]  # made once per cost


def test_right_password_for_every_hash_prefix(users):
    auth = BasicAuth(users)
    assert auth.verify(auth.attempt(_header("prom", "s3cret")))
    assert auth.verify(auth.attempt(_header("grafana", "other")))   # $2a$
    y = BasicAuth({"y": b"$2y$" + _hash(b"pw", 4)[4:]})               # $2y$ as htpasswd writes
    assert y.verify(y.attempt(_header("y", "pw")))
    # Another user's password never passes, nor the placeholder's secret by some accident.
    assert not auth.verify(auth.attempt(_header("grafana", "s3cret")))


def test_verdicts_are_cached_under_a_keyed_digest(users):
    auth = BasicAuth(users)
    good = auth.attempt(_header("prom", "s3cret"))
    bad = auth.attempt(_header("prom", "nope"))
    assert auth.cached(good) is None and auth.cached(bad) is None
    auth.verify(good)
    auth.verify(bad)
    assert auth.cached(auth.attempt(_header("prom", "s3cret"))) is True
    assert auth.cached(auth.attempt(_header("prom", "nope"))) is False
    assert sum(auth.bcrypt_runs.values()) == 2
    assert all(b"s3cret" not in key and b"nope" not in key for key in auth._cache)  # no password kept
    # A changed hash for the same user and password misses the cache.
    other = BasicAuth({"prom": _hash(b"s3cret", 4)})
    assert other.cached(other.attempt(_header("prom", "s3cret"))) is None


def test_failures_expire_and_successes_stay_while_used(users, monkeypatch):
    auth = BasicAuth(users)
    clock = [1000.0]
    monkeypatch.setattr(webauth.time, "monotonic", lambda: clock[0])
    good, bad = auth.attempt(_header("prom", "s3cret")), auth.attempt(_header("prom", "nope"))
    auth.verify(good)
    auth.verify(bad)
    for _ in range(10):  # a scraper every 4 minutes keeps its success cached
        clock[0] += webauth.SUCCESS_TTL * 0.8
        assert auth.cached(good) is True
    assert auth.cached(bad) is None  # a failure is forgotten after FAILURE_TTL, used or not
    clock[0] += webauth.SUCCESS_TTL + 1
    assert auth.cached(good) is None


def test_cache_is_bounded(users, monkeypatch):
    monkeypatch.setattr(webauth, "CACHE_SIZE", 8)
    auth = BasicAuth({"u": _hash(b"pw", 4)})
    for i in range(20):
        auth.verify(auth.attempt(_header("u", f"x{i}")))
    assert len(auth._cache) == 8


@pytest.mark.parametrize("header", ["", "Bearer abc", "Basic !!!", "Basic " + base64.b64encode(b"nocolon").decode(),
                                    "Basic " + base64.b64encode(b"\xff\xfe:x").decode()])
def test_malformed_headers_are_no_attempt(users, header):
    assert BasicAuth(users).attempt(header) is None


def test_scheme_is_case_insensitive_and_passwords_may_hold_colons(users):
    auth = BasicAuth({"u": _hash(b"a:b", 4)})
    assert auth.verify(auth.attempt("basic " + base64.b64encode(b"u:a:b").decode()))


def test_passwords_past_72_bytes_never_match():
    long = b"p" * 72
    auth = BasicAuth({"u": _hash(long, 4)})
    assert auth.verify(auth.attempt(_header("u", long.decode())))
    assert not auth.verify(auth.attempt(_header("u", long.decode() + "extra")))  # bcrypt would see only 72


def test_no_users_no_auth():
    auth = BasicAuth({})
    assert not auth.enabled and auth.bcrypt_seconds == 0.0
