"""Applications: what the command line knows of the stacks it synthesizes, plans, deploys and prices.

SpawnIt is the platform; GreenLeaf, Spotilike, the platform's own stacks, the local environment and the
catalog's examples are applications on it. Each registers through one small interface,
:class:`Application`: its settings (read and validated before anything slow, a bad value stops with the
field, the value and where it came from), its stacks (name, what they are, where their state lives, in
deployment order), how to add them to an App, and the budget its stacks are priced against.

A third team's application plugs in the same way, from its own package, through the ``spawnit.applications``
entry point group::

    [project.entry-points."spawnit.applications"]
    shop = "shop.spawnit:ShopApplication"

No cdktf here: listing and checking applications loads no provider binding.
"""

from __future__ import annotations

import importlib.metadata
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from .config import ConfigError
from .shared import CATALOG_CLIENT, did_you_mean
from .stacks.environment_settings import ENVIRONMENTS, load_spec, readiness_warnings, size_warnings
from .stacks.platform_settings import load_platform_settings
from .stacks.spotilike_settings import load_spotilike_spec

ENTRY_POINT_GROUP = "spawnit.applications"


@dataclass(frozen=True)
class StackEntry:
    """One stack as ``spawnit list`` shows it."""

    name: str
    summary: str  # what it is: architecture, region, target...
    state: str  # where its state lives


class Application:
    """An application's stacks and settings, as the command line sees them.

    ``config_file`` and ``environ`` are where its settings come from (spawnit.toml, SPAWNIT_* variables);
    the constructor reads and validates them, raising :class:`~spawnit.config.ConfigError`."""

    name: ClassVar[str]
    title: ClassVar[str]

    def __init__(self, *, config_file: str | Path | None = None, environ: Mapping[str, str] | None = None, local_state: bool = False) -> None:
        self.config_file, self.environ, self.local_state = config_file, environ, local_state

    def stacks(self) -> list[StackEntry]:
        raise NotImplementedError

    def build(self, app: Any) -> None:
        """Add every stack of the application to ``app`` (a cdktf App)."""
        raise NotImplementedError

    def budget(self) -> float | None:
        """The monthly budget (USD) its stacks are priced against; None: the command line's default."""
        return None

    def warnings(self) -> list[str]:
        """What to say before its stacks are used (sizes, missing recipients...)."""
        return []

    def fingerprint(self) -> Any:
        """Its settings as data: the synthesis cache is stale when they change."""
        return None

    def stack_names(self) -> list[str]:
        return [entry.name for entry in self.stacks()]


def _state(backend: str, bucket: str, key: str) -> str:
    return "local file" if backend == "local" else f"s3://{bucket}/{key}"


class GreenLeaf(Application):
    name, title = "greenleaf", "GreenLeaf on AWS"

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self.specs = {
            name: load_spec(name, config_file=self.config_file, environ=self.environ, overrides={"state_backend": "local"} if self.local_state else None)
            for name in ENVIRONMENTS
        }

    def stacks(self) -> list[StackEntry]:
        entries = []
        for spec in self.specs.values():
            nat = f", NAT {spec.nat}" if spec.architecture == "ha" else ""
            entries.append(StackEntry(spec.stack_name, f"{spec.architecture}, {spec.region}{nat}", _state(spec.state_backend, spec.resolved_state_bucket, spec.state_key)))
        return entries

    def build(self, app: Any) -> None:
        from .stacks import ENVIRONMENT_STACKS

        for name, spec in self.specs.items():
            ENVIRONMENT_STACKS[name](app, spec)

    def budget(self) -> float | None:
        return self.specs["prod"].monthly_budget_usd

    def warnings(self) -> list[str]:
        return [warning for spec in self.specs.values() for warning in (*size_warnings(spec), *readiness_warnings(spec))]

    def fingerprint(self) -> Any:
        return [spec.model_dump(mode="json") for spec in self.specs.values()]


class Platform(Application):
    name, title = "platform", "SpawnIt itself, on Docker (applied in this order)"

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self.settings = load_platform_settings(config_file=self.config_file, environ=self.environ)

    def stacks(self) -> list[StackEntry]:
        summaries = {"platform-network": "its Docker network", "platform-volumes": "MinIO's and Keycloak's data",
                     "platform-instances": "MinIO, Keycloak, the API and the web UI", "platform-configs": "the bucket, its folders and the realm"}
        return [StackEntry(name, summary, "local file") for name, summary in summaries.items()]

    def build(self, app: Any) -> None:
        from .stacks.platform import add_platform_stacks

        add_platform_stacks(app, self.settings)

    def fingerprint(self) -> Any:
        return self.settings.model_dump(mode="json")


