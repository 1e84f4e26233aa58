"""Targets realize a service's containers: on a Docker host, or on an EC2 instance that runs Docker.

Both read the same :class:`ContainerSpec` list. Secrets are stack variables
(``TF_VAR_<secret>``), marked sensitive: their values never appear in the
synthesized JSON. A new target subclasses :class:`Target` and registers itself.
"""

from __future__ import annotations

import base64
import shlex
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from cdktf import AssetType, Fn, TerraformAsset, TerraformOutput, TerraformStack, TerraformVariable

from ..constructs._common import sensitive_variable

from .base import ContainerSpec, ImageBuild, ServiceHints, ServiceParameters, published_ports


@dataclass(frozen=True)
class TargetSettings:
    """What the operator sets for a target, not the user for an instance.

    ``aws_endpoint``: one URL answering every AWS API the ``aws`` target calls (EC2, IAM, SSM, STS),
    for an emulated cloud such as LocalStack or moto; never set by default. The stack then skips the
    lookups an emulator cannot answer; the engine reaches the endpoint through
    :func:`~spawnit.shared.aws_endpoint_environment`."""

    aws_endpoint: str | None = None


class Target:
    """Realizes containers in a stack. Subclasses set ``name`` and implement :meth:`realize`."""

    name: ClassVar[str]
    registry: ClassVar[dict[str, type[Target]]] = {}

    def __init__(self, settings: TargetSettings | None = None) -> None:
        self.settings = settings or TargetSettings()

    def __init_subclass__(cls, **kwargs: object) -> None:
        super().__init_subclass__(**kwargs)
        if "name" in cls.__dict__:
            Target.registry[cls.name] = cls

    def realize(self, stack: TerraformStack, prefix: str, containers: list[ContainerSpec], parameters: ServiceParameters, hints: ServiceHints = ServiceHints()) -> None:
        raise NotImplementedError


def secret_variables(stack: TerraformStack, containers: list[ContainerSpec]) -> dict[str, TerraformVariable]:
    """One sensitive variable per secret the containers use (set with TF_VAR_<name>)."""
    names = sorted({secret for container in containers for secret in container.secrets.values()})
    return {
        name: sensitive_variable(stack, name, f"Secret {name!r} of the service")
        for name in names
    }


class DockerTarget(Target):
    """Containers on a Docker host (local socket or ssh:// / tcp://), on a network of the instance's own."""

    name = "docker"

    def realize(self, stack: TerraformStack, prefix: str, containers: list[ContainerSpec], parameters: ServiceParameters, hints: ServiceHints = ServiceHints()) -> None:
        from ..constructs.docker import DockerNetwork, DockerService, DockerVolume, ImageBuildSpec, Mount, PortMapping, docker_provider

        ports = published_ports(containers)
        docker_provider(stack, host=parameters.docker_host)
        network = DockerNetwork(stack, "network", name=prefix, labels={"spawnit.instance": prefix})
        secrets = secret_variables(stack, containers)
        volumes = {
            volume: DockerVolume(stack, f"volume-{volume}", name=f"{prefix}-{volume}", labels={"spawnit.instance": prefix})
            for container in containers
            for volume in container.volumes
        }
        services: dict[str, DockerService] = {}
        for container in containers:
            image = container.image
            if isinstance(image, ImageBuild):
                image = ImageBuildSpec(context=_build_context(stack, container.name, image.dockerfile), tag=image.tag)
            env = {**container.env, **{key: secrets[secret].string_value for key, secret in container.secrets.items()}}
            services[container.name] = DockerService(
                stack,
                container.name,
                name=f"{prefix}-{container.name}",
                image=image,
                network=network,
                aliases=[container.name],
                ports=[PortMapping(internal=p.container, external=p.published, protocol=p.protocol, host_ip=str(parameters.docker_bind_address)) for p in container.ports],
                env=env,
                mounts=[Mount(volumes[volume], path) for volume, path in container.volumes.items()],
                command=container.command,
                health=container.health,
                labels={"spawnit.instance": prefix, "spawnit.container": container.name},
                memory_mb=container.memory_mb,
                files=container.files,
                depends_on=[services[name] for name in container.depends_on],
            )
        for published, protocol, description in ports:
            TerraformOutput(stack, f"port_{published}_{protocol}", value=f"{parameters.docker_bind_address}:{published}", description=description)


