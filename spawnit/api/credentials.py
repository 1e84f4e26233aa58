"""Which credentials a job's engine receives: exactly those configured for the instance's target.

Every provider reads its credentials from well-known environment variables (the AWS provider
``AWS_*``, the Docker provider ``DOCKER_*``, bpg/proxmox ``PROXMOX_VE_*``, and an SSH agent's
``SSH_AUTH_SOCK`` for ``ssh://`` Docker hosts and Proxmox snippets). A job's environment holds none
of the server's, then gains its own target's, from the worker's settings:

- ``docker``: ``SPAWNIT_DOCKER_CERT_PATH`` (TLS client certificates of a ``tcp://`` host, passed as
  ``DOCKER_CERT_PATH`` with ``DOCKER_TLS_VERIFY=1``); the host itself is the instance's ``docker_host``
  (default the local socket, which the platform mounts into its workers).
- ``aws``: ``SPAWNIT_AWS_ACCESS_KEY_ID`` + ``SPAWNIT_AWS_SECRET_ACCESS_KEY`` (+ ``SPAWNIT_AWS_SESSION_TOKEN``),
  or ``SPAWNIT_AWS_PROFILE``; ``SPAWNIT_AWS_ROLE_ARN`` makes the job assume that role from those keys (or,
  without keys, from the host's instance role), through a shared config file written for the job
  (``role_arn`` + ``credential_source``, which the AWS SDKs read).
- ``proxmox``: ``SPAWNIT_PROXMOX_ENDPOINT``, the API token ``SPAWNIT_PROXMOX_TOKEN_ID`` +
  ``SPAWNIT_PROXMOX_TOKEN_SECRET`` (the same settings the API's pre-flight reads), or
  ``SPAWNIT_PROXMOX_USERNAME`` + ``SPAWNIT_PROXMOX_PASSWORD``; ``SPAWNIT_PROXMOX_INSECURE``;
  ``SPAWNIT_PROXMOX_SSH_PRIVATE_KEY_FILE`` or an agent (``SSH_AUTH_SOCK``) for the snippet uploads.

A target with none of its settings gets the server's own variables for that target only (a
workstation's ``AWS_PROFILE`` still works for ``aws`` jobs, and never reaches a ``docker`` job). The
store's credentials (``SPAWNIT_S3_*``) never reach a job's environment (see :mod:`.toolchain`).

LXC guests on Proxmox: the container's ``keyctl`` flag, its hook script and the script's file mode are
refused to every API token, even root@pam's ("changing feature flags ... is only allowed for root@pam",
the bpg/proxmox docs' "API Token" section and pve-container's own check). A ``proxmox_kind: lxc`` job
therefore runs with ``root@pam`` and a password, never the token, and is refused before the engine
starts when they are not configured.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

PROVIDER_PREFIXES = ("AWS_", "DOCKER_", "PROXMOX_VE_")
PROVIDER_NAMES = ("SSH_AUTH_SOCK",)
LXC_USER = "root@pam"
_AWS_FILES = ("AWS_CONFIG_FILE", "AWS_SHARED_CREDENTIALS_FILE")
ROLE_PROFILE = "spawnit-target"


class CredentialError(ValueError):
    """A target's credentials are missing or unusable for a job: names the setting, never a value."""


def is_provider_variable(name: str) -> bool:
    return name.startswith(PROVIDER_PREFIXES) or name in PROVIDER_NAMES


def _ambient(environ: Mapping[str, str], prefixes: tuple[str, ...]) -> dict[str, str]:
    return {key: value for key, value in environ.items() if value and key.startswith(prefixes)}


