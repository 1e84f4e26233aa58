"""NAT instance: the cheap, self-healing alternative to a NAT gateway (about 4 USD a month instead of 35)."""

from __future__ import annotations

import ipaddress

from cdktf_cdktf_provider_aws.autoscaling_group import AutoscalingGroup, AutoscalingGroupLaunchTemplate, AutoscalingGroupTag
from cdktf_cdktf_provider_aws.launch_template import (
    LaunchTemplate,
    LaunchTemplateBlockDeviceMappings,
    LaunchTemplateBlockDeviceMappingsEbs,
    LaunchTemplateIamInstanceProfile,
    LaunchTemplateMetadataOptions,
    LaunchTemplateNetworkInterfaces,
)
from cdktf_cdktf_provider_aws.eip import Eip
from cdktf_cdktf_provider_aws.network_interface import NetworkInterface
from cdktf_cdktf_provider_aws.subnet import Subnet
from constructs import Construct

from ..shared import user_data
from ._common import HOST_ONLY_HOP_LIMIT, InstanceRole, amazon_linux_2023_ami, asset, cloud_config, shell_assignments
from .security import SecurityGroup

NAT_INSTANCE_TYPES = ("t4g.nano", "t3.nano")
NAT_TAG = "spawnit:nat"  # the boot script finds its network interface by this tag


class NatInstance(Construct):
    """One availability zone's NAT: an Auto Scaling group of one instance behind a fixed network interface.

    Private route tables target :attr:`network_interface` (source/destination
    check off). The instance attaches it at boot and masquerades traffic out of
    its own default interface, so when the group replaces a failed instance the
    replacement takes the route over without any change to the route tables
    (the fck-nat pattern).

    ``elastic_ip``: an Elastic IP tagged for this NAT, which every instance of the group associates
    with its default interface at boot: the zone's egress address never changes (for allow-lists).
    """

    def __init__(
        self,
        scope: Construct,
        id: str,
        *,
        name: str,
        subnet: Subnet,
        subnet_cidr: str,
        vpc_cidr: str,
        security_group: SecurityGroup,
        region: str,
        instance_type: str = "t4g.nano",
        elastic_ip: bool = False,
    ) -> None:
        super().__init__(scope, id)
        if instance_type not in NAT_INSTANCE_TYPES:
            raise ValueError(f"NatInstance instance_type: {instance_type!r} is not allowed; allowed: {', '.join(NAT_INSTANCE_TYPES)}")
        self.network_interface = NetworkInterface(
            self,
            "eni",
            subnet_id=subnet.id,
            security_groups=[security_group.id],
            source_dest_check=False,
            description=f"{name}: route target of the private subnets",
            tags={"Name": name, NAT_TAG: name},
        )
        self.elastic_ip = Eip(self, "eip", domain="vpc", tags={"Name": name, NAT_TAG: name}) if elastic_ip else None
        eip_statements = (
            [
                {"Effect": "Allow", "Action": "ec2:DescribeAddresses", "Resource": "*"},
                {"Effect": "Allow", "Action": "ec2:AssociateAddress", "Resource": "*"},
            ]
            if elastic_ip
            else []
        )
        self.role = InstanceRole(
            self,
            "role",
            name=name,
            statements=[
                *eip_statements,
                {"Effect": "Allow", "Action": "ec2:DescribeNetworkInterfaces", "Resource": "*"},
                {
                    "Effect": "Allow",
                    "Action": "ec2:AttachNetworkInterface",
                    "Resource": [
                        f"arn:aws:ec2:{region}:*:network-interface/{self.network_interface.id}",
                        f"arn:aws:ec2:{region}:*:instance/*",
                    ],
                },
            ],
        )
        router = ipaddress.ip_network(subnet_cidr).network_address + 1
        conf = {"NAT_NAME": name, "VPC_CIDR": vpc_cidr, "SUBNET_ROUTER": str(router), "AWS_REGION": region}
        if elastic_ip:
            conf["NAT_EIP_TAGGED"] = "1"
        settings = shell_assignments(conf)
        self.user_data = cloud_config(files={"/opt/spawnit/nat.conf": settings}, boot_script=("spawnit-nat.sh", asset("scripts/nat-boot.sh")))
        self.launch_template = LaunchTemplate(
            self,
            "template",
            name=name,
            image_id=amazon_linux_2023_ami(self, instance_type),
            instance_type=instance_type,
            user_data=user_data(self.user_data, owner="NatInstance"),
            update_default_version=True,
            iam_instance_profile=LaunchTemplateIamInstanceProfile(arn=self.role.instance_profile.arn),
            metadata_options=LaunchTemplateMetadataOptions(http_endpoint="enabled", http_tokens="required", http_put_response_hop_limit=HOST_ONLY_HOP_LIMIT),
            network_interfaces=[
                LaunchTemplateNetworkInterfaces(
                    device_index=0, associate_public_ip_address="true", security_groups=[security_group.id], delete_on_termination="true"
                )
            ],
            block_device_mappings=[
                LaunchTemplateBlockDeviceMappings(
                    device_name="/dev/xvda", ebs=LaunchTemplateBlockDeviceMappingsEbs(volume_size=8, volume_type="gp3", encrypted="true")
                )
            ],
            tags={"Name": name},
        )
        self.auto_scaling_group = AutoscalingGroup(
            self,
            "group",
            name=name,
            min_size=1,
            max_size=1,
            desired_capacity=1,
            vpc_zone_identifier=[subnet.id],
            health_check_type="EC2",
            launch_template=AutoscalingGroupLaunchTemplate(id=self.launch_template.id, version="$Latest"),
            tag=[AutoscalingGroupTag(key="Name", value=name, propagate_at_launch=True)],
        )
