"""Authentication, tenant binding and RBAC rules, without a server."""

from __future__ import annotations

import json
import logging
import time

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from kailash.servers.gateway.auth import Authenticator, Credentials
from kailash.servers.gateway.errors import GatewayConfigurationError, GatewayError

SECRET = "an-hs256-secret-of-32-bytes-at-least!"


def token(claims: dict, key: str = SECRET, alg: str = "HS256", ttl: int = 60) -> str:
    return jwt.encode({"exp": int(time.time()) + ttl, **claims}, key, algorithm=alg)


@pytest.fixture
def auth() -> Authenticator:
    return Authenticator(
        {
            "api_keys": {
                "key-admin-0001": {"roles": ["admin"], "subject": "ops"},
                "key-viewer-t1-01": {"roles": ["viewer"], "tenant_id": "t1"},
            },
            "jwt": {"secret": SECRET},
            "rbac_enabled": True,
        },
        required=True,
    )


def refused(call, status: int) -> GatewayError:
    with pytest.raises(GatewayError) as caught:
        call()
    assert caught.value.status == status, caught.value.message
    return caught.value


def test_an_api_key_names_its_principal(auth):
    caller = auth.resolve(Credentials(api_key="key-admin-0001"))
    assert caller.principal.subject == "ops"
    assert caller.principal.roles == {"admin"}
    assert caller.tenant_id is None


def test_missing_and_unknown_credentials_are_401(auth):
    assert "authentication required" in refused(lambda: auth.resolve(Credentials()), 401).message
    refused(lambda: auth.resolve(Credentials(api_key="not-a-key-000")), 401)
    refused(lambda: auth.resolve(Credentials(bearer="not.a.jwt")), 401)
    both = Credentials(api_key="key-admin-0001", bearer=token({}))
    refused(lambda: auth.resolve(both), 401)


def test_hs256_tokens_carry_subject_roles_and_tenant(auth):
    caller = auth.resolve(
        Credentials(bearer=token({"sub": "ann", "roles": ["editor"], "tenant_id": "t7"}))
    )
    assert (caller.principal.subject, caller.principal.roles, caller.tenant_id) == (
        "ann",
        {"editor"},
        "t7",
    )


def test_expired_forged_and_unexpiring_tokens_are_401(auth):
    assert (
        "expired"
        in refused(lambda: auth.resolve(Credentials(bearer=token({}, ttl=-10))), 401).message
    )
    forged = token({"roles": ["admin"]}, key="another-secret-of-32-bytes-at-least")
    refused(lambda: auth.resolve(Credentials(bearer=forged)), 401)
    forever = jwt.encode({"roles": ["admin"]}, SECRET, algorithm="HS256")
    assert "exp" in refused(lambda: auth.resolve(Credentials(bearer=forever)), 401).message


