"""OIDC bearer tokens (from Keycloak), validated against the issuer's JWKS: signature, issuer, audience, expiry;
and what each caller may do.

A client is a team of subjects. Each subject holds, per client, one of the roles ``viewer`` (read
everything of the client) and ``operator`` (also create, plan, apply reviewed plans, cancel, destroy);
the realm role ``admin`` is everything on every client (override a policy gate, set budgets and expiry
limits, manage the catalog). Grants come from the token, as Keycloak writes them:

- a realm role ``<client>:<role>`` (``acme:operator``), in ``realm_access.roles``;
- a group ``/clients/<client>/<role>`` (``/clients/acme/viewer``), in ``groups`` (the group-membership
  mapper with full paths, which the platform's realm configures);
- and a subject is the operator of the client named after it (its own workspace).

The strongest grant wins. Authentication is switched off only by the explicit setting
``SPAWNIT_AUTH=off`` (local use: one admin).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import jwt
from fastapi import HTTPException, Request

ALGORITHMS = ["RS256", "RS384", "RS512", "ES256", "ES384", "PS256"]


ROLES = ("viewer", "operator", "admin")  # each may do what the ones before it may
CLIENT_ROLES = ROLES[:2]  # granted per client; admin is granted by the realm role alone, on every client
_CLIENT = r"[a-z0-9][a-z0-9-]{0,62}[a-z0-9]"
_REALM_GRANT = re.compile(rf"(?P<client>{_CLIENT}):(?P<role>{'|'.join(CLIENT_ROLES)})")
_GROUP_GRANT = re.compile(rf"/clients/(?P<client>{_CLIENT})/(?P<role>{'|'.join(CLIENT_ROLES)})")


def rank(role: str | None) -> int:
    """0 for no role, then viewer < operator < admin."""
    return ROLES.index(role) + 1 if role in ROLES else 0


@dataclass(frozen=True)
class Principal:
    subject: str
    roles: frozenset[str] = field(default_factory=frozenset)  # the token's realm roles
    groups: frozenset[str] = frozenset()  # the token's groups (full paths)

    @property
    def admin(self) -> bool:
        return "admin" in self.roles

    @property
    def grants(self) -> dict[str, str]:
        """Client -> the strongest role granted on it (admin's every-client grant is not listed)."""
        found: dict[str, str] = {self.subject: "operator"} if re.fullmatch(_CLIENT, self.subject) else {}
        matches = [_REALM_GRANT.fullmatch(role) for role in self.roles] + [_GROUP_GRANT.fullmatch(group) for group in self.groups]
        for match in filter(None, matches):
            if rank(match["role"]) > rank(found.get(match["client"])):
                found[match["client"]] = match["role"]
        return dict(sorted(found.items()))

    def role_on(self, client: str) -> str | None:
        return "admin" if self.admin else self.grants.get(client)

    def may(self, role: str, client: str | None = None) -> bool:
        """Whether the caller holds ``role`` (or a stronger one) on ``client``; without a client, the
        admin role for "admin", any grant at that level otherwise."""
        if self.admin:
            return True
        if client is None:
            return role != "admin" and any(rank(held) >= rank(role) for held in self.grants.values())
        return rank(self.grants.get(client)) >= rank(role)

    def may_reach(self, client: str) -> bool:
        return self.may("viewer", client)

    def described(self) -> dict[str, Any]:
        """Who, as an audit record and ``GET /api/me`` say it: subject, realm roles and grants."""
        return {"subject": self.subject, "admin": self.admin, "roles": sorted(self.roles), "grants": self.grants}


ANONYMOUS_ADMIN = Principal(subject="local", roles=frozenset({"admin"}))


@dataclass(frozen=True)
class AuthSettings:
    mode: str  # "oidc" or "off"
    issuer: str | None = None
    audience: str | None = None
    jwks_url: str | None = None
    web_client_id: str = "spawnit-web"

    def browser_config(self) -> dict[str, str]:
        """What the web UI needs to log in (authorization code + PKCE); Keycloak's endpoint layout."""
        if self.mode == "off":
            return {"auth": "off", "local_client": "local"}
        base = self.issuer.rstrip("/") + "/protocol/openid-connect"
        return {
            "auth": "oidc",
            "issuer": self.issuer,
            "client_id": self.web_client_id,
            "authorization_endpoint": base + "/auth",
            "token_endpoint": base + "/token",
            "end_session_endpoint": base + "/logout",
        }

    @classmethod
    def from_environment(cls, environ: Mapping[str, str] | None = None) -> AuthSettings:
        environ = os.environ if environ is None else environ
        mode = environ.get("SPAWNIT_AUTH", "oidc")
        if mode not in ("oidc", "off"):
            raise ValueError(f"SPAWNIT_AUTH: {mode!r} is not allowed; allowed: oidc, off")
        if mode == "off":
            return cls("off")
        issuer = environ.get("SPAWNIT_OIDC_ISSUER")
        if not issuer:
            raise ValueError("SPAWNIT_OIDC_ISSUER: missing; allowed: the issuer URL of the realm, or SPAWNIT_AUTH=off for local use")
        jwks = environ.get("SPAWNIT_OIDC_JWKS_URL") or issuer.rstrip("/") + "/protocol/openid-connect/certs"
        return cls(
            "oidc",
            issuer=issuer,
            audience=environ.get("SPAWNIT_OIDC_AUDIENCE", "spawnit-api"),
            jwks_url=jwks,
            web_client_id=environ.get("SPAWNIT_OIDC_WEB_CLIENT", "spawnit-web"),
        )


STREAM_PATH = re.compile(r"/api/jobs/[0-9a-f-]{36}/events|/api/clients/[a-z0-9][a-z0-9-]{0,62}[a-z0-9]/events")


class StreamTickets:
    """Short-lived, single-purpose credentials for event streams: a browser's EventSource cannot send an
    Authorization header, and a bearer token in a URL ends up in logs and histories. A ticket is issued
    to an authenticated caller for one stream path, opens only that path, and expires after ``ttl``
    seconds (reconnects within that time reuse it). Tickets live in the engine, so any replica honours
    them; the engine keeps only their SHA-256."""

    def __init__(self, engine: Any, ttl: float = 60.0) -> None:
        self.engine, self.ttl = engine, ttl

    @staticmethod
    def _key(ticket: str) -> str:
        return "ticket/" + hashlib.sha256(ticket.encode()).hexdigest()

    def issue(self, principal: Principal, path: str) -> str:
        if not STREAM_PATH.fullmatch(path):
            raise ValueError(f"path: {path[:80]!r} is not allowed; allowed: /api/jobs/<job id>/events or /api/clients/<client>/events")
        ticket = secrets.token_urlsafe(32)
        grant = {"sub": principal.subject, "roles": sorted(principal.roles), "groups": sorted(principal.groups), "path": path}
        self.engine.claim(self._key(ticket), json.dumps(grant), self.ttl)
        return ticket

    def redeem(self, ticket: str, path: str) -> Principal | None:
        held = self.engine.holder(self._key(ticket)) if ticket else None
        if held is None:
            return None
        grant = json.loads(held)
        return Principal(grant["sub"], frozenset(grant["roles"]), frozenset(grant.get("groups", []))) if grant["path"] == path else None


class Authenticator:
    """Turns a request's bearer token (or, for an event stream, its ticket) into a :class:`Principal`, or a 401."""

    def __init__(self, settings: AuthSettings, tickets: StreamTickets | None = None) -> None:
        self.settings, self.tickets = settings, tickets
        self._keys = jwt.PyJWKClient(settings.jwks_url, cache_keys=True, lifespan=300) if settings.mode == "oidc" else None

    def __call__(self, request: Request) -> Principal:
        if self.settings.mode == "off":
            return ANONYMOUS_ADMIN
        header = request.headers.get("authorization", "")
        scheme, _, token = header.partition(" ")
        if not header and request.method == "GET" and "ticket" in request.query_params and self.tickets is not None:
            principal = self.tickets.redeem(request.query_params["ticket"], request.url.path)
            if principal is None:
                raise HTTPException(status_code=401, detail="stream ticket: invalid, expired or for another stream; allowed: a ticket from POST /api/stream-tickets for this path")
            return principal
        if scheme.lower() != "bearer" or not token:
            raise HTTPException(status_code=401, detail="missing bearer token", headers={"WWW-Authenticate": "Bearer"})
        try:
            key = self._keys.get_signing_key_from_jwt(token).key
            claims = jwt.decode(
                token,
                key,
                algorithms=ALGORITHMS,
                audience=self.settings.audience,
                issuer=self.settings.issuer,
                options={"require": ["exp", "iat", "sub", "iss", "aud"]},
            )
        except (jwt.PyJWTError, jwt.PyJWKClientError) as error:
            raise HTTPException(status_code=401, detail=f"invalid token: {error}", headers={"WWW-Authenticate": "Bearer"}) from None
        roles, groups = _roles(claims)
        return Principal(subject=claims["sub"], roles=roles, groups=groups)


def _roles(claims: dict) -> tuple[frozenset[str], frozenset[str]]:
    """The realm roles and groups of a signed token, or a 403 when its claims do not have Keycloak's shape."""
    realm_access = claims.get("realm_access", {})
    roles = realm_access.get("roles", []) if isinstance(realm_access, dict) else None
    groups = claims.get("groups", [])
    subject = claims.get("sub")
    if not isinstance(subject, str) or not all(isinstance(found, list) and all(isinstance(item, str) for item in found) for found in (roles, groups)):
        raise HTTPException(status_code=403, detail="token claims: 'sub' must be a string, 'realm_access.roles' and 'groups' lists of strings")
    return frozenset(roles), frozenset(groups)


def refusal(principal: Principal, role: str, client: str | None) -> str:
    """Why a caller may not: the role needed, on what, and what the caller holds."""
    held = ", ".join(f"{role_held} on {name}" for name, role_held in principal.grants.items()) or "no role on any client"
    where = f" on client {client!r}" if client else ""
    return f"{principal.subject} may not do this: the {role} role is required{where}; held: {held}"

