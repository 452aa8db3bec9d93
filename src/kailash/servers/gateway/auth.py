"""Who is calling, for which tenant, and what they may do: API keys, JWT bearer tokens, RBAC.

The same rules serve every channel: REST reads the credentials from request headers, MCP from
the HTTP request of a tool call (or from the stdio server's launch options), the CLI from its
options.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from kailash.servers.gateway.errors import (
    GatewayConfigurationError,
    GatewayError,
    ensure_installed,
)
from kailash.servers.gateway.protocol import EXECUTE, OPERATIONS

log = logging.getLogger("kailash.gateway")

#: Environment variable holding auth_config keys as JSON; keys given in code take precedence.
AUTH_CONFIG_ENV = "KAILASH_AUTH_CONFIG"

_KEYS = {"api_keys", "api_key_header", "jwt", "rbac_enabled", "roles", "tenant_header", "providers"}
_KEY_ENTRY = {"roles", "tenant_id", "subject"}
_JWT_KEYS = {
    "secret",
    "public_key",
    "algorithms",
    "audience",
    "issuer",
    "roles_claim",
    "tenant_claim",
    "subject_claim",
    "leeway",
    "require",
}
_PROVIDERS = ("api_key", "jwt", "oauth2", "saml")
_ALL_OPERATIONS = frozenset((*OPERATIONS, EXECUTE))
_READS = ["read", "list", "count", "aggregate"]

#: Roles used when RBAC is on and auth_config names none.
DEFAULT_ROLES: dict[str, Any] = {
    "admin": "*",
    # Restoring undoes a delete, so whoever may delete may restore. The audit trail (old
    # values, who acted) is admin-only unless a role map grants ``audit``.
    "editor": {"*": ["create", "update", "delete", "restore", "upsert", *_READS, EXECUTE]},
    "viewer": {"*": _READS},
}


@dataclass(frozen=True, slots=True)
class Credentials:
    """What a caller presented: an API key, a bearer token, a tenant header."""

    api_key: str | None = None
    bearer: str | None = None
    tenant: str | None = None


@dataclass(frozen=True, slots=True)
class Principal:
    """An authenticated (or anonymous) caller."""

    subject: str | None
    roles: frozenset[str]
    tenant_id: str | None
    method: Literal["anonymous", "api_key", "jwt"]


ANONYMOUS = Principal(None, frozenset(), None, "anonymous")


@dataclass(frozen=True, slots=True)
class Caller:
    """A principal and the tenant its call is bound to (None: no tenant)."""

    principal: Principal
    tenant_id: str | None


def _fail(message: str) -> GatewayConfigurationError:
    return GatewayConfigurationError(f"auth_config: {message}")


def _check_keys(where: str, given: Mapping[str, Any], known: set[str]) -> None:
    unknown = sorted(set(given) - known)
    if unknown:
        raise _fail(
            f"{where}: unknown key(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}"
        )


def _str_list(where: str, value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, list | tuple) and all(isinstance(v, str) for v in value):
        return list(value)
    raise _fail(f"{where} must be a list of strings, got {value!r}")


def _grants(role: str, value: Any) -> dict[str, frozenset[str] | None]:
    """A role's grants: resource (a model, node or workflow name, or '*') -> operations."""
    if value == "*":
        return {"*": None}
    if not isinstance(value, Mapping):
        raise _fail(f"roles['{role}'] must be '*' or a dict of resource -> operations")
    grants: dict[str, frozenset[str] | None] = {}
    for resource, ops in value.items():
        if ops == "*":
            grants[resource] = None
            continue
        names = _str_list(f"roles['{role}']['{resource}']", ops)
        unknown = sorted(set(names) - _ALL_OPERATIONS)
        if unknown:
            raise _fail(
                f"roles['{role}']['{resource}']: unknown operation(s) {', '.join(unknown)}; "
                f"operations: {', '.join(sorted(_ALL_OPERATIONS))}"
            )
        grants[resource] = frozenset(names)
    return grants


