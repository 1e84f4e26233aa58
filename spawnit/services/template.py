"""Service templates: a catalog service described by a data file (YAML or JSON), no code.

A template names the service and its version, declares typed parameters (the deploy form, the API's
validation, ``--set`` and the documentation all come from them) and describes its containers, whose
strings may use the parameters through Jinja expressions (``postgres:{{ version }}-alpine``,
``{{ maxmemory_mb + 64 }}``), rendered in a sandbox where only the parameters exist.

:func:`load_template` checks a file completely before anything uses it: unknown keys, references to
undeclared parameters or secrets, duplicate ports, invalid image references, defaults that break their
own rules, a version that is not semver. Every problem is one line naming the file, the field, the value
and what is allowed. :func:`service_class` turns a checked template into a :class:`CatalogService`.

The format's JSON Schema (:func:`format_schema`) is published as ``spawnit/assets/catalog/service-template.schema.json``
for editors; ``spawnit catalog schema`` prints it.
"""

from __future__ import annotations

import hashlib
import json
import re
import types
from collections.abc import Mapping
from functools import cached_property
from typing import Annotated, Any, ClassVar, Literal

import semver
import yaml
from jinja2 import StrictUndefined, TemplateError, meta
from jinja2.sandbox import ImmutableSandboxedEnvironment
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, TypeAdapter, ValidationError, create_model, field_validator

from ..shared import Health, did_you_mean
from .base import (
    TARGETS,
    CatalogService,
    ContainerSpec,
    ImageBuild,
    ParameterError,
    ServiceHints,
    ServiceParameters,
    ServicePort,
    published_ports,
    shown,
)

FORMAT = "spawnit.dev/service-template/v1"
SCHEMA_ID = "https://spawnit.dev/schemas/service-template/v1.json"
SERVICE_NAME_PATTERN = r"^[a-z][a-z0-9-]{0,30}$"
PARAMETER_NAME_PATTERN = r"^[a-z][a-z0-9_]{0,62}$"
CATEGORIES = ("database", "devtools", "games", "identity", "messaging", "monitoring", "paas", "storage", "web")
# The distribution project's reference grammar (name[:tag][@digest]), lowercase path components.
IMAGE_REFERENCE = re.compile(
    r"^(?:(?:[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?)(?:\.(?:[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?))*(?::[0-9]+)?/)?"
    r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*"
    r"(?::[\w][\w.-]{0,127})?(?:@sha256:[0-9a-f]{64})?$"
)
IMAGE_RULE = "an image reference, [registry/]name[:tag][@sha256:digest], lowercase name"
SHARED_PARAMETERS = tuple(ServiceParameters.model_fields)

_ENVIRONMENT = ImmutableSandboxedEnvironment(undefined=StrictUndefined, autoescape=False, keep_trailing_newline=True)


class InvalidTemplate(ValueError):
    """A template refused: one line per problem, each naming the file, the field, the value and what is allowed."""

    def __init__(self, source: str, problems: list[str]) -> None:
        self.source, self.problems = source, problems
        super().__init__("\n".join(f"{source}: {problem}" for problem in problems))


