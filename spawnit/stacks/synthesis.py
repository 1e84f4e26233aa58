"""Every default stack, synthesized in two processes side by side.

Each provider binding's jsii assembly loads whole into the synthesizing process (AWS about 570 MB,
Kubernetes and Cloudflare a few hundred more each): GreenLeaf's stacks (AWS, Cloudflare, Docker) are
synthesized here while a second process synthesizes Spotilike's (AWS, Kubernetes) into a folder of its
own; its stacks and manifest entries then join the output. Neither process loads every binding, and on
two cores they run at once.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from ..config import EnvironmentSpec, PlatformSettings, SpotilikeSpec, load_spotilike_spec
from ..reachability import require_reachable
from ..synthcache import merge_manifest, restore_instances

SIDE_PROGRAM = "import sys; from spawnit.stacks.synthesis import synthesize_spotilike; synthesize_spotilike(sys.argv[1])"


class SynthesisError(RuntimeError):
    """The side process synthesizing Spotilike's stacks failed (its own message is on stderr)."""


def synthesize(
    outdir: str | Path | None = None,
    *,
    specs: dict[str, EnvironmentSpec] | None = None,
    platform: PlatformSettings | None = None,
    spotilike: SpotilikeSpec | None = None,
    **spec_options: object,
) -> Path:
    """Synthesize every default stack into ``outdir`` (default: where cdktf-cli asks, else ``cdktf.out``);
    returns the folder."""
    from cdktf import TerraformStack

    from ..applications import third_party
    from . import build_app, file_and_environ

    spotilike = spotilike or load_spotilike_spec(**file_and_environ(spec_options))
    with tempfile.TemporaryDirectory(prefix="spawnit-side-") as side:
        process = subprocess.Popen([sys.executable, "-c", SIDE_PROGRAM, side], stdin=subprocess.PIPE, text=True)
        process.stdin.write(spotilike.model_dump_json())
        process.stdin.close()
        try:
            app = build_app(outdir, specs=specs, platform=platform, with_spotilike=False, **spec_options)
            for application in third_party(**file_and_environ(spec_options)):  # another team's, through its entry point
                application.build(app)
            app.synth()
        finally:
            code = process.wait()
        if code != 0:
            raise SynthesisError(f"synthesizing Spotilike's stacks failed (exit code {code})")
        target = Path(app.outdir)
        entries = json.loads((Path(side) / "manifest.json").read_text())["stacks"]
        for name in entries:
            shutil.copytree(Path(side) / "stacks" / name, target / "stacks" / name, dirs_exist_ok=True)
        merge_manifest(target, entries)
    # Every flow the constructs declared is allowed end to end, or the synthesis fails naming it.
    written = [*(child.node.id for child in app.node.children if isinstance(child, TerraformStack)), *entries]
    require_reachable(target, written)
    restore_instances(target, written)  # the instance stacks of `spawnit synth --service`, whoever called this
    return target


def synthesize_spotilike(outdir: str) -> None:
    """The side process: Spotilike's stacks from the spec on stdin, into ``outdir``."""
    from cdktf import App

    from . import add_spotilike_stacks

    app = App(outdir=outdir)
    add_spotilike_stacks(app, SpotilikeSpec.model_validate_json(sys.stdin.read()))
    app.synth()
