"""One stack class per AWS environment, all built by one code path from an EnvironmentSpec."""

from __future__ import annotations

from typing import ClassVar

import os
import sys

from cdktf import Annotations, LocalBackend, TerraformOutput
from cdktf_cdktf_provider_aws.provider import AwsProvider, AwsProviderDefaultTags
from constructs import Construct

from .environment_settings import EnvironmentSpec, load_spec
from ..constructs import Alerts, AppFleet, AppRelease, Cache, Database, DevBox, LoadBalancer, MediaBucket, OffHours, SpawnitStack
from ..constructs.edge import Edge, MediaKeys, R2Media, SiteCertificate
from .networking import spec_network


class EnvironmentStack(SpawnitStack):
    """The GreenLeaf platform for one environment, as its :class:`EnvironmentSpec` describes it.

    - ``architecture="devbox"``: network without NAT and one spot dev box;
    - ``architecture="ha"``: NAT per zone, ALB, Auto Scaling fleet, RDS, Redis, media bucket,
      plus :class:`OffHours` when ``off_hours`` and :class:`Alerts` when ``alerts``.

    Subclasses only name their environment; pass ``spec`` to override its defaults.
    """

    environment: ClassVar[str]

    def __init__(self, scope: Construct, spec: EnvironmentSpec | None = None, *, id: str | None = None) -> None:
        spec = spec or load_spec(self.environment)
        if spec.name != self.environment:
            raise ValueError(f"{type(self).__name__} spec.name: {spec.name!r} is not allowed; allowed: {self.environment!r}")
        super().__init__(scope, id or spec.stack_name)
        self.spec = spec
        AwsProvider(
            self,
            "aws",
            region=spec.region,
            default_tags=[AwsProviderDefaultTags(tags={"project": spec.project, "environment": spec.name, "managed-by": "spawnit"})],
        )
        self._configure_state()
        self.network = spec_network(
            self, spec, name=spec.prefix, nat=spec.nat, nat_instance_type=spec.nat_instance_type, nat_elastic_ip=spec.nat_elastic_ip
        )
        release = AppRelease(
            backend_image=spec.backend_image, storefront_image=spec.storefront_image, caddy_image=spec.caddy_image, publishable_key=spec.publishable_key
        )
        if spec.architecture == "devbox":
            self._build_devbox(release)
        else:
            self._build_high_availability(release)

    def _configure_state(self) -> None:
        spec = self.spec
        if spec.state_backend == "local":
            LocalBackend(self, path=f"terraform.{spec.stack_name}.tfstate")
            return
        # S3-native locking (a lock file beside the state) in addition to the DynamoDB table.
        self.s3_state(bucket=spec.resolved_state_bucket, key=spec.state_key, region=spec.region, encrypt=True, dynamodb_table=spec.resolved_state_lock_table)

    def _build_devbox(self, release: AppRelease) -> None:
        spec = self.spec
        self.devbox = DevBox(
            self,
            "devbox",
            name=spec.prefix,
            network=self.network,
            release=release,
            instance_type=spec.devbox_instance_type,
            ssh_cidrs=[str(cidr) for cidr in spec.ssh_cidrs],
            public_url=f"http://{spec.domain}" if spec.domain else None,
        )
        TerraformOutput(self, "devbox_public_ip", value=self.devbox.public_ip, description="Open http://<ip>/ in a browser")

    def _build_high_availability(self, release: AppRelease) -> None:
        spec = self.spec
        name = spec.prefix
        self.edge = None
        if spec.edge:  # Cloudflare in front: the zone's records, WAF and R2 media; only its ranges reach the origin
            self.edge = Edge(
                self,
                "edge",
                zone_name=spec.cloudflare_zone,
                hostname=spec.domain,
                manage_zone=spec.cloudflare_manage_zone,
                waf=spec.waf_ruleset,
                media_bucket=spec.resolved_media_bucket,
                media_hostname=spec.resolved_media_domain,
            )
        self.certificate = None
        if spec.domain is not None:
            self.certificate = SiteCertificate(self, "certificate", hostname=spec.domain, edge=self.edge)
        self.load_balancer = LoadBalancer(
            self,
            "alb",
            name=name,
            network=self.network,
            allowed_cidrs=self.edge.ipv4_ranges if self.edge else [str(cidr) for cidr in spec.allowed_http_cidrs],
            deletion_protection=spec.deletion_protection,
            certificate_arn=self.certificate.arn if self.certificate else None,
        )
        if self.edge is not None:
            self.edge.route_to(self.load_balancer.dns_name)
        self.database = Database(
            self,
            "database",
            name=name,
            network=self.network,
            instance_class=spec.db_instance_class,
            engine_version=spec.db_engine_version,
            allocated_storage_gb=spec.db_storage_gb,
            multi_az=spec.db_multi_az,
            deletion_protection=spec.deletion_protection,
        )
        self.cache = Cache(self, "cache", name=name, network=self.network, node_type=spec.cache_node_type)
        if self.edge is not None:  # R2 behind its public hostname (ticket #5): no egress fees, no ACL
            self.media = R2Media(self.edge, MediaKeys(self, "media-keys", name=name, edge=self.edge))
        else:
            self.media = MediaBucket(self, "media", bucket_name=spec.resolved_media_bucket, region=spec.region, endpoint=spec.media_endpoint)
        self.fleet = AppFleet(
            self,
            "fleet",
            name=name,
            network=self.network,
            load_balancer=self.load_balancer,
            database=self.database,
            cache=self.cache,
            media=self.media,
            release=release,
            instance_type=spec.app_instance_type,
            ami_id=spec.app_ami_id,
            min_size=spec.fleet_min,
            max_size=spec.fleet_max,
            desired_capacity=spec.fleet_desired,
        )
        if spec.off_hours:
            self.off_hours = OffHours(
                self,
                "off-hours",
                name=name,
                fleet=self.fleet,
                database=self.database,
                start=spec.office_hours_start,
                stop=spec.office_hours_stop,
                days=spec.office_days,
                timezone=spec.timezone,
            )
        if spec.alerts:
            self.alerts = Alerts(
                self,
                "alerts",
                name=spec.prefix,
                emails=spec.alert_emails,
                monthly_budget_usd=spec.monthly_budget_usd,
                load_balancer=self.load_balancer,
                fleet=self.fleet,
                database=self.database,
            )
            if not spec.alert_emails:
                message = f"{spec.name}: alerts go to SNS topic {spec.prefix}-alerts, which nobody receives: set alert_emails"
                Annotations.of(self.alerts).add_warning(message)
                if "CDKTF_OUTDIR" not in os.environ:  # cdktf-cli shows the annotation as a warning; alone, say it here
                    print(f"warning: {message}", file=sys.stderr)
        TerraformOutput(self, "alb_dns_name", value=self.load_balancer.dns_name, description="Without the edge: point the site's DNS (CNAME) here")
        if spec.domain is not None:
            TerraformOutput(self, "site_url", value=f"https://{spec.domain}")
        TerraformOutput(self, "rds_endpoint", value=self.database.endpoint)
        TerraformOutput(self, "redis_endpoint", value=self.cache.endpoint)
        TerraformOutput(self, "media_bucket", value=self.media.app_settings["S3_BUCKET"])
        TerraformOutput(self, "media_url", value=self.media.app_settings["S3_URL"])


class DevStack(EnvironmentStack):
    """Development: one spot dev box with PostgreSQL and Redis in containers; no NAT, ALB, RDS or ElastiCache."""

    environment = "dev"


class PreprodStack(EnvironmentStack):
    """Pre-production: prod's architecture, smaller (single-AZ db.t3.micro), asleep outside office hours."""

    environment = "preprod"


class ProdStack(EnvironmentStack):
    """Production: NAT instance per zone, ALB, fleet of 2-4, multi-AZ db.t3.medium, Redis, alerts and budget."""

    environment = "prod"