_CONTEXTS: tempfile.TemporaryDirectory | None = None  # removed when the process ends, after cdktf has copied them


def _build_context(stack: TerraformStack, name: str, dockerfile: str) -> str:
    """A build context holding only the generated Dockerfile, copied into the stack's folder by cdktf."""
    global _CONTEXTS
    if _CONTEXTS is None:
        _CONTEXTS = tempfile.TemporaryDirectory(prefix="spawnit-build-")
    folder = Path(tempfile.mkdtemp(dir=_CONTEXTS.name))
    (folder / "Dockerfile").write_text(dockerfile)
    return TerraformAsset(stack, f"{name}-build-context", path=str(folder), type=AssetType.DIRECTORY).path


class Ec2Target(Target):
    """One EC2 instance (Amazon Linux 2023, IMDSv2 only, encrypted root) that runs the same containers.

    Its security group opens exactly the service's published ports, to
    ``allowed_cidrs``. cloud-init installs Docker and runs a script that
    creates the network and volumes, reads the secrets from SSM Parameter
    Store (SecureString, written from the stack's sensitive variables), and
    starts each container once the ones it depends on are healthy.
    """

    name = "aws"

    def realize(self, stack: TerraformStack, prefix: str, containers: list[ContainerSpec], parameters: ServiceParameters, hints: ServiceHints = ServiceHints()) -> None:
        from cdktf_cdktf_provider_aws.data_aws_subnet import DataAwsSubnet
        from cdktf_cdktf_provider_aws.data_aws_subnets import DataAwsSubnets, DataAwsSubnetsFilter
        from cdktf_cdktf_provider_aws.data_aws_vpc import DataAwsVpc
        from cdktf_cdktf_provider_aws.ec2_instance_state import Ec2InstanceState
        from cdktf_cdktf_provider_aws.instance import Instance, InstanceMetadataOptions, InstanceRootBlockDevice
        from cdktf_cdktf_provider_aws.provider import AwsProvider, AwsProviderDefaultTags
        from cdktf_cdktf_provider_aws.ssm_parameter import SsmParameter

        from ..constructs._common import InstanceRole, amazon_linux_2023_ami, cloud_config
        from ..shared import user_data
        from ..constructs.security import SecurityGroup

        ports = published_ports(containers)
        emulated = {}
        if self.settings.aws_endpoint:
            # An emulated cloud: no instance metadata, account or credential lookups. Where it answers is
            # the job's environment (aws_endpoint_environment), not the stack: the provider's "Custom Service
            # Endpoints" guide reads AWS_ENDPOINT_URL_<SERVICE>; an `endpoints` block would cost each
            # validation of the provider's configuration ~1.5 s of CPU (measured with 5.100: a plan 10.8 s -> 3.7 s).
            emulated = {
                "skip_credentials_validation": True,
                "skip_metadata_api_check": "true",
                "skip_requesting_account_id": True,
                "s3_use_path_style": True,
            }
        AwsProvider(
            stack, "aws", region=parameters.aws_region, default_tags=[AwsProviderDefaultTags(tags={"spawnit-instance": prefix, "managed-by": "spawnit"})], **emulated
        )
        if parameters.aws_subnet_id:
            subnet_id = parameters.aws_subnet_id
            vpc_id = DataAwsSubnet(stack, "subnet", id=subnet_id).vpc_id
        else:
            vpc_id = DataAwsVpc(stack, "default-vpc", default=True).id
            subnets = DataAwsSubnets(stack, "default-subnets", filter=[DataAwsSubnetsFilter(name="vpc-id", values=[vpc_id])])
            subnet_id = Fn.element(subnets.ids, 0)
        group = SecurityGroup(stack, "sg", vpc_id=vpc_id, name=prefix, description=f"{prefix}: the service's ports only", subnet_ids=[subnet_id])
        for published, protocol, description in ports:
            if hints.aws_open_ports is not None and published not in hints.aws_open_ports:
                continue  # the service's own: reached by its other containers, not from outside
            group.allow_from_cidrs([str(cidr) for cidr in parameters.allowed_cidrs], port=published, protocol=protocol, description=description)
        group.allow_to_internet(port=None, description="images, packages and AWS APIs")

        parameter_names = {}
        for name, variable in secret_variables(stack, containers).items():
            parameter_names[name] = f"/spawnit/{prefix}/{name}"
            SsmParameter(stack, f"secret-{name}", name=parameter_names[name], type="SecureString", value=variable.string_value)
        statements = []
        if parameter_names:
            statements = [
                {"Effect": "Allow", "Action": "ssm:GetParameter", "Resource": f"arn:aws:ssm:{parameters.aws_region}:*:parameter/spawnit/{prefix}/*"},
                {"Effect": "Allow", "Action": "kms:Decrypt", "Resource": "*", "Condition": {"StringEquals": {"kms:ViaService": f"ssm.{parameters.aws_region}.amazonaws.com"}}},
            ]
        role = InstanceRole(stack, "role", name=prefix, statements=statements)
        reader = f'aws ssm get-parameter --region {parameters.aws_region} --with-decryption --name "$1" --query Parameter.Value --output text'
        files, script = run_script(prefix, containers, parameter_names, install_docker=DNF_DOCKER, secret_reader=reader)
        self.user_data = cloud_config(files=files, boot_script=("spawnit-service.sh", script))
        instance = Instance(
            stack,
            "instance",
            ami=amazon_linux_2023_ami(stack, parameters.aws_instance_type),
            instance_type=parameters.aws_instance_type,
            subnet_id=subnet_id,
            associate_public_ip_address=True,
            vpc_security_group_ids=[group.id],
            iam_instance_profile=role.instance_profile.name,
            user_data_base64=user_data(self.user_data, owner="the aws target's"),
            user_data_replace_on_change=True,
            metadata_options=InstanceMetadataOptions(http_endpoint="enabled", http_tokens="required", http_put_response_hop_limit=1),
            root_block_device=InstanceRootBlockDevice(volume_size=parameters.root_volume_gb, volume_type="gp3", encrypted=True),
            monitoring=True,
            ebs_optimized=True,
            tags={"Name": prefix},
        )
        # aws_instance does not manage the power state (terraform-provider-aws#190); this resource does:
        # a stopped instance is drift, and an apply starts it again.
        Ec2InstanceState(stack, "running", instance_id=instance.id, state="running")
        TerraformOutput(stack, "public_ip", value=instance.public_ip)
        for published, protocol, description in ports:
            TerraformOutput(stack, f"port_{published}_{protocol}", value=f"{published}/{protocol}", description=description)



