"""Stacks: one class per environment, the platform's own stacks, the local environment, Spotilike's, and
the App holding them all.

The stack classes load on first use (``from spawnit.stacks import ProdStack`` works as usual): a process
that builds only Spotilike's stacks never loads the Cloudflare and Docker bindings, and one that builds
only GreenLeaf's never loads the Kubernetes binding (see :mod:`.synthesis`).

Each application's settings live beside its stacks (``environment_settings``, ``spotilike_settings``,
``platform_settings``) and load without cdktf: the command line checks them before the runtime starts.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .environment_settings import EnvironmentSpec, load_spec
from .platform_settings import PlatformSettings, load_platform_settings
from .spotilike_settings import SpotilikeSpec, load_spotilike_spec

if TYPE_CHECKING:
    from cdktf import App

_HOMES = {
    "DevStack": ".environment",
    "EnvironmentStack": ".environment",
    "PreprodStack": ".environment",
    "ProdStack": ".environment",
    "LocalEnvStack": ".local",
    "SpotilikeStack": ".spotilike",
    "SpotilikeWebStack": ".spotilike",
    "PlatformConfigsStack": ".platform",
    "PlatformInstancesStack": ".platform",
    "PlatformNetworkStack": ".platform",
    "PlatformVolumesStack": ".platform",
    "add_platform_stacks": ".platform",
}


def _environment_stacks() -> dict[str, type]:
    from .environment import DevStack, PreprodStack, ProdStack

    return {cls.environment: cls for cls in (DevStack, PreprodStack, ProdStack)}


def file_and_environ(spec_options: dict[str, object]) -> dict[str, object]:
    """Of :func:`load_spec`'s options, those the platform's and Spotilike's settings read too."""
    return {key: value for key, value in spec_options.items() if key in ("config_file", "environ")}


def __getattr__(name: str) -> Any:
    if name == "ENVIRONMENT_STACKS":
        return _environment_stacks()
    if name in _HOMES:
        return getattr(importlib.import_module(_HOMES[name], __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


from ..shared import CATALOG_CLIENT  # noqa: E402 - beside the example targets it names
# The example instances: on aws, public demos whose ports are open to the internet, said here on purpose.
EXAMPLE_TARGETS = {
    "docker": {"target": "docker"},
    "aws": {"target": "aws", "allowed_cidrs": ["0.0.0.0/0"]},
    "proxmox": {"target": "proxmox", "proxmox_endpoint": "https://pve.example.com:8006/"},
}


def add_catalog_examples(app: App) -> list[str]:
    """One default instance of every catalog service for each target, as client ``catalog``."""
    from ..services import TARGETS, all_services
    from ..services.stack import ServiceStack

    names = []
    for service in all_services().values():
        for target in TARGETS:
            stack = ServiceStack(
                app,
                service=service,
                parameters=service.parse({**service.example, **EXAMPLE_TARGETS[target]}),
                client=CATALOG_CLIENT,
                instance=f"{service.name}-{target}",
            )
            names.append(stack.node.id)
    return names


def add_spotilike_stacks(app: App, spec: SpotilikeSpec) -> None:
    """Spotilike's infrastructure stack and its web stack (applied after it)."""
    from .spotilike import SpotilikeStack, SpotilikeWebStack

    SpotilikeWebStack(app, SpotilikeStack(app, spec))


def build_app(
    outdir: str | Path | None = None,
    *,
    specs: dict[str, EnvironmentSpec] | None = None,
    platform: PlatformSettings | None = None,
    spotilike: SpotilikeSpec | None = None,
    catalog: bool = True,
    with_spotilike: bool = True,
    **spec_options: object,
) -> App:
    """An App with every default stack: dev, preprod and prod (configuration read as :func:`load_spec` does),
    the platform's four stacks, the local Docker environment, Spotilike's two stacks (unless
    ``with_spotilike`` is false), and one
    example instance of each catalog service per target."""
    from cdktf import App

    from .local import LocalEnvStack
    from .platform import add_platform_stacks

    app = App(outdir=str(outdir)) if outdir is not None else App()
    for name, stack_class in _environment_stacks().items():
        spec = (specs or {}).get(name) or load_spec(name, **spec_options)
        stack_class(app, spec)
    add_platform_stacks(app, platform or load_platform_settings(**file_and_environ(spec_options)))
    LocalEnvStack(app)
    if with_spotilike:
        add_spotilike_stacks(app, spotilike or load_spotilike_spec(**file_and_environ(spec_options)))
    if catalog:
        add_catalog_examples(app)
    return app


__all__ = [
    "DevStack",
    "EnvironmentStack",
    "LocalEnvStack",
    "PlatformConfigsStack",
    "PlatformInstancesStack",
    "PlatformNetworkStack",
    "PlatformVolumesStack",
    "PreprodStack",
    "ProdStack",
    "ENVIRONMENT_STACKS",
    "SpotilikeStack",
    "SpotilikeWebStack",
    "build_app",
]
