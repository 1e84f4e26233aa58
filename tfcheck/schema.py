"""Provider schemas rebuilt from the cdktf provider bindings we install.

Each binding (``cdktf_cdktf_provider_aws``, ``..._docker``) ships a jsii tarball whose
JavaScript modules embed, as source maps, the TypeScript that ``cdktf get`` generated
from the provider's own ``providers schema -json`` at the pinned version. That
TypeScript says, for every attribute of every resource, data source and nested
block: its Terraform name, ``computed / optional / required``, its type (through the
accessor used: ``getStringAttribute``, ``getNumberListAttribute``...) and, for
inputs, whether it is a block and how blocks nest (``list``, ``set``, single
``struct``, ``map``). From that this module rebuilds a schema in the shape of
``terraform providers schema -json``; the stand-in provider serves it to a real
Terraform core.
"""

from __future__ import annotations

import base64
import importlib.util
import json
import re
import tarfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

_SOURCE_MAP = re.compile(rb"sourceMappingURL=data:application/json;base64,(\S+)")
_UNIT_START = re.compile(r"^export (class|function) (\w+)", re.M)
_CLASS = re.compile(r"^export class (\w+) extends cdktf\.(\w+)")
_FLAGS = re.compile(r"^  // (\w+) - computed: (true|false), optional: (true|false), required: (true|false)\n", re.M)
_HCL_ENTRY = re.compile(
    r"^\s+\"?(\w+)\"?: \{\n\s+value: (.*?),\n\s+isBlock: (true|false),\n\s+type: \"(\w+)\",\n\s+storageClassType: \"(\w+)\",",
    re.M,
)
_HCL_FUNCTION = re.compile(r"(\w+)ToHclTerraform\b")
_NEW_COMPLEX = re.compile(r"= new (cdktf\.)?(\w+)\(this, \"(\w+)\"(?:, (true|false))?\)")
_GETTER = re.compile(r"return (cdktf\.Fn\.tolist\()?this\.(get\w+Attribute|interpolationForAttribute)\('(\w+)'\)")
_ELEMENT_CLASS = re.compile(r"public get\((?:index|key): \w+\): (\w+)")
_RESOURCE_TYPE = re.compile(r'public static readonly tfResourceType = "(\w+)"')

_GETTER_TYPES: dict[str, Any] = {
    "getStringAttribute": "string",
    "getNumberAttribute": "number",
    "getBooleanAttribute": "bool",
    "getListAttribute": ["list", "string"],
    "getNumberListAttribute": ["list", "number"],
    "getStringMapAttribute": ["map", "string"],
    "getNumberMapAttribute": ["map", "number"],
    "getBooleanMapAttribute": ["map", "bool"],
    "getAnyMapAttribute": ["map", "dynamic"],
    "interpolationForAttribute": "dynamic",
}
_CDKTF_COLLECTIONS: dict[str, Any] = {
    "StringMapList": ["list", ["map", "string"]],
    "NumberMapList": ["list", ["map", "number"]],
    "BooleanMapList": ["list", ["map", "bool"]],
    "AnyMapList": ["list", ["map", "dynamic"]],
    "StringListList": ["list", ["list", "string"]],
    "NumberListList": ["list", ["list", "number"]],
    "StringListMap": ["map", ["list", "string"]],
    "NumberListMap": ["map", ["list", "number"]],
    "StringMapMap": ["map", ["map", "string"]],
}
_SCALARS = {"string": "string", "number": "number", "boolean": "bool", "any": "dynamic"}
_NESTING = {"list": "list", "set": "set", "struct": "single", "map": "map"}


def _storage_type(kind: str, storage: str) -> Any:
    """Terraform type of an input attribute from cdktf's HCL metadata: ``set``/``stringList`` -> set(string)."""
    if storage in _SCALARS:
        return _SCALARS[storage]
    for suffix, collection in (("List", "list"), ("Map", "map")):
        if storage.endswith(suffix):
            outer = "set" if kind == "set" and collection == "list" else collection
            return [outer, _storage_type("simple", storage[: -len(suffix)])]
    raise ValueError(f"unknown cdktf storage class {kind}/{storage}")


@dataclass
class _Flags:
    computed: bool
    optional: bool
    required: bool
    code: str  # the TypeScript between this flag comment and the next one


@dataclass
class _Module:
    classes: dict[str, tuple[str, str]] = field(default_factory=dict)  # name -> (base, body)
    hcl: dict[str, str] = field(default_factory=dict)  # struct function stem -> body