DNF_DOCKER = "rpm -q docker >/dev/null || dnf install -y docker"  # Amazon Linux 2023
APT_DOCKER = (  # Debian and Ubuntu (cloud images, container templates); retried while another apt holds the lock
    "command -v docker >/dev/null || for attempt in 1 2 3 4 5; do "
    "apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q docker.io && break; sleep 15; done"
)


def run_script(
    prefix: str, containers: list[ContainerSpec], secret_sources: dict[str, str], *, install_docker: str, secret_reader: str
) -> tuple[dict[str, str], str]:
    """Files and the boot script that run ``containers`` with plain ``docker`` on a host.

    ``install_docker`` is the host's command that installs Docker when missing;
    ``secret_reader`` the body of the script's ``secret`` function, which prints the
    secret its argument names (``secret_sources``: secret -> that argument)."""
    base = f"/opt/spawnit/{prefix}"
    files: dict[str, str] = {}
    lines = [
        "#!/bin/bash",
        f"# Runs the containers of {prefix} at every boot; idempotent. Output: /var/log/spawnit-service.log",
        "set -euo pipefail",
        "exec >>/var/log/spawnit-service.log 2>&1",
        install_docker,
        "systemctl enable --now docker",
        "umask 077",
        f"docker network inspect {prefix} >/dev/null 2>&1 || docker network create {prefix}",
        "secret() {",
        f"  {secret_reader}",
        "}",
        "wait_healthy() {",
        "  for _ in $(seq 120); do",
        "    [ \"$(docker inspect --format '{{if .State.Health}}{{.State.Health.Status}}{{else}}healthy{{end}}' \"$1\")\" = healthy ] && return 0",
        "    sleep 5",
        "  done",
        '  echo "$1 did not become healthy" >&2; return 1',
        "}",
    ]
    for container in containers:
        full_name = f"{prefix}-{container.name}"
        env_file = f"{base}/{container.name}.env"
        files[f"{base}/{container.name}.env.static"] = "".join(f"{key}={value}\n" for key, value in sorted(container.env.items()))
        lines.append(f"cp {base}/{container.name}.env.static {env_file}")
        for key, secret in sorted(container.secrets.items()):
            lines.append(f'printf "%s=%s\\n" {key} "$(secret {secret_sources[secret]})" >>{env_file}')
        image = container.image
        if isinstance(image, ImageBuild):
            files[f"{base}/{container.name}-build/Dockerfile"] = image.dockerfile
            lines.append(f"docker build -t {image.tag} {base}/{container.name}-build")
            image = image.tag
        arguments = ["docker", "run", "-d", "--name", full_name, "--network", prefix, "--network-alias", container.name, "--restart", "unless-stopped", "--env-file", env_file]
        arguments += ["--log-opt", "max-size=10m", "--log-opt", "max-file=3"]
        for port in container.ports:
            arguments += ["-p", f"{port.published}:{port.container}/{port.protocol}"]
        for volume, path in container.volumes.items():
            arguments += ["-v", f"{prefix}-{volume}:{path}"]
        for index, (path, content) in enumerate(sorted(container.files.items())):
            local = f"{base}/{container.name}-files/{index}"
            files[local] = content
            arguments += ["-v", f"{local}:{path}:ro"]
        if container.memory_mb:
            arguments += ["--memory", f"{container.memory_mb}m"]
        if container.health:
            health = container.health
            command = health.test[1] if health.test[0] == "CMD-SHELL" else shlex.join(health.test[1:])
            arguments += ["--health-cmd", command, "--health-interval", health.interval, "--health-timeout", health.timeout]
            arguments += ["--health-retries", str(health.retries), "--health-start-period", health.start_period]
        arguments.append(image)
        arguments += list(container.command or ())
        for dependency in container.depends_on:
            lines.append(f"wait_healthy {prefix}-{dependency}")
        lines.append(f"if ! docker container inspect {full_name} >/dev/null 2>&1; then")
        lines.append("  " + shlex.join(arguments))
        lines.append(f"else docker start {full_name} >/dev/null; fi")
    return files, "\n".join(lines) + "\n"


