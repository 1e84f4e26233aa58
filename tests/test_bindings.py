"""The provider bindings loaded lazily (spawnit/bindings.py): the same JSON as the packages' own eager
import, for every default stack and catalog instance, from a fraction of the imports."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from spawnit.bindings import BINDINGS, jsii_submodule

SITE = Path(__import__("cdktf_cdktf_provider_aws").__spec__.origin).parents[1]


@pytest.mark.parametrize("package", sorted(BINDINGS))
def test_every_submodules_jsii_name_is_the_one_its_types_carry(package):
    """The FQN map handed to the jsii runtime: s3_bucket -> @cdktf/provider-aws.s3Bucket, checked against
    the jsii_type of the first type each submodule defines."""
    source = (SITE / package / "__init__.py").read_text()
    submodules = re.findall(r"^from \. import (\w+)[ \t]*$", source, re.M)
    assert len(submodules) > 10
    wrong = []
    for submodule in submodules:
        with open(SITE / package / submodule / "__init__.py") as handle:
            found = re.search(r'jsii_type="' + re.escape(BINDINGS[package]) + r'\.([^".]+)\.', handle.read(200_000))
        if not found or found[1] != jsii_submodule(submodule):
            wrong.append((submodule, found and found[1]))
    assert wrong == []


SYNTHESIS_PROGRAM = """
import sys
import spawnit, cdktf_cdktf_provider_aws
from spawnit.stacks.synthesis import synthesize
synthesize(sys.argv[1])
print(len(cdktf_cdktf_provider_aws.__spawnit_lazy_submodules__), len([name for name in sys.modules if name.startswith("cdktf_cdktf_provider_aws.")]))
"""


def test_a_synthesis_of_every_default_stack_imports_only_the_submodules_its_stacks_use(tmp_path):
    environ = {key: value for key, value in os.environ.items() if not key.startswith("SPAWNIT_")}
    result = subprocess.run([sys.executable, "-c", SYNTHESIS_PROGRAM, str(tmp_path / "out")], capture_output=True, text=True, env=environ, cwd=tmp_path, timeout=600)
    assert result.returncode == 0, result.stderr[-2000:]
    submodules, loaded = map(int, result.stdout.split()[-2:])
    assert submodules == 2212
    assert 10 < loaded < 400  # what the stacks use, not 2,212 submodules (and their _jsii helpers)


LAZY_PROGRAM = """
import sys
import spawnit
import cdktf_cdktf_provider_aws as aws
from jsii._reference_map import _try_import_type_module, _types
before = sorted(name for name in sys.modules if name.startswith("cdktf_cdktf_provider_aws."))
assert all(name.endswith(("._jsii", "._private")) for name in before), before  # the assembly, and publication's hidden modules
assert aws.vpc.Vpc.__name__ == "Vpc"  # an attribute of the package imports its submodule (PEP 562)
assert "cdktf_cdktf_provider_aws.ec2_transit_gateway" not in sys.modules
# what the jsii runtime does when the kernel hands back a type no Python module has registered yet
assert _try_import_type_module("@cdktf/provider-aws.ec2TransitGateway.Ec2TransitGateway")
assert "@cdktf/provider-aws.ec2TransitGateway.Ec2TransitGateway" in _types
try:
    aws.no_such_thing
except AttributeError as error:
    print("refused:", error)