@dataclass(frozen=True, slots=True)
class JWTSettings:
    keys: Mapping[str, Any]  # algorithm -> verification key
    audience: str | None
    issuer: str | None
    roles_claim: str
    tenant_claim: str
    subject_claim: str
    leeway: float
    require: tuple[str, ...]

    @classmethod
    def parse(cls, raw: Any) -> JWTSettings:
        if not isinstance(raw, Mapping):
            raise _fail("'jwt' must be a dict")
        _check_keys("jwt", raw, _JWT_KEYS)
        secret, public_key = raw.get("secret"), raw.get("public_key")
        if not secret and not public_key:
            raise _fail("jwt needs 'secret' (HS256) or 'public_key' (RS256, PEM)")
        default = ["HS256"] if secret else []
        default += ["RS256"] if public_key else []
        keys: dict[str, Any] = {}
        for alg in _str_list("jwt.algorithms", raw.get("algorithms", default)):
            family = alg[:2]
            if family == "HS" and secret:
                keys[alg] = secret
            elif family in ("RS", "PS", "ES") and public_key:
                keys[alg] = public_key
            else:
                needs = "secret" if family == "HS" else "public_key"
                raise _fail(f"jwt algorithm '{alg}' needs jwt.{needs} (or is not a JWS algorithm)")
        return cls(
            keys=keys,
            audience=raw.get("audience"),
            issuer=raw.get("issuer"),
            roles_claim=raw.get("roles_claim", "roles"),
            tenant_claim=raw.get("tenant_claim", "tenant_id"),
            subject_claim=raw.get("subject_claim", "sub"),
            leeway=float(raw.get("leeway", 0)),
            require=tuple(_str_list("jwt.require", raw.get("require", ["exp"]))),
        )


def _api_keys(raw: Any) -> dict[bytes, Principal]:
    if not isinstance(raw, Mapping):
        raise _fail("'api_keys' must be a dict of key -> {'roles': [...], 'tenant_id': ...}")
    keys: dict[bytes, Principal] = {}
    for key, entry in raw.items():
        if not isinstance(key, str) or len(key) < 8:
            raise _fail("an API key must be a string of at least 8 characters")
        if not isinstance(entry, Mapping):
            raise _fail("each API key maps to a dict with 'roles' (and optionally 'tenant_id')")
        _check_keys("api_keys entry", entry, _KEY_ENTRY)
        tenant = entry.get("tenant_id")
        if tenant is not None and not (isinstance(tenant, str) and tenant.strip()):
            raise _fail(f"an API key's tenant_id must be a non-empty string, got {tenant!r}")
        keys[_digest(key)] = Principal(
            subject=entry.get("subject"),
            roles=frozenset(_str_list("api_keys roles", entry.get("roles", []))),
            tenant_id=tenant,
            method="api_key",
        )
    return keys


def _json_kind(value: Any) -> str:
    """What a JSON value is, without echoing it: ``an empty string``, ``a list``."""
    if value == "" or (isinstance(value, str) and not value.strip()):
        return "an empty string"
    names = {list: "a list", dict: "an object", bool: "a boolean", int: "a number"}
    return names.get(type(value), "a number" if isinstance(value, float) else "a string")


def _digest(key: str) -> bytes:
    return hashlib.sha256(key.encode()).digest()


