"""A development box: the whole application on one spot instance, for a few dollars a month."""

from __future__ import annotations

from collections.abc import Sequence

from cdktf import TerraformResourceLifecycle
from cdktf_cdktf_provider_aws.ebs_volume import EbsVolume
from cdktf_cdktf_provider_aws.instance import (
    Instance,
    InstanceInstanceMarketOptions,
    InstanceInstanceMarketOptionsSpotOptions,
    InstanceMetadataOptions,
    InstanceRootBlockDevice,
)
from cdktf_cdktf_provider_aws.volume_attachment import VolumeAttachment
from constructs import Construct

from ..shared import user_data
from ._common import CONTAINER_HOST_HOP_LIMIT, InstanceRole, amazon_linux_2023_ami
from .app import AppRelease, AppSettings, app_user_data
from .network import Network
from .security import ANYWHERE

SSH_PORT = 22
HTTP_PORT = 80
DATA_DEVICE = "/dev/sdf"  # Amazon Linux names the attached EBS volume so (udev rules of amazon-ec2-utils)


class DevBox(Construct):
    """One spot instance in a public subnet running the app with PostgreSQL and Redis containers.

    HTTP is open to everyone; SSH only from ``ssh_cidrs`` (none by default:
    use SSM Session Manager, which the instance role allows). The same Ansible
    playbook and compose files as the fleet, plus the dev override. The spot
    request is persistent and stops (not terminates) on interruption, so the
    disk and its data survive. Reach it at :attr:`public_ip`.

    The database, Redis and the host's generated secrets live on :attr:`data_volume`, a volume of
    its own mounted at ``/srv/spawnit-data``: replacing the instance (new user data, a new type)
    keeps them. A new Amazon Linux release does not replace it (``ami`` changes are ignored):
    re-create it on purpose with ``tofu apply -replace``.
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
        data_volume_gb: int = 20,
        public_url: str | None = None,
    ) -> None:
        super().__init__(scope, id)
        if not 1 <= data_volume_gb <= 16384:
            raise ValueError(f"DevBox data_volume_gb: {data_volume_gb} is not allowed; allowed: 1 to 16384")
        for cidr in ssh_cidrs:
            if str(cidr) in (ANYWHERE, "::/0"):
                raise ValueError(f"DevBox ssh_cidrs: {str(cidr)!r} is not allowed; allowed: specific networks such as 203.0.113.7/32")
        self.name = name
        self.release = (release or AppRelease()).with_dev_services()
        self.security_group = network.security_group(
            self, "sg", name=f"{name}-devbox", description=f"{name}: HTTP from anywhere, SSH from listed CIDRs", subnet_ids=network.public_subnet_ids[:1]
        )
        self.security_group.allow_from_cidrs([ANYWHERE], port=HTTP_PORT, description="HTTP to the app")
        self.security_group.allow_from_cidrs([str(cidr) for cidr in ssh_cidrs], port=SSH_PORT, description="SSH from an allowed network")
        self.security_group.allow_to_internet(port=None, description="packages, images and AWS APIs")
        self.role = InstanceRole(self, "role", name=f"{name}-devbox")
        # Uploads are served by the box itself: their links use public_url, else the box's public address
        # read from the instance metadata at every boot (the boot script)
        self.user_data = app_user_data(self.release, region=network.region, settings=AppSettings(public_url=public_url or ""), data_device=DATA_DEVICE)
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
            user_data_base64=user_data(self.user_data, owner="DevBox"),
            user_data_replace_on_change=True,
            instance_market_options=market,
            metadata_options=InstanceMetadataOptions(http_endpoint="enabled", http_tokens="required", http_put_response_hop_limit=CONTAINER_HOST_HOP_LIMIT),
            monitoring=True,
            ebs_optimized=True,
            root_block_device=InstanceRootBlockDevice(volume_size=root_volume_gb, volume_type="gp3", encrypted=True, delete_on_termination=True),
            tags={"Name": f"{name}-devbox"},
            lifecycle=TerraformResourceLifecycle(ignore_changes=["ami"]),
        )
        self.data_volume = EbsVolume(
            self,
            "data",
            availability_zone=network.availability_zones[0],
            size=data_volume_gb,
            type="gp3",
            encrypted=True,
            tags={"Name": f"{name}-devbox-data"},
        )
        VolumeAttachment(
            self,
            "data-attachment",
            device_name=DATA_DEVICE,
            volume_id=self.data_volume.id,
            instance_id=self.instance.id,
            stop_instance_before_detaching=True,
        )
        self.public_ip = self.instance.public_ip
