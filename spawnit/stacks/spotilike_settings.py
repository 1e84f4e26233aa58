"""Spotilike's settings (the ``[spotilike]`` section, ``SPAWNIT_SPOTILIKE_<FIELD>`` variables), typed and validated."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError, model_validator

from ..config import (
    AvailabilityZone, BucketName, Cidr, ConfigError, DbInstanceClass, Email, Hostname, Image, InstanceType, ProjectName, Region,
    SubnetPair, config_path, read_config_file,
)
from ..layout import check_subnet_layout
from ..shared import did_you_mean, fargate_size_problem


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
    path = config_path(config_file, environ)
    layers: list[tuple[str, Mapping[str, Any]]] = [(f"{path} [spotilike]", read_config_file(path).get("spotilike", {}))] if path is not None else []
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