class ProxmoxTarget(Target):
    """A Proxmox VE guest that runs the same containers: a VM cloned from a cloud-init template, or an
    unprivileged LXC container with nesting (``proxmox_kind``).

    The VM's user data is a snippet (cloud-init ``user_data_file_id``): it installs
    Docker and the QEMU guest agent (so the provider learns the address), writes each
    secret from its sensitive variable (base64, mode 0600) and the same boot script as
    the ``aws`` target. LXC templates have no cloud-init: a Proxmox hook script does the
    same after every start, through ``pct exec``. Snippets are uploaded by the provider
    over SSH; they hold the secrets' values on the node, readable by root only.
    """

    name = "proxmox"

    def realize(self, stack: TerraformStack, prefix: str, containers: list[ContainerSpec], parameters: ServiceParameters, hints: ServiceHints = ServiceHints()) -> None:
        from ..constructs.proxmox import ProxmoxProvider

        ports = published_ports(containers)
        ProxmoxProvider(stack, endpoint=parameters.proxmox_endpoint, ssh_username=parameters.proxmox_ssh_user)
        secrets = secret_variables(stack, containers)
        secret_dir = f"/opt/spawnit/{prefix}/secrets"
        files, script = run_script(
            prefix, containers, {name: f"{secret_dir}/{name}" for name in secrets}, install_docker=APT_DOCKER, secret_reader='cat "$1"'
        )
        encoded_secrets = {f"{secret_dir}/{name}": Fn.base64encode(variable.string_value) for name, variable in secrets.items()}
        tags = ["spawnit", prefix]
        description = f"SpawnIt instance {prefix}: {', '.join(container.name for container in containers)}"
        memory = parameters.proxmox_memory(containers, hints.proxmox_min_memory_mb)
        if parameters.proxmox_kind == "vm":
            guest = self._vm(stack, prefix, parameters, files, script, encoded_secrets, memory, tags, description)
        else:
            guest = self._container(stack, prefix, parameters, files, script, encoded_secrets, memory, tags, description)
        TerraformOutput(stack, "address", value=guest.primary_ipv4, description="The guest's IPv4 address (from the guest agent or the container)")
        TerraformOutput(stack, "vm_id", value=guest.vm_identifier, description="The guest's id on the cluster")
        TerraformOutput(stack, "node", value=parameters.proxmox_node)
        for published, protocol, description in ports:
            TerraformOutput(stack, f"port_{published}_{protocol}", value=f"{published}/{protocol}", description=description)

    def _vm(self, stack, prefix, parameters, files, script, encoded_secrets, memory, tags, description):  # noqa: ANN001, ANN202
        from ..constructs._common import cloud_config
        from ..constructs.proxmox import ProxmoxVm, VmClone, VmCpu, VmDisk, VmInitialization, VmMemory, VmNetworkDevice

        self.user_data = cloud_config(
            files=files,
            boot_script=("spawnit-service.sh", script),
            encoded_files=encoded_secrets,
            packages=("qemu-guest-agent", "docker.io", "curl"),
            first_boot=(("systemctl", "enable", "--now", "qemu-guest-agent"),),
        )
        user_data = _snippet(stack, "user-data", parameters, self.user_data, file_name=f"{prefix}-user-data.yaml")
        return ProxmoxVm(
            stack,
            "vm",
            node_name=parameters.proxmox_node,
            name=prefix,
            description=description,
            tags=tags,
            clone=VmClone(vm_id=parameters.proxmox_template_vmid, datastore_id=parameters.proxmox_storage),
            cpu=VmCpu(cores=parameters.proxmox_cores),
            memory=VmMemory(dedicated=memory),
            disk=[VmDisk(interface="scsi0", size=parameters.proxmox_disk_gb, datastore_id=parameters.proxmox_storage)],
            network_device=[VmNetworkDevice(bridge=parameters.proxmox_bridge, vlan_id=parameters.proxmox_vlan)],
            initialization=VmInitialization(datastore_id=parameters.proxmox_storage, user_data_file_id=user_data.file_id),
        )

    def _container(self, stack, prefix, parameters, files, script, encoded_secrets, memory, tags, description):  # noqa: ANN001, ANN202
        from ..constructs.proxmox import (
            ContainerCpu, ContainerDisk, ContainerFeatures, ContainerInitialization, ContainerMemory,
            ContainerNetworkInterface, ContainerOperatingSystem, ProxmoxContainer,
        )

        self.hook_script = lxc_hook_script(prefix, files, ("/usr/local/sbin/spawnit-service.sh", script), encoded_secrets)
        hook = _snippet(stack, "hook-script", parameters, self.hook_script, file_name=f"{prefix}-hook.sh", file_mode="0700")
        return ProxmoxContainer(
            stack,
            "container",
            node_name=parameters.proxmox_node,
            description=description,
            tags=tags,
            operating_system=ContainerOperatingSystem(template_file_id=parameters.proxmox_lxc_template),
            initialization=ContainerInitialization(hostname=prefix),
            cpu=ContainerCpu(cores=parameters.proxmox_cores),
            memory=ContainerMemory(dedicated=memory),
            disk=ContainerDisk(datastore_id=parameters.proxmox_storage, size=parameters.proxmox_disk_gb),
            network_interface=[ContainerNetworkInterface(bridge=parameters.proxmox_bridge, vlan_id=parameters.proxmox_vlan)],
            features=ContainerFeatures(nesting=True, keyctl=True),
            hook_script_file_id=hook.file_id,
        )


