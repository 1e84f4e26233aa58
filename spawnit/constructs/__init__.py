"""SpawnIt's construct library: the building blocks of a cost-aware, highly available web platform.

AWS: Network, NatInstance, LoadBalancer, AppFleet, Database, Cache, MediaBucket,
DevBox, Alerts, OffHours, SecurityGroup, FargateService (ECS), KubernetesCluster and
KubernetesWorkload (EKS), StaticSite (CloudFront), DatabaseBackup (AWS Backup). Docker: DockerNetwork, DockerVolume,
DockerService (and docker_provider for local, ssh:// or tcp:// hosts).

Every construct takes ``(scope, id, *, keyword props)``, has safe and cheap
defaults, fails at synth time on a bad prop, and exposes what others need
(``security_group``, ``endpoint``, ``arn``...) plus its underlying resources.

    from spawnit.constructs import Network, LoadBalancer, AppFleet, Database

    net = Network(self, "net", name="shop")
    alb = LoadBalancer(self, "alb", name="shop", network=net)
    db = Database(self, "db", name="shop", network=net)
    fleet = AppFleet(self, "app", name="shop", network=net, load_balancer=alb, database=db)
"""

from ._common import SpawnitStack
from .app import AppRelease, AppSettings
from .backup import DatabaseBackup
from .cdn import StaticSite
from .containers import FargateService, SecretRef
from .data import Cache, Database
from .devbox import DevBox
from .kubernetes import KubernetesCluster, KubernetesWorkload
from .docker import DockerNetwork, DockerService, DockerVolume, HealthCheck, ImageBuildSpec, Mount, PortMapping, docker_provider
from .monitoring import Alerts
from .nat import NatInstance
from .network import Network
from .schedule import OffHours
from .security import Connectable, SecurityGroup
from .storage import MediaBucket
from .web import AppFleet, AppSecret, LoadBalancer

__all__ = [
    "Alerts",
    "DatabaseBackup",
    "FargateService",
    "KubernetesCluster",
    "KubernetesWorkload",
    "SecretRef",
    "StaticSite",
    "AppFleet",
    "AppRelease",
    "AppSecret",
    "AppSettings",
    "Cache",
    "Connectable",
    "Database",
    "DevBox",
    "DockerNetwork",
    "DockerService",
    "DockerVolume",
    "HealthCheck",
    "ImageBuildSpec",
    "Mount",
    "PortMapping",
    "docker_provider",
    "LoadBalancer",
    "MediaBucket",
    "NatInstance",
    "Network",
    "OffHours",
    "SecurityGroup",
    "SpawnitStack",
]
