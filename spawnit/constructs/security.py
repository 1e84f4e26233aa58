"""Security groups whose rules name objects, not ids: ``database.security_group.allow_from(fleet, port=5432)``."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from cdktf import TerraformIterator, Token
from cdktf_cdktf_provider_aws.security_group import SecurityGroup as AwsSecurityGroup
from cdktf_cdktf_provider_aws.vpc_security_group_egress_rule import VpcSecurityGroupEgressRule
from cdktf_cdktf_provider_aws.vpc_security_group_ingress_rule import VpcSecurityGroupIngressRule
from constructs import Construct

ANYWHERE = "0.0.0.0/0"


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
    """A VPC security group with no rule at all until rules are added by object or CIDR.

    A new group has no egress (AWS's default allow-all egress is removed by the
    provider), so every flow out is declared too.
    """

    def __init__(self, scope: Construct, id: str, *, vpc_id: str, name: str, description: str) -> None:
        super().__init__(scope, id)
        self.name = name
        self.resource = AwsSecurityGroup(
            self, "group", name=name, description=description, vpc_id=vpc_id, tags={"Name": name}
        )
        self.id = self.resource.id

    def allow_from(self, source: Connectable | SecurityGroup, *, port: int, description: str | None = None) -> None:
        """Accept TCP ``port`` from the members of ``source``'s security group."""
        peer = _group_of(source)
        VpcSecurityGroupIngressRule(
            self,
            f"in-tcp{port}-from-{peer.node.id}-{peer.node.scope.node.id}",
            security_group_id=self.id,
            referenced_security_group_id=peer.id,
            ip_protocol="tcp",
            from_port=port,
            to_port=port,
            description=description or f"tcp/{port} from {peer.name}",
        )

    def allow_from_cidrs(self, cidrs: Iterable[str] | CidrList, *, port: int | None, description: str) -> None:
        """Accept TCP ``port`` (every protocol when ``port`` is None) from each CIDR."""
        if isinstance(cidrs, CidrList):
            each = TerraformIterator.from_list(cidrs.cidrs)
            VpcSecurityGroupIngressRule(
                self,
                f"in-{_port_label(port)}-from-{cidrs.name}",
                for_each=each,
                security_group_id=self.id,
                cidr_ipv4=Token.as_string(each.value),
                description=description,
                **_port_args(port),
            )
            return
        for cidr in cidrs:
            VpcSecurityGroupIngressRule(
                self,
                f"in-{_port_label(port)}-from-{_cidr_label(cidr)}",
                security_group_id=self.id,
                cidr_ipv4=str(cidr),
                description=description,
                **_port_args(port),
            )

    def allow_to(self, peer: Connectable | SecurityGroup, *, port: int, description: str | None = None) -> None:
        """Let members send TCP ``port`` to the members of ``peer``'s security group."""
        target = _group_of(peer)
        VpcSecurityGroupEgressRule(
            self,
            f"out-tcp{port}-to-{target.node.id}-{target.node.scope.node.id}",
            security_group_id=self.id,
            referenced_security_group_id=target.id,
            ip_protocol="tcp",
            from_port=port,
            to_port=port,
            description=description or f"tcp/{port} to {target.name}",
        )

    def allow_to_cidrs(self, cidrs: Iterable[str], *, port: int | None, description: str) -> None:
        """Let members send TCP ``port`` (every protocol when None) to each CIDR."""
        for cidr in cidrs:
            VpcSecurityGroupEgressRule(
                self,
                f"out-{_port_label(port)}-to-{_cidr_label(cidr)}",
                security_group_id=self.id,
                cidr_ipv4=str(cidr),
                description=description,
                **_port_args(port),
            )


def _group_of(source: Connectable | SecurityGroup) -> SecurityGroup:
    if isinstance(source, SecurityGroup):
        return source
    group = getattr(source, "security_group", None)
    if not isinstance(group, SecurityGroup):
        raise TypeError(f"source: {source!r} has no security_group; allowed: a SecurityGroup or a construct exposing one")
    return group


def _port_label(port: int | None) -> str:
    return "all" if port is None else f"tcp{port}"


def _port_args(port: int | None) -> dict[str, object]:
    if port is None:
        return {"ip_protocol": "-1"}
    return {"ip_protocol": "tcp", "from_port": port, "to_port": port}


def _cidr_label(cidr: object) -> str:
    return str(cidr).replace("/", "_")
