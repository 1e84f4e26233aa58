"""Skip a synthesis whose inputs have not changed.

A synthesis is a function of: SpawnIt's own code and assets, the effective configuration of every
stack (environment specs, platform settings and Spotilike's spec, wherever each value came from), the folder it runs
in (the platform builds its image from there), and the versions of cdktf and every provider
binding. Their digest is stamped into the output folder with the digest of each stack it wrote; the
next synthesis with the same inputs reuses the output only if every stack is still exactly as written:
any other writer of the folder (``python main.py`` with other settings, ``npx cdktf synth``) makes it
stale.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sys
from collections.abc import Iterable
from importlib import metadata
from pathlib import Path

from pydantic import BaseModel

STAMP = ".spawnit-synth.json"
PACKAGE = Path(__file__).resolve().parent
DEPENDENCIES = (
    "cdktf", "constructs", "jsii",
    "cdktf-cdktf-provider-aws", "cdktf-cdktf-provider-docker", "cdktf-cdktf-provider-kubernetes", "cdktf-cdktf-provider-cloudflare",
)


def _package_files() -> Iterable[Path]:
    for path in sorted(PACKAGE.rglob("*")):
        if path.is_file() and "__pycache__" not in path.parts:
            yield path


def fingerprint(configuration: Iterable[BaseModel], *, cwd: Path | None = None, applications: Iterable[object] = ()) -> str:
    """Digest of everything a default synthesis depends on; ``applications``: other teams' applications
    (their settings and their code)."""
    digest = hashlib.sha256()
    for path in _package_files():
        digest.update(str(path.relative_to(PACKAGE)).encode())
        digest.update(hashlib.sha256(path.read_bytes()).digest())
    for model in configuration:
        digest.update(type(model).__name__.encode())
        digest.update(model.model_dump_json().encode())
    for application in applications:
        digest.update(json.dumps(application.fingerprint(), sort_keys=True, default=str).encode())  # type: ignore[attr-defined]
        source = Path(sys.modules[type(application).__module__].__file__ or "")
        for path in sorted(source.parent.rglob("*.py")) if source.name == "__init__.py" else [source]:
            digest.update(hashlib.sha256(path.read_bytes()).digest())
    digest.update(str(cwd or Path.cwd()).encode())
    for name in DEPENDENCIES:
        try:
            digest.update(f"{name}=={metadata.version(name)}".encode())
        except metadata.PackageNotFoundError:
            digest.update(f"{name} absent".encode())
    return digest.hexdigest()


def _stamp(outdir: Path) -> dict:
    try:
        return json.loads((outdir / STAMP).read_text())
    except (OSError, ValueError):
        return {}


def cached_stacks(outdir: Path, digest: str) -> list[str] | None:
    """The stacks of ``outdir`` if it holds a whole synthesis of exactly these inputs, every stack of it
    still there; otherwise None (a folder where only some stacks were synthesized is not whole)."""
    stamp = _stamp(outdir)
    stacks = stamp.get("stacks", [])
    if stamp.get("fingerprint") != digest or not stamp.get("complete", True) or stamp.get("files") != _file_digests(outdir, stacks):
        return None  # other inputs, or a stack rewritten (or removed) since by another writer
    return stacks


def cached_stack(outdir: Path, digest: str, name: str) -> bool:
    """Whether ``outdir`` holds stack ``name`` synthesized from exactly these inputs, as it was written."""
    stamp = _stamp(outdir)
    return stamp.get("fingerprint") == digest and name in stamp.get("stacks", []) and stamp.get("files", {}).get(name) == _file_digests(outdir, [name])[name]


def record_some(outdir: Path, digest: str, stacks: Iterable[str]) -> None:
    """Stamp ``stacks`` as synthesized from these inputs, alone: beside the stamped ones if the inputs are
    the same, in place of them otherwise; the folder is then no whole synthesis until ``record``."""
    stamp = _stamp(outdir)
    same = stamp.get("fingerprint") == digest
    kept = [name for name in stamp.get("stacks", []) if same and name not in stacks]
    names = sorted({*kept, *stacks})
    complete = same and stamp.get("complete", True) and not set(stacks) - set(stamp.get("stacks", []))
    _write(outdir, {"fingerprint": digest, "stacks": names, "files": _file_digests(outdir, names), "complete": complete})


def _file_digests(outdir: Path, stacks: Iterable[str]) -> dict[str, str | None]:
    digests: dict[str, str | None] = {}
    for name in stacks:
        path = outdir / "stacks" / name / "cdk.tf.json"
        digests[name] = hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else None
    return digests


def record(outdir: Path, digest: str, stacks: Iterable[str]) -> None:
    """Stamp ``outdir`` as a whole synthesis of these inputs: ``stacks``, as they are now."""
    stacks = sorted(stacks)
    _write(outdir, {"fingerprint": digest, "stacks": stacks, "files": _file_digests(outdir, stacks), "complete": True})


def _write(outdir: Path, stamp: dict) -> None:
    temporary = outdir / f"{STAMP}.tmp"
    temporary.write_text(json.dumps(stamp, indent=2))
    os.replace(temporary, outdir / STAMP)


def forget(outdir: Path) -> None:
    """Mark ``outdir`` as not matching any input (before a synthesis that may stop half-way)."""
    (outdir / STAMP).unlink(missing_ok=True)


def stacks_in_manifest(outdir: Path) -> dict[str, dict]:
    try:
        return json.loads((outdir / "manifest.json").read_text()).get("stacks", {})
    except (OSError, ValueError):
        return {}


def copy_stacks(source: Path, outdir: Path) -> dict[str, dict]:
    """Every stack synthesized into ``source`` copied into ``outdir`` (replacing its own of the same name),
    the manifest of ``outdir`` gaining their entries and keeping the others; returns the entries."""
    entries = stacks_in_manifest(source)
    for name in entries:
        target = Path(outdir) / "stacks" / name
        shutil.rmtree(target, ignore_errors=True)
        shutil.copytree(Path(source) / "stacks" / name, target)
    merge_manifest(Path(outdir), entries)
    return entries


def merge_manifest(outdir: Path, entries: dict[str, dict]) -> None:
    """Add ``entries`` (stack name -> manifest entry) to ``outdir``'s manifest, keeping the others."""
    path = outdir / "manifest.json"
    try:
        manifest = json.loads(path.read_text())
    except (OSError, ValueError):
        manifest = {"version": metadata.version("cdktf"), "stacks": {}}
    manifest.setdefault("stacks", {}).update(entries)
    temporary = path.with_suffix(".json.tmp")
    temporary.write_text(json.dumps(manifest, indent=2))
    os.replace(temporary, path)


