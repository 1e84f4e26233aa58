"""Proxmox VE through the bpg/proxmox provider: typed bindings for the few resources SpawnIt uses,
and :class:`CloudInitVm` / :class:`DockerContainerHost`, which run a boot script in a VM or an LXC container.

No prebuilt cdktf bindings of bpg/proxmox work with cdktf 0.21, so these are our
own, on cdktf's ``TerraformProvider`` / ``TerraformResource``. Every attribute and
block name comes from the provider's documentation (registry.opentofu.org/bpg/proxmox,
docs/resources/virtual_environment_{vm,container,file}.md); each block is a frozen
dataclass whose fields are checked when it is built, so a bad value fails at synth
time with the prop, the value and what is allowed. Blocks are lists in the JSON, as
the provider's schema declares them. The underlying resources stay public
(``.resource``) as an escape hatch: ``add_override`` reaches any other attribute.

Credentials never enter the JSON: the provider reads ``PROXMOX_VE_API_TOKEN`` (or
``PROXMOX_VE_USERNAME``/``PROXMOX_VE_PASSWORD``) and, for snippet uploads, which the
Proxmox API does not offer and the provider does over SSH, an SSH agent
(``SSH_AUTH_SOCK``) or ``PROXMOX_VE_SSH_PRIVATE_KEY``.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, fields, is_dataclass
from typing import Any

from cdktf import TerraformProvider, TerraformResource, TerraformStack
from constructs import Construct

PROVIDER_SOURCE = "bpg/proxmox"
PROVIDER_VERSION = "~> 0.111"  # 0.111.1 (2026-07-03) is the release these bindings were checked against

_NODE = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?$")
_STORAGE = re.compile(r"^[A-Za-z][A-Za-z0-9_.-]{0,39}$")
_BRIDGE = re.compile(r"^[A-Za-z][A-Za-z0-9_.-]{0,14}$")
_DISK_INTERFACE = re.compile(r"^(ide[0-3]|sata[0-5]|scsi([0-9]|[1-2][0-9]|30)|virtio([0-9]|1[0-5]))$")
_FILE_ID = re.compile(r"^[A-Za-z][A-Za-z0-9_.-]*:(iso|vztmpl|snippets|import)/\S+$")
_ENDPOINT = re.compile(r"^https://[A-Za-z0-9.-]+(:\d{1,5})?/?$")
_DNS_NAME = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")


def _check(owner: str, prop: str, value: Any, ok: bool, allowed: str) -> None:
    if not ok:
        raise ValueError(f"{owner} {prop}: {value!r} is not allowed; allowed: {allowed}")


def _in_range(owner: str, prop: str, value: int | None, low: int, high: int, unit: str = "") -> None:
    if value is not None:
        _check(owner, prop, value, isinstance(value, int) and low <= value <= high, f"{low}-{high}{unit}")


def _matches(owner: str, prop: str, value: str | None, pattern: re.Pattern[str], allowed: str) -> None:
    if value is not None:
        _check(owner, prop, value, isinstance(value, str) and bool(pattern.match(value)), allowed)


def _block(value: Any) -> list[dict[str, Any]] | None:
    """A block (dataclass) or blocks as the provider's JSON: a list of their set fields (None left out)."""
    if value is None:
        return None
    return [_attributes(item) for item in (value if isinstance(value, (list, tuple)) else [value])]


def _is_block(value: Any) -> bool:
    return is_dataclass(value) or (isinstance(value, (list, tuple)) and bool(value) and is_dataclass(value[0]))


def _attributes(block: Any) -> dict[str, Any]:
    values = {item.name: getattr(block, item.name) for item in fields(block)}
    return {name: _block(value) if _is_block(value) else value for name, value in values.items() if value is not None}


# Provider ------------------------------------------------------------------------------------


