"""Checks on a VPC's address plan, shared by the configuration and the Network construct (no cdktf import)."""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence


def check_subnet_layout(cidr: object, zones: Sequence[str], **tiers: Sequence[object]) -> None:
    """Raise ValueError, naming the field and value, on a layout AWS would reject.

    ``tiers`` maps a tier name (public, app, data) to one CIDR per zone; every
    subnet must lie inside ``cidr`` and no two may overlap.
    """
    try:
        vpc = ipaddress.IPv4Network(str(cidr))
    except ValueError:
        raise ValueError(f"vpc_cidr: {str(cidr)!r} is not an IPv4 CIDR; allowed: e.g. 10.0.0.0/16") from None
    if len(zones) < 2 or len(set(zones)) != len(zones):
        raise ValueError(f"availability_zones: {list(zones)!r} is not allowed; allowed: two or more distinct zones")
    seen: list[tuple[str, ipaddress.IPv4Network]] = []
    for tier, cidrs in tiers.items():
        field = f"{tier}_subnet_cidrs"
        if len(cidrs) != len(zones):
            raise ValueError(f"{field}: {[str(c) for c in cidrs]!r} has {len(cidrs)} entries; allowed: one per zone ({len(zones)})")
        for raw in cidrs:
            try:
                subnet = ipaddress.IPv4Network(str(raw))
            except ValueError:
                raise ValueError(f"{field}: {str(raw)!r} is not an IPv4 CIDR; allowed: e.g. 10.0.1.0/24") from None
            if not subnet.subnet_of(vpc):
                raise ValueError(f"{field}: {subnet} is outside vpc_cidr {vpc}; allowed: subnets of {vpc}")
            for other_tier, other in seen:
                if subnet.overlaps(other):
                    raise ValueError(f"{field}: {subnet} overlaps {other_tier}_subnet_cidrs {other}; allowed: disjoint subnets")
            seen.append((tier, subnet))