# The format ---------------------------------------------------------------------------------------


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ParameterDefinition(_Strict):
    """One parameter of the service: its type and rules, as the form, the API and ``--set`` apply them."""

    type: Literal["string", "integer", "number", "boolean"] = Field(description="The value's type.")
    description: str = Field(min_length=1, description="What the parameter is, for the form and `spawnit catalog`.")
    title: str | None = Field(None, description="The form's label; default: written from the parameter's name.")
    default: Any = Field(None, description="The value when none is given; a parameter without one (and not nullable) is required.")
    nullable: bool = Field(False, description="Whether null is a value (\"none\"); with no default, null is the default.")
    enum: list[Any] | None = Field(None, min_length=1, description="The only values allowed.")
    minimum: float | None = Field(None, description="Smallest number allowed (integer, number).")
    maximum: float | None = Field(None, description="Largest number allowed (integer, number).")
    pattern: str | None = Field(None, description="Regular expression a string must match (whole value).")
    min_length: int | None = Field(None, ge=0, description="Shortest string allowed.")
    max_length: int | None = Field(None, ge=1, description="Longest string allowed.")
    secret: bool = Field(False, description="A secret: never a parameter value; generated or supplied at creation, kept in the vault, given to containers through `secrets`.")
    targets: list[Literal["docker", "aws", "proxmox"]] | None = Field(None, min_length=1, description="The targets the parameter applies to; default: all.")

    @field_validator("pattern")
    @classmethod
    def _compiles(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                re.compile(value)
            except re.error as error:
                raise ValueError(f"is not a regular expression: {error}") from None
        return value


class PortDefinition(_Strict):
    container: int | str = Field(description="Port inside the container (1-65535).")
    published: int | str = Field(description="Port on the host or instance, often a parameter: \"{{ port }}\".")
    protocol: Literal["tcp", "udp"] = "tcp"
    description: str = ""


class HealthDefinition(_Strict):
    test: list[str] = Field(min_length=1, description="[\"CMD\", ...] or [\"CMD-SHELL\", \"...\"], as for Dockerfile HEALTHCHECK.")
    interval: str = "10s"
    timeout: str = "5s"
    retries: int = Field(5, ge=1)
    start_period: str = "20s"


class BuildDefinition(_Strict):
    dockerfile: str = Field(min_length=1, description="The Dockerfile, built on the target (no repository file needed).")
    tag: str = Field(min_length=1, description="The built image's tag.")


class ContainerDefinition(_Strict):
    """One container, exactly as the typed model (:class:`ContainerSpec`) has it; every string may use the parameters."""

    name: Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9-]{0,30}$")]
    image: str | None = Field(None, description="Image reference; or `build` instead.")
    build: BuildDefinition | None = None
    command: list[str] | None = None
    ports: list[PortDefinition] = []
    env: dict[str, str] = {}
    secrets: dict[str, str] = Field({}, description="Environment variable -> a secret parameter's name.")
    volumes: dict[str, str] = Field({}, description="Volume name -> path in the container.")
    files: dict[str, str] = Field({}, description="Path in the container -> content.")
    health: HealthDefinition | None = None
    depends_on: list[str] = Field([], description="Containers started (and healthy) before this one.")
    memory_mb: int | str | None = Field(None, description="Memory limit in MB, often an expression: \"{{ memory_mb }}\".")


class RuleDefinition(_Strict):
    """A rule across parameters: ``check`` (a Jinja expression over the parameters) must be true."""

    field: str = Field(description="The parameter the problem is shown beside.")
    check: str = Field(description="Jinja expression, e.g. \"framework != 'django' or entrypoint\".")
    message: str = Field(description="What is wrong when the check fails, after 'field = value is '.")


class ProxmoxHints(_Strict):
    min_memory_mb: int | None = Field(None, ge=512, le=16384, description="The guest's memory is at least this (MB).")


class AwsHints(_Strict):
    open_ports: list[int | str] | None = Field(None, description="Published ports the security group opens; default: every published port.")


class TargetHints(_Strict):
    docker: dict[str, Any] | None = Field(None, description="Nothing yet.")
    aws: AwsHints | None = None
    proxmox: ProxmoxHints | None = None


class UpgradeDefinition(_Strict):
    """How instances of earlier versions move to this one: parameters renamed, or dropped on purpose."""

    renamed: dict[str, str] = Field({}, description="Old parameter name -> new name; the value moves.")
    dropped: list[str] = Field([], description="Old parameters this version no longer has, whose values are let go.")


