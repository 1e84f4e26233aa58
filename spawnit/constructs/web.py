"""The web tier: an Application Load Balancer and the Auto Scaling fleet behind it."""

from __future__ import annotations

import re
from collections.abc import Sequence

from cdktf import Fn, TerraformResourceLifecycle, Token
from cdktf_cdktf_provider_aws.autoscaling_group import (
    AutoscalingGroup,
    AutoscalingGroupInstanceRefresh,
    AutoscalingGroupInstanceRefreshPreferences,
    AutoscalingGroupLaunchTemplate,
    AutoscalingGroupTag,
)
from cdktf_cdktf_provider_aws.autoscaling_policy import (
    AutoscalingPolicy,
    AutoscalingPolicyTargetTrackingConfiguration,
    AutoscalingPolicyTargetTrackingConfigurationPredefinedMetricSpecification,
)
from cdktf_cdktf_provider_aws.data_aws_secretsmanager_random_password import DataAwsSecretsmanagerRandomPassword
from cdktf_cdktf_provider_aws.launch_template import (
    LaunchTemplate,
    LaunchTemplateBlockDeviceMappings,
    LaunchTemplateBlockDeviceMappingsEbs,
    LaunchTemplateIamInstanceProfile,
    LaunchTemplateMetadataOptions,
    LaunchTemplateMonitoring,
    LaunchTemplateTagSpecifications,
)
from cdktf_cdktf_provider_aws.lb import Lb
from cdktf_cdktf_provider_aws.lb_listener import LbListener, LbListenerDefaultAction, LbListenerDefaultActionRedirect
from cdktf_cdktf_provider_aws.lb_target_group import LbTargetGroup, LbTargetGroupHealthCheck
from cdktf_cdktf_provider_aws.secretsmanager_secret import SecretsmanagerSecret
from cdktf_cdktf_provider_aws.secretsmanager_secret_version import SecretsmanagerSecretVersion
from cdktf_cdktf_provider_aws.ssm_parameter import SsmParameter
from constructs import Construct

from ..shared import AMI_ID_PATTERN, user_data
from ._common import CONTAINER_HOST_HOP_LIMIT, InstanceRole, amazon_linux_2023_ami, shell_assignments
from .app import AppRelease, AppSettings, app_user_data
from .data import Cache, Database
from .network import Network
from .security import ANYWHERE, CidrList, Connectable
from .storage import MediaStore

HTTP_PORT = 80
HTTPS_PORT = 443
# TLS 1.3 with 1.2 as the floor, the ALB policy AWS recommends (ELB user guide, "Security policies").
TLS_POLICY = "ELBSecurityPolicy-TLS13-1-2-2021-06"


