"""Is every declared flow allowed end to end? A check of the synthesized JSON, no cloud needed.

The constructs declare each flow they open (``database.security_group.allow_from(service, port=5432)``,
``fleet.security_group.allow_to_internet(...)``) and the stack records it in its JSON, under
``"//" -> "spawnit" -> "flows"`` (OpenTofu ignores ``//`` keys). This module reads only the JSON and
proves, for each flow, every piece a packet needs:

- a flow between two groups: the source group's egress to the destination (a rule naming the group, or
  0.0.0.0/0) and the destination group's ingress from the source group, both covering the port;
- a flow from CIDRs: the destination's ingress from exactly those CIDRs (a list, or the same ``for_each``);
- a flow to the internet: the source's egress to 0.0.0.0/0, and from each of the source's subnets a
  0.0.0.0/0 route (through the subnet's route table association) to an internet gateway, a NAT gateway
  or a NAT instance's network interface; through a NAT, the NAT's own group admits the source subnet and
  the NAT's subnet routes to an internet gateway.

It also lists every port open to the whole internet and every rule no declared flow uses. It cannot see
network ACLs (no stack writes any), DNS, whether a host in a public subnet has a public address, nor
what the provider itself refuses; subnets and groups looked up rather than declared (a catalog instance
in the default VPC) are said to be "outside the stack" and not checked further.
"""

from __future__ import annotations

import ipaddress
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

METADATA_KEY = "spawnit"  # under the stack's "//": {"spawnit": {"flows": [...]}}
ANYWHERE = "0.0.0.0/0"
INTERNET = "internet"
_REFERENCE = re.compile(r"^\$\{([a-z0-9_]+)\.([A-Za-z0-9_-]+)\.id\}$")
_GATEWAYS = {"gateway_id": "aws_internet_gateway", "nat_gateway_id": "aws_nat_gateway", "network_interface_id": "aws_network_interface"}


class ReachabilityError(ValueError):
    """One or more declared flows are not allowed end to end (each line names both ends, the port and the piece)."""


def flow_record(
    *, source: Mapping[str, Any], destination: Mapping[str, Any], protocol: str, port: int | None, description: str, subnets: Sequence[str] = ()
) -> dict[str, Any]:
    """The JSON form of one declared flow (what the constructs write and :func:`check_stack` reads)."""
    record: dict[str, Any] = {"from": dict(source), "to": dict(destination), "protocol": protocol, "port": port, "description": description}
    if subnets:
        record["subnets"] = list(subnets)
    return record


def port_label(protocol: str, port: int | None) -> str:
    return "all traffic" if port is None else f"{protocol}/{port}"


@dataclass(frozen=True)
class Rule:
    address: str
    direction: str  # ingress | egress
    group: str  # the owning group's address
    peer_group: str | None
    cidrs: tuple[str, ...]
    cidr_set: str | None  # a for_each expression
    protocol: str  # tcp | udp | -1
    from_port: int | None
    to_port: int | None

    def covers(self, protocol: str, port: int | None) -> bool:
        if self.protocol == "-1":
            return True
        if port is None:
            return False
        return self.protocol == protocol and (self.from_port or 0) <= port <= (self.to_port or 65535)


@dataclass
class FlowResult:
    name: str
    port: str
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


@dataclass
class Report:
    stack: str
    flows: list[FlowResult]
    open_to_internet: list[str]
    unused_rules: list[str]

    @property
    def failures(self) -> list[str]:
        return [f"{self.stack}: {flow.name} {flow.port}: {problem}" for flow in self.flows for problem in flow.problems]


def _address(reference: Any) -> str | None:
    match = _REFERENCE.match(reference) if isinstance(reference, str) else None
    return f"{match.group(1)}.{match.group(2)}" if match else None


class _Stack:
    def __init__(self, name: str, document: Mapping[str, Any]) -> None:
        self.name = name
        self.resources: dict[str, dict[str, Any]] = {
            f"{kind}.{key}": body for kind, bodies in document.get("resource", {}).items() for key, body in bodies.items()
        }
        self.flows = document.get("//", {}).get(METADATA_KEY, {}).get("flows", [])
        self.rules = [rule for address, body in self.resources.items() if (rule := _rule(address, body)) is not None]
        self.used: set[str] = set()

    def label(self, address: str) -> str:
        body = self.resources.get(address, {})
        return str(body.get("name") or body.get("tags", {}).get("Name") or address)

    def rules_of(self, group: str, direction: str) -> list[Rule]:
        return [rule for rule in self.rules if rule.group == group and rule.direction == direction]

    def find(self, rules: Iterable[Rule], protocol: str, port: int | None, accepts) -> Rule | None:  # noqa: ANN001
        for rule in rules:
            if rule.covers(protocol, port) and accepts(rule):
                self.used.add(rule.address)
                return rule
        return None