class ServiceTemplate(_Strict):
    """A SpawnIt catalog service template."""

    model_config = ConfigDict(extra="forbid", frozen=True, title="SpawnIt service template")

    format: Literal["spawnit.dev/service-template/v1"] = Field(description="The template format and its version.")
    name: Annotated[str, StringConstraints(pattern=SERVICE_NAME_PATTERN)] = Field(description="The service's name in the catalog.")
    version: str = Field(description="Semantic version (1.4.0); a published version never changes.")
    category: Literal[CATEGORIES] = Field(description="The catalog's section.")  # type: ignore[valid-type]
    description: str = Field(min_length=1, max_length=300)
    maintainer: str = Field(min_length=1, description="Who answers for the template (team, address).")
    deprecated: str | None = Field(None, description="Why not to use this version any more, and what instead.")
    parameters: dict[str, ParameterDefinition] = {}
    containers: list[ContainerDefinition] = Field(min_length=1)
    rules: list[RuleDefinition] = []
    targets: TargetHints = TargetHints()
    upgrade: UpgradeDefinition = UpgradeDefinition()
    example: dict[str, Any] = Field({}, description="Parameters of the catalog's example instance, where defaults are not enough.")

    @field_validator("version", mode="before")
    @classmethod
    def _semver(cls, value: Any) -> str:
        if not isinstance(value, str) or not semver.Version.is_valid(value):
            raise ValueError("is not a semantic version; allowed: MAJOR.MINOR.PATCH, e.g. 1.0.0")
        return value


def format_schema() -> dict[str, Any]:
    """The template format's JSON Schema (draft 2020-12), as published for editors."""
    schema = ServiceTemplate.model_json_schema()
    return {"$schema": "https://json-schema.org/draft/2020-12/schema", "$id": SCHEMA_ID, **schema}


# Loading and checking -------------------------------------------------------------------------------


def digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def parse_document(data: bytes, source: str) -> dict[str, Any]:
    try:
        document = yaml.safe_load(data.decode("utf-8")) if not source.endswith(".json") else json.loads(data)
    except (UnicodeDecodeError, yaml.YAMLError, json.JSONDecodeError) as error:
        raise InvalidTemplate(source, [f"(file) is not valid {'JSON' if source.endswith('.json') else 'YAML'}: {str(error).splitlines()[0]}"]) from None
    if not isinstance(document, dict):
        raise InvalidTemplate(source, [f"(file) = {shown(document)} is not allowed; allowed: a mapping with format, name, version, ..."])
    return document


def load_template(data: bytes, source: str) -> LoadedTemplate:
    """A checked template from a file's bytes, or :class:`InvalidTemplate` listing every problem."""
    document = parse_document(data, source)
    try:
        template = ServiceTemplate.model_validate(document)
    except ValidationError as error:
        raise InvalidTemplate(source, _structure_problems(error)) from None
    loaded = LoadedTemplate(template, digest(data), source, data)
    problems = _meaning_problems(loaded)
    if problems:
        raise InvalidTemplate(source, problems)
    return loaded


def _structure_problems(error: ValidationError) -> list[str]:
    problems = []
    for problem in error.errors():
        location = ".".join(str(part) for part in problem["loc"]) or "(template)"
        value = problem.get("input")
        if problem["type"] == "extra_forbidden":
            parent = ServiceTemplate
            fields = _fields_at(problem["loc"][:-1]) or list(parent.model_fields)
            name = str(problem["loc"][-1])
            problems.append(f"{location} is not a field of a service template here; {did_you_mean(name, fields)}allowed: {', '.join(fields)}")
        elif problem["type"] == "missing":
            problems.append(f"{location} is required")
        elif problem["type"] == "literal_error":
            problems.append(f"{location} = {shown(value)} is not allowed; allowed: {(problem.get('ctx') or {}).get('expected')}")
        elif problem["type"] == "string_pattern_mismatch":
            problems.append(f"{location} = {shown(value)} is not allowed; allowed: values matching {(problem.get('ctx') or {}).get('pattern')}")
        else:
            message = problem["msg"].removeprefix("Value error, ")
            problems.append(f"{location} = {shown(value)} {message if message.startswith('is ') else 'is not allowed: ' + message[0].lower() + message[1:]}")
    return problems


_MODELS_AT = {"parameters": ParameterDefinition, "containers": ContainerDefinition, "rules": RuleDefinition, "ports": PortDefinition,
              "health": HealthDefinition, "build": BuildDefinition, "targets": TargetHints, "aws": AwsHints, "proxmox": ProxmoxHints, "upgrade": UpgradeDefinition}


def _fields_at(location: tuple[Any, ...]) -> list[str]:
    """The fields allowed where an unknown key was found (the model of the nearest named part of its path)."""
    for part in reversed(location):
        if isinstance(part, str) and part in _MODELS_AT:
            return list(_MODELS_AT[part].model_fields)
    return []


