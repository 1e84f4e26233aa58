"""The VPC over two availability zones, with public, application and data subnets."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Literal

from cdktf_cdktf_provider_aws.default_security_group import DefaultSecurityGroup
from cdktf_cdktf_provider_aws.eip import Eip
from cdktf_cdktf_provider_aws.internet_gateway import InternetGateway
from cdktf_cdktf_provider_aws.nat_gateway import NatGateway
from cdktf_cdktf_provider_aws.route import Route
from cdktf_cdktf_provider_aws.route_table import RouteTable
from cdktf_cdktf_provider_aws.route_table_association import RouteTableAssociation
from cdktf_cdktf_provider_aws.subnet import Subnet
from cdktf_cdktf_provider_aws.vpc import Vpc
from constructs import Construct

from ..layout import check_subnet_layout
from .nat import NatInstance
from .security import ANYWHERE, SecurityGroup

NatMode = Literal["instance", "gateway", "none"]
NAT_MODES = ("instance", "gateway", "none")
TIERS = ("public", "app", "data")


class Network(Construct):
    """VPC ``cidr`` over ``availability_zones`` with three subnet tiers.

    - public: one subnet per zone, routed to the internet gateway (load balancer, NAT, dev box);
    - app: one subnet per zone, each zone's route table sending 0.0.0.0/0 to the NAT of the
      same zone (``nat="instance"``, the default, or ``"gateway"``; ``"none"`` leaves them isolated);
    - data: one subnet per zone with no route out of the VPC (databases, caches).
    """

    def __init__(
        self,
        scope: Construct,
        id: str,
        *,
        name: str,
        region: str = "eu-west-3",
        cidr: str = "10.0.0.0/16",
        availability_zones: Sequence[str] = ("eu-west-3a", "eu-west-3b"),
        public_subnet_cidrs: Sequence[str] = ("10.0.1.0/24", "10.0.2.0/24"),
        app_subnet_cidrs: Sequence[str] = ("10.0.10.0/24", "10.0.20.0/24"),
        data_subnet_cidrs: Sequence[str] = ("10.0.100.0/24", "10.0.200.0/24"),
        nat: NatMode = "instance",
        nat_instance_type: str = "t4g.nano",
        nat_elastic_ip: bool = False,
    ) -> None:
        super().__init__(scope, id)
        try:
            check_subnet_layout(cidr, availability_zones, public=public_subnet_cidrs, app=app_subnet_cidrs, data=data_subnet_cidrs)
        except ValueError as error:
            raise ValueError(f"Network {error}") from None
        if nat not in NAT_MODES:
            raise ValueError(f"Network nat: {nat!r} is not allowed; allowed: {', '.join(NAT_MODES)}")
        self.name = name
        self.cidr = str(cidr)
        self.region = region
        self.availability_zones = tuple(availability_zones)
        self.vpc = Vpc(self, "vpc", cidr_block=self.cidr, enable_dns_hostnames=True, enable_dns_support=True, tags={"Name": name})
        self.vpc_id = self.vpc.id
        # The VPC's default group gets no rule at all: nothing can use it by accident.
        self.default_security_group = DefaultSecurityGroup(self, "default-sg", vpc_id=self.vpc.id, tags={"Name": f"{name}-default-deny"})
        self.internet_gateway = InternetGateway(self, "igw", vpc_id=self.vpc.id, tags={"Name": name})

        self._subnet_tags: dict[str, dict[str, str]] = {}
        self._tiers: dict[str, list[Subnet]] = {}
        self.public_subnets = self._subnets("public", public_subnet_cidrs)
        self.app_subnets = self._subnets("app", app_subnet_cidrs)
        self.data_subnets = self._subnets("data", data_subnet_cidrs)

        public_routes = self._route_table("public", self.public_subnets)
        Route(self, "public-default", route_table_id=public_routes.id, destination_cidr_block=ANYWHERE, gateway_id=self.internet_gateway.id)

        self.nat_instances: list[NatInstance] = []
        self.nat_gateways: list[NatGateway] = []
        if nat == "instance":
            self.nat_security_group = self.security_group(
                self, "nat-sg", name=f"{name}-nat", description="NAT instances: all traffic from the VPC", subnet_ids=self.public_subnet_ids
            )
            self.nat_security_group.allow_from_cidrs([self.cidr], port=None, description="everything from inside the VPC", name="the VPC")
            self.nat_security_group.allow_to_internet(port=None, description="NAT out to the internet")
        self.app_route_tables: list[RouteTable] = []
        for index, (zone, subnet) in enumerate(zip(self.availability_zones, self.app_subnets, strict=True)):
            routes = self._route_table(f"app-{zone}", [subnet])
            self.app_route_tables.append(routes)
            if nat == "instance":
                nat_instance = NatInstance(
                    self,
                    f"nat-{zone}",
                    name=f"{name}-nat-{zone}",
                    subnet=self.public_subnets[index],
                    subnet_cidr=str(public_subnet_cidrs[index]),
                    vpc_cidr=self.cidr,
                    security_group=self.nat_security_group,
                    region=region,
                    instance_type=nat_instance_type,
                    elastic_ip=nat_elastic_ip,
                )
                self.nat_instances.append(nat_instance)
                Route(self, f"app-{zone}-default", route_table_id=routes.id, destination_cidr_block=ANYWHERE,
                      network_interface_id=nat_instance.network_interface.id)
            elif nat == "gateway":
                address = Eip(self, f"nat-gw-{zone}-ip", domain="vpc", tags={"Name": f"{name}-nat-{zone}"})
                gateway = NatGateway(self, f"nat-gw-{zone}", allocation_id=address.id, subnet_id=self.public_subnets[index].id,
                                     tags={"Name": f"{name}-nat-{zone}"}, depends_on=[self.internet_gateway])
                self.nat_gateways.append(gateway)
                Route(self, f"app-{zone}-default", route_table_id=routes.id, destination_cidr_block=ANYWHERE, nat_gateway_id=gateway.id)
        self.data_route_table = self._route_table("data", self.data_subnets)

    @property
    def public_subnet_ids(self) -> list[str]:
        return [subnet.id for subnet in self.public_subnets]

    @property
    def app_subnet_ids(self) -> list[str]:
        return [subnet.id for subnet in self.app_subnets]

    @property
    def data_subnet_ids(self) -> list[str]:
        return [subnet.id for subnet in self.data_subnets]

    def security_group(self, scope: Construct, id: str, *, name: str, description: str, subnet_ids: Sequence[str] = ()) -> SecurityGroup:
        """A new security group in this VPC, with no rule yet, for members in ``subnet_ids``."""
        return SecurityGroup(scope, id, vpc_id=self.vpc.id, name=name, description=description, subnet_ids=subnet_ids)

    def tag_subnets(self, tier: str, tags: Mapping[str, str]) -> None:
        """Add ``tags`` to every subnet of ``tier`` (e.g. ``kubernetes.io/role/elb`` for a cluster's load
        balancers). The tags join the subnets' own ``tags``: a construct that needs a tag on the network's
        subnets asks here, and never tags them itself (an ``aws_ec2_tag`` on a resource whose ``tags`` another
        resource manages flips on every apply: the AWS provider's docs for aws_ec2_tag)."""
        if tier not in TIERS:
            raise ValueError(f"Network tag_subnets tier: {tier!r} is not allowed; allowed: {', '.join(TIERS)}")
        for key in tags:
            if key in ("Name", "Tier") and tags[key] != self._subnet_tags[tier][key]:
                raise ValueError(f"Network tag_subnets tags: {key!r} is not allowed; allowed: any key but Name and Tier, which the network sets")
        self._subnet_tags[tier].update(tags)
        for zone, subnet in zip(self.availability_zones, self._tiers[tier], strict=True):
            subnet.tags = {"Name": f"{self.name}-{tier}-{zone}", **self._subnet_tags[tier]}

    def _subnets(self, tier: str, cidrs: Sequence[str]) -> list[Subnet]:
        self._subnet_tags[tier] = {"Tier": tier}
        subnets = [
            Subnet(
                self,
                f"{tier}-{zone}",
                vpc_id=self.vpc.id,
                cidr_block=str(cidr),
                availability_zone=zone,
                map_public_ip_on_launch=False,
                tags={"Name": f"{self.name}-{tier}-{zone}", "Tier": tier},
            )
            for zone, cidr in zip(self.availability_zones, cidrs, strict=True)
        ]
        self._tiers[tier] = subnets
        return subnets

    def _route_table(self, label: str, subnets: Sequence[Subnet]) -> RouteTable:
        table = RouteTable(self, f"{label}-routes", vpc_id=self.vpc.id, tags={"Name": f"{self.name}-{label}"})
        for subnet in subnets:
            RouteTableAssociation(self, f"{subnet.node.id}-association", subnet_id=subnet.id, route_table_id=table.id)
        return table
