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


def test_the_session_loads_the_bindings_lazily():
    import cdktf_cdktf_provider_aws

    assert len(cdktf_cdktf_provider_aws.__spawnit_lazy_submodules__) == 2212
    loaded = [name for name in sys.modules if name.startswith("cdktf_cdktf_provider_aws.")]
    assert 10 < len(loaded) < 400  # what the stacks use, not 2,212 submodules (and their _jsii helpers)


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