class ProxmoxProvider(TerraformProvider):
    """The bpg/proxmox provider. ``endpoint`` may be left out (``PROXMOX_VE_ENDPOINT``); credentials
    always come from the environment. ``ssh_username`` is the node account the provider uses
    to upload snippets (required with an API token: there is no password to reuse)."""

    def __init__(self, scope: Construct, id: str = "proxmox", *, endpoint: str | None = None, insecure: bool = False, ssh_username: str = "root") -> None:
        _matches("proxmox provider", "endpoint", endpoint, _ENDPOINT, "https://HOST[:PORT]/ (without /api2/json)")
        _matches("proxmox provider", "ssh_username", ssh_username, re.compile(r"^[a-z_][a-z0-9_-]{0,31}$"), "a Unix user name")
        super().__init__(scope, id, terraform_resource_type="proxmox", terraform_provider_source=PROVIDER_SOURCE)
        self.endpoint, self.insecure, self.ssh_username = endpoint, insecure, ssh_username
        TerraformStack.of(scope).add_override("terraform.required_providers.proxmox.version", PROVIDER_VERSION)

    def _synthesize_attributes(self) -> dict[str, Any]:
        attributes: dict[str, Any] = {"ssh": [{"agent": True, "username": self.ssh_username}]}
        if self.endpoint:
            attributes["endpoint"] = self.endpoint
        if self.insecure:
            attributes["insecure"] = True
        return attributes


# Resources ----------------------------------------------------------------------------------


class _Resource(TerraformResource):
    """A bpg/proxmox resource whose JSON is the attributes it was given, those left None omitted."""

    def __init__(self, scope: Construct, id: str, resource_type: str, attributes: dict[str, Any]) -> None:
        super().__init__(scope, id, terraform_resource_type=resource_type)
        self._attributes = attributes

    def _synthesize_attributes(self) -> dict[str, Any]:
        return {key: value for key, value in self._attributes.items() if value is not None}


class _Guest(_Resource):
    """A VM or a container: its id on the cluster and the first IPv4 address it reports."""

    address_attribute: str  # where the provider publishes the guest's addresses
    nested_addresses: bool  # a list per interface (VM) rather than a map interface -> address (container)

    @property
    def vm_identifier(self) -> float:
        return self.get_number_attribute("vm_id")

    @property
    def primary_ipv4(self) -> str:
        """The first IPv4 address outside 127.0.0.0/8 the guest reports (null until it reports one)."""
        return first_address(self, self.terraform_resource_type, self.address_attribute, nested=self.nested_addresses)


# File (snippets) -----------------------------------------------------------------------------


@dataclass(frozen=True)
class FileSourceRaw:
    """``source_raw``: content written by Terraform (``data``) under ``file_name`` in the datastore."""

    data: str
    file_name: str

    def __post_init__(self) -> None:
        _matches("proxmox file", "file_name", self.file_name, re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,200}$"), "letters, digits, '_', '.', '-'")


class ProxmoxFile(_Resource):
    """``proxmox_virtual_environment_file``: a snippet (cloud-init user data, hook script) on a node's
    datastore, which must have the ``snippets`` content type enabled. ``id`` is the volume id
    (``local:snippets/NAME``) that a VM or container refers to."""

    def __init__(self, scope: Construct, id: str, *, node_name: str, datastore_id: str, source_raw: FileSourceRaw, content_type: str = "snippets", file_mode: str | None = None) -> None:
        _matches("proxmox file", "node_name", node_name, _NODE, "a node name")
        _matches("proxmox file", "datastore_id", datastore_id, _STORAGE, "a storage id such as local")
        _check("proxmox file", "content_type", content_type, content_type in ("snippets", "iso", "vztmpl", "import", "backup"), "snippets, iso, vztmpl, import, backup")
        _matches("proxmox file", "file_mode", file_mode, re.compile(r"^0?[0-7]{3}$"), "an octal mode such as 0700")
        attributes = {"node_name": node_name, "datastore_id": datastore_id, "content_type": content_type, "source_raw": _block(source_raw), "file_mode": file_mode or None}
        super().__init__(scope, id, "proxmox_virtual_environment_file", attributes)

    @property
    def file_id(self) -> str:
        return self.get_string_attribute("id")


# Virtual machine -----------------------------------------------------------------------------


@dataclass(frozen=True)
class VmWaitForIp:
    """``wait_for_ip``: what the provider waits for before it reads the addresses (an IPv4 one here,
    not whichever family answers first)."""

    ipv4: bool | None = True


