"""What differs between environments, typed and validated, with embedded defaults.

An :class:`EnvironmentSpec` is built from four layers, each overriding the one
before it:

1. the embedded defaults of the environment (:data:`ENVIRONMENT_DEFAULTS`);
2. a configuration file (TOML or JSON): its ``[all]`` table, then its
   ``[<environment>]`` table;
3. environment variables ``SPAWNIT_<FIELD>`` (every environment);
4. environment variables ``SPAWNIT_<ENVIRONMENT>_<FIELD>`` (one environment).

A bad value raises :class:`ConfigError`, whose message names the field, the
value, where it came from and what is allowed.
"""

from __future__ import annotations

import functools
import ipaddress
import json
import os
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from .layout import check_subnet_layout
from .shared import (
    fargate_size_problem,
    AMI_ID_PATTERN,
    CADDY_IMAGE,
    GREENLEAF_BACKEND_IMAGE,
    GREENLEAF_CADDY_IMAGE,
    GREENLEAF_STOREFRONT_IMAGE,
    KEYCLOAK_IMAGE,
    MINIO_IMAGE,
    VALKEY_IMAGE,
    did_you_mean,
)
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError, model_validator

ENVIRONMENTS = ("dev", "preprod", "prod")
SECTIONS = ("all", *ENVIRONMENTS, "platform", "spotilike")
CONFIG_FILE_ENV = "SPAWNIT_CONFIG"
DEFAULT_CONFIG_FILE = "spawnit.toml"

EnvironmentName = Literal["dev", "preprod", "prod"]
ProjectName = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9-]{1,20}[a-z0-9]$")]
Region = Annotated[str, StringConstraints(pattern=r"^[a-z]{2}(-gov)?-[a-z]+-\d$")]
AvailabilityZone = Annotated[str, StringConstraints(pattern=r"^[a-z]{2}(-gov)?-[a-z]+-\d[a-z]$")]
InstanceType = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9-]*\.[a-z0-9]+$")]
DbInstanceClass = Annotated[str, StringConstraints(pattern=r"^db\.[a-z][a-z0-9-]*\.[a-z0-9]+$")]
CacheNodeType = Annotated[str, StringConstraints(pattern=r"^cache\.[a-z][a-z0-9-]*\.[a-z0-9]+$")]
Email = Annotated[str, StringConstraints(pattern=r"^[^@\s]+@[^@\s]+\.[A-Za-z]{2,}$")]
ClockTime = Annotated[str, StringConstraints(pattern=r"^([01]\d|2[0-3]):[0-5]\d$")]
Weekdays = Annotated[str, StringConstraints(pattern=r"^(MON|TUE|WED|THU|FRI|SAT|SUN)(-(MON|TUE|WED|THU|FRI|SAT|SUN))?$")]
Image = Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9._/:@-]*$", max_length=255)]
BucketName = Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")]
TableName = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_.-]{3,255}$")]
Hostname = Annotated[str, StringConstraints(pattern=r"^([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}$", max_length=253)]
# A Medusa publishable API key as the backend makes them ("pk_" and 64 hex digits), or empty.
PublishableKey = Annotated[str, StringConstraints(pattern=r"^(pk_[0-9a-f]{64})?$")]
HttpsUrl = Annotated[str, StringConstraints(pattern=r"^https://[A-Za-z0-9.-]+(:\d+)?(/\S*)?$")]
AmiId = Annotated[str, StringConstraints(pattern=AMI_ID_PATTERN)]
Cidr = ipaddress.IPv4Network
SubnetPair = tuple[Cidr, Cidr]


class ConfigError(ValueError):
    """A configuration value is invalid; the message says which, where from, and what is allowed."""