@dataclass(frozen=True)
class TargetAccess:
    """Each target's job environment, from a worker's settings (see the module's documentation)."""

    docker: dict[str, str] = field(default_factory=dict)
    aws: dict[str, str] = field(default_factory=dict)
    aws_role: tuple[str, str] | None = None  # (role ARN, credential_source)
    proxmox_token: dict[str, str] = field(default_factory=dict)
    proxmox_password: dict[str, str] = field(default_factory=dict)
    proxmox_common: dict[str, str] = field(default_factory=dict)
    sources: dict[str, str] = field(default_factory=dict)  # target -> where its credentials come from (no value)

    @classmethod
    def from_environment(cls, environ: Mapping[str, str]) -> TargetAccess:
        sources: dict[str, str] = {}
        docker = _docker_access(environ, sources)
        aws, aws_role = _aws_access(environ, sources)
        token, login, common = _proxmox_access(environ, sources)
        return cls(docker=docker, aws=aws, aws_role=aws_role, proxmox_token=token, proxmox_password=login, proxmox_common=common, sources=sources)

    def for_job(self, target: str, parameters: Mapping[str, Any], folder: Path) -> dict[str, str]:
        """The provider variables of a job on ``target`` (``folder``: the job's own, for a role's config file)."""
        if target == "docker":
            return dict(self.docker)
        if target == "aws":
            environ = dict(self.aws)
            if self.aws_role is not None:
                # The SDKs prefer keys in the environment to any profile: with a role, the keys go into the
                # job's own credentials file as the role's source profile, never into its environment.
                role, source = self.aws_role
                lines = [f"[profile {ROLE_PROFILE}]", f"role_arn = {role}", "role_session_name = spawnit-job"]
                if source == "keys":
                    keys = {name: environ.pop(name) for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN") if name in environ}
                    lines.append(f"source_profile = {ROLE_PROFILE}-source")
                    credentials = [f"[{ROLE_PROFILE}-source]", *(f"{name.lower()} = {value}" for name, value in keys.items())]
                    environ["AWS_SHARED_CREDENTIALS_FILE"] = str(write_private(folder / "aws-credentials", "\n".join(credentials) + "\n"))
                else:
                    lines.append(f"credential_source = {source}")
                config = write_private(folder / "aws-config", "\n".join(lines) + "\n")
                environ |= {"AWS_CONFIG_FILE": str(config), "AWS_PROFILE": ROLE_PROFILE, "AWS_SDK_LOAD_CONFIG": "1"}
            return environ
        if target == "proxmox":
            if parameters.get("proxmox_kind") == "lxc":
                if self.proxmox_password.get("PROXMOX_VE_USERNAME") != LXC_USER:
                    raise CredentialError(
                        "proxmox_kind: 'lxc' needs SPAWNIT_PROXMOX_USERNAME=root@pam and SPAWNIT_PROXMOX_PASSWORD on the workers: Proxmox refuses "
                        "a container's keyctl flag, hook script and file mode to every API token (even root@pam's) and to other users; "
                        "allowed: set both, or proxmox_kind 'vm', which works with an API token"
                    )
                return {**self.proxmox_common, **self.proxmox_password}  # never the token: the provider would prefer it
            return {**self.proxmox_common, **(self.proxmox_token or self.proxmox_password)}
        raise CredentialError(f"target: {target!r} is not allowed; allowed: docker, aws, proxmox")


def write_private(path: Path, text: str) -> Path:
    """A file only its owner can read (credentials)."""
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w") as handle:
        handle.write(text)
    return path


def _setting(environ: Mapping[str, str], name: str) -> str | None:
    return environ.get(name) or None


def _both_or_neither(environ: Mapping[str, str], first: str, second: str) -> None:
    if bool(_setting(environ, first)) != bool(_setting(environ, second)):
        missing = second if _setting(environ, first) else first
        raise CredentialError(f"{missing}: not set; allowed: both {first} and {second}, or neither")


def _docker_access(environ: Mapping[str, str], sources: dict[str, str]) -> dict[str, str]:
    cert_path = _setting(environ, "SPAWNIT_DOCKER_CERT_PATH")
    if cert_path is not None:
        if not Path(cert_path).is_dir():
            raise CredentialError(f"SPAWNIT_DOCKER_CERT_PATH: {cert_path!r} is not allowed; allowed: a folder holding ca.pem, cert.pem and key.pem")
        docker = {"DOCKER_CERT_PATH": cert_path, "DOCKER_TLS_VERIFY": "1"}
        sources["docker"] = "TLS certificates from SPAWNIT_DOCKER_CERT_PATH"
    else:
        docker = _ambient(environ, ("DOCKER_",))
        sources["docker"] = "the host's Docker settings" if docker else "no credentials (the instance's docker_host as it is)"
    return docker | _agent(environ)


def _aws_access(environ: Mapping[str, str], sources: dict[str, str]) -> tuple[dict[str, str], tuple[str, str] | None]:
    """The aws job's variables and the role it assumes, if any: (role ARN, "keys" or a credential_source)."""
    _both_or_neither(environ, "SPAWNIT_AWS_ACCESS_KEY_ID", "SPAWNIT_AWS_SECRET_ACCESS_KEY")
    key, profile, role = (_setting(environ, name) for name in ("SPAWNIT_AWS_ACCESS_KEY_ID", "SPAWNIT_AWS_PROFILE", "SPAWNIT_AWS_ROLE_ARN"))
    if key and profile:
        raise CredentialError("SPAWNIT_AWS_PROFILE: set together with SPAWNIT_AWS_ACCESS_KEY_ID; allowed: keys or a profile, not both")
    if role is not None and not role.startswith("arn:aws"):
        raise CredentialError(f"SPAWNIT_AWS_ROLE_ARN: {role!r} is not allowed; allowed: a role ARN, arn:aws:iam::ACCOUNT:role/NAME")
    if role and profile:
        raise CredentialError("SPAWNIT_AWS_ROLE_ARN: set together with SPAWNIT_AWS_PROFILE; allowed: put role_arn in the profile itself")
    region = {name: environ[name] for name in ("AWS_REGION", "AWS_DEFAULT_REGION") if environ.get(name)}
    aws_role = None
    if key:
        session = _setting(environ, "SPAWNIT_AWS_SESSION_TOKEN")
        aws = {"AWS_ACCESS_KEY_ID": key, "AWS_SECRET_ACCESS_KEY": environ["SPAWNIT_AWS_SECRET_ACCESS_KEY"], **({"AWS_SESSION_TOKEN": session} if session else {}), **region}
        sources["aws"] = "keys from SPAWNIT_AWS_ACCESS_KEY_ID"
        aws_role = (role, "keys") if role else None
    elif profile:
        aws = {"AWS_PROFILE": profile, **{name: environ[name] for name in _AWS_FILES if environ.get(name)}, **region}
        sources["aws"] = f"profile {profile} from SPAWNIT_AWS_PROFILE"
    elif role:
        aws, aws_role = dict(region), (role, "Ec2InstanceMetadata")
        sources["aws"] = "the host's instance role"
    else:
        aws = _ambient(environ, ("AWS_",))
        sources["aws"] = "the host's AWS settings" if aws else "no credentials configured (an instance role, if the host has one)"
    if aws_role:
        sources["aws"] += f", assuming {aws_role[0]}"
    return aws, aws_role


def _proxmox_access(environ: Mapping[str, str], sources: dict[str, str]) -> tuple[dict[str, str], dict[str, str], dict[str, str]]:
    """The proxmox job's token variables, login variables and the variables both share."""
    _both_or_neither(environ, "SPAWNIT_PROXMOX_USERNAME", "SPAWNIT_PROXMOX_PASSWORD")
    endpoint, token_id, token_secret, username, password = (
        _setting(environ, f"SPAWNIT_PROXMOX_{name}") for name in ("ENDPOINT", "TOKEN_ID", "TOKEN_SECRET", "USERNAME", "PASSWORD")
    )
    if not any((endpoint, token_id, username)):  # the server's own PROXMOX_VE_*: the token, or the login, as the provider would choose
        ambient = _ambient(environ, ("PROXMOX_VE_",))
        token = {key: value for key, value in ambient.items() if key == "PROXMOX_VE_API_TOKEN"}
        login = {key: value for key, value in ambient.items() if key in ("PROXMOX_VE_USERNAME", "PROXMOX_VE_PASSWORD")}
        login = login if len(login) == 2 else {}
        common = {key: value for key, value in ambient.items() if key not in token and key not in ("PROXMOX_VE_USERNAME", "PROXMOX_VE_PASSWORD")}
        sources["proxmox"] = "the host's PROXMOX_VE_* settings" if ambient else "no credentials configured"
        return token, login, common | _agent(environ)
    common = {"PROXMOX_VE_ENDPOINT": endpoint} if endpoint else {}
    if _setting(environ, "SPAWNIT_PROXMOX_INSECURE") in ("1", "true", "yes"):
        common["PROXMOX_VE_INSECURE"] = "true"
    key_file = _setting(environ, "SPAWNIT_PROXMOX_SSH_PRIVATE_KEY_FILE")
    if key_file is not None:
        try:
            common["PROXMOX_VE_SSH_PRIVATE_KEY"] = Path(key_file).read_text()
        except OSError:
            raise CredentialError(f"SPAWNIT_PROXMOX_SSH_PRIVATE_KEY_FILE: {key_file!r} cannot be read; allowed: a readable private key file (PEM)") from None
    token = {"PROXMOX_VE_API_TOKEN": f"{token_id}={token_secret}"} if token_id and token_secret else {}
    login = {"PROXMOX_VE_USERNAME": username, "PROXMOX_VE_PASSWORD": password} if username and password else {}
    parts = (f"endpoint {endpoint}" if endpoint else "", f"API token {token_id}" if token else "", f"password of {username}" if login else "")
    sources["proxmox"] = ", ".join(part for part in parts if part) or "no credentials"
    return token, login, common | _agent(environ)


def _agent(environ: Mapping[str, str]) -> dict[str, str]:
    socket = environ.get("SPAWNIT_SSH_AUTH_SOCK") or environ.get("SSH_AUTH_SOCK")
    return {"SSH_AUTH_SOCK": socket} if socket else {}


def without_provider_variables(environ: Mapping[str, str]) -> dict[str, str]:
    """``environ`` less every variable a provider reads its credentials from."""
    return {key: value for key, value in environ.items() if not is_provider_variable(key)}


def store_credentials_fallback(environ: Mapping[str, str]) -> tuple[str, str, str | None] | None:
    """The server's own AWS keys, for a store on S3 configured without ``SPAWNIT_S3_*`` keys: the backend
    then gets them in its configuration file, since the job's environment no longer carries them."""
    key, secret = environ.get("AWS_ACCESS_KEY_ID"), environ.get("AWS_SECRET_ACCESS_KEY")
    return (key, secret, environ.get("AWS_SESSION_TOKEN") or None) if key and secret else None
