"""The network a spec lays out, shared by the environments and Spotilike (no provider binding beyond AWS's)."""

from __future__ import annotations

from typing import Any

from constructs import Construct

from .environment_settings import EnvironmentSpec
from .spotilike_settings import SpotilikeSpec
from ..constructs import Network


def spec_network(scope: Construct, spec: EnvironmentSpec | SpotilikeSpec, *, name: str, **nat: Any) -> Network:
    """The :class:`Network` a spec lays out (region, zones, VPC and subnet CIDRs); ``nat`` as Network's."""
    return Network(
        scope,
        "network",
        name=name,
        region=spec.region,
        cidr=str(spec.vpc_cidr),
        availability_zones=spec.availability_zones,
        public_subnet_cidrs=[str(cidr) for cidr in spec.public_subnet_cidrs],
        app_subnet_cidrs=[str(cidr) for cidr in spec.app_subnet_cidrs],
        data_subnet_cidrs=[str(cidr) for cidr in spec.data_subnet_cidrs],
        **nat,
    )