class EnvironmentSpec(BaseModel):
    """Everything that differs between dev, preprod and prod (frozen once built)."""

    model_config = ConfigDict(frozen=True, extra="forbid", str_strip_whitespace=True)

    name: EnvironmentName = Field(description="Environment name, also the stack name.")
    project: ProjectName = Field("greenleaf", description="Prefix of every resource name.")
    architecture: Literal["ha", "devbox"] = Field(
        "ha", description="'ha': ALB + Auto Scaling fleet + RDS + Redis; 'devbox': one spot instance with everything in containers."
    )

    # Network
    region: Region = "eu-west-3"
    availability_zones: tuple[AvailabilityZone, AvailabilityZone] = Field(
        ("eu-west-3a", "eu-west-3b"), description="Two zones of the region; default: <region>a and <region>b."
    )
    vpc_cidr: Cidr = Cidr("10.0.0.0/16")
    public_subnet_cidrs: SubnetPair = (Cidr("10.0.1.0/24"), Cidr("10.0.2.0/24"))
    app_subnet_cidrs: SubnetPair = (Cidr("10.0.10.0/24"), Cidr("10.0.20.0/24"))
    data_subnet_cidrs: SubnetPair = (Cidr("10.0.100.0/24"), Cidr("10.0.200.0/24"))
    nat: Literal["instance", "gateway", "none"] = "instance"
    nat_instance_type: Literal["t4g.nano", "t3.nano"] = "t4g.nano"
    nat_elastic_ip: bool = Field(False, description="A fixed egress address per zone (an Elastic IP each NAT instance takes at boot).")

    # Web tier and edge
    domain: Hostname | None = Field(None, description="The site's public hostname: its ACM certificate on the load balancer (HTTPS), and its DNS record.")
    cloudflare_zone: Hostname | None = Field(
        None, description="Cloudflare zone holding domain: the site goes through Cloudflare (proxied DNS, WAF, R2 media) and the load balancer admits Cloudflare's ranges only."
    )
    cloudflare_manage_zone: bool = Field(True, description="This environment owns the zone-wide settings and the managed WAF (one environment per zone).")
    waf_ruleset: Literal["free", "managed"] = Field("free", description="Cloudflare's managed WAF ruleset: free (every plan) or managed (Pro and up).")
    media_domain: Hostname | None = Field(None, description="R2 media's public hostname; default: media.<zone> in prod, media-<environment>.<zone> elsewhere.")
    origin_http_only: bool = Field(
        False, description="Serve the load balancer over plain HTTP with no certificate: only when chosen explicitly (e.g. a throwaway test)."
    )
    allowed_http_cidrs: tuple[Cidr, ...] = Field((Cidr("0.0.0.0/0"),), min_length=1)
    app_instance_type: InstanceType = "t3.small"
    app_ami_id: AmiId | None = Field(
        None,
        description="AMI the fleet runs; unset: the latest Amazon Linux 2023 when the fleet is created, kept until this is set.",
    )
    fleet_min: int = Field(2, ge=0, le=20)
    fleet_max: int = Field(4, ge=1, le=20)
    fleet_desired: int = Field(2, ge=0, le=20)
    backend_image: Image = GREENLEAF_BACKEND_IMAGE
    storefront_image: Image = GREENLEAF_STOREFRONT_IMAGE
    caddy_image: Image = GREENLEAF_CADDY_IMAGE
    publishable_key: PublishableKey = Field(
        "",
        description="The storefront's Medusa publishable API key (pk_..., public by design: browsers send it); "
        "printed by the backend's seed script. Empty: the storefront shows that the catalogue is unavailable.",
    )

    # Data tier
    db_instance_class: DbInstanceClass = "db.t3.medium"
    db_multi_az: bool = True
    db_engine_version: Annotated[str, StringConstraints(pattern=r"^1[4-7](\.\d+)?$")] = "16"
    db_storage_gb: int = Field(20, ge=20, le=1000)
    deletion_protection: bool = True
    cache_node_type: CacheNodeType = "cache.t3.micro"
    media_bucket: BucketName | None = Field(None, description="Defaults to '<project>-<environment>-media'.")
    media_endpoint: HttpsUrl | None = Field(
        None, description="S3-compatible endpoint (for example Cloudflare R2) the app uses instead of AWS S3."
    )

    # Dev box
    devbox_instance_type: InstanceType = "t3.small"
    ssh_cidrs: tuple[Cidr, ...] = ()

    # Operations and FinOps
    alerts: bool = True
    alert_emails: tuple[Email, ...] = ()
    monthly_budget_usd: float = Field(500.0, gt=0, le=1_000_000)
    off_hours: bool = False
    office_hours_start: ClockTime = "09:00"
    office_hours_stop: ClockTime = "19:00"
    office_days: Weekdays = "MON-FRI"
    timezone: Annotated[str, StringConstraints(pattern=r"^[A-Za-z_]+(/[A-Za-z_+-]+)*$")] = "Europe/Paris"

    # Remote state
    state_backend: Literal["s3", "local"] = "s3"
    state_bucket: BucketName | None = Field(None, description="Defaults to '<project>-tfstate-<region>'.")
    state_lock_table: TableName | None = Field(None, description="Defaults to '<project>-tf-lock'.")

    @model_validator(mode="after")
    def _edge_is_consistent(self) -> EnvironmentSpec:
        if self.architecture != "ha":
            return self
        if self.domain is None and not self.origin_http_only:
            raise ValueError("domain: missing; allowed: the site's hostname (its certificate makes the load balancer serve HTTPS), or origin_http_only = true for plain HTTP")
        if self.cloudflare_zone is not None:
            if self.domain is None:
                raise ValueError(f"domain: missing; allowed: a name in the zone {self.cloudflare_zone!r} (cloudflare_zone is set)")
            for field, value in (("domain", self.domain), ("media_domain", self.media_domain)):
                if value is not None and value != self.cloudflare_zone and not value.endswith("." + self.cloudflare_zone):
                    raise ValueError(f"{field}: {value!r} is not allowed; allowed: a name in the zone {self.cloudflare_zone!r}")
            if self.origin_http_only:
                raise ValueError("origin_http_only: true is not allowed with cloudflare_zone; allowed: false (Cloudflare reaches the origin over HTTPS, Full (strict))")
        return self

    @property
    def edge(self) -> bool:
        return self.architecture == "ha" and self.cloudflare_zone is not None

    @property
    def resolved_media_domain(self) -> str | None:
        if self.cloudflare_zone is None:
            return None
        return self.media_domain or (f"media.{self.cloudflare_zone}" if self.name == "prod" else f"media-{self.name}.{self.cloudflare_zone}")

    @model_validator(mode="before")
    @classmethod
    def _zones_follow_region(cls, values: Any) -> Any:
        if isinstance(values, dict) and "region" in values and "availability_zones" not in values:
            values = {**values, "availability_zones": (f"{values['region']}a", f"{values['region']}b")}
        return values

    @model_validator(mode="after")
    def _check_consistency(self) -> EnvironmentSpec:
        for zone in self.availability_zones:
            if not zone.startswith(self.region):
                raise ValueError(f"availability_zones: {zone!r} is not in region {self.region!r}; allowed: {self.region}a, {self.region}b, ...")
        check_subnet_layout(
            self.vpc_cidr,
            self.availability_zones,
            public=self.public_subnet_cidrs,
            app=self.app_subnet_cidrs,
            data=self.data_subnet_cidrs,
        )
        if not self.fleet_min <= self.fleet_desired <= self.fleet_max:
            raise ValueError(
                f"fleet_min, fleet_desired, fleet_max: {self.fleet_min}, {self.fleet_desired}, {self.fleet_max} are not allowed; "
                "allowed: fleet_min <= fleet_desired <= fleet_max"
            )
        try:
            ZoneInfo(self.timezone)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"timezone: {self.timezone!r} is not allowed; allowed: an IANA time zone such as Europe/Paris") from None
        if self.office_hours_start >= self.office_hours_stop:
            raise ValueError(
                f"office_hours_start: {self.office_hours_start!r} is not before office_hours_stop {self.office_hours_stop!r}"
            )
        return self

    @property
    def stack_name(self) -> str:
        return self.name

    @property
    def resolved_state_bucket(self) -> str:
        return self.state_bucket or f"{self.project}-tfstate-{self.region}"

    @property
    def resolved_state_lock_table(self) -> str:
        return self.state_lock_table or f"{self.project}-tf-lock"

    @property
    def state_key(self) -> str:
        return f"{self.project}/{self.name}/terraform.tfstate"

    @property
    def resolved_media_bucket(self) -> str:
        return self.media_bucket or f"{self.prefix}-media"

    @property
    def prefix(self) -> str:
        """Name prefix of the environment's resources, e.g. ``greenleaf-prod``."""
        return f"{self.project}-{self.name}"


