"""The prebuilt provider bindings, loaded lazily: the assembly once, each submodule on first use.

A binding's package (``cdktf_cdktf_provider_aws``...) ends with one ``from . import <submodule>`` per
resource and data source, "to ensure their types are registered with the jsii runtime": 2,212 modules
for AWS, most of the CPU of importing it. :class:`LazyBindings` (a meta path finder, installed when
:mod:`spawnit` is imported) runs each binding's own ``__init__`` without those lines. Its jsii
assembly is still loaded into the runtime at once (the JavaScript side knows every type); a submodule
is imported when Python code imports it (``from cdktf_cdktf_provider_aws.instance import Instance``,
the way every module here does) or reads it as an attribute of the package (PEP 562), and when the
jsii runtime meets a type it has not registered yet, it imports the type's submodule itself: the
runtime's own lazy-loading support (jsii >= 1.120, ``_try_import_type_module``) through the map of
submodule FQNs this module registers for it, ``@cdktf/provider-aws.s3Bucket`` ->
``cdktf_cdktf_provider_aws.s3_bucket``.

The JavaScript side is made lazy the same way. A binding's ``lib/index.js`` requires its 2,212 modules
when the jsii kernel loads the assembly (~500 MB of Node heap and ~4 CPU-s for AWS, whatever a stack
uses). :func:`lazy_tarball` writes, once per binding version, a copy of the binding's package in which
each ``exports.x = require("./x");`` line becomes a getter that requires the module on first use, and
the loader hands that copy to the kernel under the binding's own name and version before the binding
loads its own (the kernel then finds the assembly loaded and keeps it). The kernel looks a type up by
walking its FQN through the package's exports (``closure.s3Bucket.S3Bucket``), which runs the getter.
The copies live in ``$XDG_CACHE_HOME/spawnit/bindings`` (``~/.cache``); where that cannot be written,
the binding's own package is loaded. The set-up prepares them ahead (:func:`main`) and waits for the
jsii kernel to index each one, which the kernel does once, in the background of the first process that
loads it: until then each process parses the whole assembly (~500 MB more for AWS).

``SPAWNIT_EAGER_BINDINGS=1`` turns both off (every submodule imported, the packages' own tarballs, as
the packages do on their own); the tests synthesize every default stack both ways and compare the JSON
byte for byte.
"""

from __future__ import annotations

import contextlib
import gzip
import importlib
import importlib.abc
import importlib.machinery
import io
import os
import re
import sys
import tarfile
import time
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

BINDINGS = {  # Python package -> jsii assembly
    "cdktf_cdktf_provider_aws": "@cdktf/provider-aws",
    "cdktf_cdktf_provider_cloudflare": "@cdktf/provider-cloudflare",
    "cdktf_cdktf_provider_kubernetes": "@cdktf/provider-kubernetes",
    "cdktf_cdktf_provider_docker": "@cdktf/provider-docker",
}
_SUBMODULE_IMPORT = re.compile(r"^from \. import (\w+)[ \t]*$", re.M)
# What jsii-pacmak writes in a binding's _jsii/__init__.py: its dependencies' assemblies, then its own.
_ASSEMBLY_LOAD = re.compile(r'jsii\.JSIIAssembly\.load\(\s*"([^"]+)",\s*"([^"]+)",\s*__name__\[0:-6\],\s*"([^"/]+)",?\s*\)')
_DEPENDENCY_IMPORT = re.compile(r"^import ([\w.]+\._jsii)[ \t]*$", re.M)
# What the TypeScript compiler writes in a binding's lib/index.js for ``export * as x from "./x"``.
_EAGER_REQUIRE = re.compile(r'^exports\.(\w+) = require\("(\./[\w./-]+)"\);$', re.M)
LAZY_MARK = "spawnit-lazy-requires v1"  # in each rewritten index.js; a new version makes new copies
_LAZY_REQUIRE = """
// {mark}: each module above is required on first use (the name's getter), then kept as a plain value.
function __lazyExport(name, path) {{
  Object.defineProperty(exports, name, {{ configurable: true, enumerable: true, get() {{
    const value = require(path);
    Object.defineProperty(exports, name, {{ value, configurable: true, enumerable: true, writable: true }});
    return value;
  }} }});
}}
"""


