"""Security groups whose flows name objects, not ids, and are written at both ends:
``database.security_group.allow_from(fleet, port=5432)``."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from cdktf import TerraformIterator, Token
from cdktf_cdktf_provider_aws.security_group import SecurityGroup as AwsSecurityGroup
from cdktf_cdktf_provider_aws.vpc_security_group_egress_rule import VpcSecurityGroupEgressRule
from cdktf_cdktf_provider_aws.vpc_security_group_ingress_rule import VpcSecurityGroupIngressRule
from constructs import Construct

from ..reachability import ANYWHERE, METADATA_KEY, flow_record
from ._common import append_to_stack

PROTOCOLS = ("tcp", "udp")


@dataclass(frozen=True)
class CidrList:
    """CIDRs known only when OpenTofu runs (a data source's list, e.g. Cloudflare's published ranges):
    one ingress rule per CIDR through ``for_each``. ``name`` labels the rules."""

    name: str
    cidrs: Any  # a Terraform list of strings (a token)


@runtime_checkable
class Connectable(Protocol):
    """Anything that owns a security group: a fleet, a load balancer, a database..."""

    security_group: SecurityGroup


@runtime_checkable
class Grantable(Protocol):
    """Anything whose role can be given permissions: ``bucket.grant_read_write(service)``."""

    def grant(self, statements: Sequence[Mapping[str, Any]], *, purpose: str) -> None: ...


class SecurityGroup(Construct):
    """A VPC security group with no rule at all until flows are declared, by object or by CIDR.

    A new group has no egress (AWS's default allow-all egress is removed by the provider), so a flow
    needs a rule at both ends. A flow between two groups is declared once, from either end
    (``database.security_group.allow_from(service, port=5432)`` or
    ``service.security_group.allow_to(database, port=5432)``), and writes both: the destination's
    ingress and the source's egress, as the AWS CDK's ``connections`` do. A half-made connection
    cannot be written through this class. Each flow is also recorded in the stack's JSON, where
    :mod:`spawnit.reachability` proves it end to end (rules and routes).

    ``subnet_ids``: where the group's members run, for the route check of flows to the internet.
    """

    def __init__(self, scope: Construct, id: str, *, vpc_id: str, name: str, description: str, subnet_ids: Sequence[str] = ()) -> None:
        super().__init__(scope, id)
        self.name = name
        self.subnet_ids = list(subnet_ids)
        self.resource = AwsSecurityGroup(
            self, "group", name=name, description=description, vpc_id=vpc_id, tags={"Name": name}
        )
        self.id = self.resource.id

    def allow_from(self, source: Connectable | SecurityGroup, *, port: int, description: str | None = None) -> None:
        """Let the members of ``source``'s group reach TCP ``port`` of this group's members: this group's
        ingress and ``source``'s egress."""
        peer = _group_of(source)
        _connect(peer, self, port=port, description=description)

    def allow_to(self, destination: Connectable | SecurityGroup, *, port: int, description: str | None = None) -> None:
        """Let this group's members reach TCP ``port`` of ``destination``'s: both ends' rules."""
        _connect(self, _group_of(destination), port=port, description=description)

    def allow_from_cidrs(
        self, cidrs: Iterable[str] | CidrList, *, port: int | None, description: str, protocol: str = "tcp", name: str | None = None
    ) -> None:
        """Accept ``protocol`` ``port`` (every protocol when ``port`` is None) from each CIDR (outside any group
        of ours: only this end has a rule). ``name`` labels the flow (default: the CIDRs)."""
        if isinstance(cidrs, CidrList):
            each = TerraformIterator.from_list(cidrs.cidrs)
            VpcSecurityGroupIngressRule(
                self,
                f"in-{_port_label(port, protocol)}-from-{cidrs.name}",
                for_each=each,
                security_group_id=self.id,
                cidr_ipv4=Token.as_string(each.value),
                description=description,
                **_port_args(port, protocol),
            )
            source = {"cidrs": cidrs.cidrs, "name": name or cidrs.name}
        else:
            cidrs = [str(cidr) for cidr in cidrs]
            if not cidrs:
                return
            for cidr in cidrs:
                VpcSecurityGroupIngressRule(
                    self,
                    f"in-{_port_label(port, protocol)}-from-{_cidr_label(cidr)}",
                    security_group_id=self.id,
                    cidr_ipv4=cidr,
                    description=description,
                    **_port_args(port, protocol),
                )
            source = {"cidrs": cidrs, "name": name or ", ".join(cidrs)}
        _declare(self, source=source, destination=self._end(), protocol=protocol, port=port, description=description)

    def allow_to_internet(self, *, port: int | None, description: str) -> None:
        """Let members send TCP ``port`` (every protocol when None) anywhere out of the VPC: the egress rule,
        and a flow whose route (from :attr:`subnet_ids` to a gateway or NAT) the reachability check proves."""
        VpcSecurityGroupEgressRule(
            self,
            f"out-{_port_label(port, 'tcp')}-to-{_cidr_label(ANYWHERE)}",
            security_group_id=self.id,
            cidr_ipv4=ANYWHERE,
            description=description,
            **_port_args(port, "tcp"),
        )
        _declare(self, source=self._end(), destination={"internet": True}, protocol="tcp", port=port, description=description, subnets=self.subnet_ids)

    def _end(self) -> dict[str, str]:
        return {"group": self.id, "name": self.name}


def _connect(source: SecurityGroup, destination: SecurityGroup, *, port: int, description: str | None) -> None:
    """Both rules of one TCP flow from ``source``'s members to ``destination``'s, and its record."""
    VpcSecurityGroupIngressRule(
        destination,
        f"in-tcp{port}-from-{source.node.id}-{source.node.scope.node.id}",
        security_group_id=destination.id,
        referenced_security_group_id=source.id,
        ip_protocol="tcp",
        from_port=port,
        to_port=port,
        description=description or f"tcp/{port} from {source.name}",
    )
    VpcSecurityGroupEgressRule(
        source,
        f"out-tcp{port}-to-{destination.node.id}-{destination.node.scope.node.id}",
        security_group_id=source.id,
        referenced_security_group_id=destination.id,
        ip_protocol="tcp",
        from_port=port,
        to_port=port,
        description=description or f"tcp/{port} to {destination.name}",
    )
    _declare(source, source=source._end(), destination=destination._end(), protocol="tcp", port=port, description=description or f"tcp/{port}")


def _declare(scope: Construct, **flow: Any) -> None:
    """Record one flow in the stack's JSON, where :mod:`spawnit.reachability` reads it (OpenTofu ignores ``//`` keys)."""
    append_to_stack(scope, f"//.{METADATA_KEY}.flows", flow_record(**flow))


def _group_of(source: Connectable | SecurityGroup) -> SecurityGroup:
    if isinstance(source, SecurityGroup):
        return source
    group = getattr(source, "security_group", None)
    if not isinstance(group, SecurityGroup):
        raise TypeError(f"source: {source!r} has no security_group; allowed: a SecurityGroup or a construct exposing one")
    return group


def _port_label(port: int | None, protocol: str) -> str:
    return "all" if port is None else f"{protocol}{port}"


def _port_args(port: int | None, protocol: str) -> dict[str, object]:
    if port is None:
        return {"ip_protocol": "-1"}
    if protocol not in PROTOCOLS:
        raise ValueError(f"protocol: {protocol!r} is not allowed; allowed: {', '.join(PROTOCOLS)}")
    return {"ip_protocol": protocol, "from_port": port, "to_port": port}


def _cidr_label(cidr: object) -> str:
    return str(cidr).replace("/", "_")
