"""A development box: the whole application on one spot instance, for a few dollars a month."""

from __future__ import annotations

from collections.abc import Sequence

from cdktf_cdktf_provider_aws.instance import (
    Instance,
    InstanceInstanceMarketOptions,
    InstanceInstanceMarketOptionsSpotOptions,
    InstanceMetadataOptions,
    InstanceRootBlockDevice,
)
from constructs import Construct

from ._common import InstanceRole, amazon_linux_2023_ami, base64_text
from .app import AppRelease, AppSettings, app_user_data
from .network import Network
from .security import ANYWHERE

SSH_PORT = 22
HTTP_PORT = 80


class DevBox(Construct):
    """One spot instance in a public subnet running the app with PostgreSQL and Redis containers.

    HTTP is open to everyone; SSH only from ``ssh_cidrs`` (none by default:
    use SSM Session Manager, which the instance role allows). The same Ansible
    playbook and compose files as the fleet, plus the dev override. The spot
    request is persistent and stops (not terminates) on interruption, so the
    disk and its data survive. Reach it at :attr:`public_ip`.
    """

    def __init__(
        self,
        scope: Construct,
        id: str,
        *,
        name: str,
        network: Network,
        release: AppRelease | None = None,
        instance_type: str = "t3.small",
        ssh_cidrs: Sequence[str] = (),
        spot: bool = True,
        root_volume_gb: int = 30,
    ) -> None:
        super().__init__(scope, id)
        for cidr in ssh_cidrs:
            if str(cidr) in (ANYWHERE, "::/0"):
                raise ValueError(f"DevBox ssh_cidrs: {str(cidr)!r} is not allowed; allowed: specific networks such as 203.0.113.7/32")
        self.name = name
        self.release = (release or AppRelease()).with_dev_services()
        self.security_group = network.security_group(self, "sg", name=f"{name}-devbox", description=f"{name}: HTTP from anywhere, SSH from listed CIDRs")
        self.security_group.allow_from_cidrs([ANYWHERE], port=HTTP_PORT, description="HTTP to the app")
        self.security_group.allow_from_cidrs([str(cidr) for cidr in ssh_cidrs], port=SSH_PORT, description="SSH from an allowed network")
        self.security_group.allow_to_cidrs([ANYWHERE], port=None, description="packages, images and AWS APIs")
        self.role = InstanceRole(self, "role", name=f"{name}-devbox")
        self.user_data = app_user_data(self.release, region=network.region, settings=AppSettings())
        market = (
            InstanceInstanceMarketOptions(
                market_type="spot",
                spot_options=InstanceInstanceMarketOptionsSpotOptions(spot_instance_type="persistent", instance_interruption_behavior="stop"),
            )
            if spot
            else None
        )
        self.instance = Instance(
            self,
            "instance",
            ami=amazon_linux_2023_ami(self, instance_type),
            instance_type=instance_type,
            subnet_id=network.public_subnet_ids[0],
            associate_public_ip_address=True,
            vpc_security_group_ids=[self.security_group.id],
            iam_instance_profile=self.role.instance_profile.name,
            user_data_base64=base64_text(self.user_data),
            user_data_replace_on_change=True,
            instance_market_options=market,
            metadata_options=InstanceMetadataOptions(http_endpoint="enabled", http_tokens="required", http_put_response_hop_limit=1),
            monitoring=True,
            ebs_optimized=True,
            root_block_device=InstanceRootBlockDevice(volume_size=root_volume_gb, volume_type="gp3", encrypted=True, delete_on_termination=True),
            tags={"Name": f"{name}-devbox"},
        )
        self.public_ip = self.instance.public_ip