def _units(source: str) -> _Module:
    module = _Module()
    starts = [match.start() for match in _UNIT_START.finditer(source)] + [len(source)]
    for begin, end in zip(starts, starts[1:]):
        unit = source[begin:end]
        klass = _CLASS.match(unit)
        if klass:
            module.classes[klass.group(1)] = (klass.group(2), unit)
        elif unit.startswith("export function") and "ToHclTerraform(" in unit.split("\n", 1)[0]:
            module.hcl[_HCL_FUNCTION.search(unit).group(1)] = unit
    return module


def _flags(body: str) -> dict[str, _Flags]:
    matches = list(_FLAGS.finditer(body))
    result = {}
    for match, following in zip(matches, matches[1:] + [None]):
        code = body[match.end() : following.start() if following else len(body)]
        result[match.group(1)] = _Flags(*(value == "true" for value in match.group(2, 3, 4)), code=code)
    return result


def _hcl_entries(body: str) -> dict[str, tuple[str, bool, str, str]]:
    return {m.group(1): (m.group(2), m.group(3) == "true", m.group(4), m.group(5)) for m in _HCL_ENTRY.finditer(body)}


class _Builder:
    def __init__(self, module: _Module) -> None:
        self.module = module

    def _element_class(self, name: str) -> str:
        """The OutputReference class a ComplexList/ComplexMap hands out."""
        base, body = self.module.classes[name]
        if base in ("ComplexList", "ComplexMap"):
            return _ELEMENT_CLASS.search(body).group(1)
        return name

    def _computed_type(self, flags: _Flags) -> Any:
        """Type of a read-only attribute, from its accessor."""
        complex_ = _NEW_COMPLEX.search(flags.code)
        if complex_:
            is_cdktf, class_name, _, wraps_set = complex_.groups()
            if is_cdktf:
                return _CDKTF_COLLECTIONS.get(class_name, "dynamic")
            base, _ = self.module.classes[class_name]
            element = ["object", self._object_fields(self._element_class(class_name))]
            if base == "ComplexList":
                return ["set" if wraps_set == "true" else "list", element]
            if base == "ComplexMap":
                return ["map", element]
            return element
        getter = _GETTER.search(flags.code)
        if getter is None:
            return "dynamic"
        tolist, accessor, _ = getter.groups()
        kind = _GETTER_TYPES.get(accessor, "dynamic")
        if tolist and isinstance(kind, list) and kind[0] == "list":
            return ["set", kind[1]]
        return kind

    def _object_fields(self, class_name: str) -> dict[str, Any]:
        _, body = self.module.classes[class_name]
        return {name: self._computed_type(flags) for name, flags in _flags(body).items()}

    def block(self, class_name: str | None, hcl_body: str) -> dict[str, Any]:
        """A schema block from a class's flag comments (if it has a class) and its HCL metadata."""
        flags = _flags(self.module.classes[class_name][1]) if class_name in self.module.classes else {}
        entries = _hcl_entries(hcl_body)
        attributes: dict[str, Any] = {}
        block_types: dict[str, Any] = {}
        for name in dict.fromkeys([*flags, *entries]):
            flag = flags.get(name) or _Flags(computed=False, optional=True, required=False, code="")
            entry = entries.get(name)
            if entry and entry[1]:
                block_types[name] = self._nested_block(name, flag, entry)
                continue
            if entry:
                kind = _storage_type(entry[2], entry[3])
            else:
                kind = self._computed_type(flag)
            attribute: dict[str, Any] = {"type": kind}
            for key in ("required", "optional", "computed"):
                if getattr(flag, key):
                    attribute[key] = True
            if attribute.get("required"):
                # Plugin-framework providers (cloudflare v5) mark some nested attributes required and
                # computed, which the binding's flags repeat and Terraform's schema check refuses: what
                # the configuration must give is what validation checks.
                attribute.pop("computed", None)
            attributes[name] = attribute
        result: dict[str, Any] = {}
        if attributes:
            result["attributes"] = attributes
        if block_types:
            result["block_types"] = block_types
        return result

    def _nested_block(self, name: str, flag: _Flags, entry: tuple[str, bool, str, str]) -> dict[str, Any]:
        value, _, kind, _ = entry
        stem = _HCL_FUNCTION.search(value).group(1)
        struct = stem[0].upper() + stem[1:]
        nested = {
            "nesting_mode": _NESTING[kind],
            "block": self.block(f"{struct}OutputReference", self.module.hcl.get(stem, "")),
        }
        single_reference = re.search(rf'new {struct}OutputReference\(this, "{name}"\)', flag.code)
        if kind == "list" and single_reference:
            nested["max_items"] = 1
        if flag.required and nested["nesting_mode"] in ("list", "set"):
            nested["min_items"] = 1
        if nested["nesting_mode"] == "set" and _has_dynamic(nested["block"]):
            # Terraform refuses set blocks holding a dynamic type (two wafv2 rule blocks whose
            # statement JSON is typed "any" by the binding): a list validates the same JSON.
            nested["nesting_mode"] = "list"
        return nested


