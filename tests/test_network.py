"""Network: VPC over two AZs, three subnet tiers, internet gateway, routes per AZ."""

from __future__ import annotations

import pytest


def subnets_by_tier(stack, tier: str) -> dict[str, str]:
    """availability zone -> CIDR of the subnets of one tier."""
    return {body["availability_zone"]: body["cidr_block"] for body in stack.resources("aws_subnet").values() if body["tags"]["Tier"] == tier}


@pytest.mark.parametrize("environment", ["dev", "preprod", "prod"])
def test_vpc_is_10_0_0_0_16_with_dns(environment, all_stacks):
    vpc = all_stacks[environment].only("aws_vpc")
    assert vpc["cidr_block"] == "10.0.0.0/16"
    assert vpc["enable_dns_hostnames"] is True and vpc["enable_dns_support"] is True


def test_public_subnets_are_10_0_1_and_10_0_2_in_paris_a_and_b(prod):
    assert subnets_by_tier(prod, "public") == {"eu-west-3a": "10.0.1.0/24", "eu-west-3b": "10.0.2.0/24"}


def test_private_app_subnets_are_10_0_10_and_10_0_20(prod):
    assert subnets_by_tier(prod, "app") == {"eu-west-3a": "10.0.10.0/24", "eu-west-3b": "10.0.20.0/24"}


def test_data_subnets_span_both_zones_inside_the_vpc(prod):
    assert subnets_by_tier(prod, "data") == {"eu-west-3a": "10.0.100.0/24", "eu-west-3b": "10.0.200.0/24"}


def test_no_subnet_gives_public_ips_by_default(prod):
    assert all(body["map_public_ip_on_launch"] is False for body in prod.resources("aws_subnet").values())


def test_internet_gateway_is_attached_to_the_vpc(prod):
    (vpc_key,) = prod.resources("aws_vpc")
    assert prod.only("aws_internet_gateway")["vpc_id"] == prod.ref("aws_vpc", vpc_key)


def routes_of(stack, table_label: str) -> list[dict]:
    table_key, _ = stack.named("aws_route_table", "tags", {"Name": f"greenleaf-{stack.path.parent.name.split('-')[0]}-{table_label}"})
    reference = stack.ref("aws_route_table", table_key)
    return [body for body in stack.resources("aws_route").values() if body["route_table_id"] == reference]


def subnets_of_table(stack, table_label: str) -> set[str]:
    table_key, _ = stack.named("aws_route_table", "tags", {"Name": f"greenleaf-{stack.path.parent.name.split('-')[0]}-{table_label}"})
    reference = stack.ref("aws_route_table", table_key)
    cidrs = set()
    for association in stack.resources("aws_route_table_association").values():
        if association["route_table_id"] == reference:
            _, _, subnet = stack.resolve(association["subnet_id"])
            cidrs.add(subnet["cidr_block"])
    return cidrs


def test_public_route_table_sends_0_0_0_0_to_the_internet_gateway(prod):
    (route,) = routes_of(prod, "public")
    (igw_key,) = prod.resources("aws_internet_gateway")
    assert route["destination_cidr_block"] == "0.0.0.0/0"
    assert route["gateway_id"] == prod.ref("aws_internet_gateway", igw_key)
    assert subnets_of_table(prod, "public") == {"10.0.1.0/24", "10.0.2.0/24"}


@pytest.mark.parametrize("zone, app_cidr, public_cidr", [("eu-west-3a", "10.0.10.0/24", "10.0.1.0/24"), ("eu-west-3b", "10.0.20.0/24", "10.0.2.0/24")])
def test_each_private_route_table_goes_to_the_nat_instance_of_its_own_zone(prod, zone, app_cidr, public_cidr):
    assert subnets_of_table(prod, f"app-{zone}") == {app_cidr}
    (route,) = routes_of(prod, f"app-{zone}")
    assert route["destination_cidr_block"] == "0.0.0.0/0"
    _, _, interface = prod.resolve(route["network_interface_id"])
    assert interface["tags"]["Name"] == f"greenleaf-prod-nat-{zone}"
    _, _, subnet = prod.resolve(interface["subnet_id"])
    assert (subnet["availability_zone"], subnet["cidr_block"]) == (zone, public_cidr)


def test_data_subnets_have_no_route_out_of_the_vpc(prod):
    assert subnets_of_table(prod, "data") == {"10.0.100.0/24", "10.0.200.0/24"}
    assert routes_of(prod, "data") == []


def test_nat_gateway_mode_puts_one_gateway_per_zone_in_the_routes(prod_gateway):
    gateways = prod_gateway.resources("aws_nat_gateway")
    assert len(gateways) == 2
    assert prod_gateway.count("aws_network_interface") == 0
    for zone in ("eu-west-3a", "eu-west-3b"):
        (route,) = routes_of(prod_gateway, f"app-{zone}")
        _, _, gateway = prod_gateway.resolve(route["nat_gateway_id"])
        _, _, subnet = prod_gateway.resolve(gateway["subnet_id"])
        assert subnet["availability_zone"] == zone and subnet["tags"]["Tier"] == "public"


def test_dev_has_no_nat_of_any_kind(dev):
    assert dev.count("aws_nat_gateway") == 0
    assert dev.count("aws_network_interface") == 0
    assert dev.count("aws_autoscaling_group") == 0
    assert all("0.0.0.0/0" != route["destination_cidr_block"] or "gateway_id" in route for route in dev.resources("aws_route").values())
