"""Spotilike (seed 004) on the same construct library as GreenLeaf: two stacks.

``spotilike``: the network (two zones, NAT instances), the ALB and the FastAPI API
on Fargate, PostgreSQL on RDS with AWS Backup, the media bucket, the static site on
CloudFront, the EKS cluster, alerts and the budget. ``spotilike-web``: the frontend
on that cluster, in a stack of its own that depends on the first one (its Kubernetes
provider reads the cluster, which must exist before the provider is configured).
"""

from __future__ import annotations

from cdktf import LocalBackend, TerraformOutput
from cdktf_cdktf_provider_aws.provider import AwsProvider, AwsProviderDefaultTags
from constructs import Construct

from .spotilike_settings import SpotilikeSpec, load_spotilike_spec
from ..constructs import Alerts, Database, LoadBalancer, MediaBucket, SpawnitStack
from ..constructs.backup import DatabaseBackup
from ..constructs.cdn import StaticSite
from ..constructs.edge import Edge, SiteCertificate
from ..constructs.containers import FargateService, SecretRef
from ..constructs.kubernetes import KubernetesCluster, KubernetesWorkload
from .networking import spec_network


def _configure(stack: SpawnitStack, spec: SpotilikeSpec, name: str) -> None:
    AwsProvider(
        stack,
        "aws",
        region=spec.region,
        default_tags=[AwsProviderDefaultTags(tags={"project": spec.project, "stack": name, "managed-by": "spawnit"})],
    )
    if spec.state_backend == "local":
        LocalBackend(stack, path=f"terraform.{name}.tfstate")
        return
    stack.s3_state(bucket=spec.resolved_state_bucket, key=f"{spec.project}/{name}/terraform.tfstate", region=spec.region, encrypt=True)


class SpotilikeStack(SpawnitStack):
    """Spotilike's AWS infrastructure, as its :class:`SpotilikeSpec` describes it."""

    def __init__(self, scope: Construct, spec: SpotilikeSpec | None = None, *, id: str | None = None) -> None:
        spec = spec or load_spotilike_spec()
        name = id or spec.project
        super().__init__(scope, name)
        self.spec = spec
        _configure(self, spec, name)
        project = spec.project
        self.network = spec_network(self, spec, name=project, nat="instance", nat_instance_type=spec.nat_instance_type)
        # HTTPS as GreenLeaf's origin has it: Cloudflare in front (WAF, its ranges only), an ACM certificate
        self.edge = Edge(self, "edge", zone_name=spec.cloudflare_zone, hostname=spec.api_domain) if spec.cloudflare_zone else None
        self.certificate = SiteCertificate(self, "certificate", hostname=spec.api_domain, edge=self.edge) if spec.api_domain else None
        self.load_balancer = LoadBalancer(
            self,
            "alb",
            name=project,
            network=self.network,
            allowed_cidrs=self.edge.ipv4_ranges if self.edge else [str(cidr) for cidr in spec.allowed_http_cidrs],
            certificate_arn=self.certificate.arn if self.certificate else None,
            deletion_protection=spec.deletion_protection,
            target_type="ip",
            target_port=spec.api_port,
        )
        if self.edge is not None:
            self.edge.route_to(self.load_balancer.dns_name)
        self.api_url = f"https://{spec.api_domain}" if spec.api_domain else f"http://{self.load_balancer.dns_name}"
        self.database = Database(
            self,
            "database",
            name=project,
            network=self.network,
            instance_class=spec.db_instance_class,
            allocated_storage_gb=spec.db_storage_gb,
            multi_az=False,
            deletion_protection=spec.deletion_protection,
            database_name="spotilike",
            username="spotilike",
            backup_retention_days=spec.db_backup_retention_days,
        )
        self.backup = DatabaseBackup(self, "backup", name=project, database=self.database, retention_days=spec.backup_retention_days)
        self.media = MediaBucket(self, "media", bucket_name=f"{project}-media", region=spec.region)
        self.static_site = StaticSite(self, "static", bucket_name=f"{project}-static", price_class=spec.static_price_class)
        self.api = FargateService(
            self,
            "api",
            name=f"{project}-api",
            network=self.network,
            load_balancer=self.load_balancer,
            image=spec.api_image,
            port=spec.api_port,
            cpu=spec.api_cpu,
            memory_mib=spec.api_memory_mib,
            min_tasks=spec.api_min_tasks,
            max_tasks=spec.api_max_tasks,
            environment={
                "DB_HOST": self.database.endpoint,
                "DB_PORT": str(self.database.port),
                "DB_NAME": self.database.database_name,
                "DB_SSLMODE": "verify-full",
                "MEDIA_BUCKET": self.media.name,
                "MEDIA_URL": self.media.app_settings["S3_URL"],  # where browsers read the media (CloudFront)
                "AWS_REGION": spec.region,
                "STATIC_URL": self.static_site.url,
            },
            secrets={
                "DB_USER": SecretRef(self.database.secret_arn, "username"),
                "DB_PASSWORD": SecretRef(self.database.secret_arn, "password"),
            },
        )
        self.database.allow_from(self.api)
        self.media.grant_read_write(self.api)
        self.cluster = KubernetesCluster(
            self,
            "eks",
            name=project,
            network=self.network,
            version=spec.eks_version,
            instance_type=spec.eks_instance_type,
            nodes_min=spec.eks_nodes_min,
            nodes_desired=spec.eks_nodes_desired,
            nodes_max=spec.eks_nodes_max,
            public_access_cidrs=[str(cidr) for cidr in spec.eks_public_access_cidrs],
        )
        self.alerts = Alerts(
            self,
            "alerts",
            name=project,
            emails=spec.alert_emails,
            monthly_budget_usd=spec.monthly_budget_usd,
            load_balancer=self.load_balancer,
            database=self.database,
        )
        TerraformOutput(self, "api_url", value=self.api_url, description="The API behind the load balancer")
        TerraformOutput(self, "static_url", value=self.static_site.url, description="Static content on CloudFront")
        TerraformOutput(self, "cluster_name", value=self.cluster.cluster.name)


class SpotilikeWebStack(SpawnitStack):
    """Spotilike's frontend on the EKS cluster of ``infrastructure``, applied after it."""

    def __init__(self, scope: Construct, infrastructure: SpotilikeStack, *, id: str | None = None) -> None:
        spec = infrastructure.spec
        name = id or f"{spec.project}-web"
        super().__init__(scope, name)
        _configure(self, spec, name)
        self.add_dependency(infrastructure)
        self.workload = KubernetesWorkload(
            self,
            "frontend",
            cluster_name=infrastructure.cluster.name,
            name="web",
            image=spec.web_image,
            port=spec.web_port,
            replicas=spec.web_replicas,
            environment={"API_URL": infrastructure.api_url, "NODE_ENV": "production"},
            writable_paths=spec.web_writable_paths,
        )
        TerraformOutput(self, "web_replicas", value=spec.web_replicas)