"""


def test_a_submodule_loads_on_first_use_and_the_runtime_finds_an_unloaded_type_by_its_fqn():
    environ = {key: value for key, value in os.environ.items() if key != "SPAWNIT_EAGER_BINDINGS"}
    result = subprocess.run([sys.executable, "-c", LAZY_PROGRAM], capture_output=True, text=True, env=environ, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "refused: module 'cdktf_cdktf_provider_aws' has no attribute 'no_such_thing'" in result.stdout


def test_every_default_stack_and_catalog_instance_is_byte_identical_to_the_eager_imports(tmp_path):
    """`spawnit synth` twice from the same folder with embedded defaults only: once with the packages' own
    eager import (SPAWNIT_EAGER_BINDINGS=1), once lazily; every stack's JSON compared byte for byte."""
    base = {key: value for key, value in os.environ.items() if not key.startswith("SPAWNIT_")}
    folders = {}
    for mode, extra in (("lazy", {}), ("eager", {"SPAWNIT_EAGER_BINDINGS": "1"})):
        folders[mode] = tmp_path / mode
        command = [sys.executable, "-m", "spawnit", "synth", "--outdir", str(folders[mode]), "--force"]
        result = subprocess.run(command, capture_output=True, text=True, env=base | extra, cwd=tmp_path, timeout=900)
        assert result.returncode == 0, result.stderr[-2000:]
    names = sorted(path.parent.name for path in folders["eager"].glob("stacks/*/cdk.tf.json"))
    assert len(names) == 40 and {"prod", "spotilike", "platform-instances", "local", "catalog-webapp-proxmox"} <= set(names)
    assert sorted(path.parent.name for path in folders["lazy"].glob("stacks/*/cdk.tf.json")) == names
    differ = [name for name in names if (folders["eager"] / "stacks" / name / "cdk.tf.json").read_bytes() != (folders["lazy"] / "stacks" / name / "cdk.tf.json").read_bytes()]
    assert differ == []


def _extract(tarball: Path, into: Path, keep=lambda name: True) -> None:
    """A package tarball's files (``package/...``) into ``into``, as the jsii kernel lays them out."""
    import tarfile

    with tarfile.open(tarball) as archive:
        for member in archive:
            name = member.name.removeprefix("package/")
            if member.isfile() and keep(name):
                target = into / name
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(archive.extractfile(member).read())


NODE_PROGRAM = """
const inPackage = () => Object.keys(require.cache).filter(path => path.includes("provider-aws/lib/")).map(path => path.split("provider-aws/")[1]).sort();
const aws = require("@cdktf/provider-aws");
const names = Object.keys(aws);
const afterIndex = inPackage();
const type = typeof aws.s3Bucket.S3Bucket;
const fqn = aws.s3Bucket.S3Bucket[Symbol.for("jsii.rtti")].fqn;
console.log(JSON.stringify({names, afterIndex, type, fqn, same: aws.s3Bucket === require("@cdktf/provider-aws/lib/s3-bucket"), afterUse: inPackage()}));
"""


