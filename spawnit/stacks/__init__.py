"""Stacks: one class per environment, and the App holding every default stack."""

from __future__ import annotations

from pathlib import Path

from cdktf import App

from ..config import EnvironmentSpec, load_spec
from .environment import DevStack, EnvironmentStack, PreprodStack, ProdStack

ENVIRONMENT_STACKS: dict[str, type[EnvironmentStack]] = {cls.environment: cls for cls in (DevStack, PreprodStack, ProdStack)}


def build_app(outdir: str | Path | None = None, *, specs: dict[str, EnvironmentSpec] | None = None, **spec_options: object) -> App:
    """An App with every default stack: dev, preprod and prod (configuration read as :func:`load_spec` does)."""
    app = App(outdir=str(outdir)) if outdir is not None else App()
    for name, stack_class in ENVIRONMENT_STACKS.items():
        spec = (specs or {}).get(name) or load_spec(name, **spec_options)
        stack_class(app, spec)
    return app


__all__ = ["DevStack", "EnvironmentStack", "PreprodStack", "ProdStack", "ENVIRONMENT_STACKS", "build_app"]