ENVIRONMENT_DEFAULTS: dict[str, dict[str, Any]] = {
    "dev": {
        "architecture": "devbox",
        "nat": "none",
        "alerts": False,
        "deletion_protection": False,
    },
    "preprod": {
        "domain": "preprod.greenleaf.example",
        "cloudflare_zone": "greenleaf.example",
        "cloudflare_manage_zone": False,  # prod owns the zone's settings and WAF
        "db_instance_class": "db.t3.micro",
        "db_multi_az": False,
        "deletion_protection": False,
        "alerts": False,
        "off_hours": True,
    },
    "prod": {"domain": "shop.greenleaf.example", "cloudflare_zone": "greenleaf.example"},
}

FIELDS = tuple(name for name in EnvironmentSpec.model_fields if name != "name")


def load_spec(
    name: str,
    *,
    config_file: str | Path | None = None,
    environ: Mapping[str, str] | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> EnvironmentSpec:
    """Build the spec of environment ``name`` from defaults, file, environment variables and ``overrides``."""
    if name not in ENVIRONMENTS:
        raise ConfigError(f"environment: {name!r} is not allowed; allowed: {', '.join(ENVIRONMENTS)}")
    environ = os.environ if environ is None else environ
    values: dict[str, Any] = dict(ENVIRONMENT_DEFAULTS[name])
    sources: dict[str, str] = dict.fromkeys(values, "embedded defaults")

    def apply(layer: Mapping[str, Any], source: str) -> None:
        for key, value in layer.items():
            if key not in FIELDS:
                raise ConfigError(f"{source}: unknown field {key!r}; {did_you_mean(key, FIELDS)}allowed: {', '.join(FIELDS)}")
            values[key] = value
            sources[key] = source

    def apply_environ(prefix: str) -> None:
        for key, (value, variable) in _from_environ(environ, prefix).items():
            values[key] = value
            sources[key] = f"environment {variable}"

    path = _config_path(config_file, environ)
    if path is not None:
        document = _read_config_file(path)
        apply(document.get("all", {}), f"{path} [all]")
        apply(document.get(name, {}), f"{path} [{name}]")
    check_environ_names(environ)
    apply_environ("SPAWNIT_")
    apply_environ(f"SPAWNIT_{name.upper()}_")
    apply(overrides or {}, "overrides")
    try:
        return EnvironmentSpec(name=name, **values)
    except ValidationError as error:
        raise ConfigError(_explain(name, error, values, sources)) from None


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
    workers: int = Field(1, ge=1, le=16, description="`spawnit worker` containers running the jobs (each loads the synthesizer, ~600 MB).")
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


class SpotilikeSpec(BaseModel):
    """Spotilike (seed 004): a FastAPI API on Fargate behind an ALB, a web frontend on EKS, PostgreSQL
    on RDS (free-tier class) backed up by AWS Backup, media on S3, static content on CloudFront."""

    model_config = ConfigDict(frozen=True, extra="forbid", str_strip_whitespace=True)

    project: ProjectName = Field("spotilike", description="Prefix of every resource name and the stacks' names.")
    region: Region = "eu-west-3"
    availability_zones: tuple[AvailabilityZone, AvailabilityZone] = ("eu-west-3a", "eu-west-3b")
    vpc_cidr: Cidr = Cidr("10.20.0.0/16")
    public_subnet_cidrs: SubnetPair = (Cidr("10.20.1.0/24"), Cidr("10.20.2.0/24"))
    app_subnet_cidrs: SubnetPair = (Cidr("10.20.10.0/24"), Cidr("10.20.20.0/24"))
    data_subnet_cidrs: SubnetPair = (Cidr("10.20.100.0/24"), Cidr("10.20.200.0/24"))
    nat_instance_type: Literal["t4g.nano", "t3.nano"] = "t4g.nano"
    allowed_http_cidrs: tuple[Cidr, ...] = Field((Cidr("0.0.0.0/0"),), min_length=1, description="Who may reach the API's load balancer without the edge.")
    api_domain: Hostname | None = Field("api.spotilike.example", description="The API's hostname: its ACM certificate on the load balancer (HTTPS).")
    cloudflare_zone: Hostname | None = Field(
        "spotilike.example", description="Cloudflare zone holding api_domain: the API goes through Cloudflare (proxied DNS, WAF) and only its ranges reach the load balancer."
    )
    api_http_only: bool = Field(False, description="Serve the API over plain HTTP (no api_domain): a visible choice, never a default.")

    api_image: Image = Field("ghcr.io/spotilike/api:1.0.0", description="The FastAPI backend's image (listens on api_port).")
    api_port: int = Field(8000, ge=1024, le=65535)
    api_cpu: int = Field(256, description="Fargate CPU units of an API task (256, 512, 1024...).")
    api_memory_mib: int = Field(512, description="Memory of an API task, a size Fargate allows with api_cpu.")
    api_min_tasks: int = Field(1, ge=1, le=20)
    api_max_tasks: int = Field(3, ge=1, le=50)

    web_image: Image = Field("ghcr.io/spotilike/web:1.0.0", description="The frontend's image (listens on web_port).")
    web_port: int = Field(3000, ge=1024, le=65535)
    web_replicas: int = Field(2, ge=1, le=50)
    web_writable_paths: tuple[Annotated[str, StringConstraints(pattern=r"^/[A-Za-z0-9._/-]+$")], ...] = Field(
        ("/tmp", "/app/.next/cache"), description="Folders the frontend writes (its root filesystem is read-only): each an emptyDir. Next.js caches in .next/cache."
    )
    eks_version: Annotated[str, StringConstraints(pattern=r"^1\.(2[89]|3[0-9])$")] = "1.33"
    eks_instance_type: InstanceType = "t3.medium"
    eks_nodes_min: int = Field(1, ge=0, le=20)
    eks_nodes_desired: int = Field(2, ge=0, le=20)
    eks_nodes_max: int = Field(3, ge=1, le=20)
    eks_public_access_cidrs: tuple[Cidr, ...] = Field(
        (), description="Who may reach the Kubernetes API from outside the VPC (your network, to apply the frontend's stack); none by default: private endpoint only."
    )

    db_instance_class: DbInstanceClass = Field("db.t3.micro", description="db.t3.micro and db.t4g.micro are in the RDS free tier.")
    db_storage_gb: int = Field(20, ge=20, le=1000)
    db_backup_retention_days: int = Field(7, ge=1, le=35, description="RDS automated backups (point-in-time recovery).")
    backup_retention_days: int = Field(35, ge=1, le=36500, description="AWS Backup's daily snapshots.")
    deletion_protection: bool = True
    static_price_class: Literal["PriceClass_100", "PriceClass_200", "PriceClass_All"] = "PriceClass_100"

    alert_emails: tuple[Email, ...] = ()
    monthly_budget_usd: float = Field(300.0, gt=0, le=1_000_000)
    state_backend: Literal["s3", "local"] = "s3"
    state_bucket: BucketName | None = Field(None, description="Defaults to '<project>-tfstate-<region>'.")

    @model_validator(mode="after")
    def _check_consistency(self) -> SpotilikeSpec:
        for zone in self.availability_zones:
            if not zone.startswith(self.region):
                raise ValueError(f"availability_zones: {zone!r} is not in region {self.region!r}; allowed: {self.region}a, {self.region}b, ...")
        check_subnet_layout(self.vpc_cidr, self.availability_zones, public=self.public_subnet_cidrs, app=self.app_subnet_cidrs, data=self.data_subnet_cidrs)
        if self.api_domain is None and not self.api_http_only:
            raise ValueError("api_domain: missing; allowed: the API's hostname (its certificate makes the load balancer serve HTTPS), or api_http_only = true for plain HTTP")
        if self.api_domain is not None and self.api_http_only:
            raise ValueError(f"api_http_only: true is not allowed with api_domain {self.api_domain!r}; allowed: false, or no api_domain")
        if self.cloudflare_zone is not None and (self.api_domain is None or not (self.api_domain == self.cloudflare_zone or self.api_domain.endswith("." + self.cloudflare_zone))):
            raise ValueError(f"api_domain: {self.api_domain!r} is not allowed; allowed: a name in the zone {self.cloudflare_zone!r} (cloudflare_zone is set)")
        problem = fargate_size_problem(self.api_cpu, self.api_memory_mib)  # checked here, before any synthesis
        if problem:
            raise ValueError(f"api_{problem[0]}: {problem[1]}")
        if not self.api_min_tasks <= self.api_max_tasks:
            raise ValueError(f"api_min_tasks: {self.api_min_tasks} is more than api_max_tasks {self.api_max_tasks}; allowed: api_min_tasks <= api_max_tasks")
        if not self.eks_nodes_min <= self.eks_nodes_desired <= self.eks_nodes_max:
            raise ValueError(
                f"eks_nodes_desired: {self.eks_nodes_desired} is not between eks_nodes_min {self.eks_nodes_min} and eks_nodes_max {self.eks_nodes_max}"
            )
        return self

    @property
    def resolved_state_bucket(self) -> str:
        return self.state_bucket or f"{self.project}-tfstate-{self.region}"


SPOTILIKE_FIELDS = tuple(SpotilikeSpec.model_fields)


def load_spotilike_spec(
    *, config_file: str | Path | None = None, environ: Mapping[str, str] | None = None, overrides: Mapping[str, Any] | None = None
) -> SpotilikeSpec:
    """Spotilike's spec: embedded defaults, then the ``[spotilike]`` section, ``SPAWNIT_SPOTILIKE_<FIELD>`` variables and ``overrides``."""
    environ = os.environ if environ is None else environ
    values: dict[str, Any] = {}
    path = _config_path(config_file, environ)
    layers: list[tuple[str, Mapping[str, Any]]] = [(f"{path} [spotilike]", _read_config_file(path).get("spotilike", {}))] if path is not None else []
    from_environ = {}
    for variable, raw in environ.items():
        if variable.startswith("SPAWNIT_SPOTILIKE_"):
            field = variable.removeprefix("SPAWNIT_SPOTILIKE_").lower()
            if field not in SPOTILIKE_FIELDS:
                raise ConfigError(f"environment {variable}: unknown field {field!r}; {did_you_mean(field, SPOTILIKE_FIELDS)}allowed: {', '.join(SPOTILIKE_FIELDS)}")
            is_sequence = "tuple" in str(SpotilikeSpec.model_fields[field].annotation)
            from_environ[field] = [item.strip() for item in raw.split(",") if item.strip()] if is_sequence and not raw.strip().startswith("[") else (
                json.loads(raw) if is_sequence else raw.strip()
            )
    layers += [("environment SPAWNIT_SPOTILIKE_*", from_environ), ("overrides", overrides or {})]
    sources: dict[str, str] = {}
    for source, layer in layers:
        for key, value in layer.items():
            if key not in SPOTILIKE_FIELDS:
                raise ConfigError(f"{source}: unknown field {key!r}; {did_you_mean(key, SPOTILIKE_FIELDS)}allowed: {', '.join(SPOTILIKE_FIELDS)}")
            values[key] = value
            sources[key] = f"SPAWNIT_SPOTILIKE_{key.upper()}" if layer is from_environ else source
    try:
        return SpotilikeSpec(**values)
    except ValidationError as error:
        problems = []
        for problem in error.errors():
            message = problem["msg"].removeprefix("Value error, ")
            if problem["loc"]:
                field = ".".join(str(part) for part in problem["loc"])
                problems.append(f"  spotilike.{field} = {values.get(problem['loc'][0])!r}: {message} (from {sources.get(str(problem['loc'][0]), 'embedded defaults')})")
            else:  # a rule across fields: its message starts with the field it is about
                field, _, rule = message.partition(": ")
                problems.append(f"  spotilike.{field} = {rule} (from {sources.get(field, 'embedded defaults')})")
        raise ConfigError("invalid configuration for spotilike:\n" + "\n".join(problems)) from None


def load_platform_settings(*, config_file: str | Path | None = None, environ: Mapping[str, str] | None = None) -> PlatformSettings:
    """The ``[platform]`` section of the configuration file over the defaults."""
    environ = os.environ if environ is None else environ
    path = _config_path(config_file, environ)
    values = _read_config_file(path).get("platform", {}) if path is not None else {}
    try:
        return PlatformSettings(**values)
    except ValidationError as error:
        problems = "; ".join(f"{'.'.join(map(str, p['loc']))}: {p['msg']}" for p in error.errors())
        raise ConfigError(f"invalid configuration for the platform ({path} [platform]): {problems}") from None


def load_all_specs(**kwargs: Any) -> list[EnvironmentSpec]:
    return [load_spec(name, **kwargs) for name in ENVIRONMENTS]


def _config_path(config_file: str | Path | None, environ: Mapping[str, str]) -> Path | None:
    if config_file is not None:
        path = Path(config_file)
    elif environ.get(CONFIG_FILE_ENV):
        path = Path(environ[CONFIG_FILE_ENV])
    elif Path(DEFAULT_CONFIG_FILE).is_file():
        return Path(DEFAULT_CONFIG_FILE)
    else:
        return None
    if not path.is_file():
        raise ConfigError(f"config file: {str(path)!r} does not exist; allowed: a .toml or .json file")
    return path


def _read_config_file(path: Path) -> dict[str, Any]:
    text = path.read_text(encoding="utf-8")
    try:
        document = json.loads(text) if path.suffix == ".json" else tomllib.loads(text)
    except (json.JSONDecodeError, tomllib.TOMLDecodeError) as error:
        raise ConfigError(f"config file {path}: not valid {'JSON' if path.suffix == '.json' else 'TOML'}: {error}") from None
    if not isinstance(document, dict):
        raise ConfigError(f"config file {path}: expected a table of environments; allowed keys: all, {', '.join(ENVIRONMENTS)}")
    for key, table in document.items():
        if key not in SECTIONS:
            raise ConfigError(f"config file {path}: unknown section {key!r}; allowed: {', '.join(SECTIONS)}")
        if not isinstance(table, dict):
            raise ConfigError(f"config file {path}: section {key!r} must be a table of fields")
    return document


# SPAWNIT_* variables that are not environment fields: settings of the other commands and of the API.
# Every SPAWNIT_* variable that is not an environment's field: the product's other settings (the server's,
# the workers', the tools'). A SPAWNIT_* variable named nowhere here nor as a field is a misspelling; a
# test finds every SPAWNIT_* name in the sources and checks it is one or the other.
OTHER_VARIABLES = (
    "SPAWNIT_CONFIG", "SPAWNIT_TOFU", "SPAWNIT_AUTH", "SPAWNIT_DATA_DIR", "SPAWNIT_LOG", "SPAWNIT_ROOT", "SPAWNIT_REDIS_URL",
    "SPAWNIT_BOAVIZTA_PYTHON", "SPAWNIT_CHECKOV", "SPAWNIT_CLIENT_BUDGET_USD", "SPAWNIT_EAGER_BINDINGS", "SPAWNIT_PLAN_TTL",
    "SPAWNIT_PLUGIN_CACHE", "SPAWNIT_PROVIDER_MIRROR", "SPAWNIT_PROVIDER_VERSIONS", "SPAWNIT_QUEUE_TIMEOUT", "SPAWNIT_SECRET_KEY",
    "SPAWNIT_SECRET_KEY_FILE", "SPAWNIT_SSH_AUTH_SOCK", "SPAWNIT_TRUSTED_PROXIES", "SPAWNIT_DOCKER_CERT_PATH",
)
OTHER_PREFIXES = (
    "SPAWNIT_S3_", "SPAWNIT_PROXMOX_", "SPAWNIT_SPOTILIKE_", "SPAWNIT_OIDC_", "SPAWNIT_DRIFT_", "SPAWNIT_JOB_", "SPAWNIT_API_",
    "SPAWNIT_USER_", "SPAWNIT_PLATFORM_", "SPAWNIT_AWS_", "SPAWNIT_EXPIRY_", "SPAWNIT_TEST_",
)


def _from_environ(environ: Mapping[str, str], prefix: str) -> dict[str, tuple[Any, str]]:
    """Field -> (value, variable) for the variables ``PREFIX<FIELD>`` that are set."""
    found: dict[str, tuple[Any, str]] = {}
    for field in FIELDS:
        raw = environ.get(prefix + field.upper())
        if raw is not None:
            found[field] = (_parse_environ_value(field, raw), prefix + field.upper())
    return found


def check_environ_names(environ: Mapping[str, str]) -> None:
    """A misspelled ``SPAWNIT_*`` variable is an error naming the closest field, not a silent no-op."""
    for variable in sorted(environ):
        if not variable.startswith("SPAWNIT_") or variable in OTHER_VARIABLES or variable.startswith(OTHER_PREFIXES):
            continue
        rest = variable.removeprefix("SPAWNIT_")
        for environment in ENVIRONMENTS:
            if rest.startswith(environment.upper() + "_"):
                rest = rest.removeprefix(environment.upper() + "_")
                break
        field = rest.lower()
        if field not in FIELDS:
            raise ConfigError(f"environment {variable}: unknown field {field!r}; {did_you_mean(field, FIELDS)}allowed: {', '.join(FIELDS)}")


def _parse_environ_value(field: str, raw: str) -> Any:
    annotation = EnvironmentSpec.model_fields[field].annotation
    is_sequence = "tuple" in str(annotation)
    raw = raw.strip()
    if is_sequence:
        if raw.startswith("["):
            try:
                return json.loads(raw)
            except json.JSONDecodeError:
                raise ConfigError(f"environment SPAWNIT_..._{field.upper()}: {raw!r} is not a JSON list") from None
        return [item.strip() for item in raw.split(",") if item.strip()]
    return raw


def _explain(name: str, error: ValidationError, values: Mapping[str, Any], sources: Mapping[str, str]) -> str:
    lines = [f"invalid configuration for environment {name!r}:"]
    reported: set[str] = set()
    for problem in error.errors():
        location = [str(part) for part in problem["loc"]]
        message = problem["msg"].removeprefix("Value error, ")
        if location and location[0] in FIELDS and problem["type"] == "missing" and len(location) > 1:
            field = location[0]  # a list shorter than the fixed length the field needs
            value = values.get(field)
            message = f"{_display(value)} is not allowed; allowed: {_expected_length(field)} values, one per availability zone"
            location = [field]
        elif location and location[0] in FIELDS:
            field = location[0]
            value = problem["input"] if len(location) > 1 else values.get(field)
            message = f"{_display(value)} {_rule(problem)}"
        else:  # a rule across fields: its message starts with the fields it is about
            fields_text, _, message = message.partition(": ")
            involved = [item.strip() for item in fields_text.split(",")]
            key = ", ".join(involved)
            if key in reported:
                continue
            reported.add(key)
            origin = "; ".join(f"{item} from {sources.get(item, 'embedded defaults')}" for item in involved)
            lines.append(f"  {name}.{key} = {message} ({origin})")
            continue
        if field in reported:
            continue
        reported.add(field)
        source = sources.get(field, "embedded defaults")
        lines.append(f"  {name}.{'.'.join(location)} = {message} (from {source})")
    return "\n".join(lines)


def _display(value: Any) -> str:
    if isinstance(value, (list, tuple)):
        return repr([str(item) for item in value])
    return repr(value)


def _expected_length(field: str) -> int:
    annotation = EnvironmentSpec.model_fields[field].annotation
    arguments = [argument for argument in getattr(annotation, "__args__", ()) if argument is not Ellipsis]
    return len(arguments) or 2


def _rule(problem: Mapping[str, Any]) -> str:
    context = problem.get("ctx") or {}
    if problem["type"] == "string_pattern_mismatch":
        return f"is not allowed; allowed: values matching {context['pattern']}"
    if problem["type"] == "literal_error":
        return f"is not allowed; allowed: {context['expected']}"
    return f"is not allowed: {problem['msg'][0].lower()}{problem['msg'][1:]}"


# Sized fields and the price table entry that lists the sizes SpawnIt knows (and can price).
SIZED_FIELDS = {
    "app_instance_type": "ec2_instance_hour",
    "devbox_instance_type": "ec2_instance_hour",
    "db_instance_class": "rds_postgres_instance_hour",
    "cache_node_type": "elasticache_node_hour",
}


@functools.cache
def _known_sizes(category: str) -> tuple[str, ...]:
    from .cost import PriceTable

    return tuple(PriceTable.bundled("eu-west-3").categories[category]["items"])


def size_warnings(spec: EnvironmentSpec) -> list[str]:
    """Warnings for instance types and node classes the bundled price table does not know, naming
    the closest known size: a typo such as ``t3.smal`` is caught before AWS refuses it at apply."""
    warnings = []
    for field, entry in SIZED_FIELDS.items():
        known = _known_sizes(entry)
        value = getattr(spec, field)
        if value not in known:
            warnings.append(f"{spec.name}.{field}: {value!r} is not a size SpawnIt knows; {did_you_mean(value, known)}known: {', '.join(known)}")
    return warnings


# Names that exist only in examples and tests (RFC 2606, RFC 6761): no zone or record can be made there.
RESERVED_NAMES = ("example", "test", "invalid", "localhost", "example.com", "example.net", "example.org")


def _reserved(name: str) -> bool:
    return any(name == reserved or name.endswith("." + reserved) for reserved in RESERVED_NAMES)


def readiness_warnings(spec: EnvironmentSpec) -> list[str]:
    """What synthesizes but will not work once deployed: the bundled placeholders (a reserved
    domain, which no DNS provider serves) and an application left without its publishable key."""
    warnings = []
    if spec.architecture == "ha":  # the dev box has no zone nor domain of its own
        for field in ("cloudflare_zone", "domain"):
            value = getattr(spec, field)
            if value is not None and _reserved(value):
                warnings.append(f"{spec.name}.{field}: {value!r} is a placeholder (a reserved example name); set your own before deploying")
    if not spec.publishable_key:
        warnings.append(
            f"{spec.name}.publishable_key: empty; the storefront shows the catalogue as unavailable until it is set "
            "(the backend's seed script prints it)"
        )
    return warnings


def describe_fields() -> list[tuple[str, str, str]]:
    """(field, default, description) for every overridable field, for docs and `spawnit config`."""
    rows = []
    for field in FIELDS:
        info = EnvironmentSpec.model_fields[field]
        default = info.default
        if isinstance(default, tuple):
            default = ",".join(str(item) for item in default)
        rows.append((field, str(default), info.description or ""))
    return rows


__all__ = [
    "ConfigError",
    "ENVIRONMENTS",
    "EnvironmentSpec",
    "load_all_specs",
    "load_spec",
    "describe_fields",
]
