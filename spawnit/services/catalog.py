"""The catalog: every service SpawnIt offers, in every published version.

Three sources, one view:

- the built-in templates, shipped in the package (``spawnit/assets/catalog/templates/*.yaml``);
- templates published to the platform's store (``templates/<name>/<version>.yaml``, or any YAML/JSON file
  dropped under ``templates/``), each version recorded once, with its content hash, under
  ``catalog/versions/<name>/<version>.json`` (written only if absent: the first publication of a version
  is the one; a file changed afterwards is reported, never used), and ``catalog.json`` the index for people;
- Python classes (:class:`~spawnit.services.base.CatalogService` subclasses), for a service needing logic
  the template language cannot say.

A broken template never breaks the catalog: it is left out and listed by :meth:`Catalog.broken`.
The store is read again when :attr:`Catalog.ttl` seconds have passed, so every API replica and worker
sees a new version without a restart.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache
from importlib import resources
from typing import Any, Protocol

import semver

from ..shared import did_you_mean
from .base import CatalogService, ParameterError
from .template import InvalidTemplate, LoadedTemplate, load_template

# Every service's version before the catalog had versions: an instance made then (its spec names no version) is on it.
BASELINE_VERSION = "1.0.0"
TEMPLATES_PREFIX = "templates/"
VERSIONS_PREFIX = "catalog/versions/"
DEPRECATIONS_PREFIX = "catalog/deprecations/"  # <name>/<version>.json: a published version marked not to use any more
INDEX_KEY = "catalog.json"
TEMPLATE_SUFFIXES = (".yaml", ".yml", ".json")


class Objects(Protocol):  # what the catalog needs of an object store (spawnit.api.store.ObjectStore has it)
    def put(self, key: str, data: bytes, content_type: str = ...) -> None: ...

    def put_new(self, key: str, data: bytes, content_type: str = ...) -> bool: ...

    def get(self, key: str) -> bytes | None: ...

    def list(self, prefix: str) -> list[str]: ...

    def delete(self, key: str) -> None: ...


@dataclass(frozen=True)
class Broken:
    """A template file the catalog left out, and why."""

    source: str
    problems: tuple[str, ...]

    def document(self) -> dict[str, Any]:
        return {"source": self.source, "problems": list(self.problems)}


@cache
def builtin_templates() -> tuple[LoadedTemplate, ...]:
    """The templates shipped in the package (a broken one is a bug of the release: it raises)."""
    folder = resources.files("spawnit") / "assets" / "catalog" / "templates"
    return tuple(
        load_template(entry.read_bytes(), f"spawnit/assets/catalog/templates/{entry.name}")
        for entry in sorted(folder.iterdir(), key=lambda item: item.name)
        if entry.name.endswith(TEMPLATE_SUFFIXES)
    )


def version_key(version: str) -> semver.Version:
    return semver.Version.parse(version)


class Catalog:
    """The services of the built-in templates, the Python classes and (given ``objects``) the store's templates."""

    def __init__(self, objects: Objects | None = None, *, ttl: float = 2.0) -> None:
        self.objects, self.ttl = objects, ttl
        self._lock = threading.Lock()
        self._read_at = float("-inf")
        self._parsed: dict[str, tuple[bytes, LoadedTemplate | InvalidTemplate]] = {}  # store key -> (bytes, outcome)
        self._versions: dict[str, dict[str, type[CatalogService]]] = {}
        self._broken: list[Broken] = []
        self._records: dict[tuple[str, str], dict[str, Any]] = {}
        self._deprecations: dict[tuple[str, str], dict[str, Any]] = {}
        self._classes: set[str] = set()  # the Python classes registered at the last read

    # Reading ------------------------------------------------------------------------------------
    def refresh(self, force: bool = False) -> None:
        with self._lock:
            classes = set(CatalogService.registry)
            if not force and time.monotonic() - self._read_at < self.ttl and classes == self._classes:
                return
            self._classes = classes
            self._versions, self._broken = self._read()
            self._read_at = time.monotonic()

    def _read(self) -> tuple[dict[str, dict[str, type[CatalogService]]], list[Broken]]:
        versions: dict[str, dict[str, type[CatalogService]]] = {}
        for loaded in builtin_templates():
            versions.setdefault(loaded.name, {})[loaded.version] = loaded.service
        for name, service in CatalogService.registry.items():
            versions.setdefault(name, {}).setdefault(service.version, service)
        broken: list[Broken] = []
        if self.objects is None:
            return versions, broken
        self._deprecations = self._by_version(DEPRECATIONS_PREFIX)
        records = self._records = self._by_version(VERSIONS_PREFIX)
        builtin = {(loaded.name, loaded.version): loaded.sha256 for loaded in builtin_templates()}
        for key in sorted(self.objects.list(TEMPLATES_PREFIX)):
            if not key.endswith(TEMPLATE_SUFFIXES):
                continue
            data = self.objects.get(key)
            if data is None:
                continue
            outcome = self._parse(key, data)
            if isinstance(outcome, InvalidTemplate):
                broken.append(Broken(key, tuple(outcome.problems)))
                continue
            if builtin.get((outcome.name, outcome.version)) == outcome.sha256:
                continue  # a copy of a built-in template
            problem = self._conflict(outcome, builtin, records, versions)
            if problem:
                broken.append(Broken(key, (problem,)))
                continue
            if (outcome.name, outcome.version) not in records:  # dropped into the store: published as it is first seen
                record = self._record(outcome, by="store")
                if not self.objects.put_new(self._record_key(outcome.name, outcome.version), json.dumps(record).encode(), "application/json"):
                    continue  # another replica published it a moment ago: the next read checks it against that record
                records[(outcome.name, outcome.version)] = record
            versions.setdefault(outcome.name, {})[outcome.version] = outcome.service
        return versions, broken

    def _by_version(self, prefix: str) -> dict[tuple[str, str], dict[str, Any]]:
        """The JSON records under ``prefix`` (each naming its service and version), by (name, version)."""
        found = {}
        for key in self.objects.list(prefix):
            data = self.objects.get(key)
            if data:
                record = json.loads(data)
                found[(record["name"], record["version"])] = record
        return found

    def _parse(self, key: str, data: bytes) -> LoadedTemplate | InvalidTemplate:
        cached = self._parsed.get(key)
        if cached is not None and cached[0] == data:
            return cached[1]
        try:
            outcome: LoadedTemplate | InvalidTemplate = load_template(data, key)
        except InvalidTemplate as error:
            outcome = error
        self._parsed[key] = (data, outcome)
        return outcome

    @staticmethod
    def _conflict(loaded: LoadedTemplate, builtin: Mapping[tuple[str, str], str], records: Mapping[tuple[str, str], dict[str, Any]], versions: Mapping[str, Mapping[str, Any]]) -> str | None:
        at = (loaded.name, loaded.version)
        if at in builtin:
            return f"version = {loaded.version!r} of {loaded.name!r} is built in; allowed: a version not published yet"
        record = records.get(at)
        if record is not None and record["sha256"] != loaded.sha256:
            return (f"sha256 = {loaded.sha256[:12]}... differs from version {loaded.version} of {loaded.name!r} as published ({record['sha256'][:12]}...): "
                    "a published version never changes; allowed: publish the change as a new version")
        if loaded.version in versions.get(loaded.name, {}):
            return f"version = {loaded.version!r} of {loaded.name!r} is in the store twice; allowed: one file per version"
        return None

    @staticmethod
    def _record_key(name: str, version: str) -> str:
        return f"{VERSIONS_PREFIX}{name}/{version}.json"

    @staticmethod
    def _record(loaded: LoadedTemplate, *, by: str) -> dict[str, Any]:
        return {"name": loaded.name, "version": loaded.version, "sha256": loaded.sha256, "source": loaded.source,
                "published_at": datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z"), "published_by": by}

    # Questions ----------------------------------------------------------------------------------
    def versions(self, name: str) -> dict[str, type[CatalogService]]:
        """Every version of a service, oldest first."""
        self.refresh()
        found = self._versions.get(name)
        if not found and self.objects is not None:  # published a moment ago, since this replica last read the store?
            self.refresh(force=True)
            found = self._versions.get(name)
        if not found:
            known = sorted(self._versions)
            raise ParameterError(f"service: {name!r} is not in the catalog; {did_you_mean(name, known)}allowed: {', '.join(known)}")
        return dict(sorted(found.items(), key=lambda item: version_key(item[0])))

    def deprecation(self, service: type[CatalogService]) -> str | None:
        """Why not to use this version of a service any more: the note an admin gave, or its template's own."""
        note = self._deprecations.get((service.name, service.version))
        return note["note"] if note and note.get("note") else service.deprecated

    def get(self, name: str, version: str | None = None) -> type[CatalogService]:
        """A service in one version, or its newest one not deprecated (its newest if all are)."""
        found = self.versions(name)
        if version is None:
            current = [service for service in found.values() if not self.deprecation(service)]
            return (current or list(found.values()))[-1]
        if version not in found and self.objects is not None:
            self.refresh(force=True)
            found = self.versions(name)
        try:
            return found[version]
        except KeyError:
            raise ParameterError(f"service_version: {version!r} is not a version of {name!r}; allowed: {', '.join(found)}") from None

    def services(self) -> dict[str, type[CatalogService]]:
        """Every service in its current version, by name."""
        self.refresh()
        return {name: self.get(name) for name in sorted(self._versions)}

    def broken(self) -> list[Broken]:
        self.refresh()
        return list(self._broken)

    def upgrades(self, name: str, version: str) -> list[str]:
        """The versions newer than ``version`` (not deprecated), oldest first."""
        current = version_key(version)
        return [found for found, service in self.versions(name).items() if version_key(found) > current and not self.deprecation(service)]

    # Writing ------------------------------------------------------------------------------------
    def publish(self, data: bytes, filename: str, *, by: str, name: str | None = None) -> LoadedTemplate:
        """Check a template and publish it to the store as ``templates/<name>/<version>.<ext>``; refused
        (nothing written) when broken, when ``name`` is given and differs, or when the version exists."""
        if self.objects is None:
            raise ParameterError("catalog: no store to publish to; allowed: a store (SPAWNIT_S3_BUCKET or SPAWNIT_DATA_DIR)")
        suffix = next((suffix for suffix in TEMPLATE_SUFFIXES if filename.endswith(suffix)), ".yaml")
        loaded = load_template(data, filename)
        if name is not None and loaded.name != name:
            raise InvalidTemplate(filename, [f"name = {loaded.name!r} is not the service published here; allowed: {name!r}"])
        self.refresh(force=True)
        if loaded.version in self._versions.get(loaded.name, {}):
            raise InvalidTemplate(filename, [f"version = {loaded.version!r} of {loaded.name!r} is published already; allowed: a new version (published versions never change)"])
        key = f"{TEMPLATES_PREFIX}{loaded.name}/{loaded.version}{suffix}"
        stored = LoadedTemplate(loaded.template, loaded.sha256, key, loaded.data)
        if not self.objects.put_new(self._record_key(loaded.name, loaded.version), json.dumps(self._record(stored, by=by)).encode(), "application/json"):
            raise InvalidTemplate(filename, [f"version = {loaded.version!r} of {loaded.name!r} was published a moment ago; allowed: a new version"])
        self.objects.put(key, data, "application/yaml" if suffix != ".json" else "application/json")
        self.refresh(force=True)
        self.objects.put(INDEX_KEY, json.dumps(self.index(), indent=2).encode(), "application/json")
        return stored

    def deprecate(self, name: str, version: str, note: str | None, *, by: str) -> dict[str, Any]:
        """Mark a published version not to use any more (``note``: why, and what instead), or clear the mark
        (``None``). Instances on it keep working; new instances and upgrades are offered other versions."""
        if self.objects is None:
            raise ParameterError("catalog: no store to record a deprecation in; allowed: a store (SPAWNIT_S3_BUCKET or SPAWNIT_DATA_DIR)")
        service = self.get(name, version)
        key = f"{DEPRECATIONS_PREFIX}{name}/{version}.json"
        if note is None:
            self.objects.delete(key)
        else:
            record = {"name": name, "version": version, "note": note, "by": by, "at": datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")}
            self.objects.put(key, json.dumps(record).encode(), "application/json")
        self.refresh(force=True)
        self.objects.put(INDEX_KEY, json.dumps(self.index(), indent=2).encode(), "application/json")
        return {"service": name, "version": version, "deprecated": self.deprecation(service)}

    def index(self) -> dict[str, Any]:
        """``catalog.json``: every service and version with its hash, origin and deprecation note."""
        self.refresh()
        return {
            "services": {
                name: {
                    version: {"sha256": service.sha256, "deprecated": self.deprecation(service), **self._records.get((name, version), {"source": "built in"})}
                    for version, service in self.versions(name).items()
                }
                for name in sorted(self._versions)
            }
        }


def instance_version(spec: Mapping[str, Any]) -> str:
    """The version of its service an instance is on (its spec's, or the baseline for one made before versions)."""
    return spec.get("service_version") or BASELINE_VERSION


def plan_upgrade(catalog: Catalog, spec: Mapping[str, Any], version: str) -> dict[str, Any]:
    """An instance's move to ``version`` of its service: the new version, its hash and the parameters
    carried over (renamed as the new template says, dropped where it lets them go), checked by the new
    version's rules; :class:`ParameterError` naming every parameter that cannot move."""
    name = spec["service"]
    current_version = instance_version(spec)
    new = catalog.get(name, version)
    if version == current_version:
        raise ParameterError(f"version: {version!r} is the instance's version already; allowed: {', '.join(v for v in catalog.versions(name) if v != version) or 'no other version'}")
    template = getattr(new, "loaded", None)
    renamed = template.template.upgrade.renamed if template else {}
    dropped = set(template.template.upgrade.dropped) if template else set()
    fields = new.Parameters.model_fields
    carried: dict[str, Any] = {}
    problems = []
    for key, value in spec["parameters"].items():
        if key in renamed:
            carried[renamed[key]] = value
        elif key in fields:
            carried.setdefault(key, value)
        elif key not in dropped:
            problems.append(
                f"  {key} = {value!r} is a parameter of version {current_version} that version {version} does not have; "
                f"allowed: a version whose template renames it (upgrade.renamed) or lets it go (upgrade.dropped)"
            )
    if problems:
        raise ParameterError("\n".join([f"cannot upgrade {spec.get('client')}/{spec.get('instance')} from {name} {current_version} to {version}:", *problems]))
    checked = new.checked({**carried, "target": spec["target"]})
    return {
        "version": new.version,
        "sha256": new.sha256,
        "parameters": checked.model_dump(mode="json", exclude={"target"}),
        "from": {"version": current_version, "sha256": spec.get("service_sha256"), "parameters": dict(spec["parameters"])},
    }


def newest_minor(catalog: Catalog, spec: Mapping[str, Any]) -> str | None:
    """The newest version of the instance's service with its major version, newer than its own (not deprecated)."""
    current = version_key(instance_version(spec))
    same_major = [version for version in catalog.upgrades(spec["service"], str(current)) if version_key(version).major == current.major]
    return same_major[-1] if same_major else None


DEFAULT = Catalog()  # the package's own services: what the command line and the default stacks use
