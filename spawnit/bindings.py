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

``SPAWNIT_EAGER_BINDINGS=1`` turns this off (every submodule imported, as the packages do on their
own); the tests synthesize every default stack both ways and compare the JSON byte for byte.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import os
import re
import sys
from collections.abc import Sequence
from types import ModuleType
from typing import Any

BINDINGS = {  # Python package -> jsii assembly
    "cdktf_cdktf_provider_aws": "@cdktf/provider-aws",
    "cdktf_cdktf_provider_cloudflare": "@cdktf/provider-cloudflare",
    "cdktf_cdktf_provider_kubernetes": "@cdktf/provider-kubernetes",
    "cdktf_cdktf_provider_docker": "@cdktf/provider-docker",
}
_SUBMODULE_IMPORT = re.compile(r"^from \. import (\w+)[ \t]*$", re.M)


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