def _snippet(stack: TerraformStack, id: str, parameters: ServiceParameters, text: str, *, file_name: str, file_mode: str | None = None):  # noqa: ANN202
    """``text`` as a snippet on the instance's node and snippets datastore (Terraform template markers
    in it escaped; references such as a secret's ``base64encode`` kept)."""
    from ..constructs.docker import literal
    from ..constructs.proxmox import FileSourceRaw, ProxmoxFile

    source = FileSourceRaw(data=literal(text), file_name=file_name)
    return ProxmoxFile(
        stack, id, node_name=parameters.proxmox_node, datastore_id=parameters.proxmox_snippets_storage, source_raw=source, file_mode=file_mode
    )


GUEST_SETUP_MARK = "# guest setup: run inside the container"


def lxc_hook_script(prefix: str, files: dict[str, str], boot_script: tuple[str, str], encoded_files: dict[str, str]) -> str:
    """A Proxmox hook script (``hookscript VMID PHASE``): after each start of the container, pipes
    the guest setup below its mark into ``pct exec VMID -- bash -s``, in the background so
    that the start task does not wait for Docker. The setup writes every file (base64,
    mode 0600; the boot script 0700) and runs the boot script; it is idempotent."""
    path, script = boot_script
    writes = {**{name: base64.b64encode(content.encode()).decode() for name, content in files.items()}, **encoded_files}
    setup = [GUEST_SETUP_MARK, "set -euo pipefail", "umask 077"]
    for name, encoded in sorted(writes.items()):
        setup.append(f"install -d -m 0700 {shlex.quote(str(Path(name).parent))}")
        setup.append(f"printf %s '{encoded}' | base64 -d >{shlex.quote(name)}")
    setup.append(f"printf %s '{base64.b64encode(script.encode()).decode()}' | base64 -d >{path}")
    setup.append(f"chmod 0700 {path}")
    setup.append(f"exec {path}")
    log = f"/var/log/spawnit-{prefix}-hook.log"
    hook = [
        "#!/bin/bash",
        f"# Proxmox hook script of {prefix}: after each start, sets the service up inside the container. Log: {log}",
        "set -euo pipefail",
        'vmid="$1" phase="$2"',
        '[ "$phase" = post-start ] || exit 0',
        f"exec >>{log} 2>&1",
        'echo "$(date -Is) container $vmid started: setting up the service"',
        'for _ in $(seq 60); do pct exec "$vmid" -- true 2>/dev/null && break; sleep 2; done',
        f"sed -n '/^{GUEST_SETUP_MARK}$/,$p' \"$0\" | pct exec \"$vmid\" -- bash -s &",
        "exit 0",
    ]
    return "\n".join(hook + setup) + "\n"
