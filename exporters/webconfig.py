"""The exporter-toolkit web configuration file (`--web.config.file`): TLS and basic auth.

Same YAML as node_exporter: `tls_server_config` (cert_file, key_file, client_ca_file,
client_auth_type, min_version, max_version), `http_server_config` (headers) and
`basic_auth_users` (user: bcrypt hash). Unknown fields are errors, as in exporter-toolkit, and
every error names the file and the field. `files` lists what a config was read from, so
`webreload.WebConfigWatcher` can notice a rotated certificate or an edited file.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import ssl

import yaml

log = logging.getLogger("hpcwatch.webconfig")


class WebConfigError(ValueError):
    """The web config file is unusable; the message names the file and the field."""


CLIENT_AUTH = {
    "": ssl.CERT_NONE,
    "NoClientCert": ssl.CERT_NONE,
    "VerifyClientCertIfGiven": ssl.CERT_OPTIONAL,
    "RequireAndVerifyClientCert": ssl.CERT_REQUIRED,
}
# Go's RequestClientCert / RequireAnyClientCert accept unverified certificates; Python's ssl cannot.
UNSUPPORTED_CLIENT_AUTH = ("RequestClientCert", "RequireAnyClientCert")
TLS_VERSIONS = {
    "TLS10": ssl.TLSVersion.TLSv1,
    "TLS11": ssl.TLSVersion.TLSv1_1,
    "TLS12": ssl.TLSVersion.TLSv1_2,
    "TLS13": ssl.TLSVersion.TLSv1_3,
}
TLS_FIELDS = {"cert_file", "key_file", "client_ca_file", "client_auth_type", "min_version", "max_version",
              "cipher_suites", "prefer_server_cipher_suites", "curve_preferences", "client_allowed_sans"}
TOP_FIELDS = {"tls_server_config", "http_server_config", "basic_auth_users"}


@dataclasses.dataclass
class WebConfig:
    """What the server needs: an SSL context (or None for plain HTTP), users and extra headers."""

    ssl_context: ssl.SSLContext | None = None
    users: dict[str, bytes] = dataclasses.field(default_factory=dict)
    headers: dict[str, str] = dataclasses.field(default_factory=dict)
    client_allowed_sans: list[str] = dataclasses.field(default_factory=list)
    files: tuple[str, ...] = ()


def _fail(path: str, field: str, expected: str) -> WebConfigError:
    return WebConfigError(f"{path}: field {field}: {expected}")


def _resolve(base: str, p: str) -> str:
    # exporter-toolkit resolves relative paths against the config file's directory.
    return p if os.path.isabs(p) else os.path.join(os.path.dirname(os.path.abspath(base)), p)


def load_web_config(path: str) -> WebConfig:
    """Parse and check a web config file; raise WebConfigError naming the field on any problem."""
    try:
        with open(path, encoding="utf-8") as fh:
            raw = yaml.safe_load(fh)
    except OSError as exc:
        raise WebConfigError(f"{path}: cannot read web config: {exc.strerror or exc}") from exc
    except yaml.YAMLError as exc:
        raise WebConfigError(f"{path}: not valid YAML: {exc}") from exc
    if raw is None:
        return WebConfig(files=(path,))
    if not isinstance(raw, dict):
        raise WebConfigError(f"{path}: expected a mapping at the top level, got {type(raw).__name__}")
    for key in raw:
        if key not in TOP_FIELDS:
            raise _fail(path, str(key), f"unknown field; expected one of {', '.join(sorted(TOP_FIELDS))}")
    cfg = WebConfig(files=(path,))
    _load_users(path, raw.get("basic_auth_users"), cfg)
    _load_http(path, raw.get("http_server_config"), cfg)
    tls = raw.get("tls_server_config")
    if tls is not None:
        cfg.ssl_context = _load_tls(path, tls, cfg)
    return cfg


def _load_users(path: str, users: object, cfg: WebConfig) -> None:
    if users is None:
        return
    if not isinstance(users, dict):
        raise _fail(path, "basic_auth_users", "expected a mapping of user name to bcrypt hash")
    for user, hashed in users.items():
        if not isinstance(hashed, str) or not hashed.startswith(("$2a$", "$2b$", "$2y$")):
            raise _fail(path, f"basic_auth_users.{user}", "expected a bcrypt hash starting with $2a$, $2b$ or $2y$")
        cfg.users[str(user)] = hashed.encode()


def _load_http(path: str, http: object, cfg: WebConfig) -> None:
    if http is None:
        return
    if not isinstance(http, dict):
        raise _fail(path, "http_server_config", "expected a mapping")
    for key, value in http.items():
        if key == "headers":
            if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
                raise _fail(path, "http_server_config.headers", "expected a mapping of header name to string")
            cfg.headers.update({str(k): v for k, v in value.items()})
        elif key == "http2":
            continue  # accepted for compatibility; this server speaks HTTP/1.1
        else:
            raise _fail(path, f"http_server_config.{key}", "unknown field; expected headers or http2")


def _load_tls(path: str, tls: object, cfg: WebConfig) -> ssl.SSLContext:
    if not isinstance(tls, dict):
        raise _fail(path, "tls_server_config", "expected a mapping")
    for key in tls:
        if key not in TLS_FIELDS:
            raise _fail(path, f"tls_server_config.{key}",
                        f"unknown field; expected one of {', '.join(sorted(TLS_FIELDS))}")
    for ignored in ("cipher_suites", "curve_preferences", "prefer_server_cipher_suites"):
        if tls.get(ignored) is not None:
            # Go cipher names do not map onto OpenSSL's; Python's defaults (TLS >= 1.2, AEAD) apply.
            log.warning("%s: tls_server_config.%s is accepted but not applied; OpenSSL defaults are used",
                        path, ignored)
    cert, key = tls.get("cert_file"), tls.get("key_file")
    if not cert:
        raise _fail(path, "tls_server_config.cert_file", "required when tls_server_config is set")
    if not key:
        raise _fail(path, "tls_server_config.key_file", "required when tls_server_config is set")
    auth = tls.get("client_auth_type") or ""
    if auth in UNSUPPORTED_CLIENT_AUTH:
        raise _fail(path, "tls_server_config.client_auth_type",
                    f"{auth} (accepting unverified client certificates) is not supported; "
                    "use VerifyClientCertIfGiven or RequireAndVerifyClientCert")
    if auth not in CLIENT_AUTH:
        raise _fail(path, "tls_server_config.client_auth_type",
                    f"got {auth!r}; expected one of {', '.join(k for k in CLIENT_AUTH if k)}")
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    for field, attr in (("min_version", "minimum_version"), ("max_version", "maximum_version")):
        v = tls.get(field)
        if v is not None:
            if v not in TLS_VERSIONS:
                raise _fail(path, f"tls_server_config.{field}", f"got {v!r}; expected one of {', '.join(TLS_VERSIONS)}")
            setattr(ctx, attr, TLS_VERSIONS[v])
    cert_path, key_path = _resolve(path, str(cert)), _resolve(path, str(key))
    cfg.files += (cert_path, key_path)
    try:
        ctx.load_cert_chain(cert_path, key_path)
    except (OSError, ssl.SSLError) as exc:
        raise _fail(path, "tls_server_config.cert_file/key_file",
                    f"cannot load certificate {cert_path} and key {key_path}: {exc}") from exc
    ca = tls.get("client_ca_file")
    ctx.verify_mode = CLIENT_AUTH[auth]
    if ctx.verify_mode != ssl.CERT_NONE and not ca:
        raise _fail(path, "tls_server_config.client_ca_file", f"required when client_auth_type is {auth}")
    if ca:
        ca_path = _resolve(path, str(ca))
        cfg.files += (ca_path,)
        try:
            ctx.load_verify_locations(ca_path)
        except (OSError, ssl.SSLError) as exc:
            raise _fail(path, "tls_server_config.client_ca_file", f"cannot load CA bundle {ca_path}: {exc}") from exc
        if ctx.verify_mode == ssl.CERT_NONE:
            # exporter-toolkit: a CA without an auth type means verify certificates that are given.
            ctx.verify_mode = ssl.CERT_OPTIONAL
    sans = tls.get("client_allowed_sans") or []
    if not isinstance(sans, list):
        raise _fail(path, "tls_server_config.client_allowed_sans", "expected a list of names")
    cfg.client_allowed_sans = [str(s) for s in sans]
    return ctx
