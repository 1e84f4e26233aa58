"""The self-hosted platform's settings (the ``[platform]`` section): its Docker host, ports, images, users and scale."""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError, model_validator

from ..config import BucketName, ConfigError, Email, Image, config_path, read_config_file
from ..shared import CADDY_IMAGE, KEYCLOAK_IMAGE, MINIO_IMAGE, VALKEY_IMAGE


def _socket_group(path: str) -> int:
    try:
        return os.stat(path).st_gid
    except OSError:
        return 0


class PlatformUser(BaseModel):
    """A user created in the platform's Keycloak realm; the password is a deploy-time secret, never configured here."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    username: Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_.-]{1,30}$")]
    email: Email
    first_name: str = ""
    last_name: str = ""
    roles: tuple[Literal["admin", "user"], ...] = ("user",)
    groups: tuple[Annotated[str, StringConstraints(pattern=r"^/clients/[a-z0-9][a-z0-9-]{0,62}[a-z0-9]/(viewer|operator)$")], ...] = Field(
        (), description="Team memberships, /clients/<client>/<viewer|operator>: the user's role on each client it shares."
    )


class PlatformSettings(BaseModel):
    """The self-hosted platform on Docker: MinIO, Keycloak and SpawnIt's own API and web UI."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    docker_host: Annotated[str, StringConstraints(pattern=r"^(unix|ssh|tcp|npipe)://\S+$")] = "unix:///var/run/docker.sock"
    bind_address: ipaddress.IPv4Address = Field(ipaddress.IPv4Address("127.0.0.1"), description="Host address the ports are published on.")
    network: Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9-]{1,30}$")] = "spawnit"
    minio_image: Image = MINIO_IMAGE
    keycloak_image: Image = KEYCLOAK_IMAGE
    minio_api_port: int = Field(9000, ge=1024, le=65535)
    minio_console_port: int = Field(9001, ge=1024, le=65535)
    keycloak_port: int = Field(8080, ge=1024, le=65535)
    api_port: int = Field(8000, ge=1024, le=65535)
    bucket: BucketName = "spawnit"
    realm: Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9-]{1,30}$")] = "spawnit"
    keycloak_admin: Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_.-]{3,64}$")] = "admin"
    users: tuple[PlatformUser, ...] = (PlatformUser(username="admin", email="admin@spawnit.localhost", roles=("admin", "user")),)
    build_context: str | None = Field(
        None, description="Folder holding SpawnIt's Dockerfile; default: the folder synth runs in (this repository's root)."
    )
    valkey_image: Image = VALKEY_IMAGE
    caddy_image: Image = CADDY_IMAGE
    api_replicas: int = Field(1, ge=1, le=8, description="API containers; more than one are served through a Caddy front on api_port.")
    workers: int = Field(1, ge=1, le=16, description="`spawnit worker` containers running the jobs (each loads the synthesizer, ~350 MB).")
    worker_concurrency: int = Field(2, ge=1, le=32, description="Jobs each worker runs at once.")
    valkey_maxmemory_mb: int = Field(256, ge=32, le=65536, description="Memory the orchestrator's Valkey may hold (maxmemory); full, it refuses writes, never evicts.")
    docker_socket_group: int = Field(
        default_factory=lambda: _socket_group("/var/run/docker.sock"),
        ge=0,
        description="Group id owning the Docker socket, given to the workers so they can drive the engine (the docker target); "
        "default: the socket's group on the machine that synthesizes, else 0.",
    )
    target_aws_role_arn: Annotated[str, StringConstraints(pattern=r"^arn:aws[a-z-]*:iam::\d{12}:role/[\w+=,.@/-]+$")] | None = Field(
        None, description="Role the workers assume for the aws target (from TF_VAR_target_aws_access_key_id's keys, else their host's role)."
    )
    proxmox_endpoint: Annotated[str, StringConstraints(pattern=r"^https://[A-Za-z0-9.-]+(:\d{1,5})?/?$")] | None = Field(
        None, description="Proxmox VE API the workers deploy the proxmox target to, https://HOST:8006/ (secrets: TF_VAR_proxmox_token_secret, TF_VAR_proxmox_root_password)."
    )
    proxmox_token_id: Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9._-]+@[A-Za-z0-9._-]+![A-Za-z][A-Za-z0-9._-]*$")] | None = Field(
        None, description="Id of the Proxmox API token the workers use, USER@REALM!NAME (VM guests)."
    )

    @model_validator(mode="after")
    def _distinct_ports(self) -> PlatformSettings:
        ports = [self.minio_api_port, self.minio_console_port, self.keycloak_port, self.api_port]
        if len(set(ports)) != len(ports):
            raise ValueError(f"ports: {ports} must be distinct")
        names = [user.username for user in self.users]
        if len(set(names)) != len(names):
            raise ValueError(f"users: {names} must have distinct usernames")
        return self




def load_platform_settings(*, config_file: str | Path | None = None, environ: Mapping[str, str] | None = None) -> PlatformSettings:
    """The ``[platform]`` section of the configuration file over the defaults."""
    environ = os.environ if environ is None else environ
    path = config_path(config_file, environ)
    values = read_config_file(path).get("platform", {}) if path is not None else {}
    try:
        return PlatformSettings(**values)
    except ValidationError as error:
        problems = "; ".join(f"{'.'.join(map(str, p['loc']))}: {p['msg']}" for p in error.errors())
        raise ConfigError(f"invalid configuration for the platform ({path} [platform]): {problems}") from None