@dataclass(frozen=True)
class VmAgent:
    """``agent``: the QEMU guest agent. Enabled, the guest must start it (cloud-init installs it):
    Proxmox then shuts down through it, and the provider reads the VM's addresses from it."""

    enabled: bool = True
    timeout: str | None = "15m"
    trim: bool | None = True
    wait_for_ip: VmWaitForIp | None = VmWaitForIp()

    def __post_init__(self) -> None:
        _matches("proxmox vm", "agent.timeout", self.timeout, re.compile(r"^\d+[smh]$"), "a duration such as 15m")


@dataclass(frozen=True)
class VmClone:
    """``clone``: the template VM (``vm_id``) to copy; a full clone by default (no link to the template)."""

    vm_id: int
    full: bool = True
    datastore_id: str | None = None
    node_name: str | None = None

    def __post_init__(self) -> None:
        _in_range("proxmox vm", "clone.vm_id", self.vm_id, 100, 999_999_999)
        _matches("proxmox vm", "clone.datastore_id", self.datastore_id, _STORAGE, "a storage id")


@dataclass(frozen=True)
class VmCpu:
    cores: int = 1
    type: str | None = "x86-64-v2-AES"
    sockets: int | None = None

    def __post_init__(self) -> None:
        _in_range("proxmox vm", "cpu.cores", self.cores, 1, 128)


@dataclass(frozen=True)
class VmMemory:
    dedicated: int = 512
    floating: int | None = None

    def __post_init__(self) -> None:
        _in_range("proxmox vm", "memory.dedicated", self.dedicated, 64, 4_194_304, " MB")


@dataclass(frozen=True)
class VmDisk:
    """``disk``: ``interface`` (scsi0...) on ``datastore_id``, ``size`` in GB; a cloned template's disk
    of the same interface is resized to it (never shrunk)."""

    interface: str
    size: int
    datastore_id: str | None = None
    discard: str | None = "on"
    iothread: bool | None = True
    ssd: bool | None = None
    file_format: str | None = None

    def __post_init__(self) -> None:
        _matches("proxmox vm", "disk.interface", self.interface, _DISK_INTERFACE, "ide0-3, sata0-5, scsi0-30, virtio0-15")
        _in_range("proxmox vm", "disk.size", self.size, 1, 131_072, " GB")
        _matches("proxmox vm", "disk.datastore_id", self.datastore_id, _STORAGE, "a storage id")
        _check("proxmox vm", "disk.discard", self.discard, self.discard in (None, "on", "ignore"), "on, ignore")


@dataclass(frozen=True)
class VmNetworkDevice:
    bridge: str = "vmbr0"
    vlan_id: int | None = None
    model: str | None = "virtio"
    firewall: bool | None = None

    def __post_init__(self) -> None:
        _matches("proxmox vm", "network_device.bridge", self.bridge, _BRIDGE, "a bridge name such as vmbr0")
        _in_range("proxmox vm", "network_device.vlan_id", self.vlan_id, 1, 4094)
        _check("proxmox vm", "network_device.model", self.model, self.model in (None, "virtio", "e1000", "e1000e", "rtl8139", "vmxnet3"), "virtio, e1000, e1000e, rtl8139, vmxnet3")


@dataclass(frozen=True)
class Ipv4Config:
    """``ipv4`` of an ``ip_config``: ``dhcp``, or an address in CIDR form with its gateway."""

    address: str = "dhcp"
    gateway: str | None = None


@dataclass(frozen=True)
class IpConfig:
    ipv4: Ipv4Config = Ipv4Config()


@dataclass(frozen=True)
class VmInitialization:
    """``initialization``: the cloud-init drive. ``user_data_file_id`` replaces Proxmox's generated
    user data with a snippet of ours (a :class:`ProxmoxFile`)."""

    ip_config: Sequence[IpConfig] = (IpConfig(),)
    datastore_id: str | None = None
    user_data_file_id: str | None = None

    def __post_init__(self) -> None:
        _matches("proxmox vm", "initialization.datastore_id", self.datastore_id, _STORAGE, "a storage id")


