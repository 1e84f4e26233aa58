"""The self-hosted platform's generated configuration: the Keycloak realm SpawnIt imports at start.

Pure Python (no cdktf): the realm is a document built from :class:`PlatformSettings`.
Passwords and the API client's secret are Keycloak placeholders (``${NAME}``)
that Keycloak replaces from its environment at import: the realm file holds none.
"""

from __future__ import annotations

import re
from typing import Any

from .platform_settings import PlatformSettings, PlatformUser

WEB_CLIENT = "spawnit-web"
API_CLIENT = "spawnit-api"
API_CLIENT_SECRET_ENV = "SPAWNIT_API_CLIENT_SECRET"


def user_password_env(user: PlatformUser) -> str:
    """Environment variable holding a user's initial password in the Keycloak container."""
    return "SPAWNIT_USER_" + re.sub(r"[^A-Z0-9]", "_", user.username.upper()) + "_PASSWORD"


def user_password_variable(user: PlatformUser) -> str:
    """Stack variable (TF_VAR_...) that gives a user's initial password at deploy time."""
    return "user_" + re.sub(r"[^a-z0-9]", "_", user.username) + "_password"


def team_groups(settings: PlatformSettings) -> list[dict[str, Any]]:
    """The group tree ``/clients/<client>/<role>`` that the users' memberships name (a role is granted by
    membership: spawnit/api/auth.py reads the groups claim)."""
    clients: dict[str, set[str]] = {}
    for user in settings.users:
        for group in user.groups:
            _, _, client, role = group.split("/")
            clients.setdefault(client, set()).add(role)
    if not clients:
        return []
    return [{"name": "clients", "subGroups": [{"name": client, "subGroups": [{"name": role} for role in sorted(roles)]} for client, roles in sorted(clients.items())]}]


def realm_document(settings: PlatformSettings) -> dict[str, Any]:
    """The realm: roles, an OIDC client for the web UI (public, code flow + PKCE) and one for the API
    (the audience of the UI's tokens), and the configured users with temporary passwords."""
    ui_origin = f"http://localhost:{settings.api_port}"
    return {
        "realm": settings.realm,
        "displayName": "SpawnIt",
        "enabled": True,
        "sslRequired": "external",
        "registrationAllowed": False,
        "loginWithEmailAllowed": True,
        "duplicateEmailsAllowed": False,
        "resetPasswordAllowed": True,
        "bruteForceProtected": True,
        "accessTokenLifespan": 300,
        "roles": {
            "realm": [
                {"name": "admin", "description": "Everything on every client: gate overrides, budgets, drift rounds, the whole audit trail."},
                {"name": "user", "description": "Operator of its own client; other clients through the groups /clients/<client>/<role>."},
            ]
        },
        "groups": team_groups(settings),
        "clients": [
            {
                "clientId": WEB_CLIENT,
                "name": "SpawnIt web UI",
                "protocol": "openid-connect",
                "enabled": True,
                "publicClient": True,
                "standardFlowEnabled": True,
                "implicitFlowEnabled": False,
                "directAccessGrantsEnabled": False,
                "redirectUris": [f"{ui_origin}/*"],
                "webOrigins": [ui_origin],
                "attributes": {"pkce.code.challenge.method": "S256", "post.logout.redirect.uris": f"{ui_origin}/*"},
                "protocolMappers": [
                    {
                        "name": f"audience-{API_CLIENT}",
                        "protocol": "openid-connect",
                        "protocolMapper": "oidc-audience-mapper",
                        "config": {"included.client.audience": API_CLIENT, "access.token.claim": "true", "id.token.claim": "false"},
                    },
                    {  # the user's groups, by full path (/clients/acme/operator), in the access token's "groups" claim
                        "name": "groups",
                        "protocol": "openid-connect",
                        "protocolMapper": "oidc-group-membership-mapper",
                        "config": {"claim.name": "groups", "full.path": "true", "access.token.claim": "true", "id.token.claim": "false", "userinfo.token.claim": "false"},
                    },
                ],
            },
            {
                "clientId": API_CLIENT,
                "name": "SpawnIt API",
                "protocol": "openid-connect",
                "enabled": True,
                "publicClient": False,
                "clientAuthenticatorType": "client-secret",
                "secret": "${" + API_CLIENT_SECRET_ENV + "}",
                "standardFlowEnabled": False,
                "directAccessGrantsEnabled": False,
                "serviceAccountsEnabled": True,
            },
        ],
        "users": [
            {
                "username": user.username,
                "email": user.email,
                "firstName": user.first_name,
                "lastName": user.last_name,
                "enabled": True,
                "emailVerified": True,
                "realmRoles": list(user.roles),
                "groups": list(user.groups),
                "credentials": [{"type": "password", "value": "${" + user_password_env(user) + "}", "temporary": True}],
                "requiredActions": ["UPDATE_PASSWORD"],
            }
            for user in settings.users
        ],
    }
