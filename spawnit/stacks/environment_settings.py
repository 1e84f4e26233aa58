"""GreenLeaf's environments (dev, preprod, prod): what differs between them, typed and validated, with
embedded defaults.

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
import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError, model_validator

from ..config import (
    AmiId, AvailabilityZone, BucketName, CacheNodeType, Cidr, ClockTime, ConfigError, DbInstanceClass, Email, Hostname, HttpsUrl,
    Image, InstanceType, OTHER_PREFIXES, OTHER_VARIABLES, ProjectName, PublishableKey, Region, SubnetPair, TableName, Weekdays,
    config_path, read_config_file,
)
from ..layout import check_subnet_layout
from ..shared import GREENLEAF_BACKEND_IMAGE, GREENLEAF_CADDY_IMAGE, GREENLEAF_STOREFRONT_IMAGE, did_you_mean

ENVIRONMENTS = ("dev", "preprod", "prod")
EnvironmentName = Literal["dev", "preprod", "prod"]


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

    path = config_path(config_file, environ)
    if path is not None:
        document = read_config_file(path)
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


def load_all_specs(**kwargs: Any) -> list[EnvironmentSpec]:
    return [load_spec(name, **kwargs) for name in ENVIRONMENTS]



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
    from ..cost import PriceTable

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