@dataclass(frozen=True)
class VmOperatingSystem:
    type: str = "l26"


@dataclass(frozen=True)
class VmSerialDevice:
    """A serial port: Debian's and Ubuntu's cloud images print their console there."""

    device: str = "socket"


class ProxmoxVm(_Guest):
    """``proxmox_virtual_environment_vm``. The guest agent reports ``ipv4_addresses`` per interface;
    :attr:`primary_ipv4` is the first non-loopback one."""

    address_attribute, nested_addresses = "ipv4_addresses", True

    def __init__(
        self,
        scope: Construct,
        id: str,
        *,
        node_name: str,
        name: str,
        clone: VmClone | None = None,
        cpu: VmCpu = VmCpu(),
        memory: VmMemory = VmMemory(),
        disk: Sequence[VmDisk] = (),
        network_device: Sequence[VmNetworkDevice] = (VmNetworkDevice(),),
        initialization: VmInitialization | None = None,
        agent: VmAgent = VmAgent(),
        operating_system: VmOperatingSystem = VmOperatingSystem(),
        serial_device: Sequence[VmSerialDevice] = (VmSerialDevice(),),
        description: str | None = None,
        tags: Sequence[str] = (),
        on_boot: bool = True,
        started: bool = True,
        stop_on_destroy: bool = True,
        vm_id: int | None = None,
    ) -> None:
        _matches("proxmox vm", "node_name", node_name, _NODE, "a node name")
        _matches("proxmox vm", "name", name, _DNS_NAME, "a DNS label: lowercase letters, digits and '-'")
        _in_range("proxmox vm", "vm_id", vm_id, 100, 999_999_999)
        for tag in tags:
            _matches("proxmox vm", "tags", tag, re.compile(r"^[a-z0-9_][a-z0-9_+.-]*$"), "lowercase letters, digits, '_', '+', '.', '-'")
        super().__init__(scope, id, "proxmox_virtual_environment_vm", {
            "node_name": node_name,
            "name": name,
            "description": description,
            "tags": list(tags) or None,
            "on_boot": on_boot,
            "started": started,
            "stop_on_destroy": stop_on_destroy,
            "vm_id": vm_id,
            "clone": _block(clone),
            "cpu": _block(cpu),
            "memory": _block(memory),
            "disk": _block(list(disk)) if disk else None,
            "network_device": _block(list(network_device)),
            "initialization": _block(initialization),
            "agent": _block(agent),
            "operating_system": _block(operating_system),
            "serial_device": _block(list(serial_device)) if serial_device else None,
        })


# LXC container -------------------------------------------------------------------------------


@dataclass(frozen=True)
class ContainerCpu:
    cores: int = 1

    def __post_init__(self) -> None:
        _in_range("proxmox container", "cpu.cores", self.cores, 1, 8192)


@dataclass(frozen=True)
class ContainerMemory:
    dedicated: int = 512
    swap: int | None = 0

    def __post_init__(self) -> None:
        _in_range("proxmox container", "memory.dedicated", self.dedicated, 16, 4_194_304, " MB")


@dataclass(frozen=True)
class ContainerDisk:
    """``disk``: the root filesystem, ``size`` GB on ``datastore_id``."""

    datastore_id: str = "local-lvm"
    size: int = 8

    def __post_init__(self) -> None:
        _matches("proxmox container", "disk.datastore_id", self.datastore_id, _STORAGE, "a storage id")
        _in_range("proxmox container", "disk.size", self.size, 1, 131_072, " GB")


@dataclass(frozen=True)
class ContainerFeatures:
    """``features``: ``nesting`` and ``keyctl`` are what Docker needs inside an unprivileged container."""

    nesting: bool | None = True
    keyctl: bool | None = True


@dataclass(frozen=True)
class ContainerNetworkInterface:
    name: str = "eth0"
    bridge: str = "vmbr0"
    vlan_id: int | None = None

    def __post_init__(self) -> None:
        _matches("proxmox container", "network_interface.bridge", self.bridge, _BRIDGE, "a bridge name such as vmbr0")
        _in_range("proxmox container", "network_interface.vlan_id", self.vlan_id, 1, 4094)