def test_rs256_tokens_verify_with_the_public_key():
    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    public_pem = (
        private.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    auth = Authenticator({"jwt": {"public_key": public_pem, "audience": "shop", "issuer": "idp"}})
    good = token({"sub": "bob", "aud": "shop", "iss": "idp"}, key=private, alg="RS256")
    assert auth.resolve(Credentials(bearer=good)).principal.subject == "bob"
    wrong_audience = token({"aud": "other", "iss": "idp"}, key=private, alg="RS256")
    refused(lambda: auth.resolve(Credentials(bearer=wrong_audience)), 401)
    # An HS256 token signed with the public key text must not pass (algorithm confusion).
    confused = jwt.encode({"exp": int(time.time()) + 60}, "x" * 40, algorithm="HS256")
    assert (
        "not accepted" in refused(lambda: auth.resolve(Credentials(bearer=confused)), 401).message
    )


def test_the_header_binds_a_tenant_only_where_the_credential_has_none(auth):
    assert auth.resolve(Credentials(api_key="key-admin-0001", tenant="t2")).tenant_id == "t2"
    assert auth.resolve(Credentials(api_key="key-viewer-t1-01", tenant="t1")).tenant_id == "t1"
    mismatch = refused(
        lambda: auth.resolve(Credentials(api_key="key-viewer-t1-01", tenant="t2")), 403
    )
    assert mismatch.code == "tenant_mismatch"
    bound = Credentials(bearer=token({"tenant_id": "t1"}), tenant="t9")
    refused(lambda: auth.resolve(bound), 403)
    refused(lambda: auth.resolve(Credentials(api_key="key-admin-0001", tenant=" ")), 400)


def test_rbac_grants_operations_per_role_and_resource():
    auth = Authenticator(
        {
            "api_keys": {
                "key-sales-0001": {"roles": ["sales"]},
                "key-nobody-001": {"roles": []},
            },
            "roles": {"sales": {"Order": ["create", "read"], "*": ["list"], "checkout": "*"}},
        }
    )
    sales = auth.resolve(Credentials(api_key="key-sales-0001"))
    auth.authorize(sales, "Order", "create")
    auth.authorize(sales, "Product", "list")
    auth.authorize(sales, "checkout", "execute")
    denied = refused(lambda: auth.authorize(sales, "Order", "delete"), 403)
    assert "sales may not delete Order" in denied.message
    nobody = auth.resolve(Credentials(api_key="key-nobody-001"))
    refused(lambda: auth.authorize(nobody, "Order", "read"), 403)
    anonymous = auth.resolve(Credentials())
    refused(lambda: auth.authorize(anonymous, "Order", "read"), 401)


def test_default_roles_when_rbac_is_on_without_a_role_map(auth):
    viewer = auth.resolve(Credentials(api_key="key-viewer-t1-01"))
    auth.authorize(viewer, "Product", "list")
    error = refused(lambda: auth.authorize(viewer, "Product", "create"), 403)
    assert error.message == "role(s) viewer may not create Product"
    editor = auth.resolve(Credentials(bearer=token({"roles": "editor"})))
    auth.authorize(editor, "Product", "create")
    refused(lambda: auth.authorize(editor, "Product", "bulk_delete"), 403)
    # Whoever may delete may restore; the audit trail is the admin's unless a role grants it.
    auth.authorize(editor, "Product", "restore")
    refused(lambda: auth.authorize(viewer, "Product", "restore"), 403)
    refused(lambda: auth.authorize(editor, "Product", "audit"), 403)
    admin = auth.resolve(Credentials(api_key="key-admin-0001"))
    auth.authorize(admin, "Product", "audit")


def test_without_rbac_any_authenticated_caller_may_act():
    auth = Authenticator({"api_keys": {"key-plain-0001": {}}}, required=True)
    assert auth.grants is None
    auth.authorize(auth.resolve(Credentials(api_key="key-plain-0001")), "Product", "bulk_delete")
    refused(lambda: auth.resolve(Credentials()), 401)
    refused(lambda: auth.resolve(Credentials(api_key="key-wrong-0001")), 401)


@pytest.mark.parametrize(
    ("config", "words"),
    [
        ({"api_key": {}}, "unknown key(s) api_key"),
        ({"api_keys": {"short": {}}}, "at least 8"),
        ({"api_keys": {"long-enough-key": {"role": ["x"]}}}, "unknown key(s) role"),
        ({"jwt": {}}, "needs 'secret'"),
        ({"jwt": {"secret": "s" * 32, "algorithms": ["RS256"]}}, "needs jwt.public_key"),
        ({"roles": {"r": {"*": ["destroy"]}}}, "unknown operation(s) destroy"),
        ({"providers": ["kerberos"]}, "unknown provider"),
        ({"providers": ["jwt"]}, "no 'jwt' settings"),
        (
            {"providers": ["oauth2"], "jwt": {"secret": "s" * 32}, "api_keys": {"key-0000001": {}}},
            "does not list 'api_key'",
        ),
        (
            {
                "providers": ["api_key"],
                "jwt": {"secret": "s" * 32},
                "api_keys": {"key-0000001": {}},
            },
            "neither 'jwt' nor 'oauth2'",
        ),
    ],
)
def test_bad_auth_config_is_refused_with_the_fix(config, words):
    with pytest.raises(GatewayConfigurationError) as caught:
        Authenticator(config)
    assert words in str(caught.value)


def test_saml_and_oauth2_providers_are_accepted_but_say_what_they_do(caplog):
    with caplog.at_level(logging.WARNING, logger="kailash.gateway"):
        auth = Authenticator({"providers": ["oauth2", "saml"], "rbac_enabled": True})
    text = caplog.text
    assert "no SAML assertion is read" in text
    assert "verified as JWT bearer tokens" in text
    # Nothing authenticates through them: a bearer token without JWT settings is refused.
    refused(lambda: auth.resolve(Credentials(bearer=token({}))), 401)


def test_oauth2_access_tokens_are_verified_as_jwts_and_listed_providers_are_all_accepted():
    auth = Authenticator(
        {"providers": ["oauth2", "saml"], "jwt": {"secret": SECRET, "issuer": "https://idp"}}
    )
    caller = auth.resolve(Credentials(bearer=token({"sub": "ann", "iss": "https://idp"})))
    assert caller.principal.subject == "ann"
    refused(lambda: auth.resolve(Credentials(bearer=token({"iss": "https://other"}))), 401)
    refused(lambda: auth.resolve(Credentials(api_key="key-admin-0001")), 401)


def test_a_role_map_may_grant_the_audit_trail():
    auth = Authenticator(
        {
            "api_keys": {"key-auditor-01": {"roles": ["auditor"]}},
            "roles": {"auditor": {"*": ["audit"]}},
        }
    )
    auditor = auth.resolve(Credentials(api_key="key-auditor-01"))
    auth.authorize(auditor, "Order", "audit")
    error = refused(lambda: auth.authorize(auditor, "Order", "read"), 403)
    assert error.message == "role(s) auditor may not read Order"


def test_secrets_may_come_from_the_environment_and_code_wins(monkeypatch):
    monkeypatch.setenv(
        "KAILASH_AUTH_CONFIG",
        json.dumps({"api_keys": {"env-key-0001": {"roles": ["viewer"]}}, "rbac_enabled": False}),
    )
    auth = Authenticator.configured({"rbac_enabled": True}, required=True, tenant_header="X-Org")
    viewer = auth.resolve(Credentials(api_key="env-key-0001"))
    assert auth.tenant_header == "X-Org"
    refused(lambda: auth.authorize(viewer, "Product", "create"), 403)  # rbac_enabled from code
    monkeypatch.setenv("KAILASH_AUTH_CONFIG", "{not json")
    with pytest.raises(GatewayConfigurationError, match="not valid JSON"):
        Authenticator.configured(None, required=False, tenant_header="X-Tenant-ID")


@pytest.mark.parametrize("claim", [["acme", "globex"], {"id": "acme"}, "", "  ", 7, True])
def test_a_tenant_claim_that_is_not_one_tenants_name_is_401(auth, claim):
    bad = Credentials(bearer=token({"roles": ["admin"], "tenant_id": claim}))
    error = refused(lambda: auth.resolve(bad), 401)
    assert "'tenant_id' claim must be a non-empty string" in error.message
    assert "globex" not in error.message


@pytest.mark.parametrize("tenant", [["acme"], "", 7])
def test_an_api_key_tenant_that_is_not_a_name_is_refused_at_start(tenant):
    keys = {"key-admin-0001": {"roles": ["admin"], "tenant_id": tenant}}
    with pytest.raises(GatewayConfigurationError, match="tenant_id must be a non-empty string"):
        Authenticator({"api_keys": keys})