class LoadedTemplate:
    """A template file checked and ready: the template, its content hash and where it came from."""

    def __init__(self, template: ServiceTemplate, sha256: str, source: str, data: bytes) -> None:
        self.template, self.sha256, self.source, self.data = template, sha256, source, data

    @property
    def name(self) -> str:
        return self.template.name

    @property
    def version(self) -> str:
        return self.template.version

    @cached_property
    def service(self) -> type[CatalogService]:
        return service_class(self)

    def document(self) -> dict[str, Any]:
        """The template as plain data (what a synthesis process is handed)."""
        return {"source": self.source, "sha256": self.sha256, "content": self.data.decode("utf-8")}


def from_document(document: Mapping[str, Any]) -> LoadedTemplate:
    """A template handed over as :meth:`LoadedTemplate.document`, checked again (its hash included)."""
    data = document["content"].encode("utf-8")
    loaded = load_template(data, document["source"])
    if document.get("sha256") and loaded.sha256 != document["sha256"]:
        raise InvalidTemplate(document["source"], [f"sha256 = {loaded.sha256!r} is not the hash the instance was created with ({document['sha256']})"])
    return loaded


def synth_source(service: type[CatalogService]) -> dict[str, Any]:
    """What a synthesis process needs to make ``service``: its name, and its template when it has one
    (the exact version an instance is pinned to, whatever the process's own catalog holds)."""
    loaded = getattr(service, "loaded", None)
    return {"service": service.name, **({"template": loaded.document()} if loaded is not None else {})}


def _strings(value: Any, path: str) -> list[tuple[str, str]]:
    """Every string of a container document with its path, keys of env/files included."""
    if isinstance(value, str):
        return [(path, value)]
    if isinstance(value, dict):
        found = []
        for key, item in value.items():
            found += _strings(key, f"{path}.{key}(key)") if isinstance(key, str) and "{" in key else []
            found += _strings(item, f"{path}.{key}")
        return found
    if isinstance(value, list):
        return [found for index, item in enumerate(value) for found in _strings(item, f"{path}.{index}")]
    return []


