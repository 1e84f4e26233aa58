"""Kubernetes on EKS: the cluster and its nodes (AWS provider), and a web workload on it (Kubernetes provider).

The two live in different stacks. A Kubernetes provider configured from a cluster
created in the same apply is a known Terraform pitfall (the provider is configured
before the cluster exists); :class:`KubernetesWorkload` instead reads the cluster by
name in a stack that depends on the cluster's stack, so the manifest orders them.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

from cdktf import Fn, TerraformStack
from cdktf_cdktf_provider_aws.cloudwatch_log_group import CloudwatchLogGroup
from cdktf_cdktf_provider_aws.data_aws_eks_cluster import DataAwsEksCluster
from cdktf_cdktf_provider_aws.data_aws_eks_cluster_auth import DataAwsEksClusterAuth
from cdktf_cdktf_provider_aws.eks_cluster import EksCluster, EksClusterAccessConfig, EksClusterEncryptionConfig, EksClusterEncryptionConfigProvider, EksClusterVpcConfig
from cdktf_cdktf_provider_aws.eks_node_group import EksNodeGroup, EksNodeGroupScalingConfig, EksNodeGroupUpdateConfig
from cdktf_cdktf_provider_aws.iam_openid_connect_provider import IamOpenidConnectProvider
from cdktf_cdktf_provider_aws.iam_role import IamRole
from cdktf_cdktf_provider_aws.iam_role_policy_attachment import IamRolePolicyAttachment
from constructs import Construct

from ._common import account_key, assume_role_policy
from .network import Network

# Managed policies EKS documents for its roles (EKS user guide, "Cluster IAM role" and "Node IAM role").
CLUSTER_POLICIES = ("arn:aws:iam::aws:policy/AmazonEKSClusterPolicy",)
NODE_POLICIES = (
    "arn:aws:iam::aws:policy/AmazonEKSWorkerNodePolicy",
    "arn:aws:iam::aws:policy/AmazonEKS_CNI_Policy",
    "arn:aws:iam::aws:policy/AmazonEC2ContainerRegistryReadOnly",
)
CONTROL_PLANE_LOGS = ("api", "audit", "authenticator", "controllerManager", "scheduler")
_T3 = re.compile(r"^t3a?\.(micro|small|medium|large|xlarge|2xlarge)$")
_VERSION = re.compile(r"^1\.(2[89]|3[0-9])$")
_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")


class KubernetesCluster(Construct):
    """An EKS cluster whose API and nodes live in the network's private app subnets.

    - control plane: version ``version``, all five log types to CloudWatch (kept
      ``log_retention_days``), Kubernetes secrets encrypted with a KMS key of its own
      (rotated yearly), access entries (API) with the creator as administrator, the
      the private endpoint always on, the public one only for ``public_access_cidrs`` (none by default:
      the API is reached from inside the VPC, or from the networks listed);
    - a managed node group of ``instance_type`` (t3 family) between ``nodes_min`` and
      ``nodes_max`` in the app subnets, rolling one node at a time;
    - the cluster's OIDC provider in IAM, for service-account roles (IRSA);
    - the public subnets tagged ``kubernetes.io/role/elb`` so that Services of type
      LoadBalancer find them (EKS user guide, "Subnet requirements").
    """

    def __init__(
        self,
        scope: Construct,
        id: str,
        *,
        name: str,
        network: Network,
        version: str = "1.33",
        instance_type: str = "t3.medium",
        nodes_min: int = 1,
        nodes_desired: int = 2,
        nodes_max: int = 3,
        capacity_type: str = "ON_DEMAND",
        node_disk_gb: int = 20,
        public_access_cidrs: Sequence[str] = (),
        log_retention_days: int = 30,
    ) -> None:
        super().__init__(scope, id)
        if not _VERSION.match(version):
            raise ValueError(f"KubernetesCluster version: {version!r} is not allowed; allowed: 1.28-1.39")
        if not _T3.match(instance_type):
            raise ValueError(f"KubernetesCluster instance_type: {instance_type!r} is not allowed; allowed: the t3 family, t3.micro to t3.2xlarge (or t3a)")
        if not 0 <= nodes_min <= nodes_desired <= nodes_max or nodes_max < 1:
            raise ValueError(f"KubernetesCluster nodes_min/desired/max: {nodes_min}/{nodes_desired}/{nodes_max} is not allowed; allowed: 0 <= min <= desired <= max, max >= 1")
        if capacity_type not in ("ON_DEMAND", "SPOT"):
            raise ValueError(f"KubernetesCluster capacity_type: {capacity_type!r} is not allowed; allowed: ON_DEMAND, SPOT")
        self.name = name
        self.instance_type, self.nodes_desired, self.capacity_type = instance_type, nodes_desired, capacity_type
        self.log_group = CloudwatchLogGroup(self, "logs", name=f"/aws/eks/{name}/cluster", retention_in_days=log_retention_days)
        self.secrets_key = account_key(self, "secrets-key", description=f"{name}: encrypts Kubernetes secrets (the cluster role uses it through IAM)")
        self.cluster_role = IamRole(self, "cluster-role", name=f"{name}-cluster", assume_role_policy=assume_role_policy("eks.amazonaws.com"))
        attachments = [
            IamRolePolicyAttachment(self, f"cluster-policy-{index}", role=self.cluster_role.name, policy_arn=arn)
            for index, arn in enumerate(CLUSTER_POLICIES)
        ]
        self.cluster = EksCluster(
            self,
            "cluster",
            name=name,
            version=version,
            role_arn=self.cluster_role.arn,
            vpc_config=EksClusterVpcConfig(
                subnet_ids=network.app_subnet_ids,
                endpoint_private_access=True,
                endpoint_public_access=bool(public_access_cidrs),
                public_access_cidrs=list(public_access_cidrs) or None,
            ),
            enabled_cluster_log_types=list(CONTROL_PLANE_LOGS),
            encryption_config=EksClusterEncryptionConfig(resources=["secrets"], provider=EksClusterEncryptionConfigProvider(key_arn=self.secrets_key.arn)),
            access_config=EksClusterAccessConfig(authentication_mode="API", bootstrap_cluster_creator_admin_permissions=True),
            depends_on=[self.log_group, *attachments],
            tags={"Name": name},
        )
        self.node_role = IamRole(self, "node-role", name=f"{name}-nodes", assume_role_policy=assume_role_policy("ec2.amazonaws.com"))
        node_attachments = [
            IamRolePolicyAttachment(self, f"node-policy-{index}", role=self.node_role.name, policy_arn=arn)
            for index, arn in enumerate(NODE_POLICIES)
        ]
        self.node_group = EksNodeGroup(
            self,
            "nodes",
            cluster_name=self.cluster.name,
            node_group_name=f"{name}-nodes",
            node_role_arn=self.node_role.arn,
            subnet_ids=network.app_subnet_ids,
            instance_types=[instance_type],
            capacity_type=capacity_type,
            ami_type="AL2023_x86_64_STANDARD",
            disk_size=node_disk_gb,
            scaling_config=EksNodeGroupScalingConfig(min_size=nodes_min, desired_size=nodes_desired, max_size=nodes_max),
            update_config=EksNodeGroupUpdateConfig(max_unavailable=1),
            depends_on=node_attachments,
            tags={"Name": f"{name}-nodes"},
        )
        issuer = self.cluster.identity.get(0).oidc.get(0).issuer
        self.oidc_provider = IamOpenidConnectProvider(self, "oidc", url=issuer, client_id_list=["sts.amazonaws.com"], tags={"Name": f"{name}-oidc"})
        network.tag_subnets("public", {"kubernetes.io/role/elb": "1"})  # the network owns its subnets' tags
        self.endpoint = self.cluster.endpoint
        self.arn = self.cluster.arn


def cluster_provider(scope: Construct, cluster_name: str):  # noqa: ANN201 - a KubernetesProvider
    """The stack's Kubernetes provider for ``cluster_name``, made once per stack and cluster (a provider is a
    stack-level singleton: two workloads on one cluster share it; a second cluster's gets an alias), configured
    from the cluster itself: endpoint, CA, a token from ``aws eks get-token``'s data source."""
    from cdktf_cdktf_provider_kubernetes.provider import KubernetesProvider

    stack = TerraformStack.of(scope)
    provider_id = f"kubernetes-{cluster_name}"
    existing = stack.node.try_find_child(provider_id)
    if existing is not None:
        return existing
    others = [child for child in stack.node.children if isinstance(child, KubernetesProvider)]
    cluster = DataAwsEksCluster(stack, f"{provider_id}-cluster", name=cluster_name)
    auth = DataAwsEksClusterAuth(stack, f"{provider_id}-auth", name=cluster_name)
    return KubernetesProvider(
        stack,
        provider_id,
        alias=cluster_name if others else None,
        host=cluster.endpoint,
        cluster_ca_certificate=Fn.base64decode(cluster.certificate_authority.get(0).data),
        token=auth.token,
    )