# Instance stacks (spawnit synth --service) outlive whoever rewrites the output folder: each is kept beside
# it, in .spawnit/instances/<outdir name>/<stack>/, and every synthesis of the default stacks puts them back
# (cdktf-cli empties the folder before `npx cdktf synth`; `python main.py` rewrites its manifest).


def instances_home(outdir: Path) -> Path:
    outdir = Path(outdir).resolve()
    return outdir.parent / ".spawnit" / "instances" / outdir.name


def keep_instance(outdir: Path, name: str, entry: dict) -> None:
    """Keep the instance stack ``name`` of ``outdir`` (its folder and manifest entry) for later syntheses."""
    home = instances_home(outdir) / name
    shutil.rmtree(home, ignore_errors=True)
    shutil.copytree(Path(outdir) / "stacks" / name, home / "stack")
    (home / "entry.json").write_text(json.dumps(entry))


def restore_instances(outdir: Path, written: Iterable[str]) -> list[str]:
    """Put the kept instance stacks back into ``outdir`` and its manifest (not those this synthesis wrote)."""
    home = instances_home(outdir)
    written = set(written)
    restored = {}
    for folder in sorted(home.iterdir()) if home.is_dir() else []:
        if folder.name in written or not (folder / "entry.json").is_file():
            continue
        target = Path(outdir) / "stacks" / folder.name
        shutil.rmtree(target, ignore_errors=True)
        shutil.copytree(folder / "stack", target)
        restored[folder.name] = json.loads((folder / "entry.json").read_text())
    if restored:
        merge_manifest(Path(outdir), restored)
    return sorted(restored)