def jsii_submodule(python_name: str) -> str:
    """The jsii name of a binding's submodule from its Python name: ``s3_bucket`` -> ``s3Bucket``
    (jsii-pacmak writes Python names in snake case from the camel-case jsii ones; tested both ways for
    every submodule of every binding)."""
    head, *rest = python_name.split("_")
    return head + "".join(part[:1].upper() + part[1:] for part in rest)


class _LazyLoader(importlib.abc.Loader):
    def __init__(self, original: Any, assembly: str) -> None:
        self.original, self.assembly = original, assembly

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType | None:
        return None

    def exec_module(self, module: ModuleType) -> None:
        name = module.__name__
        preload_lazy_assembly(Path(self.original.get_filename(name)).parent)
        source = self.original.get_source(name)
        submodules = [found for found in _SUBMODULE_IMPORT.findall(source) if not found.startswith("_")]
        kept = _SUBMODULE_IMPORT.sub(lambda match: "" if not match[1].startswith("_") else match[0], source)
        from jsii import _reference_map

        # Registered before the code runs: the runtime resolves a type of a submodule not yet imported
        # by importing that submodule (its classes register themselves as they are defined).
        _reference_map._submodule_fqn_map.update({f"{self.assembly}.{jsii_submodule(sub)}": f"{name}.{sub}" for sub in submodules})
        exec(compile(kept, self.original.get_filename(name), "exec"), module.__dict__)
        published = sys.modules.get(name, module)  # publication.publish() may have put another module in its place

        def __getattr__(attribute: str) -> Any:  # noqa: N807 - PEP 562: `package.s3_bucket` imports it
            if attribute in submodules:
                return importlib.import_module(f"{name}.{attribute}")
            raise AttributeError(f"module {name!r} has no attribute {attribute!r}")

        published.__getattr__ = __getattr__  # type: ignore[method-assign]
        published.__spawnit_lazy_submodules__ = tuple(submodules)  # type: ignore[attr-defined]


def cache_folder(environ: Any = None) -> Path:
    """Where the lazy copies of the bindings' packages are kept: ``$XDG_CACHE_HOME/spawnit/bindings``."""
    environ = os.environ if environ is None else environ
    return Path(environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "spawnit" / "bindings"


def assembly_of(package_dir: Path) -> tuple[str, str, Path, list[str]] | None:
    """(assembly name, version, tarball, the dependencies' ``_jsii`` modules) of a binding's package, read
    from its ``_jsii/__init__.py``; None when that file is not in the form jsii-pacmak writes."""
    try:
        source = (package_dir / "_jsii" / "__init__.py").read_text()
    except OSError:
        return None
    found = _ASSEMBLY_LOAD.search(source)
    if not found:
        return None
    return found[1], found[2], package_dir / "_jsii" / found[3], _DEPENDENCY_IMPORT.findall(source)


def lazy_index(source: str) -> str | None:
    """A package's ``lib/index.js`` with each ``exports.x = require("./x");`` line made a getter that
    requires the module on first use; None when there is no such line."""
    rewritten, count = _EAGER_REQUIRE.subn(lambda match: f'__lazyExport("{match[1]}", "{match[2]}");', source)
    return rewritten + _LAZY_REQUIRE.format(mark=LAZY_MARK) if count else None


def lazy_tarball(tarball: Path, folder: Path | None = None) -> Path | None:
    """The copy of a binding's package tarball whose ``lib/index.js`` requires each module on first use,
    written once (whole, then renamed: processes may ask at once) into ``folder``; None when the package
    has no eager index to rewrite or the folder cannot be written."""
    folder = cache_folder() if folder is None else folder
    target = folder / f"{tarball.name.removesuffix('.jsii.tgz')}-{tarball.stat().st_size}-{LAZY_MARK.split()[-1]}.jsii.tgz"
    if target.is_file():
        return target
    partial = target.with_name(f"{target.name}.{os.getpid()}.partial")
    rewritten = False
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tarfile.open(tarball, "r:gz") as original, open(partial, "wb") as raw:
            with gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0, compresslevel=1) as compressed:
                with tarfile.open(fileobj=compressed, mode="w", format=tarfile.PAX_FORMAT) as copy:
                    for member in original:
                        content = original.extractfile(member) if member.isfile() else None
                        if content is not None and member.name == "package/lib/index.js":
                            lazy = lazy_index(content.read().decode())
                            if lazy is None:
                                return None
                            data = lazy.encode()
                            member.size, content, rewritten = len(data), io.BytesIO(data), True
                        copy.addfile(member, content)
        if not rewritten:
            return None
        partial.replace(target)
        return target
    except (OSError, tarfile.TarError):
        return None
    finally:
        with contextlib.suppress(OSError):
            partial.unlink(missing_ok=True)


