"""Every default stack, synthesized in one process.

With the provider bindings loaded lazily (spawnit/bindings.py), one process holding the AWS, Docker,
Cloudflare and Kubernetes assemblies costs less CPU and memory than two side by side (a side process for
Spotilike's stacks once kept Kubernetes' binding out of the main one): `benchmarks/synth.py` measures both.
"""

from __future__ import annotations

from pathlib import Path

from .environment_settings import EnvironmentSpec
from .platform_settings import PlatformSettings
from .spotilike_settings import SpotilikeSpec
from ..reachability import require_reachable
from ..synthcache import restore_instances


def synthesize(
    outdir: str | Path | None = None,
    *,
    specs: dict[str, EnvironmentSpec] | None = None,
    platform: PlatformSettings | None = None,
    spotilike: SpotilikeSpec | None = None,
    **spec_options: object,
) -> Path:
    """Synthesize every default stack into ``outdir`` (default: where cdktf-cli asks, else ``cdktf.out``),
    other teams' applications included; returns the folder."""
    from cdktf import TerraformStack

    from ..applications import third_party
    from . import build_app, file_and_environ

    app = build_app(outdir, specs=specs, platform=platform, spotilike=spotilike, **spec_options)
    for application in third_party(**file_and_environ(spec_options)):  # another team's, through its entry point
        application.build(app)
    app.synth()
    target = Path(app.outdir)
    written = [child.node.id for child in app.node.children if isinstance(child, TerraformStack)]
    require_reachable(target, written)  # every flow the constructs declared is allowed end to end, or it fails naming it
    restore_instances(target, written)  # the instance stacks of `spawnit synth --service`, whoever called this
    return target
