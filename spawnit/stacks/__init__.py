"""Stacks: one class per environment, the platform's own stacks, the local environment, and the App holding them all."""

from __future__ import annotations

from pathlib import Path

from cdktf import App

from ..config import EnvironmentSpec, PlatformSettings, SpotilikeSpec, load_platform_settings, load_spec, load_spotilike_spec
from .environment import DevStack, EnvironmentStack, PreprodStack, ProdStack
from .local import LocalEnvStack
from .spotilike import SpotilikeStack, SpotilikeWebStack
from .platform import PlatformConfigsStack, PlatformInstancesStack, PlatformNetworkStack, PlatformVolumesStack, add_platform_stacks

ENVIRONMENT_STACKS: dict[str, type[EnvironmentStack]] = {cls.environment: cls for cls in (DevStack, PreprodStack, ProdStack)}


CATALOG_CLIENT = "catalog"
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


def build_app(
    outdir: str | Path | None = None,
    *,
    specs: dict[str, EnvironmentSpec] | None = None,
    platform: PlatformSettings | None = None,
    spotilike: SpotilikeSpec | None = None,
    catalog: bool = True,
    **spec_options: object,
) -> App:
    """An App with every default stack: dev, preprod and prod (configuration read as :func:`load_spec` does),
    the platform's four stacks, the local Docker environment, Spotilike's two stacks, and one
    example instance of each catalog service per target."""
    app = App(outdir=str(outdir)) if outdir is not None else App()
    for name, stack_class in ENVIRONMENT_STACKS.items():
        spec = (specs or {}).get(name) or load_spec(name, **spec_options)
        stack_class(app, spec)
    add_platform_stacks(app, platform or load_platform_settings(**{k: v for k, v in spec_options.items() if k in ("config_file", "environ")}))
    LocalEnvStack(app)
    file_and_environ = {k: v for k, v in spec_options.items() if k in ("config_file", "environ")}
    SpotilikeWebStack(app, SpotilikeStack(app, spotilike or load_spotilike_spec(**file_and_environ)))
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