class LoadBalancer(Construct):
    """Internet-facing ALB in the public subnets, forwarding to one target group.

    With ``certificate_arn``: an HTTPS listener on 443 (TLS 1.3 and 1.2 only, ``ssl_policy``) forwards,
    and the HTTP listener on 80 answers a permanent redirect to HTTPS. Without: HTTP on 80 forwards.
    Both ports admit ``allowed_cidrs`` only (everyone by default; Cloudflare's ranges, a
    :class:`CidrList`, when the site is behind it). Targets are instances (``target_type="ip"``:
    Fargate tasks) answering ``/health`` on ``target_port``: 30 s interval, 2 checks to become
    healthy, 2 to become unhealthy.
    """

    def __init__(
        self,
        scope: Construct,
        id: str,
        *,
        name: str,
        network: Network,
        allowed_cidrs: Sequence[str] | CidrList = (ANYWHERE,),
        health_check_path: str = "/health",
        deletion_protection: bool = False,
        target_type: str = "instance",
        target_port: int = HTTP_PORT,
        certificate_arn: str | None = None,
        ssl_policy: str = TLS_POLICY,
    ) -> None:
        super().__init__(scope, id)
        if target_type not in ("instance", "ip"):
            raise ValueError(f"LoadBalancer target_type: {target_type!r} is not allowed; allowed: instance (EC2 fleets), ip (Fargate tasks)")
        if not 1 <= target_port <= 65535:
            raise ValueError(f"LoadBalancer target_port: {target_port} is not allowed; allowed: 1-65535")
        if not isinstance(allowed_cidrs, CidrList) and not allowed_cidrs:
            raise ValueError("LoadBalancer allowed_cidrs: [] is not allowed; allowed: one or more CIDRs (e.g. 0.0.0.0/0)")
        if not ssl_policy.startswith("ELBSecurityPolicy-TLS13-"):
            raise ValueError(f"LoadBalancer ssl_policy: {ssl_policy!r} is not allowed; allowed: an ELBSecurityPolicy-TLS13-* policy (TLS 1.3, and 1.2 at most below it)")
        if not health_check_path.startswith("/"):
            raise ValueError(f"LoadBalancer health_check_path: {health_check_path!r} is not allowed; allowed: a path starting with /")
        self.name = name
        self.https = certificate_arn is not None
        self.security_group = network.security_group(
            self, "sg", name=f"{name}-alb", description=f"{name}: web traffic from allowed CIDRs", subnet_ids=network.public_subnet_ids
        )
        self.security_group.allow_from_cidrs(allowed_cidrs, port=HTTP_PORT, description="HTTP from allowed CIDRs" + (" (redirected to HTTPS)" if self.https else ""))
        if self.https:
            self.security_group.allow_from_cidrs(allowed_cidrs, port=HTTPS_PORT, description="HTTPS from allowed CIDRs")
        self.load_balancer = Lb(
            self,
            "alb",
            name=f"{name}-alb"[:32],
            load_balancer_type="application",
            internal=False,
            security_groups=[self.security_group.id],
            subnets=network.public_subnet_ids,
            drop_invalid_header_fields=True,
            enable_deletion_protection=deletion_protection,
            tags={"Name": f"{name}-alb"},
        )
        self.target_group = LbTargetGroup(
            self,
            "targets",
            name=f"{name}-app"[:32],
            port=target_port,
            protocol="HTTP",
            target_type=target_type,
            vpc_id=network.vpc_id,
            deregistration_delay="30",
            health_check=LbTargetGroupHealthCheck(
                enabled=True,
                path=health_check_path,
                port="traffic-port",
                protocol="HTTP",
                matcher="200",
                interval=30,
                timeout=5,
                healthy_threshold=2,
                unhealthy_threshold=2,
            ),
            tags={"Name": f"{name}-app"},
        )
        forward = LbListenerDefaultAction(type="forward", target_group_arn=self.target_group.arn)
        if self.https:
            self.listener = LbListener(
                self,
                "https",
                load_balancer_arn=self.load_balancer.arn,
                port=HTTPS_PORT,
                protocol="HTTPS",
                ssl_policy=ssl_policy,
                certificate_arn=certificate_arn,
                default_action=[forward],
            )
            # ALB redirect actions: the host, path and query stay as they were (ELB user guide, "Listener rules").
            redirect = LbListenerDefaultActionRedirect(protocol="HTTPS", port=str(HTTPS_PORT), status_code="HTTP_301")
            self.http_listener = LbListener(
                self,
                "http",
                load_balancer_arn=self.load_balancer.arn,
                port=HTTP_PORT,
                protocol="HTTP",
                default_action=[LbListenerDefaultAction(type="redirect", redirect=redirect)],
            )
        else:
            self.listener = self.http_listener = LbListener(
                self, "http", load_balancer_arn=self.load_balancer.arn, port=HTTP_PORT, protocol="HTTP", default_action=[forward]
            )
        self.dns_name = self.load_balancer.dns_name
        self.arn_suffix = self.load_balancer.arn_suffix
        self.target_group_arn_suffix = self.target_group.arn_suffix
        self.target_port = target_port

    def forward_to(self, fleet: Connectable) -> None:
        """Open the path from the load balancer to ``fleet`` on the targets' port (both groups' rules)."""
        self.security_group.allow_to(fleet, port=self.target_port)