def _rule(address: str, body: Mapping[str, Any]) -> Rule | None:
    kind = address.split(".", 1)[0]
    direction = {"aws_vpc_security_group_ingress_rule": "ingress", "aws_vpc_security_group_egress_rule": "egress"}.get(kind)
    if direction is None:
        return None
    for_each = body.get("for_each")
    cidr = body.get("cidr_ipv4") or body.get("cidr_ipv6")
    return Rule(
        address=address,
        direction=direction,
        group=_address(body.get("security_group_id")) or str(body.get("security_group_id")),
        peer_group=_address(body.get("referenced_security_group_id")),
        cidrs=() if cidr is None or for_each else (str(cidr),),
        cidr_set=str(for_each) if for_each else None,
        protocol=str(body.get("ip_protocol")),
        from_port=body.get("from_port"),
        to_port=body.get("to_port"),
    )


def check_stack(name: str, document: Mapping[str, Any]) -> Report:
    """The reachability report of one synthesized stack."""
    stack = _Stack(name, document)
    results = [_check_flow(stack, flow) for flow in stack.flows]
    open_ports = sorted(
        {
            f"{stack.label(rule.group)} {port_label(rule.protocol, rule.from_port) if rule.protocol != '-1' else 'all traffic'} from {cidr}"
            for rule in stack.rules
            if rule.direction == "ingress"
            for cidr in rule.cidrs
            if cidr in (ANYWHERE, "::/0")
        }
    )
    unused = sorted(f"{rule.address} ({rule.direction} of {stack.label(rule.group)})" for rule in stack.rules if rule.address not in stack.used)
    return Report(name, results, open_ports, unused)


def _end_name(stack: _Stack, end: Mapping[str, Any]) -> str:
    if end.get("internet"):
        return INTERNET
    if "group" in end:
        address = _address(end["group"])
        return stack.label(address) if address in stack.resources else str(end.get("name") or end["group"])
    return str(end.get("name") or "CIDRs")


def _check_flow(stack: _Stack, flow: Mapping[str, Any]) -> FlowResult:
    source, destination = flow["from"], flow["to"]
    protocol, port = flow.get("protocol", "tcp"), flow.get("port")
    result = FlowResult(f"{_end_name(stack, source)} -> {_end_name(stack, destination)}", port_label(protocol, port))
    source_group = _address(source.get("group"))
    destination_group = _address(destination.get("group"))
    for end, address in (("source", source_group), ("destination", destination_group)):
        if address is not None and address not in stack.resources:
            result.notes.append(f"the {end} group {address} is outside the stack: not checked")
    if source_group in stack.resources:
        egress = stack.rules_of(source_group, "egress")
        to_anywhere = lambda rule: ANYWHERE in rule.cidrs  # noqa: E731
        if destination_group is not None:  # the rule naming the destination first, else one to anywhere
            found = stack.find(egress, protocol, port, lambda rule: rule.peer_group == destination_group) or stack.find(egress, protocol, port, to_anywhere)
            wanted = f"egress rule to {_end_name(stack, destination)} (or 0.0.0.0/0)"
        else:
            found = stack.find(egress, protocol, port, to_anywhere)
            wanted = "egress rule to 0.0.0.0/0"
        if found is None:
            result.problems.append(f"{_end_name(stack, source)} has no {wanted} covering {result.port}")
    if destination_group in stack.resources:
        ingress = stack.rules_of(destination_group, "ingress")
        cidrs = source.get("cidrs")
        if source_group is not None:
            wanted = {_end_name(stack, source): lambda rule: rule.peer_group == source_group}
        elif isinstance(cidrs, str):  # a Terraform list: the rule's for_each iterates over that very list
            expression = cidrs.removeprefix("${").removesuffix("}")
            wanted = {_end_name(stack, source): lambda rule: rule.cidr_set is not None and expression in rule.cidr_set}
        else:  # each CIDR of the list has its rule
            wanted = {cidr: (lambda rule, cidr=cidr: cidr in rule.cidrs) for cidr in cidrs or ()}
        for peer, accepts in wanted.items():
            if stack.find(ingress, protocol, port, accepts) is None:
                result.problems.append(f"{_end_name(stack, destination)} has no ingress rule from {peer} covering {result.port}")
    if destination.get("internet"):
        for subnet in flow.get("subnets", []):
            _check_route_out(stack, subnet, source_group, protocol, port, result)
    return result


def _route_table_of(stack: _Stack, subnet: str) -> str | None:
    for address, body in stack.resources.items():
        if address.startswith("aws_route_table_association.") and _address(body.get("subnet_id")) == subnet:
            return _address(body.get("route_table_id"))
    return None