class Authenticator:
    """Turns credentials into a Caller and decides what the caller may do."""

    def __init__(
        self,
        auth_config: Mapping[str, Any] | None = None,
        *,
        required: bool = False,
        tenant_header: str = "X-Tenant-ID",
    ) -> None:
        config = dict(auth_config or {})
        _check_keys("auth_config", config, _KEYS)
        self.required = bool(required)
        self.api_key_header: str = config.get("api_key_header", "X-API-Key")
        self.tenant_header: str = config.get("tenant_header", tenant_header)
        self.api_keys = _api_keys(config["api_keys"]) if "api_keys" in config else {}
        self.jwt = JWTSettings.parse(config["jwt"]) if "jwt" in config else None
        if self.jwt is not None:
            ensure_installed("JWT bearer tokens", "jwt")
        self.providers = tuple(_str_list("providers", config.get("providers", [])))
        self._check_providers()
        #: role -> grants; None when RBAC is off (any authenticated caller may do anything).
        self.grants: dict[str, dict[str, frozenset[str] | None]] | None = None
        if config.get("rbac_enabled") or "roles" in config:
            roles = config.get("roles", DEFAULT_ROLES)
            if not isinstance(roles, Mapping):
                raise _fail("'roles' must be a dict of role -> grants")
            self.grants = {role: _grants(role, value) for role, value in roles.items()}
        if self.required and not (self.api_keys or self.jwt):
            log.warning(
                "authentication_required=True but auth_config has neither 'api_keys' nor 'jwt': "
                "every call will be refused with 401"
            )

    @property
    def anonymous_allowed(self) -> bool:
        """May a caller without credentials do everything? (No auth required, no RBAC.)"""
        return not self.required and self.grants is None

    @classmethod
    def configured(
        cls, auth_config: Mapping[str, Any] | None, *, required: bool, tenant_header: str
    ) -> Authenticator:
        """``auth_config`` plus the keys of KAILASH_AUTH_CONFIG (JSON) that it does not set.

        Policy (roles, providers) can live in code while secrets (API keys, JWT keys) come from
        the environment.
        """
        raw = os.environ.get(AUTH_CONFIG_ENV)
        try:
            from_env = json.loads(raw) if raw else {}
        except ValueError as exc:
            raise GatewayConfigurationError(f"{AUTH_CONFIG_ENV} is not valid JSON: {exc}") from None
        if not isinstance(from_env, dict):
            raise GatewayConfigurationError(f"{AUTH_CONFIG_ENV} must hold a JSON object")
        merged = {**from_env, **(auth_config or {})}
        return cls(merged, required=required, tenant_header=tenant_header)

    def _check_providers(self) -> None:
        for name in self.providers:
            if name not in _PROVIDERS:
                raise _fail(f"unknown provider '{name}'; providers: {', '.join(_PROVIDERS)}")
        if "api_key" in self.providers and not self.api_keys:
            raise _fail("providers lists 'api_key' but no 'api_keys' are configured")
        if "jwt" in self.providers and self.jwt is None:
            raise _fail("providers lists 'jwt' but no 'jwt' settings are configured")
        # Given, providers name every mechanism accepted: credentials of another kind are
        # configuration the operator did not mean to enable.
        if self.providers and self.api_keys and "api_key" not in self.providers:
            raise _fail(
                f"api_keys are configured but providers {list(self.providers)} does not list "
                "'api_key'; add it, or leave providers out to accept every configured mechanism"
            )
        if self.providers and self.jwt is not None and not {"jwt", "oauth2"} & {*self.providers}:
            raise _fail(
                f"jwt settings are configured but providers {list(self.providers)} lists neither "
                "'jwt' nor 'oauth2'; add one, or leave providers out"
            )
        if "oauth2" in self.providers and self.jwt is None:
            log.warning(
                "auth_config providers: 'oauth2' access tokens are verified as JWT bearer tokens; "
                "add auth_config['jwt'] with the authorization server's key, issuer and audience, "
                "otherwise no OAuth2 token is accepted"
            )
        if "saml" in self.providers:
            log.warning(
                "auth_config providers: 'saml' is accepted but no SAML assertion is read; "
                "exchange SAML assertions for JWTs at your identity provider and configure 'jwt'"
            )

    # -- identification -------------------------------------------------------------------

    def credentials(self, headers: Mapping[str, str]) -> Credentials:
        """The credentials in HTTP request headers (a case-insensitive mapping)."""
        bearer = None
        authorization = headers.get("authorization")
        if authorization:
            scheme, _, token = authorization.partition(" ")
            if scheme.lower() != "bearer" or not token.strip():
                raise GatewayError(
                    401, "unauthenticated", "the Authorization header must be 'Bearer <token>'"
                )
            bearer = token.strip()
        return Credentials(
            api_key=headers.get(self.api_key_header) or None,
            bearer=bearer,
            tenant=headers.get(self.tenant_header),
        )

    def resolve(self, credentials: Credentials) -> Caller:
        """Authenticate and bind the tenant; 401 or 403 when that is refused."""
        principal = self._identify(credentials)
        if principal is ANONYMOUS and self.required:
            raise GatewayError(
                401,
                "unauthenticated",
                f"authentication required: send an API key in {self.api_key_header} or "
                "'Authorization: Bearer <token>'",
            )
        tenant = principal.tenant_id
        if credentials.tenant is not None:
            asked = credentials.tenant.strip()
            if not asked:
                raise GatewayError(400, "bad_request", f"the {self.tenant_header} header is empty")
            if tenant is not None and asked != tenant:
                raise GatewayError(
                    403,
                    "tenant_mismatch",
                    f"{self.tenant_header} names tenant '{asked}' but the credentials are bound "
                    f"to tenant '{tenant}'; a credential's tenant cannot be overridden",
                )
            tenant = asked
        return Caller(principal, tenant)

    def _identify(self, credentials: Credentials) -> Principal:
        if credentials.api_key and credentials.bearer:
            raise GatewayError(
                401, "unauthenticated", "send either an API key or a bearer token, not both"
            )
        if credentials.api_key:
            found = self.api_keys.get(_digest(credentials.api_key))
            if found is None:
                raise GatewayError(401, "unauthenticated", "unknown API key")
            return found
        if credentials.bearer:
            return self._decode(credentials.bearer)
        return ANONYMOUS

    def _decode(self, token: str) -> Principal:
        settings = self.jwt
        if settings is None:
            raise GatewayError(
                401, "unauthenticated", "bearer tokens are not accepted: no JWT settings"
            )
        import jwt

        try:
            alg = str(jwt.get_unverified_header(token).get("alg"))
            key = settings.keys.get(alg)
            if key is None:
                raise GatewayError(
                    401,
                    "unauthenticated",
                    f"token algorithm {alg!r} is not accepted; accepted: "
                    f"{', '.join(settings.keys)}",
                )
            claims = jwt.decode(
                token,
                key,
                algorithms=[alg],
                audience=settings.audience,
                issuer=settings.issuer,
                leeway=settings.leeway,
                options={"require": list(settings.require), "verify_aud": bool(settings.audience)},
            )
        except jwt.ExpiredSignatureError:
            raise GatewayError(401, "unauthenticated", "the token has expired") from None
        except jwt.InvalidTokenError as exc:
            raise GatewayError(401, "unauthenticated", f"invalid token: {exc}") from None
        roles = claims.get(settings.roles_claim, [])
        if isinstance(roles, str):
            roles = roles.split()
        tenant = claims.get(settings.tenant_claim)
        if tenant is not None and not (isinstance(tenant, str) and tenant.strip()):
            # A list or an object is no tenant; str() of it would name a tenant nobody meant.
            raise GatewayError(
                401,
                "unauthenticated",
                f"invalid token: the '{settings.tenant_claim}' claim must be a non-empty string "
                f"naming one tenant, got {_json_kind(tenant)}",
            )
        subject = claims.get(settings.subject_claim)
        return Principal(
            subject=None if subject is None else str(subject),
            roles=frozenset(str(r) for r in roles) if isinstance(roles, list) else frozenset(),
            tenant_id=tenant,
            method="jwt",
        )

    # -- authorisation --------------------------------------------------------------------

    def authorize(self, caller: Caller, resource: str, operation: str) -> None:
        """Refuse (401/403) unless the caller's roles allow ``operation`` on ``resource``."""
        if self.grants is None:
            return
        principal = caller.principal
        if principal is ANONYMOUS:
            raise GatewayError(
                401,
                "unauthenticated",
                f"authentication required: roles decide who may {operation} {resource}",
            )
        for role in principal.roles:
            grants = self.grants.get(role)
            if grants and _allows(grants, resource, operation):
                return
        held = ", ".join(sorted(principal.roles)) or "none"
        raise GatewayError(403, "forbidden", f"role(s) {held} may not {operation} {resource}")


def _allows(grants: Mapping[str, frozenset[str] | None], resource: str, operation: str) -> bool:
    for key in (resource, "*"):
        if key in grants:
            ops = grants[key]
            if ops is None or operation in ops:
                return True
    return False