def _meaning_problems(loaded: LoadedTemplate) -> list[str]:
    template = loaded.template
    problems: list[str] = []
    declared = [name for name, definition in template.parameters.items() if not definition.secret]
    secrets = [name for name, definition in template.parameters.items() if definition.secret]
    usable = set(declared) | set(SHARED_PARAMETERS)
    for name, definition in template.parameters.items():
        where = f"parameters.{name}"
        if not re.fullmatch(PARAMETER_NAME_PATTERN, name):
            problems.append(f"{where} is not an allowed parameter name; allowed: values matching {PARAMETER_NAME_PATTERN}")
        if name in SHARED_PARAMETERS:
            problems.append(f"{where} is a parameter every service already has; allowed: a name not in {', '.join(SHARED_PARAMETERS)}")
        problems += _definition_problems(where, definition)
    containers = [container.model_dump(exclude_none=True) for container in template.containers]
    for index, container in enumerate(template.containers):
        where = f"containers.{index}"
        if (container.image is None) == (container.build is None):
            problems.append(f"{where} has {'both image and build' if container.image else 'neither image nor build'}; allowed: exactly one of them")
        for env, secret in container.secrets.items():
            if secret not in secrets:
                problems.append(f"{where}.secrets.{env} = {secret!r} is not a secret parameter; {did_you_mean(secret, secrets)}allowed: {', '.join(secrets) or 'none declared (parameters with secret: true)'}")
        others = [other.name for other in template.containers[:index]]
        for dependency in container.depends_on:
            if dependency not in others:
                problems.append(f"{where}.depends_on = {dependency!r} is not a container defined before this one; allowed: {', '.join(others) or 'none'}")
    names = [container.name for container in template.containers]
    for name in {name for name in names if names.count(name) > 1}:
        problems.append(f"containers.name = {name!r} is used twice; allowed: distinct container names")
    expressions = [(f"containers.{index}{path[len('root'):]}", text) for index, container in enumerate(containers) for path, text in _strings(container, "root")]
    expressions += [(f"targets.aws.open_ports.{index}", text) for index, text in enumerate((template.targets.aws.open_ports if template.targets.aws else None) or []) if isinstance(text, str)]
    for path, text in expressions:
        try:
            used = meta.find_undeclared_variables(_ENVIRONMENT.parse(text))
        except TemplateError as error:
            problems.append(f"{path} = {shown(text)} is not a valid expression: {error.message}")
            continue
        for name in sorted(used - usable):
            hint = " (a secret reaches a container through `secrets`, never in a string)" if name in secrets else ""
            problems.append(f"{path} = {shown(text)} uses {name!r}, which is not a parameter{hint}; {did_you_mean(name, sorted(usable))}allowed: {', '.join(declared) or 'none declared'} and the shared ones")
    for index, rule in enumerate(template.rules):
        if rule.field not in declared:
            problems.append(f"rules.{index}.field = {rule.field!r} is not a parameter; {did_you_mean(rule.field, declared)}allowed: {', '.join(declared)}")
        try:
            used = meta.find_undeclared_variables(_ENVIRONMENT.parse("{{ (" + rule.check + ") }}"))
        except TemplateError as error:
            problems.append(f"rules.{index}.check = {shown(rule.check)} is not a valid expression: {error.message}")
            continue
        for name in sorted(used - usable):
            problems.append(f"rules.{index}.check = {shown(rule.check)} uses {name!r}, which is not a parameter; {did_you_mean(name, sorted(usable))}allowed: {', '.join(declared)}")
    for old, new in template.upgrade.renamed.items():
        if new not in declared:
            problems.append(f"upgrade.renamed.{old} = {new!r} is not a parameter of this version; {did_you_mean(new, declared)}allowed: {', '.join(declared)}")
    if problems:
        return problems
    # Rendered with its defaults (and example), the template must make valid containers.
    try:
        service = loaded.service
        for target in TARGETS:
            parameters = service.parse({**template.example, "target": target, **({"allowed_cidrs": ["0.0.0.0/0"]} if target == "aws" else {})})
            rendered = service(parameters).containers()
            published_ports(rendered)
    except ParameterError as error:
        problems += [f"example: {line.strip()}" for line in str(error).splitlines()[1:]] or [f"example: {error}"]
    except InvalidTemplate as error:
        problems += error.problems
    except ValueError as error:
        problems.append(str(error))
    return problems


_TYPES: dict[str, type] = {"string": str, "integer": int, "number": float, "boolean": bool}


def _definition_problems(where: str, definition: ParameterDefinition) -> list[str]:
    problems = []
    numeric = definition.type in ("integer", "number")
    for rule in ("minimum", "maximum"):
        if getattr(definition, rule) is not None and not numeric:
            problems.append(f"{where}.{rule} = {getattr(definition, rule)!r} is not allowed for type {definition.type}; allowed: on integer and number")
    for rule in ("pattern", "min_length", "max_length"):
        if getattr(definition, rule) is not None and definition.type != "string":
            problems.append(f"{where}.{rule} = {getattr(definition, rule)!r} is not allowed for type {definition.type}; allowed: on string")
    if definition.secret and (definition.type != "string" or definition.default is not None or definition.targets):
        problems.append(f"{where}.secret = True is not allowed with a default, targets or a type other than string; allowed: a string secret, generated or supplied")
    if problems or definition.secret:
        return problems
    adapter = TypeAdapter(parameter_type(definition))
    for index, value in enumerate(definition.enum or []):
        try:
            TypeAdapter(_base_type(definition)).validate_python(value, strict=True)
        except ValidationError:
            problems.append(f"{where}.enum.{index} = {shown(value)} is not a {definition.type}; allowed: values of the parameter's type")
    if definition.default is not None:
        try:
            adapter.validate_python(definition.default, strict=definition.type != "number")
        except ValidationError as error:
            reason = error.errors()[0]["msg"]
            problems.append(f"{where}.default = {shown(definition.default)} breaks the parameter's own rules: {reason[0].lower()}{reason[1:]}; allowed: a value the parameter accepts")
    return problems