def preload_lazy_assembly(package_dir: Path) -> bool:
    """Hands the jsii kernel the lazy copy of a binding's package under the binding's own name and version
    (its dependencies' assemblies first, as the binding does), before the binding loads its own tarball;
    True when it did."""
    found = assembly_of(package_dir)
    lazy = lazy_tarball(found[2]) if found else None
    if lazy is None:
        return False
    name, version, _, dependencies = found
    for dependency in dependencies:
        importlib.import_module(dependency)
    from jsii._runtime import kernel

    kernel.load(name, version, os.fspath(lazy))
    return True


def _jsii_package_cache(environ: Any = None) -> Path:
    """The jsii kernel's own package cache (its default on Linux, or JSII_RUNTIME_PACKAGE_CACHE_ROOT)."""
    environ = os.environ if environ is None else environ
    return Path(environ.get("JSII_RUNTIME_PACKAGE_CACHE_ROOT") or Path.home() / ".cache" / "aws" / "jsii" / "package-cache")


def indexed(name: str, version: str) -> bool:
    """Whether the jsii kernel has extracted and indexed a lazy copy of assembly ``name`` at ``version``:
    an entry of its package cache holding the rewritten index.js and the kernel's runtime index."""
    for entry in (_jsii_package_cache() / name / version).glob("*/"):
        index = entry / "lib" / "index.js"
        if any(entry.glob(".jsii.runtime.v*.json")) and index.is_file() and LAZY_MARK in index.read_text()[-1000:]:
            return True
    return False


def prepare(packages: Sequence[str] = tuple(BINDINGS), timeout: float = 300) -> list[str]:
    """Writes each installed binding's lazy copy, loads it, and waits for the kernel to have indexed it
    (once per machine and binding version; later processes start from the index). Returns what it did."""
    pending, done = {}, []
    for package in packages:
        assembly = BINDINGS[package]
        spec = importlib.machinery.PathFinder.find_spec(package)
        found = assembly_of(Path(spec.origin).parent) if spec and spec.origin else None
        if found is None or lazy_tarball(found[2]) is None:
            done.append(f"{assembly}: loaded as packaged (no lazy copy)")
        elif indexed(found[0], found[1]):
            done.append(f"{assembly} {found[1]}: ready")
        else:
            pending[package] = found
    if not pending:
        return done
    if not install():
        return done + [f"{BINDINGS[package]}: not prepared (SPAWNIT_EAGER_BINDINGS=1)" for package in pending]
    for package in pending:
        importlib.import_module(package)
    deadline = time.monotonic() + timeout
    while pending and time.monotonic() < deadline:
        for package, found in list(pending.items()):
            if indexed(found[0], found[1]):
                done.append(f"{found[0]} {found[1]}: prepared")
                del pending[package]
        time.sleep(0.2)
    return done + [f"{found[0]} {found[1]}: not indexed within {timeout:.0f} s (processes parse the whole assembly)" for found in pending.values()]


class LazyBindings(importlib.abc.MetaPathFinder):
    """Finds the bindings' packages as the path finder does, and loads them with :class:`_LazyLoader`."""

    def find_spec(self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None) -> importlib.machinery.ModuleSpec | None:
        if fullname not in BINDINGS:
            return None
        spec = importlib.machinery.PathFinder.find_spec(fullname, path)
        if spec is None or not isinstance(spec.loader, importlib.machinery.SourceFileLoader):
            return spec
        spec.loader = _LazyLoader(spec.loader, BINDINGS[fullname])
        return spec


def install(environ: Any = None) -> bool:
    """Load the bindings lazily from now on (unless ``SPAWNIT_EAGER_BINDINGS=1``); True when installed.
    A binding imported before stays as it was."""
    environ = os.environ if environ is None else environ
    if environ.get("SPAWNIT_EAGER_BINDINGS") == "1":
        return False
    if not any(isinstance(finder, LazyBindings) for finder in sys.meta_path):
        sys.meta_path.insert(0, LazyBindings())
    return True


def main() -> int:
    """``python -c 'import spawnit.bindings as b; b.main()'``: the set-up prepares the lazy copies ahead."""
    for line in prepare():
        if not line.endswith(": ready"):
            print(f"setup: bindings: {line}")
    return 0
