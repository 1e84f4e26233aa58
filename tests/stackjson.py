"""Reading a synthesized cdk.tf.json the way the acceptance criteria speak of it."""

from __future__ import annotations

from spawnit.shared import user_data_text
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REFERENCE = re.compile(r"^\$\{([a-z0-9_]+)\.([A-Za-z0-9_-]+)\.([a-z0-9_\[\]\.]+)\}$")


def written_files(host: dict[str, Any]) -> dict[str, str]:
    """Path -> content of the files a host's cloud-config writes, from a launch template
    (``user_data``) or an instance (``user_data_base64``)."""
    import yaml

    document = yaml.safe_load(user_data_text(host.get("user_data") or host["user_data_base64"]))
    return {entry["path"]: entry["content"] for entry in document["write_files"]}


@dataclass(frozen=True)
class Rule:
    """A security group rule, with groups named by their ``name`` and CIDRs as they are."""

    direction: str
    group: str
    peer: str
    protocol: str
    from_port: int | None
    to_port: int | None


class StackJson:
    def __init__(self, document: dict[str, Any], path: Path | None = None) -> None:
        self.document = document
        self.path = path
        self.text = json.dumps(document)

    @classmethod
    def load(cls, path: Path) -> StackJson:
        return cls(json.loads(path.read_text()), path)

    # Resources -------------------------------------------------------------------------
    def resources(self, kind: str) -> dict[str, dict[str, Any]]:
        return self.document.get("resource", {}).get(kind, {})

    def count(self, kind: str) -> int:
        return len(self.resources(kind))

    def only(self, kind: str) -> dict[str, Any]:
        found = self.resources(kind)
        assert len(found) == 1, f"expected one {kind}, found {len(found)}: {sorted(found)}"
        return next(iter(found.values()))

    def data(self, kind: str) -> dict[str, dict[str, Any]]:
        return self.document.get("data", {}).get(kind, {})

    @property
    def outputs(self) -> dict[str, Any]:
        return self.document.get("output", {})

    @property
    def backend(self) -> dict[str, Any]:
        return self.document["terraform"].get("backend", {})

    @property
    def provider(self) -> dict[str, Any]:
        return self.document["provider"]["aws"][0]

    # References ------------------------------------------------------------------------
    def resolve(self, reference: str) -> tuple[str, str, dict[str, Any]]:
        """(type, name, body) of the resource a ``${type.name.attr}`` reference points at."""
        match = REFERENCE.match(reference)
        assert match, f"not a plain reference: {reference!r}"
        kind, name, _ = match.groups()
        return kind, name, self.resources(kind)[name]

    def ssm_parameter_name(self, reference: str) -> str:
        """Name of the SSM parameter a ``${data.aws_ssm_parameter.x.insecure_value}`` reference reads."""
        match = re.match(r"^\$\{data\.aws_ssm_parameter\.([A-Za-z0-9_-]+)\.(insecure_value|value)\}$", reference)
        assert match, f"not an SSM parameter reference: {reference!r}"
        return self.data("aws_ssm_parameter")[match.group(1)]["name"]

    def ref(self, kind: str, name: str, attribute: str = "id") -> str:
        assert name in self.resources(kind), f"no {kind}.{name}"
        return f"${{{kind}.{name}.{attribute}}}"

    def named(self, kind: str, name_attribute: str, value: str) -> tuple[str, dict[str, Any]]:
        """(key, body) of the one resource of ``kind`` whose ``name_attribute`` equals ``value``."""
        found = [(key, body) for key, body in self.resources(kind).items() if body.get(name_attribute) == value]
        assert len(found) == 1, f"expected one {kind} with {name_attribute}={value!r}, found {len(found)}"
        return found[0]

    # Security groups -------------------------------------------------------------------
    def group_name(self, reference: str) -> str:
        kind, _, body = self.resolve(reference)
        assert kind == "aws_security_group", reference
        return body["name"]

    def rules(self, direction: str = "ingress", *, port: int | None = None, group: str | None = None) -> list[Rule]:
        kind = f"aws_vpc_security_group_{direction}_rule"
        found = []
        for body in self.resources(kind).values():
            peer = body.get("cidr_ipv4") or self.group_name(body["referenced_security_group_id"])
            rule = Rule(direction, self.group_name(body["security_group_id"]), peer, body["ip_protocol"], body.get("from_port"), body.get("to_port"))
            if port is not None and not (rule.protocol == "-1" or rule.from_port == port):
                continue
            if group is not None and rule.group != group:
                continue
            found.append(rule)
        return found

    def ingress_rules(self, *, port: int | None = None, group: str | None = None) -> list[Rule]:
        return self.rules("ingress", port=port, group=group)

    def egress_rules(self, *, group: str | None = None) -> list[Rule]:
        return self.rules("egress", group=group)