class KubernetesWorkload(Construct):
    """A stateless web workload on an EKS cluster read by name, in a namespace of its own (``namespace``,
    default: ``name``): a Deployment of ``replicas`` pods (non-root, read-only root filesystem, every
    capability dropped, no privilege escalation, requests and limits, readiness and liveness on
    ``health_path``, image pulled at every start) and a Service of type LoadBalancer (an AWS
    Network Load Balancer, internet-facing) on port 80.

    Put it in a stack that depends on the cluster's stack; it configures the stack's
    Kubernetes provider from the cluster (endpoint, CA, a token from ``aws eks get-token``'s
    data source), so nothing about the cluster is written by hand.
    """

    def __init__(
        self,
        scope: Construct,
        id: str,
        *,
        cluster_name: str,
        name: str,
        image: str,
        port: int = 3000,
        replicas: int = 2,
        environment: Mapping[str, str] | None = None,
        cpu_request: str = "100m",
        memory_request: str = "128Mi",
        cpu_limit: str = "500m",
        memory_limit: str = "256Mi",
        health_path: str = "/",
        namespace: str | None = None,
        writable_paths: Sequence[str] = ("/tmp",),
    ) -> None:
        super().__init__(scope, id)
        from cdktf_cdktf_provider_kubernetes.deployment_v1 import (
            DeploymentV1,
            DeploymentV1Metadata,
            DeploymentV1Spec,
            DeploymentV1SpecSelector,
            DeploymentV1SpecTemplate,
            DeploymentV1SpecTemplateMetadata,
            DeploymentV1SpecTemplateSpec,
            DeploymentV1SpecTemplateSpecContainer,
            DeploymentV1SpecTemplateSpecContainerEnv,
            DeploymentV1SpecTemplateSpecContainerLivenessProbe,
            DeploymentV1SpecTemplateSpecContainerLivenessProbeHttpGet,
            DeploymentV1SpecTemplateSpecContainerPort,
            DeploymentV1SpecTemplateSpecContainerReadinessProbe,
            DeploymentV1SpecTemplateSpecContainerReadinessProbeHttpGet,
            DeploymentV1SpecTemplateSpecContainerResources,
            DeploymentV1SpecTemplateSpecContainerSecurityContext,
            DeploymentV1SpecTemplateSpecSecurityContext,
        )
        from cdktf_cdktf_provider_kubernetes.deployment_v1 import DeploymentV1SpecTemplateSpecContainerSecurityContextCapabilities
        from cdktf_cdktf_provider_kubernetes.deployment_v1 import DeploymentV1SpecTemplateSpecContainerVolumeMount, DeploymentV1SpecTemplateSpecVolume
        from cdktf_cdktf_provider_kubernetes.deployment_v1 import DeploymentV1SpecTemplateSpecVolumeEmptyDir
        from cdktf_cdktf_provider_kubernetes.namespace_v1 import NamespaceV1, NamespaceV1Metadata
        from cdktf_cdktf_provider_kubernetes.service_v1 import ServiceV1, ServiceV1Metadata, ServiceV1Spec, ServiceV1SpecPort

        if not _LABEL.match(name):
            raise ValueError(f"KubernetesWorkload name: {name!r} is not allowed; allowed: a DNS label (lowercase letters, digits, '-')")
        if not 1 <= replicas <= 50:
            raise ValueError(f"KubernetesWorkload replicas: {replicas} is not allowed; allowed: 1-50")
        if not 1 <= port <= 65535:
            raise ValueError(f"KubernetesWorkload port: {port} is not allowed; allowed: 1-65535")
        if not health_path.startswith("/"):
            raise ValueError(f"KubernetesWorkload health_path: {health_path!r} is not allowed; allowed: a path starting with /")
        for path in writable_paths:
            if not path.startswith("/") or path == "/":
                raise ValueError(f"KubernetesWorkload writable_paths: {path!r} is not allowed; allowed: absolute folders below / (each an emptyDir)")
        self.provider = cluster_provider(self, cluster_name)
        labels = {"app.kubernetes.io/name": name, "app.kubernetes.io/managed-by": "spawnit"}
        self.namespace = NamespaceV1(self, "namespace", metadata=NamespaceV1Metadata(name=namespace or name, labels=labels), provider=self.provider)
        # the root filesystem is read-only: each writable folder (a framework's cache, /tmp) is an emptyDir
        volumes = {f"writable-{index}": path for index, path in enumerate(writable_paths)}
        namespace = self.namespace.metadata.name
        probe = {"path": health_path, "port": str(port)}
        self.deployment = DeploymentV1(
            self,
            "deployment",
            provider=self.provider,
            metadata=DeploymentV1Metadata(name=name, namespace=namespace, labels=labels),
            spec=DeploymentV1Spec(
                replicas=str(replicas),
                selector=DeploymentV1SpecSelector(match_labels={"app.kubernetes.io/name": name}),
                template=DeploymentV1SpecTemplate(
                    metadata=DeploymentV1SpecTemplateMetadata(labels=labels),
                    spec=DeploymentV1SpecTemplateSpec(
                        automount_service_account_token=False,
                        security_context=DeploymentV1SpecTemplateSpecSecurityContext(run_as_non_root=True, run_as_user="1000", fs_group="1000"),
                        volume=[DeploymentV1SpecTemplateSpecVolume(name=volume, empty_dir=DeploymentV1SpecTemplateSpecVolumeEmptyDir()) for volume in volumes] or None,
                        container=[
                            DeploymentV1SpecTemplateSpecContainer(
                                name=name,
                                image=image,
                                image_pull_policy="Always",
                                port=[DeploymentV1SpecTemplateSpecContainerPort(container_port=port, name="http")],
                                env=[DeploymentV1SpecTemplateSpecContainerEnv(name=key, value=value) for key, value in sorted((environment or {}).items())] or None,
                                volume_mount=[DeploymentV1SpecTemplateSpecContainerVolumeMount(name=volume, mount_path=path) for volume, path in volumes.items()] or None,
                                resources=DeploymentV1SpecTemplateSpecContainerResources(
                                    requests={"cpu": cpu_request, "memory": memory_request}, limits={"cpu": cpu_limit, "memory": memory_limit}
                                ),
                                readiness_probe=DeploymentV1SpecTemplateSpecContainerReadinessProbe(
                                    http_get=DeploymentV1SpecTemplateSpecContainerReadinessProbeHttpGet(**probe), period_seconds=10
                                ),
                                liveness_probe=DeploymentV1SpecTemplateSpecContainerLivenessProbe(
                                    http_get=DeploymentV1SpecTemplateSpecContainerLivenessProbeHttpGet(**probe), initial_delay_seconds=20, period_seconds=20
                                ),
                                security_context=DeploymentV1SpecTemplateSpecContainerSecurityContext(
                                    allow_privilege_escalation=False,
                                    read_only_root_filesystem=True,
                                    privileged=False,
                                    capabilities=DeploymentV1SpecTemplateSpecContainerSecurityContextCapabilities(drop=["ALL"]),
                                ),
                            )
                        ],
                    ),
                ),
            ),
        )
        self.service = ServiceV1(
            self,
            "service",
            provider=self.provider,
            metadata=ServiceV1Metadata(
                name=name,
                namespace=namespace,
                labels=labels,
                # The in-tree AWS cloud provider makes an internet-facing NLB for these annotations.
                annotations={"service.beta.kubernetes.io/aws-load-balancer-type": "nlb", "service.beta.kubernetes.io/aws-load-balancer-scheme": "internet-facing"},
            ),
            spec=ServiceV1Spec(
                type="LoadBalancer",
                selector={"app.kubernetes.io/name": name},
                port=[ServiceV1SpecPort(name="http", port=80, target_port=str(port), protocol="TCP")],
            ),
            wait_for_load_balancer=True,
        )
        self.replicas = replicas
