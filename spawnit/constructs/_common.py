"""Helpers shared by the AWS constructs: AMIs, instance roles, cloud-init documents, bundled files."""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Mapping, Sequence
from importlib import resources
from typing import Any

import jsii
import yaml
from cdktf import Aspects, IAspect, S3Backend, TerraformProvider, TerraformStack, TerraformVariable
from cdktf_cdktf_provider_aws.data_aws_caller_identity import DataAwsCallerIdentity
from cdktf_cdktf_provider_aws.data_aws_ssm_parameter import DataAwsSsmParameter
from cdktf_cdktf_provider_aws.iam_instance_profile import IamInstanceProfile
from cdktf_cdktf_provider_aws.iam_role import IamRole
from cdktf_cdktf_provider_aws.iam_role_policy import IamRolePolicy
from cdktf_cdktf_provider_aws.iam_role_policy_attachment import IamRolePolicyAttachment
from cdktf_cdktf_provider_aws.kms_key import KmsKey
from constructs import Construct

SSM_MANAGED_POLICY = "arn:aws:iam::aws:policy/AmazonSSMManagedInstanceCore"
# IMDSv2 answers a token PUT only within this many network hops. A container on Docker's bridge is one
# hop further than the host: with 1 its SDK cannot reach the instance role (AWS recommends 2 for
# containers; see the EC2 user guide, "Instance metadata options"). Hosts without containers keep 1.
CONTAINER_HOST_HOP_LIMIT = 2
HOST_ONLY_HOP_LIMIT = 1
# OpenTofu that every stack needs: 1.10 brought the S3 backend's use_lockfile.
OPENTOFU_REQUIRED_VERSION = ">= 1.10.0"
_ARM_FAMILY = re.compile(r"^[a-z]+\d+[a-z]*g[a-z]*\.")


def asset(path: str) -> str:
    """Text of a file bundled in ``spawnit/assets``."""
    return resources.files("spawnit").joinpath("assets", path).read_text(encoding="utf-8")


def architecture_of(instance_type: str) -> str:
    """``arm64`` for Graviton families (t4g, m7g, c7gn...), ``x86_64`` otherwise."""
    return "arm64" if _ARM_FAMILY.match(instance_type) else "x86_64"


def amazon_linux_2023_ami(scope: Construct, instance_type: str) -> str:
    """Id of the latest Amazon Linux 2023 AMI for the instance type's architecture (public SSM parameter).

    One data source per stack and architecture, shared by every construct that asks.
    """
    stack = TerraformStack.of(scope)
    arch = architecture_of(instance_type)
    lookup_id = f"al2023-ami-{arch}"
    existing = stack.node.try_find_child(lookup_id)
    if existing is None:
        existing = DataAwsSsmParameter(
            stack, lookup_id, name=f"/aws/service/ami-amazon-linux-latest/al2023-ami-kernel-default-{arch}"
        )
    return existing.insecure_value


def sensitive_variable(stack: Construct, name: str, description: str) -> TerraformVariable:
    """A secret given at deploy time as ``TF_VAR_<name>``: sensitive, required, never a value in the JSON."""
    return TerraformVariable(stack, name, type="string", sensitive=True, nullable=False, description=f"{description} (TF_VAR_{name})")


def optional_sensitive_variable(stack: Construct, name: str, description: str) -> TerraformVariable:
    """A secret that may be left out (``TF_VAR_<name>``, default empty): sensitive, never a value in the JSON."""
    return TerraformVariable(stack, name, type="string", sensitive=True, nullable=False, default="", description=f"{description} (TF_VAR_{name}, optional)")


def account_key(scope: Construct, id: str, *, description: str, statements: Sequence[Mapping[str, Any]] = ()) -> KmsKey:
    """A customer-managed KMS key, rotated yearly, whose policy lets the account administer it
    (IAM policies then decide who uses it) plus ``statements`` for the services that need it."""
    account = DataAwsCallerIdentity(scope, f"{id}-account").account_id
    administer = {"Sid": "AccountAdministersTheKey", "Effect": "Allow", "Principal": {"AWS": f"arn:aws:iam::{account}:root"}, "Action": "kms:*", "Resource": "*"}
    return KmsKey(
        scope, id, description=description, enable_key_rotation=True, deletion_window_in_days=7, policy=policy_document(administer, *statements)
    )


def policy_document(*statements: Mapping[str, Any]) -> str:
    return json.dumps({"Version": "2012-10-17", "Statement": list(statements)})


def assume_role_policy(service: str) -> str:
    return policy_document({"Effect": "Allow", "Principal": {"Service": service}, "Action": "sts:AssumeRole"})


class InstanceRole(Construct):
    """IAM role + instance profile for EC2: SSM Session Manager access plus the given inline statements."""

    def __init__(
        self,
        scope: Construct,
        id: str,
        *,
        name: str,
        statements: Sequence[Mapping[str, Any]] = (),
        managed_policy_arns: Sequence[str] = (SSM_MANAGED_POLICY,),
    ) -> None:
        super().__init__(scope, id)
        self.role = IamRole(self, "role", name=name, assume_role_policy=assume_role_policy("ec2.amazonaws.com"))
        for index, arn in enumerate(managed_policy_arns):
            IamRolePolicyAttachment(self, f"managed-{index}", role=self.role.name, policy_arn=arn)
        if statements:
            IamRolePolicy(self, "inline", name=f"{name}-inline", role=self.role.id, policy=policy_document(*statements))
        self.instance_profile = IamInstanceProfile(self, "profile", name=name, role=self.role.name)


class _CloudConfigDumper(yaml.SafeDumper):
    pass


def _represent_str(dumper: yaml.SafeDumper, value: str) -> yaml.Node:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_CloudConfigDumper.add_representer(str, _represent_str)