def _default_route(stack: _Stack, table: str) -> tuple[str, str] | None:
    """(target kind, target address) of the table's 0.0.0.0/0 route."""
    routes = [body for address, body in stack.resources.items() if address.startswith("aws_route.") and _address(body.get("route_table_id")) == table]
    routes += [route for route in stack.resources.get(table, {}).get("route", []) or [] if isinstance(route, dict)]
    for route in routes:
        if route.get("destination_cidr_block") != ANYWHERE and route.get("cidr_block") != ANYWHERE:
            continue
        for key, kind in _GATEWAYS.items():
            target = _address(route.get(key))
            if target is not None:
                return kind, target
    return None


def _check_route_out(stack: _Stack, subnet_ref: str, source_group: str | None, protocol: str, port: int | None, result: FlowResult) -> None:
    subnet = _address(subnet_ref)
    if subnet is None or subnet not in stack.resources:
        result.notes.append(f"subnet {subnet_ref} is outside the stack: its route not checked")
        return
    name = stack.label(subnet)
    table = _route_table_of(stack, subnet)
    if table is None:
        result.problems.append(f"subnet {name} has no route table association (the VPC's main table has no route out)")
        return
    route = _default_route(stack, table)
    if route is None:
        result.problems.append(f"subnet {name}: route table {stack.label(table)} has no 0.0.0.0/0 route")
        return
    kind, target = route
    if target not in stack.resources:
        result.problems.append(f"subnet {name}: the 0.0.0.0/0 route targets {target}, which the stack does not declare")
        return
    if kind == "aws_internet_gateway":
        return
    nat = stack.resources[target]
    nat_subnet = _address(nat.get("subnet_id"))
    if kind == "aws_network_interface":
        subnet_cidr = stack.resources[subnet].get("cidr_block")
        admitted = False
        for group in (_address(ref) for ref in nat.get("security_groups", [])):
            accepts = lambda rule: rule.peer_group == source_group or any(_contains(cidr, subnet_cidr) for cidr in rule.cidrs)  # noqa: E731
            if group and stack.find(stack.rules_of(group, "ingress"), protocol, port, accepts) is not None:
                admitted = True
                if stack.find(stack.rules_of(group, "egress"), protocol, port, lambda rule: ANYWHERE in rule.cidrs) is None:
                    result.problems.append(f"the NAT interface {stack.label(target)}'s group {stack.label(group)} has no egress to 0.0.0.0/0 covering {result.port}")
        if not admitted:
            result.problems.append(f"the NAT interface {stack.label(target)} admits nothing from subnet {name} ({subnet_cidr}) covering {result.port}")
    if nat_subnet is None or nat_subnet not in stack.resources:
        return
    nat_table = _route_table_of(stack, nat_subnet)
    onward = _default_route(stack, nat_table) if nat_table else None
    if onward is None or onward[0] != "aws_internet_gateway":
        result.problems.append(f"the NAT {stack.label(target)} sits in subnet {stack.label(nat_subnet)}, which has no 0.0.0.0/0 route to an internet gateway")


def _contains(cidr: str, subnet_cidr: Any) -> bool:
    try:
        return ipaddress.ip_network(str(subnet_cidr)).subnet_of(ipaddress.ip_network(cidr))  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return False


def check_folder(outdir: Path, stacks: Sequence[str] | None = None) -> list[Report]:
    """Reports of the synthesized stacks in ``outdir`` (all of them, or those named)."""
    folder = Path(outdir) / "stacks"
    names = list(stacks) if stacks else sorted(path.parent.name for path in folder.glob("*/cdk.tf.json"))
    reports = []
    for name in names:
        path = folder / name / "cdk.tf.json"
        if not path.is_file():
            raise FileNotFoundError(name)
        reports.append(check_stack(name, json.loads(path.read_text())))
    return reports


def require_reachable(outdir: Path, stacks: Sequence[str] | None = None) -> list[Report]:
    """Raise :class:`ReachabilityError` naming every failing flow of the synthesized stacks."""
    reports = check_folder(outdir, stacks)
    failures = [line for report in reports for line in report.failures]
    if failures:
        raise ReachabilityError("declared flows not allowed end to end:\n  " + "\n  ".join(failures))
    return reports


def render(reports: Sequence[Report]) -> str:
    """The table ``spawnit check`` prints: each flow with its verdict, then the open ports and unused rules."""
    lines = []
    for report in reports:
        if not report.flows and not report.open_to_internet and not report.unused_rules:
            continue
        lines.append(f"{report.stack}")
        width = max((len(flow.name) for flow in report.flows), default=0)
        for flow in report.flows:
            verdict = "ok" if flow.ok else "BLOCKED"
            lines.append(f"  {verdict:8} {flow.name:{width}}  {flow.port}")
            lines += [f"           missing: {problem}" for problem in flow.problems]
            lines += [f"           note: {note}" for note in flow.notes]
        lines += [f"  open to the internet: {entry}" for entry in report.open_to_internet]
        lines += [f"  rule no flow uses: {entry}" for entry in report.unused_rules]
    return "\n".join(lines)