class Local(Application):
    name, title = "local", "GreenLeaf on Docker, for developers"

    def stacks(self) -> list[StackEntry]:
        return [StackEntry("local", "PostgreSQL, Redis, Medusa, storefront, Caddy", "local file")]

    def build(self, app: Any) -> None:
        from .stacks.local import LocalEnvStack

        LocalEnvStack(app)


class Spotilike(Application):
    name, title = "spotilike", "Spotilike on AWS (seed 004)"

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self.spec = load_spotilike_spec(config_file=self.config_file, environ=self.environ)

    def stacks(self) -> list[StackEntry]:
        spec = self.spec
        state = {name: _state(spec.state_backend, spec.resolved_state_bucket, f"{spec.project}/{name}/terraform.tfstate") for name in (spec.project, f"{spec.project}-web")}
        return [StackEntry(spec.project, f"fargate+eks, {spec.region}", state[spec.project]),
                StackEntry(f"{spec.project}-web", "its EKS workload (after the first)", state[f"{spec.project}-web"])]

    def build(self, app: Any) -> None:
        from .stacks import add_spotilike_stacks

        add_spotilike_stacks(app, self.spec)

    def budget(self) -> float | None:
        return self.spec.monthly_budget_usd

    def warnings(self) -> list[str]:
        return [] if self.spec.alert_emails else [f"{self.spec.project}: no alert recipient (alert_emails): its alarms notify nobody"]

    def fingerprint(self) -> Any:
        return self.spec.model_dump(mode="json")


class CatalogExamples(Application):
    name, title = "catalog", "One example instance of every catalog service per target"

    def stacks(self) -> list[StackEntry]:
        from .services import TARGETS, all_services

        return [StackEntry(f"{CATALOG_CLIENT}-{service}-{target}", f"{service} {found.version} on {target}", "local file")
                for service, found in all_services().items() for target in TARGETS]

    def build(self, app: Any) -> None:
        from .stacks import add_catalog_examples

        add_catalog_examples(app)

    def fingerprint(self) -> Any:
        from .services import all_services

        return {name: service.sha256 for name, service in all_services().items()}


BUILT_IN: tuple[type[Application], ...] = (GreenLeaf, Spotilike, Platform, Local, CatalogExamples)


def registered() -> list[type[Application]]:
    """The built-in applications, then those installed packages register (entry point group
    ``spawnit.applications``), by name; a name registered twice is refused naming both."""
    found: dict[str, type[Application]] = {application.name: application for application in BUILT_IN}
    for entry in sorted(importlib.metadata.entry_points(group=ENTRY_POINT_GROUP), key=lambda item: item.name):
        try:
            application = entry.load()
        except Exception as error:  # noqa: BLE001 - a broken plugin is named, not a traceback
            raise ConfigError(f"application {entry.name!r} ({entry.value}): cannot be loaded: {type(error).__name__}: {error}") from None
        if not (isinstance(application, type) and issubclass(application, Application)):
            raise ConfigError(f"application {entry.name!r} ({entry.value}): is not a spawnit.applications.Application subclass")
        if application.name in found:
            raise ConfigError(f"application {application.name!r} ({entry.value}): the name is taken by {found[application.name].__module__}; allowed: another name")
        found[application.name] = application
    return list(found.values())


def third_party(**options: Any) -> list[Application]:
    """The applications installed packages register, their settings read (``options``: as :class:`Application`'s)."""
    return [application(**options) for application in registered() if application not in BUILT_IN]


def load_applications(*, config_file: str | Path | None = None, environ: Mapping[str, str] | None = None, local_state: bool = False) -> list[Application]:
    """Every registered application with its settings read and validated."""
    return [application(config_file=config_file, environ=environ, local_state=local_state) for application in registered()]


def find_stack(applications: list[Application], name: str, extra: list[str] = ()) -> Application | None:
    """The application a stack belongs to (None for one of ``extra``: an instance stack of the outdir),
    or ConfigError naming what is allowed."""
    for application in applications:
        if name in application.stack_names():
            return application
    if name in extra:
        return None
    known = [stack for application in applications for stack in application.stack_names()] + list(extra)
    shown = ", ".join(known[:12]) + (f" and {len(known) - 12} more (spawnit list)" if len(known) > 12 else "")
    raise ConfigError(f"STACK: {name!r} is not a stack of SpawnIt's applications; {did_you_mean(name, known)}allowed: {shown}")