class AppFleet(Construct):
    """Auto Scaling group of application instances behind ``load_balancer``, in the app subnets.

    Each instance (Amazon Linux 2023, IMDSv2 only, encrypted gp3 root) boots
    with cloud-init: Ansible prepares Docker, then the compose stack of
    ``release`` starts with a ``.env`` built at boot (database credentials read
    from Secrets Manager, never written into the template). The group keeps
    ``min_size`` to ``max_size`` instances, replaces any that fail the load
    balancer's health check after a 900 s grace (a first boot installs Ansible, Docker and
    Compose and pulls the images through a small NAT instance), tracks 60 % average CPU, and
    rolls new launch template versions out keeping 50 % healthy. The AMI changes only when
    ``ami_id`` says so (unset: the latest Amazon Linux 2023 at creation, then kept).
    """

    def __init__(
        self,
        scope: Construct,
        id: str,
        *,
        name: str,
        network: Network,
        load_balancer: LoadBalancer,
        database: Database | None = None,
        cache: Cache | None = None,
        media: MediaStore | None = None,
        release: AppRelease | None = None,
        instance_type: str = "t3.small",
        min_size: int = 2,
        max_size: int = 4,
        desired_capacity: int = 2,
        target_cpu_percent: float = 60.0,
        root_volume_gb: int = 20,
        health_check_grace_seconds: int = 900,
        ami_id: str | None = None,
    ) -> None:
        super().__init__(scope, id)
        if not 300 <= health_check_grace_seconds <= 3600:
            raise ValueError(
                f"AppFleet health_check_grace_seconds: {health_check_grace_seconds} is not allowed; allowed: 300 to 3600 "
                "(a first boot installs Ansible, Docker and the images through a small NAT)"
            )
        if ami_id is not None and not re.fullmatch(AMI_ID_PATTERN, ami_id):
            raise ValueError(f"AppFleet ami_id: {ami_id!r} is not allowed; allowed: an AMI id such as ami-0123456789abcdef0, or None")
        if not 0 <= min_size <= desired_capacity <= max_size:
            raise ValueError(
                f"AppFleet desired_capacity: {desired_capacity} is not allowed with min_size={min_size}, max_size={max_size}; "
                "allowed: 0 <= min_size <= desired_capacity <= max_size"
            )
        if not 10 <= target_cpu_percent <= 90:
            raise ValueError(f"AppFleet target_cpu_percent: {target_cpu_percent} is not allowed; allowed: 10 to 90")
        self.name = name
        self.min_size, self.max_size, self.desired_capacity = min_size, max_size, desired_capacity
        self.release = release or AppRelease()

        self.security_group = network.security_group(
            self, "sg", name=f"{name}-app", description=f"{name}: app instances", subnet_ids=network.app_subnet_ids
        )
        self.security_group.allow_to_internet(port=None, description="packages, images and AWS APIs through the NAT")
        load_balancer.forward_to(self)
        for tier in (database, cache):
            if tier is not None:
                tier.allow_from(self)

        self.app_secret = AppSecret(self, "secrets", name=f"{name}-app")
        statements: list[dict[str, object]] = [
            {"Effect": "Allow", "Action": "secretsmanager:GetSecretValue", "Resource": [self.app_secret.arn]},
        ]
        if database is not None:
            statements.append({"Effect": "Allow", "Action": "secretsmanager:GetSecretValue", "Resource": [database.secret_arn]})
        if media is not None:
            statements += media.read_write_statements
        settings = AppSettings(
            db_secret_arn=database.secret_arn if database else "",
            db_host=database.endpoint if database else "",
            db_name=database.database_name if database else "medusa",
            redis_url=cache.url if cache else "redis://redis:6379",
            app_secret_arn=self.app_secret.arn,
            s3=media.app_settings if media else AppSettings().s3,
        )
        self.settings = SsmParameter(
            self, "settings", name=f"/{name}/app/settings", type="String", value=shell_assignments(settings.as_shell()),
            description=f"{name}: endpoints and secret ARNs the app hosts read at boot",
        )
        statements.append({"Effect": "Allow", "Action": "ssm:GetParameter", "Resource": [self.settings.arn]})
        self.role = InstanceRole(self, "role", name=f"{name}-app", statements=statements)
        self.user_data = app_user_data(self.release, region=network.region, settings_parameter=f"/{name}/app/settings")
        self.launch_template = LaunchTemplate(
            self,
            "template",
            name=f"{name}-app",
            image_id=ami_id or amazon_linux_2023_ami(self, instance_type),
            instance_type=instance_type,
            vpc_security_group_ids=[self.security_group.id],
            iam_instance_profile=LaunchTemplateIamInstanceProfile(arn=self.role.instance_profile.arn),
            user_data=user_data(self.user_data, owner="AppFleet"),
            update_default_version=True,
            metadata_options=LaunchTemplateMetadataOptions(
                http_endpoint="enabled", http_tokens="required", http_put_response_hop_limit=CONTAINER_HOST_HOP_LIMIT
            ),
            monitoring=LaunchTemplateMonitoring(enabled=True),
            block_device_mappings=[
                LaunchTemplateBlockDeviceMappings(
                    device_name="/dev/xvda",
                    ebs=LaunchTemplateBlockDeviceMappingsEbs(volume_size=root_volume_gb, volume_type="gp3", encrypted="true", delete_on_termination="true"),
                )
            ],
            tag_specifications=[
                LaunchTemplateTagSpecifications(resource_type=kind, tags={"Name": f"{name}-app"}) for kind in ("instance", "volume")
            ],
            # Without an explicit ami_id the fleet keeps the AMI it was created with: a new Amazon Linux
            # release must not roll every instance on the next unrelated apply. Setting ami_id rolls on purpose.
            lifecycle=None if ami_id else TerraformResourceLifecycle(ignore_changes=["image_id"]),
        )
        self.auto_scaling_group = AutoscalingGroup(
            self,
            "group",
            name=f"{name}-app",
            min_size=min_size,
            max_size=max_size,
            desired_capacity=desired_capacity,
            vpc_zone_identifier=network.app_subnet_ids,
            target_group_arns=[load_balancer.target_group.arn],
            health_check_type="ELB",
            health_check_grace_period=health_check_grace_seconds,
            launch_template=AutoscalingGroupLaunchTemplate(id=self.launch_template.id, version=Token.as_string(self.launch_template.latest_version)),
            instance_refresh=AutoscalingGroupInstanceRefresh(
                strategy="Rolling",
                preferences=AutoscalingGroupInstanceRefreshPreferences(min_healthy_percentage=50, instance_warmup=str(health_check_grace_seconds)),
            ),
            enabled_metrics=["GroupDesiredCapacity", "GroupInServiceInstances", "GroupTotalInstances"],
            tag=[AutoscalingGroupTag(key="Name", value=f"{name}-app", propagate_at_launch=True)],
            # Scaling policies and schedules move the capacity; a plan must not undo them.
            lifecycle=TerraformResourceLifecycle(ignore_changes=["desired_capacity"]),
        )
        self.auto_scaling_group_name = self.auto_scaling_group.name
        self.scaling_policy = AutoscalingPolicy(
            self,
            "cpu-target",
            name=f"{name}-cpu-{int(target_cpu_percent)}",
            autoscaling_group_name=self.auto_scaling_group.name,
            policy_type="TargetTrackingScaling",
            target_tracking_configuration=AutoscalingPolicyTargetTrackingConfiguration(
                predefined_metric_specification=AutoscalingPolicyTargetTrackingConfigurationPredefinedMetricSpecification(
                    predefined_metric_type="ASGAverageCPUUtilization"
                ),
                target_value=target_cpu_percent,
            ),
        )

    def ignore_capacity_changes(self) -> None:
        """Also leave min and max sizes to whoever schedules them (see :class:`OffHours`)."""
        self.auto_scaling_group.lifecycle = TerraformResourceLifecycle(ignore_changes=["desired_capacity", "min_size", "max_size"])


class AppSecret(Construct):
    """Secrets Manager secret with the application's own secrets (JWT and cookie signing keys),
    generated by AWS once: the values live in Secrets Manager and the state, never in code or JSON."""

    def __init__(self, scope: Construct, id: str, *, name: str) -> None:
        super().__init__(scope, id)
        self.secret = SecretsmanagerSecret(self, "secret", name=name, description=f"{name}: JWT and cookie secrets", recovery_window_in_days=7)
        keys = {
            key: DataAwsSecretsmanagerRandomPassword(self, f"{key}-value", password_length=64, exclude_punctuation=True).random_password
            for key in ("jwt_secret", "cookie_secret")
        }
        SecretsmanagerSecretVersion(
            self,
            "value",
            secret_id=self.secret.id,
            secret_string=Fn.jsonencode(keys),
            # The generator gives new values on every read: keep the first ones.
            lifecycle=TerraformResourceLifecycle(ignore_changes=["secret_string"]),
        )
        self.arn = self.secret.arn


__all__ = ["AppFleet", "AppSecret", "LoadBalancer"]