def test_the_lazy_copy_of_a_binding_keeps_every_export_and_node_requires_a_module_on_first_use(tmp_path):
    """The binding's own lib/index.js requires its 2,212 modules when the kernel loads it; in the lazy
    copy each export is a getter: real Node loads the index alone, and `s3Bucket` on first use."""
    from spawnit.bindings import assembly_of, lazy_tarball

    name, version, tarball, dependencies = assembly_of(SITE / "cdktf_cdktf_provider_aws")
    assert (name, dependencies) == ("@cdktf/provider-aws", ["cdktf._jsii", "constructs._jsii"])
    lazy = lazy_tarball(tarball, tmp_path / "cache")
    assert lazy is not None and lazy.parent == tmp_path / "cache" and version in lazy.name
    assert lazy_tarball(tarball, tmp_path / "cache") == lazy  # written once
    modules = tmp_path / "node_modules"
    _extract(lazy, modules / "@cdktf" / "provider-aws", lambda name: name in ("package.json", "lib/index.js") or name.startswith("lib/s3-bucket/"))
    for dependency in ("cdktf", "constructs"):
        _extract(next((SITE / dependency / "_jsii").glob("*.jsii.tgz")), modules / dependency, lambda name: not name.endswith(".jsii"))
    result = subprocess.run(["node", "-e", NODE_PROGRAM], capture_output=True, text=True, cwd=tmp_path, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    report = __import__("json").loads(result.stdout)
    python_submodules = re.findall(r"^from \. import (\w+)[ \t]*$", (SITE / "cdktf_cdktf_provider_aws" / "__init__.py").read_text(), re.M)
    assert sorted(report["names"]) == sorted(jsii_submodule(sub) for sub in python_submodules if not sub.startswith("_"))
    assert report["afterIndex"] == ["lib/index.js"]
    assert (report["type"], report["fqn"], report["same"]) == ("function", "@cdktf/provider-aws.s3Bucket.S3Bucket", True)
    assert "lib/s3-bucket/index.js" in report["afterUse"] and len(report["afterUse"]) < 10


def test_the_kernel_is_handed_the_lazy_copy_of_each_binding_and_never_extracts_the_packaged_one():
    """JSII_DEBUG_TIMING makes the kernel print (on the program's standard output) each tarball it
    extracts: one per assembly, the lazy copy."""
    from spawnit.bindings import cache_folder

    environ = {key: value for key, value in os.environ.items() if key != "SPAWNIT_EAGER_BINDINGS"} | {"JSII_DEBUG_TIMING": "1"}
    program = "import spawnit, " + ", ".join(sorted(BINDINGS))
    result = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True, env=environ, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    extracted = re.findall(r"tar\.extract\((\S+?)\) =>", result.stdout)
    for assembly in BINDINGS.values():
        short = assembly.split("/")[1]
        mine = [path for path in extracted if Path(path).name.startswith(f"{short}@")]
        assert len(mine) == 1 and Path(mine[0]).parent == cache_folder(), (assembly, mine)


def test_a_binding_not_in_the_form_expected_is_loaded_as_packaged(tmp_path):
    from spawnit.bindings import assembly_of, lazy_index, lazy_tarball

    (tmp_path / "pkg" / "_jsii").mkdir(parents=True)
    (tmp_path / "pkg" / "_jsii" / "__init__.py").write_text("import jsii\n__jsii_assembly__ = jsii.JSIIAssembly.load(*ARGS)\n")
    assert assembly_of(tmp_path / "pkg") is None and assembly_of(tmp_path / "nowhere") is None
    assert lazy_index('"use strict";\nmodule.exports = require("./all");\n') is None
    rewritten = lazy_index('"use strict";\nexports.s3Bucket = require("./s3-bucket");\nexports.vpc = require("./vpc");\n')
    assert '__lazyExport("s3Bucket", "./s3-bucket");' in rewritten and "exports.vpc = require" not in rewritten
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    tarball = next((SITE / "cdktf_cdktf_provider_docker" / "_jsii").glob("*.jsii.tgz"))
    assert lazy_tarball(tarball, blocker / "cache") is None  # a folder that cannot be made: the packaged tarball is used


PREPARE_PROGRAM = """
import spawnit.bindings as bindings
print(bindings.prepare(["cdktf_cdktf_provider_docker"], timeout=240))
print(bindings.prepare(["cdktf_cdktf_provider_docker"]))
"""


def test_the_set_up_writes_the_lazy_copy_and_waits_for_the_kernel_to_index_it_once(tmp_path):
    """Fresh caches (XDG_CACHE_HOME, the kernel's JSII_RUNTIME_PACKAGE_CACHE_ROOT): the first call writes
    the copy, loads it and returns once the kernel has written its runtime index; the second finds both."""
    environ = {key: value for key, value in os.environ.items() if key != "SPAWNIT_EAGER_BINDINGS"}
    environ |= {"XDG_CACHE_HOME": str(tmp_path / "cache"), "JSII_RUNTIME_PACKAGE_CACHE_ROOT": str(tmp_path / "jsii")}
    result = subprocess.run([sys.executable, "-c", PREPARE_PROGRAM], capture_output=True, text=True, env=environ, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    from spawnit.bindings import assembly_of

    name, version, _, _ = assembly_of(SITE / "cdktf_cdktf_provider_docker")
    first, second = result.stdout.splitlines()[-2:]
    assert (first, second) == (f"['{name} {version}: prepared']", f"['{name} {version}: ready']")
    copies = [path.name for path in (tmp_path / "cache" / "spawnit" / "bindings").iterdir()]
    assert len(copies) == 1 and copies[0].startswith(f"provider-docker@{version}-") and copies[0].endswith(".jsii.tgz")
    assert list((tmp_path / "jsii" / name / version).glob("*/.jsii.runtime.v*.json"))
