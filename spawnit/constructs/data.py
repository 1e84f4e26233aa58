"""The data tier: PostgreSQL on RDS and Redis on ElastiCache, reachable only by their clients."""

from __future__ import annotations

from collections.abc import Sequence

from cdktf import Fn, TerraformResourceLifecycle
from cdktf_cdktf_provider_aws.db_instance import DbInstance
from cdktf_cdktf_provider_aws.db_subnet_group import DbSubnetGroup
from cdktf_cdktf_provider_aws.elasticache_parameter_group import ElasticacheParameterGroup, ElasticacheParameterGroupParameter
from cdktf_cdktf_provider_aws.elasticache_replication_group import ElasticacheReplicationGroup
from cdktf_cdktf_provider_aws.elasticache_subnet_group import ElasticacheSubnetGroup
from constructs import Construct

from .network import Network
from .security import Connectable

POSTGRES_PORT = 5432
REDIS_PORT = 6379
MAXMEMORY_POLICY = "noeviction"


class Database(Construct):
    """PostgreSQL on RDS in the data subnets: gp3, encrypted, 7 days of backups, never public.

    The master password is generated and rotated by AWS in Secrets Manager
    (``manage_master_user_password``): no password exists in code, JSON or state.
    Clients read it through :attr:`secret_arn`. Only ``clients`` reach port 5432.
    """

    def __init__(
        self,
        scope: Construct,
        id: str,
        *,
        name: str,
        network: Network,
        clients: Sequence[Connectable] = (),
        instance_class: str = "db.t3.micro",
        engine_version: str = "16",
        allocated_storage_gb: int = 20,
        multi_az: bool = False,
        deletion_protection: bool = True,
        database_name: str = "medusa",
        username: str = "medusa",
        backup_retention_days: int = 7,
    ) -> None:
        super().__init__(scope, id)
        if allocated_storage_gb < 20:
            raise ValueError(f"Database allocated_storage_gb: {allocated_storage_gb} is not allowed; allowed: 20 or more (gp3 minimum)")
        if not 1 <= backup_retention_days <= 35:
            raise ValueError(f"Database backup_retention_days: {backup_retention_days} is not allowed; allowed: 1 to 35")
        self.name = name
        self.port = POSTGRES_PORT
        self.database_name = database_name
        self.security_group = network.security_group(
            self, "sg", name=f"{name}-db", description=f"{name}: PostgreSQL from the app only", subnet_ids=network.data_subnet_ids
        )
        for client in clients:
            self.allow_from(client)
        self.subnet_group = DbSubnetGroup(self, "subnets", name=f"{name}-db", subnet_ids=network.data_subnet_ids, tags={"Name": f"{name}-db"})
        self.instance = DbInstance(
            self,
            "postgres",
            identifier=f"{name}-db",
            engine="postgres",
            engine_version=engine_version,
            instance_class=instance_class,
            allocated_storage=allocated_storage_gb,
            storage_type="gp3",
            storage_encrypted=True,
            multi_az=multi_az,
            db_name=database_name,
            username=username,
            manage_master_user_password=True,
            port=POSTGRES_PORT,
            db_subnet_group_name=self.subnet_group.name,
            vpc_security_group_ids=[self.security_group.id],
            publicly_accessible=False,
            iam_database_authentication_enabled=True,
            backup_retention_period=backup_retention_days,
            copy_tags_to_snapshot=True,
            auto_minor_version_upgrade=True,
            deletion_protection=deletion_protection,
            skip_final_snapshot=not deletion_protection,
            # Unique per database lifetime: the time of creation, kept (ignore_changes). A fixed name would
            # make the second destroy fail, the first final snapshot already holding it.
            final_snapshot_identifier=Fn.formatdate(f"'{name}-db-final-'YYYYMMDDhhmmss", Fn.timestamp()) if deletion_protection else None,
            lifecycle=TerraformResourceLifecycle(ignore_changes=["final_snapshot_identifier"]) if deletion_protection else None,
            enabled_cloudwatch_logs_exports=["postgresql"],
            tags={"Name": f"{name}-db"},
        )
        self.identifier = self.instance.identifier
        self.arn = self.instance.arn
        self.endpoint = self.instance.address
        self.secret_arn = self.instance.master_user_secret.get(0).secret_arn

    def allow_from(self, client: Connectable) -> None:
        """Let ``client`` reach PostgreSQL (this group's ingress and the client's egress)."""
        self.security_group.allow_from(client, port=POSTGRES_PORT)


class Cache(Construct):
    """Redis 7 on ElastiCache for sessions, events and job queues: one node, encrypted at rest and in
    transit, in the data subnets, reachable only by ``clients`` on 6379. Clients connect with ``rediss://``.

    ``maxmemory-policy`` is ``noeviction`` (its own parameter group): ElastiCache's default,
    ``volatile-lru``, silently drops keys that carry an expiry, which BullMQ (Medusa's event bus
    and workflows) uses for job locks; BullMQ requires ``noeviction`` (taskforcesh/bullmq#2215).
    """

    def __init__(
        self,
        scope: Construct,
        id: str,
        *,
        name: str,
        network: Network,
        clients: Sequence[Connectable] = (),
        node_type: str = "cache.t3.micro",
        engine_version: str = "7.1",
    ) -> None:
        super().__init__(scope, id)
        if not engine_version.startswith("7"):
            raise ValueError(f"Cache engine_version: {engine_version!r} is not allowed; allowed: 7.x")
        self.name = name
        self.port = REDIS_PORT
        self.security_group = network.security_group(
            self, "sg", name=f"{name}-redis", description=f"{name}: Redis from the app only", subnet_ids=network.data_subnet_ids
        )
        for client in clients:
            self.allow_from(client)
        self.subnet_group = ElasticacheSubnetGroup(self, "subnets", name=f"{name}-redis", subnet_ids=network.data_subnet_ids)
        family = f"redis{engine_version.split('.')[0]}"
        self.parameter_group = ElasticacheParameterGroup(
            self,
            "parameters",
            name=f"{name}-{family}",
            family=family,
            description=f"{name}: Redis for job queues, never evicts",
            parameter=[ElasticacheParameterGroupParameter(name="maxmemory-policy", value=MAXMEMORY_POLICY)],
        )
        self.replication_group = ElasticacheReplicationGroup(
            self,
            "redis",
            replication_group_id=f"{name}-redis",
            description=f"{name}: sessions and events",
            engine="redis",
            engine_version=engine_version,
            node_type=node_type,
            num_cache_clusters=1,
            automatic_failover_enabled=False,
            port=REDIS_PORT,
            subnet_group_name=self.subnet_group.name,
            parameter_group_name=self.parameter_group.name,
            security_group_ids=[self.security_group.id],
            at_rest_encryption_enabled="true",
            transit_encryption_enabled=True,
            snapshot_retention_limit=1,
            tags={"Name": f"{name}-redis"},
        )
        self.endpoint = self.replication_group.primary_endpoint_address
        self.url = f"rediss://{self.endpoint}:{REDIS_PORT}"

    def allow_from(self, client: Connectable) -> None:
        """Let ``client`` reach Redis (this group's ingress and the client's egress)."""
        self.security_group.allow_from(client, port=REDIS_PORT)
