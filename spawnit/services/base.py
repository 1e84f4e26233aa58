"""What every catalog service shares: typed parameters, a description of its containers, a registry.

A service describes containers (image, ports, environment, secrets, volumes,
health check); a target (:mod:`spawnit.services.targets`) realizes them.
Defining a subclass of :class:`CatalogService` registers it: adding a service
or a target touches no other code.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Annotated, Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError, model_validator

from ..shared import CLIENT_NAME_PATTERN, CLIENT_NAME_RULE, INSTANCE_NAME_PATTERN, INSTANCE_NAME_RULE, Health, did_you_mean

TARGETS = ("docker", "aws", "proxmox")
ProxmoxName = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?$")]
StorageId = Annotated[str, StringConstraints(pattern=r"^[A-Za-z][A-Za-z0-9_.-]{0,39}$")]
PROXMOX_SYSTEM_MEMORY_MB = 512  # what the guest's own system (Docker, agent) keeps beside the containers


class ParameterError(ValueError):
    """Invalid service parameters; the message names each field, its value and the rule.

    Every message has one line per problem that starts with the field's name (``  port = 80 is not
    allowed...``, ``service: 'x' is not in the catalog...``): :attr:`fields` maps each field to its lines,
    so a form can show each problem beside its field.
    """

    @property
    def fields(self) -> dict[str, str]:
        found: dict[str, str] = {}
        for line in str(self).splitlines():
            match = _PROBLEM_LINE.match(line)
            if match:
                found[match["field"]] = "\n".join(filter(None, (found.get(match["field"]), line.strip())))
        return found


_PROBLEM_LINE = re.compile(r"^\s*(?P<field>[a-z_][a-z0-9_]*)(?:\.[\w.]+)?(?: = | is |: )")


class ServiceParameters(BaseModel):
    """Parameters every service has: where it runs. Services add their own fields."""

    model_config = ConfigDict(extra="forbid", frozen=True, json_schema_extra={"additionalProperties": False})

    target: Literal["docker", "aws", "proxmox"] = Field(
        "docker", description="Where the service runs: local or remote Docker host, an EC2 instance, or a Proxmox VE VM or LXC container."
    )
    docker_host: Annotated[str, StringConstraints(pattern=r"^(unix|ssh|tcp|npipe)://\S+$")] = Field(
        "unix:///var/run/docker.sock", description="Docker host (target docker): local socket, ssh:// or tcp://."
    )
    docker_bind_address: ipaddress.IPv4Address = Field(
        ipaddress.IPv4Address("127.0.0.1"), description="Host address the ports are published on (target docker); 0.0.0.0 for every interface."
    )
    aws_region: Annotated[str, StringConstraints(pattern=r"^[a-z]{2}(-gov)?-[a-z]+-\d$")] = Field("eu-west-3", description="AWS region (target aws).")
    aws_instance_type: Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9-]*\.[a-z0-9]+$")] = Field(
        "t3.small", description="EC2 instance type (target aws)."
    )
    aws_subnet_id: Annotated[str, StringConstraints(pattern=r"^subnet-[0-9a-f]{8,17}$")] | None = Field(
        None, description="Subnet of the instance (target aws); default: the first subnet of the default VPC."
    )
    allowed_cidrs: list[ipaddress.IPv4Network] | None = Field(
        None,
        min_length=1,
        description="Who may reach the service's ports (target aws security group); required for target aws: "
        "your networks, or 0.0.0.0/0 to open the ports to the whole internet on purpose.",
    )
    root_volume_gb: int = Field(20, ge=8, le=1000, description="Encrypted root volume size (target aws).")
    proxmox_endpoint: Annotated[str, StringConstraints(pattern=r"^https://[A-Za-z0-9.-]+(:\d{1,5})?/?$")] | None = Field(
        None, description="Proxmox VE API endpoint, https://HOST:8006/ (target proxmox); default: PROXMOX_VE_ENDPOINT when deploying."
    )
    proxmox_node: ProxmoxName = Field("pve", description="Cluster node the guest runs on (target proxmox).")
    proxmox_kind: Literal["vm", "lxc"] = Field(
        "vm", description="A VM cloned from a cloud-init template, or an unprivileged LXC container with nesting (target proxmox)."
    )
    proxmox_cores: int = Field(2, ge=1, le=8, description="vCPUs of the guest (target proxmox).")
    proxmox_memory_mb: int | None = Field(
        None, ge=512, le=16384, description="Memory of the guest in MB (target proxmox); default: the containers' limits plus 512 MB, at least 1024."
    )
    proxmox_disk_gb: int = Field(20, ge=8, le=500, description="Disk of the guest in GB (target proxmox).")
    proxmox_storage: StorageId = Field("local-lvm", description="Datastore of the guest's disk (target proxmox).")
    proxmox_snippets_storage: StorageId = Field(
        "local", description="Datastore with the snippets content type, for the cloud-init user data or hook script (target proxmox)."
    )
    proxmox_bridge: Annotated[str, StringConstraints(pattern=r"^[A-Za-z][A-Za-z0-9_.-]{0,14}$")] = Field(
        "vmbr0", description="Network bridge of the guest (target proxmox)."
    )
    proxmox_vlan: int | None = Field(None, ge=1, le=4094, description="VLAN tag of the guest's interface (target proxmox); none by default.")
    proxmox_template_vmid: int = Field(
        9000, ge=100, le=999_999_999, description="VM id of the cloud-init template to clone, Debian 12 or Ubuntu (target proxmox, kind vm)."
    )
    proxmox_lxc_template: Annotated[str, StringConstraints(pattern=r"^[A-Za-z][A-Za-z0-9_.-]*:vztmpl/[A-Za-z0-9_.+-]+\.tar\.(gz|xz|zst)$")] = Field(
        "local:vztmpl/debian-12-standard_12.12-1_amd64.tar.zst",
        description="Debian or Ubuntu container template (target proxmox, kind lxc).",
    )
    proxmox_ssh_user: Annotated[str, StringConstraints(pattern=r"^[a-z_][a-z0-9_-]{0,31}$")] = Field(
        "root", description="Node account the provider uploads snippets with over SSH (target proxmox)."
    )

    @model_validator(mode="after")
    def _reach_is_explicit(self) -> ServiceParameters:
        # Open to the world must be a visible choice, never a default nobody saw.
        if self.target == "aws" and self.allowed_cidrs is None:
            raise ValueError(
                "allowed_cidrs: required for target aws; allowed: the networks that may reach the service "
                "(for example [\"203.0.113.0/24\"]), or [\"0.0.0.0/0\"] to open it to the whole internet"
            )
        return self

    def proxmox_memory(self, containers: list[ContainerSpec], minimum: int | None = None) -> int:
        """The guest's memory (MB): the chosen size, or the containers' limits plus the system's share
        (at least the service's own ``minimum``)."""
        if self.proxmox_memory_mb is not None:
            return self.proxmox_memory_mb
        limits = sum(container.memory_mb or 256 for container in containers)
        return min(16384, max(1024, minimum or 0, -(-(limits + PROXMOX_SYSTEM_MEMORY_MB) // 512) * 512))


@dataclass(frozen=True)
class ServiceHints:
    """What a service tells a target beyond its containers: the least memory of a Proxmox guest, the
    published ports an aws security group opens (None: every one)."""

    proxmox_min_memory_mb: int | None = None
    aws_open_ports: tuple[int, ...] | None = None


def published_ports(containers: list[ContainerSpec]) -> list[tuple[int, str, str]]:
    """(published port, protocol, description) of every container, checked for clashes."""
    seen: dict[tuple[int, str], str] = {}
    for container in containers:
        for port in container.ports:
            key = (port.published, port.protocol)
            if key in seen:
                raise ValueError(f"ports: {port.published}/{port.protocol} is published twice ({seen[key]} and {container.name}); allowed: distinct ports")
            seen[key] = container.name
    return [(port.published, port.protocol, port.description or container.name) for container in containers for port in container.ports]


def check_fit(service: type[CatalogService], parameters: ServiceParameters, containers: list[ContainerSpec]) -> None:
    """The containers' memory limits must fit in a Proxmox guest of the chosen size, and their published
    ports must not clash (two parameters given the same port)."""
    try:
        published_ports(containers)
    except ValueError as error:
        raise ParameterError(f"invalid parameters for service {service.name!r}:\n  {error}") from None
    if parameters.target != "proxmox":
        return
    limits = sum(container.memory_mb or 0 for container in containers)
    memory = parameters.proxmox_memory(containers, service.hints(parameters).proxmox_min_memory_mb)
    if limits + PROXMOX_SYSTEM_MEMORY_MB > memory:
        raise ParameterError(
            f"invalid parameters for service {service.name!r}:\n  proxmox_memory_mb = {memory!r} is too small: the containers' memory limits ({limits} MB) "
            f"plus {PROXMOX_SYSTEM_MEMORY_MB} MB for the system need {limits + PROXMOX_SYSTEM_MEMORY_MB}; allowed: "
            f"{limits + PROXMOX_SYSTEM_MEMORY_MB}-16384, or lower the service's memory"
        )


@dataclass(frozen=True)
class ServicePort:
    """A port the service offers: ``container`` inside, ``published`` on the host (or the instance)."""

    container: int
    published: int
    protocol: Literal["tcp", "udp"] = "tcp"
    description: str = ""


@dataclass(frozen=True)
class ImageBuild:
    """An image built on the target from a generated Dockerfile (no repository file needed)."""

    dockerfile: str
    tag: str


@dataclass(frozen=True)
class ContainerSpec:
    """One container of a service. ``secrets`` maps an environment variable to a secret name
    of the service: the target supplies the value (never a literal in the JSON)."""

    name: str
    image: str | ImageBuild
    ports: tuple[ServicePort, ...] = ()
    env: Mapping[str, str] = field(default_factory=dict)
    secrets: Mapping[str, str] = field(default_factory=dict)
    volumes: Mapping[str, str] = field(default_factory=dict)
    health: Health | None = None
    command: tuple[str, ...] | None = None
    files: Mapping[str, str] = field(default_factory=dict)
    depends_on: tuple[str, ...] = ()
    memory_mb: int | None = None


class CatalogService:
    """A deployable service. Subclasses set the class attributes and describe their containers."""

    name: ClassVar[str]
    category: ClassVar[str]
    description: ClassVar[str]
    Parameters: ClassVar[type[ServiceParameters]] = ServiceParameters
    secrets: ClassVar[tuple[str, ...]] = ()  # names of the secrets the deployer provides
    example: ClassVar[dict[str, Any]] = {}  # parameters of the default instance, where defaults are not enough

    version: ClassVar[str] = "1.0.0"  # a class's version: its package's release decides what it is
    sha256: ClassVar[str | None] = None  # a template's content hash; None for a class
    maintainer: ClassVar[str] = "SpawnIt"
    deprecated: ClassVar[str | None] = None

    registry: ClassVar[dict[str, type[CatalogService]]] = {}

    def __init_subclass__(cls, register: bool = True, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if register and "name" in cls.__dict__:
            if not re.fullmatch(r"[a-z][a-z0-9-]*", cls.name):
                raise ValueError(f"service name: {cls.name!r} is not allowed; allowed: lowercase letters, digits and '-'")
            CatalogService.registry[cls.name] = cls

    def __init__(self, parameters: ServiceParameters) -> None:
        self.parameters = parameters

    def containers(self) -> list[ContainerSpec]:
        raise NotImplementedError

    @classmethod
    def parse(cls, values: Mapping[str, Any]) -> ServiceParameters:
        """Validated parameters, or :class:`ParameterError` naming every bad field, its value and the rule."""
        try:
            return cls.Parameters.model_validate(dict(values))
        except ValidationError as error:
            raise ParameterError(explain(cls.name, error, cls.Parameters)) from None

    @classmethod
    def checked(cls, values: Mapping[str, Any]) -> ServiceParameters:
        """:meth:`parse`, then the service's own rules across fields (they run when it describes its containers)."""
        parameters = cls.parse(values)
        check_fit(cls, parameters, cls(parameters).containers())
        return parameters

    @classmethod
    def hints(cls, parameters: ServiceParameters) -> ServiceHints:
        """What the targets should know beyond the containers (see :class:`ServiceHints`)."""
        return ServiceHints()

    @classmethod
    def schema(cls) -> dict[str, Any]:
        """The parameters' JSON Schema; a target's own settings carry ``x-target`` (forms show them for it only).
        A field without a title of its own gets one written for people (:func:`field_label`)."""
        schema = cls.Parameters.model_json_schema()
        schema["title"] = cls.name
        schema["description"] = cls.description
        for name, field_schema in schema.get("properties", {}).items():
            target = target_of(name)
            if target:
                field_schema["x-target"] = target
            if field_schema.get("title") == name.replace("_", " ").title():  # pydantic's generated title
                field_schema["title"] = field_label(name)
        return schema


AWS_ONLY_FIELDS = ("allowed_cidrs", "root_volume_gb")

# What an automatic (minor) upgrade may change without a person's review: the containers and their images.
# Data lives in volumes, which it may not touch; a replaced EC2 instance or Proxmox guest, a network or a
# security group rule waits for review.
AUTO_UPGRADE_RESOURCES = frozenset({"docker_container", "docker_image"})

# How a field name's words read in a form: acronyms, units, words run together.
_WORDS = {
    "aws": "AWS", "api": "API", "cidrs": "CIDRs", "eula": "EULA", "html": "HTML", "http": "HTTP", "id": "ID", "lxc": "LXC",
    "maxmemory": "max memory", "motd": "message of the day", "ref": "git ref", "ssh": "SSH", "url": "URL", "vlan": "VLAN", "vmid": "VM ID",
}
_UNITS = {"mb": "(MB)", "gb": "(GB)"}
CATEGORY_LABELS = {"database": "Databases", "devtools": "Developer tools", "games": "Games", "identity": "Identity",
                   "paas": "PaaS", "storage": "Storage", "web": "Web"}


def field_label(name: str) -> str:
    """``maxmemory_mb`` -> ``Max memory (MB)``, ``aws_subnet_id`` -> ``AWS subnet ID``, ``proxmox_lxc_template`` ->
    ``Proxmox LXC template``: a label for people, from a field's name."""
    words = [_UNITS.get(word) or _WORDS.get(word, word) for word in name.split("_")]
    text = " ".join(words)
    return text[0].upper() + text[1:]


def target_of(field: str) -> str | None:
    """The target a shared parameter belongs to (``aws_region`` -> aws), or None for the service's own."""
    for target in TARGETS:
        if field.startswith(f"{target}_"):
            return target
    return "aws" if field in AWS_ONLY_FIELDS else None


def explain(service: str, error: ValidationError, model: type[BaseModel]) -> str:
    lines = [f"invalid parameters for service {service!r}:"]
    for problem in error.errors():
        location = ".".join(str(part) for part in problem["loc"]) or "(parameters)"
        value = problem.get("input")
        context = problem.get("ctx") or {}
        if not problem["loc"] and problem["type"] == "value_error":  # a rule across fields names its field first
            field, _, rule = problem["msg"].removeprefix("Value error, ").partition(": ")
            lines.append(f"  {field} = {shown(value.get(field) if isinstance(value, dict) else None)} is {rule}")
            continue
        if problem["type"] == "missing":
            lines.append(f"  {location} is required: {_field_description(model, location)}")
            continue
        if problem["type"] == "extra_forbidden":
            fields = list(model.model_fields)
            rule = f"is not a parameter of this service; {did_you_mean(location, fields)}allowed: {', '.join(fields)}"
        elif problem["type"] == "literal_error":
            rule = f"is not allowed; allowed: {context.get('expected')}"
        elif problem["type"] == "string_pattern_mismatch":
            rule = f"is not allowed; allowed: values matching {context.get('pattern')}"
        else:
            rule = f"is not allowed: {problem['msg'][0].lower()}{problem['msg'][1:]}"
        lines.append(f"  {location} = {shown(value)} {rule}")
    return "\n".join(lines)


SHOWN_LENGTH = 80


def shown(value: Any) -> str:
    """A value as an error message repeats it: its repr, cut to SHOWN_LENGTH characters (a 10 MB value
    is not sent back)."""
    text = repr(value)
    return text if len(text) <= SHOWN_LENGTH else f"{text[:SHOWN_LENGTH]}... ({len(text)} characters)"


def _field_description(model: type[BaseModel], field: str) -> str:
    """What a required field is, from its description."""
    found = model.model_fields.get(field)
    return (found.description if found else None) or "give a value"


def get_service(name: str, version: str | None = None) -> type[CatalogService]:
    """A service of the package's catalog (built-in templates and Python classes), in its current version
    or the one asked; an API with a store asks its own :class:`~spawnit.services.catalog.Catalog`."""
    from .catalog import DEFAULT

    return DEFAULT.get(name, version)


def all_services() -> dict[str, type[CatalogService]]:
    from .catalog import DEFAULT

    return DEFAULT.services()


def catalog_document(catalog: Any = None) -> dict[str, Any]:
    """The catalog as JSON for the API and `spawnit catalog --format json`: every service in its current
    version (schema, secrets, maintainer), its versions with their deprecation notes, and the broken
    templates left out."""
    from .catalog import DEFAULT

    catalog = catalog or DEFAULT
    services = []
    for service in catalog.services().values():
        services.append({
            "name": service.name,
            "version": service.version,
            "category": service.category,
            "category_label": CATEGORY_LABELS.get(service.category, service.category.capitalize()),
            "description": service.description,
            "maintainer": service.maintainer,
            "targets": list(TARGETS),
            "secrets": list(service.secrets),
            "parameters": service.schema(),
            "versions": [{"version": version, "sha256": found.sha256, "deprecated": catalog.deprecation(found)} for version, found in catalog.versions(service.name).items()],
        })
    return {"services": services, "broken": [broken.document() for broken in catalog.broken()]}


def instance_stack_name(client: str, instance: str) -> str:
    """The stack name of ``client``'s ``instance``: ``CLIENT-INSTANCE``, both checked (the rules of
    :mod:`spawnit.shared`, the same for the API and the command line)."""
    for name, value, pattern, rule in (("client", client, CLIENT_NAME_PATTERN, CLIENT_NAME_RULE), ("instance", instance, INSTANCE_NAME_PATTERN, INSTANCE_NAME_RULE)):
        if not re.fullmatch(pattern, value):  # fullmatch: $ alone also matches before a final newline
            raise ParameterError(f"{name}: {value!r} is not allowed; allowed: {rule}")
    return f"{client}-{instance}"