@dataclass(frozen=True)
class ContainerInitialization:
    hostname: str
    ip_config: Sequence[IpConfig] = (IpConfig(),)

    def __post_init__(self) -> None:
        _matches("proxmox container", "initialization.hostname", self.hostname, _DNS_NAME, "a DNS label")


@dataclass(frozen=True)
class ContainerOperatingSystem:
    """``operating_system``: the template archive (``local:vztmpl/debian-12-standard_...tar.zst``)."""

    template_file_id: str
    type: str | None = "debian"

    def __post_init__(self) -> None:
        _matches("proxmox container", "operating_system.template_file_id", self.template_file_id, _FILE_ID, "STORAGE:vztmpl/FILE")
        _check("proxmox container", "operating_system.type", self.type, self.type in (None, "alpine", "archlinux", "centos", "debian", "devuan", "fedora", "gentoo", "nixos", "opensuse", "ubuntu", "unmanaged"), "a Proxmox OS type such as debian or ubuntu")


class ProxmoxContainer(_Guest):
    """``proxmox_virtual_environment_container``, unprivileged by default. Its ``ipv4`` attribute maps
    each interface to its first address; :attr:`primary_ipv4` is eth0's."""

    address_attribute, nested_addresses = "ipv4", False

    def __init__(
        self,
        scope: Construct,
        id: str,
        *,
        node_name: str,
        operating_system: ContainerOperatingSystem,
        initialization: ContainerInitialization,
        cpu: ContainerCpu = ContainerCpu(),
        memory: ContainerMemory = ContainerMemory(),
        disk: ContainerDisk = ContainerDisk(),
        network_interface: Sequence[ContainerNetworkInterface] = (ContainerNetworkInterface(),),
        features: ContainerFeatures | None = None,
        hook_script_file_id: str | None = None,
        description: str | None = None,
        tags: Sequence[str] = (),
        unprivileged: bool = True,
        start_on_boot: bool = True,
        started: bool = True,
        vm_id: int | None = None,
    ) -> None:
        _matches("proxmox container", "node_name", node_name, _NODE, "a node name")
        _in_range("proxmox container", "vm_id", vm_id, 100, 999_999_999)
        super().__init__(scope, id, "proxmox_virtual_environment_container", {
            "node_name": node_name,
            "description": description,
            "tags": list(tags) or None,
            "unprivileged": unprivileged,
            "start_on_boot": start_on_boot,
            "started": started,
            "vm_id": vm_id,
            "hook_script_file_id": hook_script_file_id,
            "operating_system": _block(operating_system),
            "initialization": _block(initialization),
            "cpu": _block(cpu),
            "memory": _block(memory),
            "disk": _block(disk),
            "network_interface": _block(list(network_interface)),
            "features": _block(features),
        })


def first_address(resource: TerraformResource, resource_type: str, attribute: str, *, nested: bool) -> str:
    """An expression for the first IPv4 address outside 127.0.0.0/8 among ``attribute``'s (null if none yet).

    The VM's ``ipv4_addresses`` is a list per interface (loopback first); the container's
    ``ipv4`` a map of interface to address (CIDR form on some releases: the prefix is cut)."""
    reference = f"{resource_type}.{resource.friendly_unique_id}.{attribute}"
    values = f"flatten({reference})" if nested else f"values({reference})"
    return "${" + f'try([for a in {values} : split("/", a)[0] if !startswith(a, "127.")][0], null)' + "}"


__all__ = [
    "ContainerCpu",
    "ContainerDisk",
    "ContainerFeatures",
    "ContainerInitialization",
    "ContainerMemory",
    "ContainerNetworkInterface",
    "ContainerOperatingSystem",
    "FileSourceRaw",
    "IpConfig",
    "Ipv4Config",
    "ProxmoxContainer",
    "ProxmoxFile",
    "ProxmoxProvider",
    "ProxmoxVm",
    "VmAgent",
    "VmClone",
    "VmCpu",
    "VmDisk",
    "VmInitialization",
    "VmMemory",
    "VmNetworkDevice",
    "VmOperatingSystem",
    "VmSerialDevice",
    "VmWaitForIp",
]