def shell_assignments(values: Mapping[str, str]) -> str:
    """``KEY='value'`` lines for a file sourced by bash (values may hold Terraform references)."""
    for key, value in values.items():
        if "'" in str(value) or "\n" in str(value):
            raise ValueError(f"{key}: {value!r} is not allowed; allowed: a value without quotes or newlines")
    return "".join(f"{key}='{value}'\n" for key, value in values.items())


def base64_text(text: str) -> str:
    """Base64 of literal text (no Terraform function needed)."""
    return base64.b64encode(text.encode()).decode()


PER_BOOT_DIR = "/var/lib/cloud/scripts/per-boot"


def cloud_config(
    *,
    files: Mapping[str, str],
    boot_script: tuple[str, str],
    encoded_files: Mapping[str, str] | None = None,
    packages: Sequence[str] = (),
    first_boot: Sequence[Sequence[str]] = (),
) -> str:
    """A ``#cloud-config`` document that writes ``files`` (path -> content, mode 0600) and a
    boot script (name, content) that cloud-init runs at every boot, the first one included.

    ``encoded_files`` (path -> base64 content, mode 0600) may hold Terraform references,
    such as a secret variable's ``base64encode``: base64 keeps any value intact in YAML.
    ``packages`` are installed and ``first_boot`` commands (argument lists) run once,
    both before the boot script (cloud-init's final stage runs them in that order).
    Everything else must be literal.
    """
    name, script = boot_script
    write_files = [{"path": path, "content": content, "permissions": "0600", "owner": "root:root"} for path, content in files.items()]
    write_files += [
        {"path": path, "content": content, "encoding": "b64", "permissions": "0600", "owner": "root:root"}
        for path, content in (encoded_files or {}).items()
    ]
    write_files.append({"path": f"{PER_BOOT_DIR}/{name}", "content": script, "permissions": "0755", "owner": "root:root"})
    document: dict[str, Any] = {"write_files": write_files}
    if packages:
        document["package_update"] = True
        document["packages"] = list(packages)
    if first_boot:
        document["runcmd"] = [list(command) for command in first_boot]
    body = yaml.dump(document, Dumper=_CloudConfigDumper, sort_keys=False, width=10**9, allow_unicode=True)
    return "#cloud-config\n" + body


# The registry namespace of every provider a SpawnIt stack uses. The prebuilt bindings name some by
# their short type only ("aws"), which the engine reads as hashicorp/<type>: right for aws, wrong for
# any other namespace, and a mirror or a lock file keys providers by their full address.
PROVIDER_SOURCES = {
    "aws": "hashicorp/aws",
    "kubernetes": "hashicorp/kubernetes",
    "docker": "kreuzwerker/docker",
    "cloudflare": "cloudflare/cloudflare",
    "proxmox": "bpg/proxmox",
}


@jsii.implements(IAspect)
class QualifiedProviders:
    """Every provider of the stack gets its fully-qualified source (``hashicorp/aws``) in
    ``terraform.required_providers``, and the version constraint ``versions`` names for that source, if
    any (a site whose mirror holds another approved version; default: the bindings' own versions)."""

    def __init__(self, versions: Mapping[str, str] | None = None) -> None:
        self.versions = dict(versions or {})

    def visit(self, node: Any) -> None:
        if not isinstance(node, TerraformProvider):
            return
        name = node.terraform_resource_type
        source = node.terraform_provider_source or name
        if "/" not in source:
            if name not in PROVIDER_SOURCES:
                raise ValueError(f"provider: {name!r} has no known registry namespace; allowed: {', '.join(sorted(PROVIDER_SOURCES))}")
            source = PROVIDER_SOURCES[name]
        stack = TerraformStack.of(node)
        stack.add_override(f"terraform.required_providers.{name}.source", source)
        if source in self.versions:
            stack.add_override(f"terraform.required_providers.{name}.version", self.versions[source])


class _StackList(Construct):
    """The items several constructs add to one top-level list of the stack's JSON (see :func:`append_to_stack`)."""

    def __init__(self, stack: TerraformStack, id: str) -> None:
        super().__init__(stack, id)
        self.items: list[Any] = []


def append_to_stack(scope: Construct, path: str, item: Any) -> None:
    """Add ``item`` to the list at ``path`` of the stack's JSON (``import``, ``//.spawnit.flows``...). An
    override replaces the whole value at its path, so the list is kept here and written whole each time:
    two constructs adding to it never overwrite each other."""
    stack = TerraformStack.of(scope)
    holder_id = "list-" + re.sub(r"[^A-Za-z0-9-]", "-", path)
    holder = stack.node.try_find_child(holder_id) or _StackList(stack, holder_id)
    holder.items.append(item)
    stack.add_override(path, list(holder.items))


class SpawnitStack(TerraformStack):
    """A TerraformStack that states which OpenTofu versions can apply it (``terraform.required_version``)
    and names each provider by its full address (:class:`QualifiedProviders`)."""

    def __init__(self, scope: Construct, id: str, *, provider_versions: Mapping[str, str] | None = None) -> None:
        super().__init__(scope, id)
        self.add_override("terraform.required_version", OPENTOFU_REQUIRED_VERSION)
        Aspects.of(self).add(QualifiedProviders(provider_versions))

    def s3_state(self, **options: Any) -> S3Backend:
        """The S3 backend (``options`` as cdktf's ``S3Backend``), locking with S3's own lock file beside
        the state too: ``use_lockfile`` (OpenTofu 1.10), which cdktf's S3Backend has no prop for."""
        backend = S3Backend(self, **options)
        self.add_override("terraform.backend.s3.use_lockfile", True)
        return backend
