"""Provider schemas written by hand from a provider's documentation, for providers without a cdktf binding.

bpg/proxmox (0.111, registry.opentofu.org/bpg/proxmox): the provider block and the
resources SpawnIt writes, from docs/index.md and docs/resources/virtual_environment_
{vm,container,file}.md. Every top-level argument of those resources is here, and every
argument of the blocks SpawnIt uses; blocks SpawnIt never writes (PCI and USB passthrough,
EFI and TPM disks, NUMA, SEV, watchdog...) are left out, so writing one is reported as
unknown rather than accepted unchecked. Argument kinds follow the docs (Required,
Optional, Computed: the "Attribute Reference"); nested blocks are lists, as the
provider's SDKv2 resources and its framework ``ssh`` block declare them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

STRING, NUMBER, BOOL = "string", "number", "bool"
STRINGS = ["list", "string"]


def _attribute(kind: str, type_: Any) -> dict[str, Any]:
    return {"type": type_, kind: True} if kind != "optional_computed" else {"type": type_, "optional": True, "computed": True}


def optional(type_: Any) -> dict[str, Any]:
    return _attribute("optional", type_)


def required(type_: Any) -> dict[str, Any]:
    return _attribute("required", type_)


def computed(type_: Any) -> dict[str, Any]:
    return _attribute("computed", type_)


def optional_computed(type_: Any) -> dict[str, Any]:
    return _attribute("optional_computed", type_)


def block(attributes: dict[str, Any], blocks: dict[str, Any] | None = None, *, max_items: int = 0, min_items: int = 0) -> dict[str, Any]:
    """A nested block (list nesting), its attributes and blocks."""
    nested: dict[str, Any] = {"nesting_mode": "list", "block": {"attributes": attributes, "block_types": blocks or {}}}
    if max_items:
        nested["max_items"] = max_items
    if min_items:
        nested["min_items"] = min_items
    return nested


def options(names: str, type_: Any = STRING) -> dict[str, Any]:
    return {name: optional(type_) for name in names.split()}


def _ip_config() -> dict[str, Any]:
    address = block({"address": optional(STRING), "gateway": optional(STRING)}, max_items=1)
    return block({}, {"ipv4": address, "ipv6": address})


def _dns() -> dict[str, Any]:
    return block({"domain": optional(STRING), "server": optional(STRING), "servers": optional(STRINGS)}, max_items=1)


def _startup() -> dict[str, Any]:
    return block(options("order up_delay down_delay", NUMBER), max_items=1)


def _clone(full_and_retries: bool) -> dict[str, Any]:
    attributes = {"datastore_id": optional(STRING), "node_name": optional(STRING), "vm_id": required(NUMBER), "full": optional(BOOL)}
    if full_and_retries:
        attributes["retries"] = optional(NUMBER)
    return block(attributes, max_items=1)


_TIMEOUTS_VM = "timeout_clone timeout_create timeout_migrate timeout_reboot timeout_shutdown_vm timeout_start_vm timeout_stop_vm"
_TIMEOUTS_CT = "timeout_create timeout_clone timeout_delete timeout_update"

VM = {
    "attributes": {
        "id": optional_computed(STRING),
        "node_name": required(STRING),
        "vm_id": optional_computed(NUMBER),
        "tags": optional(STRINGS),
        "boot_order": optional(STRINGS),
        **options("bios description hotplug keyboard_layout kvm_arguments machine name pool_id scsi_hardware hook_script_file_id"),
        **options("acpi migrate on_boot protection reboot reboot_after_update started tablet_device template stop_on_destroy "
                  "purge_on_destroy delete_unreferenced_disks_on_destroy", BOOL),
        **options(_TIMEOUTS_VM, NUMBER),
        "ipv4_addresses": computed(["list", STRINGS]),
        "ipv6_addresses": computed(["list", STRINGS]),
        "mac_addresses": computed(STRINGS),
        "network_interface_names": computed(STRINGS),
    },
    "block_types": {
        "agent": block(
            {"enabled": optional(BOOL), "timeout": optional(STRING), "trim": optional(BOOL), "type": optional(STRING)},
            {"wait_for_ip": block(options("disabled ipv4 ipv6", BOOL), max_items=1)},
            max_items=1,
        ),
        "cdrom": block({"enabled": optional(BOOL), "file_id": optional(STRING), "interface": optional(STRING)}),
        "clone": _clone(True),
        "cpu": block(
            {**options("architecture type affinity"), **options("cores hotplugged limit sockets units", NUMBER), "numa": optional(BOOL), "flags": optional(STRINGS)},
            max_items=1,
        ),
        "disk": block(
            {
                **options("aio cache datastore_id path_in_datastore discard file_format file_id import_from serial"),
                "interface": required(STRING),
                **options("backup iothread replicate ssd", BOOL),
                **options("queues size", NUMBER),
            },
            {"speed": block(options("iops_read iops_read_burstable iops_write iops_write_burstable read read_burstable write write_burstable", NUMBER), max_items=1)},
        ),
        "initialization": block(
            {
                **options("datastore_id interface file_format network_data_file_id user_data_file_id vendor_data_file_id meta_data_file_id"),
                "upgrade": optional(BOOL),
            },
            {
                "dns": _dns(),
                "ip_config": _ip_config(),
                "user_account": block({"keys": optional(STRINGS), "password": optional(STRING), "username": optional(STRING)}, max_items=1),
            },
            max_items=1,
        ),
        "memory": block({**options("dedicated floating shared", NUMBER), "hugepages": optional(STRING), "keep_hugepages": optional(BOOL)}, max_items=1),
        "network_device": block(
            {
                **options("bridge mac_address model trunks"),
                **options("disconnected enabled firewall", BOOL),
                **options("mtu queues rate_limit vlan_id", NUMBER),
            }
        ),
        "operating_system": block({"type": optional(STRING)}, max_items=1),
        "serial_device": block({"device": optional(STRING)}),
        "startup": _startup(),
        "vga": block({"memory": optional(NUMBER), "type": optional(STRING), "clipboard": optional(STRING)}, max_items=1),
    },
}

CONTAINER = {
    "attributes": {
        "id": optional_computed(STRING),
        "node_name": required(STRING),
        "vm_id": optional_computed(NUMBER),
        "tags": optional(STRINGS),
        "environment_variables": optional(["map", "string"]),
        **options("description pool_id hook_script_file_id"),
        **options("protection started start_on_boot template unprivileged", BOOL),
        **options(_TIMEOUTS_CT, NUMBER),
        "ipv4": computed(["map", "string"]),
        "ipv6": computed(["map", "string"]),
    },
    "block_types": {
        "clone": _clone(False),
        "console": block({"enabled": optional(BOOL), "type": optional(STRING), "tty_count": optional(NUMBER)}, max_items=1),
        "cpu": block({"architecture": optional(STRING), **options("cores limit units", NUMBER)}, max_items=1),
        "disk": block(
            {"datastore_id": optional(STRING), "size": optional(NUMBER), "acl": optional(BOOL), "mount_options": optional(STRINGS),
             "quota": optional(BOOL), "replicate": optional(BOOL), "path_in_datastore": computed(STRING)},
            max_items=1,
        ),
        "features": block({**options("nesting fuse keyctl mknod", BOOL), "mount": optional(STRINGS)}, max_items=1),
        "initialization": block(
            {"entrypoint": optional(STRING), "hostname": optional(STRING)},
            {"dns": _dns(), "ip_config": _ip_config(), "user_account": block({"keys": optional(STRINGS), "password": optional(STRING)}, max_items=1)},
            max_items=1,
        ),
        "memory": block(options("dedicated swap", NUMBER), max_items=1),
        "network_interface": block(
            {
                "name": required(STRING),
                **options("bridge mac_address"),
                **options("enabled firewall host_managed", BOOL),
                **options("mtu rate_limit vlan_id", NUMBER),
            }
        ),
        "operating_system": block({"template_file_id": required(STRING), "type": optional(STRING)}, max_items=1, min_items=1),
        "startup": _startup(),
        "wait_for_ip": block(options("ipv4 ipv6", BOOL), max_items=1),
    },
}

FILE = {
    "attributes": {
        "id": optional_computed(STRING),
        "datastore_id": required(STRING),
        "node_name": required(STRING),
        "content_type": optional_computed(STRING),
        **options("file_mode upload_mode"),
        "overwrite": optional(BOOL),
        "timeout_upload": optional(NUMBER),
        "file_modification_date": computed(STRING),
        "file_name": computed(STRING),
        "file_size": computed(NUMBER),
        "file_tag": computed(STRING),
    },
    "block_types": {
        "source_file": block(
            {"path": required(STRING), **options("checksum file_name min_tls"), "insecure": optional(BOOL)}, max_items=1
        ),
        "source_raw": block({"data": required(STRING), "file_name": required(STRING), "resize": optional(NUMBER)}, max_items=1),
    },
}

PROVIDER = {
    "attributes": {
        **options("endpoint min_tls tmp_dir username otp"),
        **{name: {"type": STRING, "optional": True, "sensitive": True} for name in ("api_token", "auth_ticket", "csrf_prevention_token", "password")},
        "insecure": optional(BOOL),
        "random_vm_ids": optional(BOOL),
        **options("random_vm_id_start random_vm_id_end", NUMBER),
    },
    "block_types": {
        "ssh": block(
            {
                **options("agent_socket socks5_server socks5_username node_address_source username"),
                **{name: {"type": STRING, "optional": True, "sensitive": True} for name in ("password", "private_key", "socks5_password")},
                **options("agent agent_forwarding", BOOL),
            },
            {"node": block({"name": required(STRING), "address": required(STRING), "port": optional(NUMBER)})},
            max_items=1,
        )
    },
}


@dataclass(frozen=True)
class DocumentedProvider:
    """A provider whose schema is written here from its documentation (no binding to rebuild it from)."""

    source: str
    version: str
    provider: dict[str, Any]
    resources: dict[str, dict[str, Any]]

    @property
    def name(self) -> str:
        return self.source.rsplit("/", 1)[1]

    @property
    def cache_key(self) -> str:
        return f"{self.source}@{self.version}"

    def schema(self) -> dict[str, Any]:
        return {
            "provider": {"version": 0, "block": self.provider},
            "resource_schemas": {name: {"version": 0, "block": body} for name, body in self.resources.items()},
            "data_source_schemas": {},
        }


PROXMOX = DocumentedProvider(
    "registry.terraform.io/bpg/proxmox",
    "0.111.1",
    PROVIDER,
    {
        "proxmox_virtual_environment_vm": VM,
        "proxmox_virtual_environment_container": CONTAINER,
        "proxmox_virtual_environment_file": FILE,
    },
)