def _base_type(definition: ParameterDefinition) -> Any:
    return _TYPES[definition.type]


def parameter_type(definition: ParameterDefinition) -> Any:
    """The Python type (with its constraints) a parameter definition describes."""
    if definition.enum is not None:
        annotated: Any = Literal[tuple(definition.enum)]
    elif definition.type == "string":
        annotated = Annotated[str, StringConstraints(pattern=definition.pattern, min_length=definition.min_length, max_length=definition.max_length)]
    elif definition.type in ("integer", "number"):
        annotated = Annotated[_TYPES[definition.type], Field(ge=definition.minimum, le=definition.maximum)]
    else:
        annotated = bool
    return annotated | None if definition.nullable else annotated


# The service a template makes ---------------------------------------------------------------------


class TemplateService(CatalogService, register=False):
    """A catalog service made from a template: its containers are the template's, rendered with the parameters."""

    loaded: ClassVar[LoadedTemplate]

    def containers(self) -> list[ContainerSpec]:
        template = self.loaded.template
        values = self.parameters.model_dump(mode="json")
        return [_container(self.loaded, index, definition, values) for index, definition in enumerate(template.containers)]

    @classmethod
    def parse(cls, values: Mapping[str, Any]) -> ServiceParameters:
        parameters = super().parse(values)
        problems = []
        for name in sorted(parameters.model_fields_set):
            definition = cls.loaded.template.parameters.get(name)
            if definition is not None and definition.targets and parameters.target not in definition.targets:
                problems.append(f"  {name} = {shown(getattr(parameters, name))} is not used by target {parameters.target}; allowed: only for target {', '.join(definition.targets)}")
        context = parameters.model_dump(mode="json")
        for rule in cls.loaded.template.rules:
            if not _ENVIRONMENT.compile_expression(rule.check, undefined_to_none=False)(**context):
                problems.append(f"  {rule.field} = {shown(context.get(rule.field))} is {rule.message}")
        if problems:
            raise ParameterError("\n".join([f"invalid parameters for service {cls.name!r}:", *problems]))
        return parameters

    @classmethod
    def schema(cls) -> dict[str, Any]:
        """The class's schema, each parameter limited to some targets marked for the form (``x-target`` for
        one, as the shared target settings are; ``x-targets`` for several)."""
        schema = super().schema()
        for name, definition in cls.loaded.template.parameters.items():
            if definition.targets and name in schema.get("properties", {}):
                key, value = ("x-target", definition.targets[0]) if len(definition.targets) == 1 else ("x-targets", list(definition.targets))
                schema["properties"][name][key] = value
        return schema

    @classmethod
    def hints(cls, parameters: ServiceParameters) -> ServiceHints:
        targets = cls.loaded.template.targets
        open_ports = None
        if targets.aws and targets.aws.open_ports is not None:
            values = parameters.model_dump(mode="json")
            open_ports = tuple(int(_render(cls.loaded, "targets.aws.open_ports", port, values)) if isinstance(port, str) else port for port in targets.aws.open_ports)
        return ServiceHints(proxmox_min_memory_mb=targets.proxmox.min_memory_mb if targets.proxmox else None, aws_open_ports=open_ports)


def _render(loaded: LoadedTemplate, path: str, text: str, values: Mapping[str, Any]) -> str:
    try:
        return _ENVIRONMENT.from_string(text).render(values)
    except TemplateError as error:
        raise InvalidTemplate(loaded.source, [f"{path} = {shown(text)} cannot be rendered: {error}"]) from None


def _rendered(loaded: LoadedTemplate, path: str, value: Any, values: Mapping[str, Any]) -> Any:
    if isinstance(value, str):
        return _render(loaded, path, value, values)
    if isinstance(value, dict):
        return {_rendered(loaded, f"{path}.{key}(key)", key, values): _rendered(loaded, f"{path}.{key}", item, values) for key, item in value.items()}
    if isinstance(value, list):
        return [_rendered(loaded, f"{path}.{index}", item, values) for index, item in enumerate(value)]
    return value


class _RenderedPort(_Strict):
    container: Annotated[int, Field(ge=1, le=65535)]
    published: Annotated[int, Field(ge=1, le=65535)]
    protocol: Literal["tcp", "udp"]
    description: str