def _has_dynamic(block: dict[str, Any]) -> bool:
    types = [attribute["type"] for attribute in block.get("attributes", {}).values()]
    return "dynamic" in json.dumps(types) or any(_has_dynamic(nested["block"]) for nested in block.get("block_types", {}).values())


def _typescript_sources(tarball: Path):
    """(module folder, TypeScript source) of every generated module in a binding's jsii tarball; a large
    module's structs, split into ``index-structs/*.js`` files, are joined to its ``index.js``."""
    sources: dict[str, list[str]] = {}
    with tarfile.open(tarball) as archive:
        for member in archive:
            parts = member.name.split("/")
            is_index = len(parts) == 4 and parts[3] == "index.js"
            is_structs = len(parts) == 5 and parts[3] == "index-structs" and parts[4].endswith(".js")
            if not (member.isfile() and (is_index or is_structs)):
                continue
            match = _SOURCE_MAP.search(archive.extractfile(member).read())
            if match:
                source_map = json.loads(base64.b64decode(match.group(1)))
                sources.setdefault(parts[2], []).append(source_map["sourcesContent"][0])
    for folder, texts in sources.items():
        yield folder, "\n".join(texts)


@dataclass(frozen=True)
class Binding:
    """One installed provider binding: its Python package and the provider it was generated from."""

    package: str  # e.g. cdktf_cdktf_provider_aws
    source: str  # registry address, e.g. registry.terraform.io/hashicorp/aws
    # Resource attributes the provider declares of any type (DynamicPseudoType), which cdktf's bindings
    # render as a map of anything: (resource type, attribute).
    dynamic: tuple[tuple[str, str], ...] = ()

    @property
    def tarball(self) -> Path:
        spec = importlib.util.find_spec(self.package)
        if spec is None or spec.origin is None:
            raise LookupError(f"provider binding {self.package} is not installed")
        folder = Path(spec.origin).parent / "_jsii"
        return next(folder.glob("*.jsii.tgz"))

    @property
    def name(self) -> str:
        return self.source.rsplit("/", 1)[1]

    @property
    def cache_key(self) -> str:
        return self.tarball.name  # the binding's name and version

    def schema(self) -> dict[str, Any]:
        return build_schema(self)


BINDINGS = (
    Binding("cdktf_cdktf_provider_aws", "registry.terraform.io/hashicorp/aws"),
    Binding("cdktf_cdktf_provider_docker", "registry.terraform.io/kreuzwerker/docker"),
    Binding("cdktf_cdktf_provider_kubernetes", "registry.terraform.io/hashicorp/kubernetes"),
    # cloudflare_zone_setting.value is a string, a number or an object depending on the setting.
    Binding("cdktf_cdktf_provider_cloudflare", "registry.terraform.io/cloudflare/cloudflare", dynamic=(("cloudflare_zone_setting", "value"),)),
)


def build_schema(binding: Binding) -> dict[str, Any]:
    """``providers schema -json``-shaped schema of one provider, rebuilt from its binding."""
    schema: dict[str, Any] = {"provider": {"version": 0, "block": {}}, "resource_schemas": {}, "data_source_schemas": {}}
    for folder, source in _typescript_sources(binding.tarball):
        module = _units(source)
        builder = _Builder(module)
        for class_name, (base, body) in module.classes.items():
            if base == "TerraformProvider":
                hcl = body[body.index("synthesizeHclAttributes") :]
                schema["provider"]["block"] = builder.block(None, hcl)
            elif base in ("TerraformResource", "TerraformDataSource"):
                resource_type = _RESOURCE_TYPE.search(body).group(1)
                hcl = body[body.index("synthesizeHclAttributes") :]
                kind = "resource_schemas" if base == "TerraformResource" else "data_source_schemas"
                schema[kind][resource_type] = {"version": 0, "block": builder.block(class_name, hcl)}
    for resource_type, attribute in binding.dynamic:
        schema["resource_schemas"][resource_type]["block"]["attributes"][attribute]["type"] = "dynamic"
    return schema
