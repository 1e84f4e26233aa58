"""Containers on ECS Fargate: one service of tasks behind a :class:`LoadBalancer`, scaled on CPU."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from cdktf import Fn, TerraformResourceLifecycle
from cdktf_cdktf_provider_aws.appautoscaling_policy import (
    AppautoscalingPolicy,
    AppautoscalingPolicyTargetTrackingScalingPolicyConfiguration,
    AppautoscalingPolicyTargetTrackingScalingPolicyConfigurationPredefinedMetricSpecification,
)
from cdktf_cdktf_provider_aws.appautoscaling_target import AppautoscalingTarget
from cdktf_cdktf_provider_aws.cloudwatch_log_group import CloudwatchLogGroup
from cdktf_cdktf_provider_aws.ecs_cluster import EcsCluster, EcsClusterSetting
from cdktf_cdktf_provider_aws.ecs_service import (
    EcsService,
    EcsServiceDeploymentCircuitBreaker,
    EcsServiceLoadBalancer,
    EcsServiceNetworkConfiguration,
)
from cdktf_cdktf_provider_aws.ecs_task_definition import EcsTaskDefinition, EcsTaskDefinitionRuntimePlatform
from cdktf_cdktf_provider_aws.iam_role import IamRole
from cdktf_cdktf_provider_aws.iam_role_policy import IamRolePolicy
from constructs import Construct

from ._common import assume_role_policy, policy_document
from ..shared import fargate_size_problem
from .network import Network
from .web import LoadBalancer

# Retention periods CloudWatch Logs accepts (PutRetentionPolicy), in days.
LOG_RETENTION_DAYS = (1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653)
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


@dataclass(frozen=True)
class SecretRef:
    """A value kept in Secrets Manager, given to the container as an environment variable at start:
    ``arn`` of the secret, and ``json_key`` when the secret is a JSON document (RDS's managed
    secret holds ``username`` and ``password``)."""

    arn: str
    json_key: str | None = None

    @property
    def value_from(self) -> str:
        # ECS's reference syntax: arn:aws:secretsmanager:region:account:secret:name:json-key:version-stage:version-id
        return f"{self.arn}:{self.json_key}::" if self.json_key else self.arn


def check_fargate_size(cpu: int, memory_mib: int) -> None:
    problem = fargate_size_problem(cpu, memory_mib)
    if problem:
        raise ValueError(f"FargateService {problem[0]}: {problem[1]}")


class FargateService(Construct):
    """An ECS service of Fargate tasks in the private app subnets, registered with ``load_balancer``.

    One container (``image``, ``port``), ``cpu``/``memory_mib`` checked against the pairs
    Fargate accepts, logs to a CloudWatch group kept ``log_retention_days``, target
    tracking on average CPU between ``min_tasks`` and ``max_tasks``, a deployment circuit
    breaker that rolls back a release whose tasks never get healthy.

    Two roles, each with only what it needs: the *execution* role pulls the image,
    writes the logs and reads exactly the ``secrets`` given (Secrets Manager, injected
    as environment variables at start, never in the JSON); the *task* role, the
    application's own, starts empty and gains permissions through grants such as
    ``bucket.grant_read_write(service)``. Reachable by others as a ``Connectable``
    (``database.allow_from(service)``).
    """

    def __init__(
        self,
        scope: Construct,
        id: str,
        *,
        name: str,
        network: Network,
        load_balancer: LoadBalancer,
        image: str,
        port: int = 8000,
        cpu: int = 256,
        memory_mib: int = 512,
        environment: Mapping[str, str] | None = None,
        secrets: Mapping[str, SecretRef] | None = None,
        min_tasks: int = 1,
        max_tasks: int = 4,
        target_cpu_percent: int = 60,
        log_retention_days: int = 30,
        health_check_grace_seconds: int = 60,
        architecture: str = "X86_64",
    ) -> None:
        super().__init__(scope, id)
        check_fargate_size(cpu, memory_mib)
        if not 1 <= min_tasks <= max_tasks:
            raise ValueError(f"FargateService min_tasks/max_tasks: {min_tasks}/{max_tasks} is not allowed; allowed: 1 <= min_tasks <= max_tasks")
        if log_retention_days not in LOG_RETENTION_DAYS:
            raise ValueError(f"FargateService log_retention_days: {log_retention_days} is not allowed; allowed: {', '.join(map(str, LOG_RETENTION_DAYS))}")
        if not 10 <= target_cpu_percent <= 90:
            raise ValueError(f"FargateService target_cpu_percent: {target_cpu_percent} is not allowed; allowed: 10-90")
        if port != load_balancer.target_port:
            raise ValueError(f"FargateService port: {port} is not allowed; allowed: {load_balancer.target_port}, the load balancer's target_port")
        if architecture not in ("X86_64", "ARM64"):
            raise ValueError(f"FargateService architecture: {architecture!r} is not allowed; allowed: X86_64, ARM64")
        for key in [*(environment or {}), *(secrets or {})]:
            if not _ENV_NAME.match(key):
                raise ValueError(f"FargateService environment: {key!r} is not allowed; allowed: a variable name ([A-Za-z_][A-Za-z0-9_]*)")
        secrets = dict(secrets or {})
        region = network.region
        self.name = name
        self.cpu, self.memory_mib, self.min_tasks, self.max_tasks = cpu, memory_mib, min_tasks, max_tasks
        self.security_group = network.security_group(
            self, "sg", name=f"{name}-tasks", description=f"{name}: Fargate tasks", subnet_ids=network.app_subnet_ids
        )
        load_balancer.forward_to(self)
        self.security_group.allow_to_internet(port=443, description="HTTPS out: image registry, AWS APIs")
        self.log_group = CloudwatchLogGroup(self, "logs", name=f"/ecs/{name}", retention_in_days=log_retention_days)
        self.cluster = EcsCluster(self, "cluster", name=name, setting=[EcsClusterSetting(name="containerInsights", value="enabled")])

        self.execution_role = IamRole(self, "execution-role", name=f"{name}-execution", assume_role_policy=assume_role_policy("ecs-tasks.amazonaws.com"))
        execution = [
            {"Effect": "Allow", "Action": ["ecr:GetAuthorizationToken"], "Resource": "*"},  # not scoped by resource (ECR API reference)
            {"Effect": "Allow", "Action": ["ecr:BatchCheckLayerAvailability", "ecr:GetDownloadUrlForLayer", "ecr:BatchGetImage"], "Resource": "arn:aws:ecr:*:*:repository/*"},
            {"Effect": "Allow", "Action": ["logs:CreateLogStream", "logs:PutLogEvents"], "Resource": f"{self.log_group.arn}:*"},
        ]
        if secrets:
            execution.append({"Effect": "Allow", "Action": ["secretsmanager:GetSecretValue"], "Resource": sorted({ref.arn for ref in secrets.values()})})
        IamRolePolicy(self, "execution-policy", name=f"{name}-execution", role=self.execution_role.id, policy=policy_document(*execution))
        self.task_role = IamRole(self, "task-role", name=f"{name}-task", assume_role_policy=assume_role_policy("ecs-tasks.amazonaws.com"))
        self._grants = 0

        container: dict[str, Any] = {
            "name": name,
            "image": image,
            "essential": True,
            "portMappings": [{"containerPort": port, "protocol": "tcp"}],
            "environment": [{"name": key, "value": value} for key, value in sorted((environment or {}).items())],
            "secrets": [{"name": key, "valueFrom": ref.value_from} for key, ref in sorted(secrets.items())],
            "readonlyRootFilesystem": True,
            "logConfiguration": {
                "logDriver": "awslogs",
                "options": {"awslogs-group": self.log_group.name, "awslogs-region": region, "awslogs-stream-prefix": name},
            },
        }
        self.task_definition = EcsTaskDefinition(
            self,
            "task",
            family=name,
            requires_compatibilities=["FARGATE"],
            network_mode="awsvpc",
            cpu=str(cpu),
            memory=str(memory_mib),
            execution_role_arn=self.execution_role.arn,
            task_role_arn=self.task_role.arn,
            runtime_platform=EcsTaskDefinitionRuntimePlatform(operating_system_family="LINUX", cpu_architecture=architecture),
            container_definitions=Fn.jsonencode([container]),
        )
        self.service = EcsService(
            self,
            "service",
            name=name,
            cluster=self.cluster.id,
            task_definition=self.task_definition.arn,
            launch_type="FARGATE",
            desired_count=min_tasks,
            network_configuration=EcsServiceNetworkConfiguration(
                subnets=network.app_subnet_ids, security_groups=[self.security_group.id], assign_public_ip=False
            ),
            load_balancer=[EcsServiceLoadBalancer(target_group_arn=load_balancer.target_group.arn, container_name=name, container_port=port)],
            health_check_grace_period_seconds=health_check_grace_seconds,
            deployment_circuit_breaker=EcsServiceDeploymentCircuitBreaker(enable=True, rollback=True),
            propagate_tags="SERVICE",
            enable_ecs_managed_tags=True,
            lifecycle=TerraformResourceLifecycle(ignore_changes=["desired_count"]),  # the scaling policy owns it
            depends_on=[load_balancer.listener],
        )
        target = AppautoscalingTarget(
            self,
            "scaling-target",
            service_namespace="ecs",
            scalable_dimension="ecs:service:DesiredCount",
            resource_id=f"service/{name}/{name}",
            min_capacity=min_tasks,
            max_capacity=max_tasks,
            depends_on=[self.service],
        )
        AppautoscalingPolicy(
            self,
            "cpu-tracking",
            name=f"{name}-cpu",
            policy_type="TargetTrackingScaling",
            service_namespace=target.service_namespace,
            scalable_dimension=target.scalable_dimension,
            resource_id=target.resource_id,
            target_tracking_scaling_policy_configuration=AppautoscalingPolicyTargetTrackingScalingPolicyConfiguration(
                target_value=target_cpu_percent,
                predefined_metric_specification=AppautoscalingPolicyTargetTrackingScalingPolicyConfigurationPredefinedMetricSpecification(
                    predefined_metric_type="ECSServiceAverageCPUUtilization"
                ),
                scale_in_cooldown=300,
                scale_out_cooldown=60,
            ),
        )

    def grant(self, statements: Sequence[Mapping[str, Any]], *, purpose: str) -> None:
        """Add ``statements`` to the task role (what the application itself may do)."""
        self._grants += 1
        IamRolePolicy(self, f"grant-{self._grants}", name=f"{self.name}-{purpose}", role=self.task_role.id, policy=policy_document(*statements))