_MEMORY = TypeAdapter(Annotated[int, Field(ge=16, le=1_048_576)] | None)


def _container(loaded: LoadedTemplate, index: int, definition: ContainerDefinition, values: Mapping[str, Any]) -> ContainerSpec:
    where = f"containers.{index}"
    document = _rendered(loaded, where, definition.model_dump(), values)
    problems = []
    ports = []
    for number, port in enumerate(document["ports"]):
        try:
            ports.append(ServicePort(**_RenderedPort.model_validate(port).model_dump()))
        except ValidationError as error:
            problems += [f"{where}.ports.{number}.{problem['loc'][0]} = {shown(problem.get('input'))} is not allowed: {problem['msg'][0].lower()}{problem['msg'][1:]}" for problem in error.errors()]
    try:
        memory = _MEMORY.validate_python(document["memory_mb"] if document["memory_mb"] not in ("", None) else None)
    except ValidationError as error:
        memory = None
        problems.append(f"{where}.memory_mb = {shown(document['memory_mb'])} is not allowed: {error.errors()[0]['msg'][0].lower()}{error.errors()[0]['msg'][1:]}")
    image: str | ImageBuild
    if document["build"] is not None:
        image = ImageBuild(dockerfile=document["build"]["dockerfile"], tag=document["build"]["tag"])
        checked = image.tag
    else:
        image = checked = document["image"]
    if not IMAGE_REFERENCE.fullmatch(checked or ""):
        problems.append(f"{where}.{'build.tag' if document['build'] else 'image'} = {shown(checked)} is not allowed; allowed: {IMAGE_RULE}")
    health = None
    if document["health"] is not None:
        try:
            health = Health(tuple(document["health"].pop("test")), **document["health"])
        except ValueError as error:
            problems.append(f"{where}.health.{str(error).removeprefix('HealthCheck ')}")
    if problems:
        raise InvalidTemplate(loaded.source, problems)
    return ContainerSpec(
        name=document["name"],
        image=image,
        ports=tuple(ports),
        env=document["env"],
        secrets=document["secrets"],
        volumes=document["volumes"],
        health=health,
        command=tuple(document["command"]) if document["command"] is not None else None,
        files=document["files"],
        depends_on=tuple(document["depends_on"]),
        memory_mb=memory,
    )


def parameters_model(loaded: LoadedTemplate) -> type[ServiceParameters]:
    """The parameters' pydantic model: the shared ones (target, aws_region, ...) and the template's own."""
    fields: dict[str, Any] = {}
    for name, definition in loaded.template.parameters.items():
        if definition.secret:
            continue
        required = definition.default is None and not definition.nullable
        extra: dict[str, Any] = {"description": definition.description}
        if definition.title:
            extra["title"] = definition.title
        fields[name] = (parameter_type(definition), Field(... if required else definition.default, **extra))
    model_name = "".join(part.capitalize() for part in loaded.name.split("-")) + "Parameters"
    return create_model(model_name, __base__=ServiceParameters, **fields)


def service_class(loaded: LoadedTemplate) -> type[CatalogService]:
    template = loaded.template

    def body(namespace: dict[str, Any]) -> None:
        namespace.update(
            name=template.name,
            category=template.category,
            description=template.description,
            Parameters=parameters_model(loaded),
            secrets=tuple(name for name, definition in template.parameters.items() if definition.secret),
            example=dict(template.example),
            loaded=loaded,
            version=template.version,
            sha256=loaded.sha256,
            maintainer=template.maintainer,
            deprecated=template.deprecated,
        )

    class_name = "".join(part.capitalize() for part in template.name.split("-")) + "Template"
    return types.new_class(class_name, (TemplateService,), {"register": False}, body)


__all__ = [
    "FORMAT",
    "InvalidTemplate",
    "LoadedTemplate",
    "ServiceTemplate",
    "format_schema",
    "from_document",
    "load_template",
    "service_class",
]


if __name__ == "__main__":  # python -m spawnit.services.template > spawnit/assets/catalog/service-template.schema.json
    print(json.dumps(format_schema(), indent=2))
