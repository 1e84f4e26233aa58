"""The spawnit command. OpenTofu is a stand-in executable that records how it was called."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from spawnit.cli import main

STAND_IN = """#!{python}
import json, os, sys
with open(os.environ["TOFU_LOG"], "a") as log:
    log.write(json.dumps({{"argv": sys.argv[1:], "cwd": os.getcwd(), "automation": os.environ.get("TF_IN_AUTOMATION")}}) + "\\n")
print("tofu stand-in:", " ".join(sys.argv[1:]), flush=True)
codes = json.loads(os.environ.get("TOFU_EXIT_CODES", "{{}}"))
sys.exit(codes.get(sys.argv[1], 0))
"""


@pytest.fixture
def tofu(tmp_path, monkeypatch):
    """A stand-in `tofu` first on PATH; returns a function reading the calls it received."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    binary = bin_dir / "tofu"
    binary.write_text(STAND_IN.format(python=sys.executable))
    binary.chmod(0o755)
    log = tmp_path / "tofu.log"
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("TOFU_LOG", str(log))
    monkeypatch.delenv("SPAWNIT_TOFU", raising=False)

    def calls() -> list[dict]:
        return [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []

    return calls


def test_plan_runs_init_then_plan_in_the_stack_folder(tofu, outdir, isolated_config, capfd):
    code = main(["plan", "prod", "--no-synth", "--outdir", str(outdir)])
    assert code == 0
    assert [(call["argv"], call["cwd"]) for call in tofu()] == [
        (["init", "-input=false"], str(outdir / "stacks" / "prod")),
        (["plan", "-input=false", "-detailed-exitcode"], str(outdir / "stacks" / "prod")),
    ]
    output = capfd.readouterr().out
    assert "tofu stand-in: init -input=false" in output and "tofu stand-in: plan" in output
    assert all(call["automation"] == "1" for call in tofu())


def test_deploy_with_auto_approve_runs_apply(tofu, outdir, isolated_config):
    assert main(["deploy", "preprod", "--no-synth", "--outdir", str(outdir), "--auto-approve"]) == 0
    assert [call["argv"] for call in tofu()] == [["init", "-input=false"], ["apply", "-input=false", "-auto-approve"]]
    assert tofu()[-1]["cwd"] == str(outdir / "stacks" / "preprod")


def test_deploy_without_auto_approve_lets_tofu_ask(tofu, outdir, isolated_config):
    assert main(["deploy", "dev", "--no-synth", "--outdir", str(outdir)]) == 0
    assert tofu()[-1]["argv"] == ["apply", "-input=false"]


def test_destroy_runs_destroy(tofu, outdir, isolated_config):
    assert main(["destroy", "dev", "--no-synth", "--outdir", str(outdir), "--auto-approve"]) == 0
    assert [call["argv"] for call in tofu()] == [["init", "-input=false"], ["destroy", "-input=false", "-auto-approve"]]


def test_tofu_exit_code_passes_through(tofu, outdir, isolated_config, monkeypatch):
    monkeypatch.setenv("TOFU_EXIT_CODES", json.dumps({"plan": 2}))
    assert main(["plan", "prod", "--no-synth", "--outdir", str(outdir)]) == 2


def test_failed_init_stops_before_the_action(tofu, outdir, isolated_config, monkeypatch):
    monkeypatch.setenv("TOFU_EXIT_CODES", json.dumps({"init": 1}))
    assert main(["deploy", "prod", "--no-synth", "--outdir", str(outdir), "--auto-approve"]) == 1
    assert [call["argv"][0] for call in tofu()] == ["init"]


def test_missing_tofu_fails_with_an_install_hint(outdir, isolated_config, monkeypatch, tmp_path, capsys):
    empty = tmp_path / "empty-bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    monkeypatch.delenv("SPAWNIT_TOFU", raising=False)
    assert main(["plan", "prod", "--no-synth", "--outdir", str(outdir)]) == 127
    error = capsys.readouterr().err
    assert "OpenTofu is not installed" in error and "https://opentofu.org/docs/intro/install/" in error


def test_unknown_environment_is_a_usage_error(tofu, outdir, isolated_config, capsys):
    assert main(["plan", "staging", "--no-synth", "--outdir", str(outdir)]) == 2
    assert "STACK: 'staging' is not a stack of SpawnIt's applications; allowed: dev, preprod, prod, spotilike, spotilike-web, platform-network" in capsys.readouterr().err
    assert tofu() == []


def test_missing_stack_folder_says_to_synth_first(tofu, isolated_config, tmp_path, capsys):
    assert main(["plan", "prod", "--no-synth", "--outdir", str(tmp_path / "nowhere")]) == 2
    assert "has no cdk.tf.json; run without --no-synth to synthesize it" in capsys.readouterr().err
    assert tofu() == []


def test_synth_writes_the_same_stacks_as_the_app(outdir, isolated_config, tmp_path, capsys):
    target = tmp_path / "out"
    assert main(["synth", "--outdir", str(target)]) == 0
    for name in ("dev", "preprod", "prod"):
        assert json.loads((target / "stacks" / name / "cdk.tf.json").read_text()) == json.loads((outdir / "stacks" / name / "cdk.tf.json").read_text())
    assert "synthesized" in capsys.readouterr().out


def test_bad_configuration_stops_synth_with_exit_2_and_writes_nothing(isolated_config, monkeypatch, tmp_path, capsys):
    monkeypatch.setenv("SPAWNIT_PROD_FLEET_MAX", "100")
    target = tmp_path / "out"
    assert main(["synth", "--outdir", str(target)]) == 2
    assert "prod.fleet_max = '100' is not allowed" in capsys.readouterr().err
    assert not target.exists()


def test_python_dash_m_spawnit_lists_the_stacks(isolated_config):
    result = subprocess.run([sys.executable, "-m", "spawnit", "list"], capture_output=True, text=True, check=True, env={**os.environ})
    groups = result.stdout.split("\n\n")
    greenleaf, spotilike, engine = groups[0].splitlines(), groups[1].splitlines(), groups[-1]
    assert greenleaf[0] == "greenleaf: GreenLeaf on AWS" and greenleaf[1].split() == ["STACK", "WHAT", "STATE"]
    assert [line.split()[0] for line in greenleaf[2:]] == ["dev", "preprod", "prod"]
    assert engine.startswith("engine: ")  # which engine plan and deploy would run
    assert "s3://greenleaf-tfstate-eu-west-3/greenleaf/prod/terraform.tfstate" in greenleaf[4]
    assert "NO RECIPIENT (warning)" in greenleaf[4], "alerts nobody receives are shown, not hidden"
    assert spotilike[0].startswith("spotilike: ")
    assert spotilike[2].split()[:3] == ["spotilike", "fargate+eks,", "eu-west-3"] and "s3://spotilike-tfstate-eu-west-3/spotilike/spotilike/terraform.tfstate" in spotilike[2]
    assert spotilike[3].split()[0] == "spotilike-web"


def test_local_state_flag_is_listed(isolated_config, capsys):
    assert main(["--local-state", "list"]) == 0
    assert "local file" in capsys.readouterr().out


def test_spawnit_entry_point_is_installed():
    script = Path(sys.executable).parent / "spawnit"
    assert script.exists()
    assert subprocess.run([str(script), "--help"], capture_output=True, text=True).stdout.startswith("usage: spawnit")


def test_version_names_the_engine_found_first_tofu_then_terraform_then_none(tmp_path):
    folder = tmp_path / "bin"
    folder.mkdir()

    def version(path: str) -> str:
        environ = {key: value for key, value in os.environ.items() if key != "SPAWNIT_TOFU"}
        return subprocess.run([sys.executable, "-m", "spawnit", "--version"], capture_output=True, text=True, check=True, env={**environ, "PATH": path}).stdout

    python_dir = os.path.dirname(sys.executable)
    assert "engine: none found (install OpenTofu, or set SPAWNIT_TOFU)" in version(f"{folder}:{python_dir}")
    for name, banner in (("terraform", "Terraform v1.11.4"), ("tofu", "OpenTofu v1.10.6")):
        (folder / name).write_text(f"#!/bin/sh\necho '{banner}'\necho 'on linux_amd64'\n")
        (folder / name).chmod(0o755)
        name_, number = banner.split(" v")
        assert f"engine: {name_} {number} ({folder / name})" in version(f"{folder}:{python_dir}")  # tofu wins once both exist
