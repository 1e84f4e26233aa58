"""The project's own pipeline (.github/), checked as far as offline tools allow: the workflows and the
Dependabot file against the schemas GitHub and Dependabot publish (bundled by check-jsonschema), every
script and path a step names present, every action pinned to a version, and the versions it installs
equal to the README's, the image's and the bindings'. The two scripts the pipeline adds are run for real:
scripts/validate with a real engine and provider, scripts/provider-mirror with a stand-in engine (the
registry it downloads from cannot be reached here). What only GitHub can run (the jobs themselves) is not
proven here."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from conftest import dockerfile_stages, tool

ROOT = Path(__file__).resolve().parents[1]
WORKFLOWS = sorted((ROOT / ".github" / "workflows").glob("*.yml"))
CI = ROOT / ".github" / "workflows" / "ci.yml"
PINNED = re.compile(r"^[\w.-]+/[\w./-]+@(v\d+\.\d+\.\d+|[0-9a-f]{40})$")
REPOSITORY_PATH = re.compile(r"(?<![\w$/.-])(?:\./)?((?:scripts|spawnit|apps|tests|tfcheck|security|\.ci)/[\w.${}/-]*[\w}])")


def load(path: Path) -> dict:
    document = yaml.safe_load(path.read_text())
    document["on"] = document.pop(True, document.get("on"))  # YAML 1.1 reads the key `on` as true
    return document


def steps(document: dict):
    for name, job in document["jobs"].items():
        for step in job["steps"]:
            yield name, job, step


def unpinned_actions(document: dict) -> list[str]:
    return [step["uses"] for _, _, step in steps(document) if "uses" in step and not PINNED.match(step["uses"])]


def missing_paths(document: dict) -> list[str]:
    """Repository paths named by `run:` scripts and `with:` inputs that do not exist: each matrix value tried,
    the step's `env` variables expanded; a path still holding an expression is not judged."""
    missing: list[str] = []
    for _, job, step in steps(document):
        texts = [step.get("run", "")] + [str(value) for value in step.get("with", {}).values()]
        matrix = job.get("strategy", {}).get("matrix", {})
        variants = [{}] + [{key: value} for key, values in matrix.items() if isinstance(values, list) for value in values]
        found: set[str] = set()
        for text in texts:
            for variant in variants:
                expanded = text
                for name, value in step.get("env", {}).items():
                    expanded = re.sub(r"\$\{?%s\b\}?" % name, str(value), expanded)
                for key, value in variant.items():
                    expanded = expanded.replace("${{ matrix.%s }}" % key, str(value))
                found |= {path for path in REPOSITORY_PATH.findall(expanded) if "$" not in path}
        missing += sorted(path for path in found if not (ROOT / path).exists())
    return missing


def check_jsonschema(schema: str, *paths: Path) -> subprocess.CompletedProcess:
    return subprocess.run([tool("check-jsonschema"), "--builtin-schema", schema, *map(str, paths)], capture_output=True, text=True)


# --- the files against the schemas GitHub and Dependabot publish --------------------------------------------------


def test_every_workflow_is_valid_against_githubs_workflow_schema_and_sets_a_timeout():
    assert CI in WORKFLOWS
    for schema in ("vendor.github-workflows", "custom.github-workflows-require-timeout"):
        result = check_jsonschema(schema, *WORKFLOWS)
        assert result.returncode == 0, result.stdout + result.stderr


def test_the_schema_check_refuses_a_broken_workflow(tmp_path):
    broken = tmp_path / "broken.yml"
    broken.write_text("name: x\non: push\njobs:\n  a:\n    runs-on: ubuntu-24.04\n    timeout-minutes: 5\n    step:\n      - run: echo\n")
    result = check_jsonschema("vendor.github-workflows", broken)
    assert result.returncode == 1 and "'step' was unexpected" in result.stdout


def test_dependabot_updates_pip_npm_and_actions_one_grouped_pull_request_per_ecosystem():
    path = ROOT / ".github" / "dependabot.yml"
    result = check_jsonschema("vendor.dependabot", path)
    assert result.returncode == 0, result.stdout + result.stderr
    updates = {update["package-ecosystem"]: update for update in yaml.safe_load(path.read_text())["updates"]}
    assert set(updates) == {"pip", "npm", "github-actions"}
    for ecosystem, update in updates.items():
        assert update["groups"] == {ecosystem: {"patterns": ["*"]}}, ecosystem
    # every lock file npm would read is covered, and pip's folder holds the requirement files
    tracked = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True).stdout.splitlines()
    locks = {"/" + path.removesuffix("package-lock.json").rstrip("/") for path in tracked if path.endswith("package-lock.json")}
    assert set(updates["npm"]["directories"]) == locks
    assert list(ROOT.glob("requirements*.txt")) and updates["pip"]["directory"] == "/"


# --- what the steps name -------------------------------------------------------------------------------------------


def test_every_action_is_pinned_to_a_version():
    for path in WORKFLOWS:
        assert unpinned_actions(load(path)) == [], path.name


def test_the_pin_check_finds_an_action_on_a_moving_tag():
    document = {"jobs": {"a": {"steps": [{"uses": "actions/checkout@v5"}, {"uses": "actions/setup-python@main"}, {"uses": "actions/setup-node@v5.0.0"}]}}}
    assert unpinned_actions(document) == ["actions/checkout@v5", "actions/setup-python@main"]


def test_every_script_and_path_a_step_names_exists():
    for path in WORKFLOWS:
        assert missing_paths(load(path)) == [], path.name
    runs = " ".join(step.get("run", "") for _, _, step in steps(load(CI)))
    for script in ("./scripts/test", "./scripts/synth", "./scripts/validate", "./scripts/provider-mirror"):
        assert script in runs and os.access(ROOT / script, os.X_OK), script


def test_the_path_check_finds_a_missing_script_and_a_missing_matrix_folder():
    document = {"jobs": {"a": {"strategy": {"matrix": {"component": ["backend", "cashier"]}}, "steps": [
        {"run": "./scripts/test && ./scripts/deploy-everything"},
        {"with": {"dockerfile": "apps/greenleaf/${{ matrix.component }}/Dockerfile"}},
    ]}}}
    assert missing_paths(document) == ["scripts/deploy-everything", "apps/greenleaf/cashier/Dockerfile"]


# --- what the pipeline runs, and with which versions -----------------------------------------------------------------


def test_ci_runs_on_pushes_to_main_and_pull_requests_with_read_only_permissions_and_cancels_superseded_runs():
    document = load(CI)
    assert document["on"] == {"push": {"branches": ["main"]}, "pull_request": None}
    assert document["permissions"] == {"contents": "read"}
    assert all("permissions" not in job for job in document["jobs"].values())
    assert document["concurrency"]["cancel-in-progress"] is True
    assert "github.ref" in document["concurrency"]["group"]
    for _, _, step in steps(document):
        if step.get("uses", "").startswith("actions/checkout@"):
            assert step["with"]["persist-credentials"] is False


def test_ci_runs_the_readmes_test_command_with_opentofu_at_the_readmes_version():
    document = load(CI)
    readme = (ROOT / "README.md").read_text()
    version = document["env"]["OPENTOFU_VERSION"]
    assert f"OpenTofu {version}" in readme
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert re.search(r"^ARG TOFU_VERSION=(.+)$", dockerfile, re.M).group(1) == version, "SpawnIt's image runs another OpenTofu than CI"
    assert "./scripts/test" in readme and "./scripts/synth" in readme
    tests = document["jobs"]["tests"]["steps"]
    setup = next(step for step in tests if step.get("uses", "").startswith("opentofu/setup-opentofu@"))
    assert setup["with"] == {"tofu_version": "${{ env.OPENTOFU_VERSION }}", "tofu_wrapper": False}
    suite = next(step for step in tests if "./scripts/test" in step.get("run", ""))["run"]
    assert 'SPAWNIT_TOFU="$(command -v tofu)"' in suite and 'SPAWNIT_TEST_PROVIDER_MIRROR="$RUNNER_TEMP/providers"' in suite
    assert "GITHUB_STEP_SUMMARY" in suite and 'exit "$status"' in suite
    mirror = next(step for step in tests if "./scripts/provider-mirror" in step.get("run", ""))["run"]
    assert '"$RUNNER_TEMP/providers" "hashicorp/aws=$AWS_PROVIDER_VERSION"' in mirror


def test_ci_downloads_the_aws_provider_at_the_version_the_bindings_were_made_for(outdir):
    versions = {
        json.loads(path.read_text())["terraform"]["required_providers"].get("aws", {}).get("version")
        for path in outdir.glob("stacks/*/cdk.tf.json")
    } - {None}
    assert versions == {load(CI)["env"]["AWS_PROVIDER_VERSION"]}


def test_ci_validates_every_stack_with_the_real_providers_and_reports_the_cost():
    validate = [step.get("run", "") for step in load(CI)["jobs"]["validate"]["steps"]]
    assert validate.index("./scripts/synth") < next(index for index, run in enumerate(validate) if "./scripts/validate" in run)
    assert any("-m spawnit cost" in run and "GITHUB_STEP_SUMMARY" in run for run in validate)


def test_ci_builds_both_images_without_pushing_and_lints_them_and_the_playbook_as_the_suite_does():
    jobs = load(CI)["jobs"]
    assert jobs["images"]["strategy"]["matrix"]["component"] == ["backend", "storefront"]
    images = jobs["images"]["steps"]
    assert any(step.get("uses", "").startswith("hadolint/hadolint-action@") for step in images)
    build = next(step["run"] for step in images if "docker build" in step.get("run", ""))
    assert "push" not in build
    lint = next(step["run"] for step in jobs["playbook"]["steps"] if "ansible-lint" in step.get("run", ""))
    assert "--offline --profile production --strict playbook.yml" in lint  # as test_artifacts.py runs it
    pins = subprocess.run(["bash", "-c", "grep -E '^(ansible-lint|ansible-core)==' requirements.txt"], cwd=ROOT, capture_output=True, text=True).stdout.split()
    assert sorted(pin.split("==")[0] for pin in pins) == ["ansible-core", "ansible-lint"]
    assert "$(grep -E '^(ansible-lint|ansible-core)==' requirements.txt)" in lint


# --- the scripts the pipeline adds, run -----------------------------------------------------------------------------


def aws_stack(resource: dict) -> str:
    return json.dumps({
        "terraform": {"required_providers": {"aws": {"source": "hashicorp/aws", "version": "{version}"}}, "backend": {"s3": {"bucket": "b", "key": "k", "region": "eu-west-3"}}},
        "provider": {"aws": [{"region": "eu-west-3"}]},
        "resource": {"aws_s3_bucket": {"media": resource}},
    })


def test_validate_runs_init_and_validate_per_stack_with_the_real_provider_and_names_the_invalid_one(real_engine, tmp_path):
    """scripts/validate with a real engine and the real AWS provider plugin (from the machine's mirror, as the
    engine tier finds it): a stack with an attribute the provider does not have fails `validate`, the other passes."""
    for name, resource in (("good", {"bucket": "spawnit-ci-check"}), ("bad", {"bucket": "spawnit-ci-check", "colour": "blue"})):
        (tmp_path / "out" / "stacks" / name).mkdir(parents=True)
        (tmp_path / "out" / "stacks" / name / "cdk.tf.json").write_text(aws_stack(resource).replace("{version}", real_engine["aws_version"]))
    (tmp_path / "cli.tfrc").write_text('provider_installation {\n  filesystem_mirror {\n    path = "%s"\n  }\n}\n' % real_engine["mirror"])
    environ = {**os.environ, "SPAWNIT_TOFU": real_engine["path"], "TF_CLI_CONFIG_FILE": str(tmp_path / "cli.tfrc"), "TF_PLUGIN_CACHE_DIR": str(tmp_path / "cache")}
    result = subprocess.run([str(ROOT / "scripts" / "validate"), "--outdir", str(tmp_path / "out")], env=environ, capture_output=True, text=True, timeout=600)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "ok      good" in result.stdout and "FAILED  bad" in result.stdout
    assert 'No argument or block type is named "colour"' in result.stdout + result.stderr
    assert "1 of 2 stacks failed: bad" in result.stderr
    alone = subprocess.run([str(ROOT / "scripts" / "validate"), "--outdir", str(tmp_path / "out"), "good"], env=environ, capture_output=True, text=True, timeout=600)
    assert alone.returncode == 0 and "1 stacks valid" in alone.stdout, alone.stdout + alone.stderr
    unknown = subprocess.run([str(ROOT / "scripts" / "validate"), "--outdir", str(tmp_path / "out"), "prod"], env=environ, capture_output=True, text=True)
    assert unknown.returncode == 2 and "no stack 'prod'" in unknown.stderr


STAND_IN_ENGINE = """#!{python}
import json, os, sys
record = {{"argv": sys.argv[1:], "config": json.load(open("main.tf.json"))}}
open({log!r}, "a").write(json.dumps(record) + "\\n")
"""


def test_provider_mirror_asks_the_engine_to_mirror_exactly_the_named_providers(tmp_path):
    engine, log = tmp_path / "tofu", tmp_path / "calls.jsonl"
    engine.write_text(STAND_IN_ENGINE.format(python=sys.executable, log=str(log)))
    engine.chmod(0o755)
    script = str(ROOT / "scripts" / "provider-mirror")
    environ = {**os.environ, "SPAWNIT_TOFU": str(engine)}
    result = subprocess.run([script, str(tmp_path / "mirror"), "hashicorp/aws=6.25.0", "bpg/proxmox=0.111.0"], env=environ, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    (call,) = [json.loads(line) for line in log.read_text().splitlines()]
    assert call["argv"] == ["providers", "mirror", "-platform=linux_amd64", str(tmp_path / "mirror")]
    assert call["config"] == {"terraform": {"required_providers": {
        "aws": {"source": "hashicorp/aws", "version": "6.25.0"}, "proxmox": {"source": "bpg/proxmox", "version": "0.111.0"}}}}
    bad = subprocess.run([script, str(tmp_path / "mirror"), "aws:6.25.0"], env=environ, capture_output=True, text=True)
    assert bad.returncode == 2 and "'aws:6.25.0' is not NAMESPACE/TYPE=VERSION" in bad.stderr


# --- the licence --------------------------------------------------------------------------------------------------


def test_the_project_is_apache_2_licensed_and_says_so_in_both_manifests():
    text = (ROOT / "LICENSE").read_text()
    assert "Apache License" in text and "Version 2.0, January 2004" in text and "END OF TERMS AND CONDITIONS" in text
    assert 'license = "Apache-2.0"' in (ROOT / "pyproject.toml").read_text()
    assert json.loads((ROOT / "package.json").read_text())["license"] == "Apache-2.0"
    assert "vendors no third-party code" in (ROOT / "NOTICE").read_text()
    # what the NOTICE says of the AGPL test dependency: no product module imports it
    offenders = [str(path.relative_to(ROOT)) for path in (ROOT / "spawnit").rglob("*.py") if re.search(r"^\s*(import|from)\s+fakepve", path.read_text(), re.M)]
    assert offenders == []


@pytest.mark.parametrize("name", ["LICENSE", "NOTICE"])
def test_the_image_and_the_package_carry_the_licence_files(name):
    assert re.search(rf"^COPY [^\n]*\b{name}\b", (ROOT / "Dockerfile").read_text(), re.M)
    assert name in re.search(r"license-files = \[(.*)\]", (ROOT / "pyproject.toml").read_text()).group(1)


@pytest.mark.parametrize(
    ("variable", "requirements", "program"),
    [("SPAWNIT_CHECKOV", "requirements-checkov.txt", "checkov"), ("SPAWNIT_BOAVIZTA_PYTHON", "requirements-boavizta.txt", "python")],
)
def test_the_image_gives_the_gate_and_the_footprint_their_own_virtualenvs(variable, requirements, program):
    """The worker finds Checkov (the gate) and boaviztapi (each applied instance's footprint) by these
    variables; each must name a program of a virtualenv the image builds from the pinned requirements."""
    (stage,) = dockerfile_stages(ROOT / "Dockerfile")[-1:]
    environment = " ".join(line for line in stage if line.startswith("ENV "))
    path = re.search(rf"\b{variable}=(\S+)", environment).group(1)
    venv = path.removesuffix(f"/bin/{program}")
    assert path != venv, f"{variable}={path} is not a virtualenv's {program}"
    assert any(line.startswith("RUN ") and f"python3 -m venv {venv} " in line and f"{venv}/bin/pip install --no-cache-dir -r {requirements}" in line for line in stage)
    assert any(line.startswith("COPY ") and requirements in line for line in stage)


def test_the_main_job_installs_what_the_products_commands_need():
    """`spawnit footprint` (and the footprint in `spawnit cost`) run boaviztapi from its own virtualenv:
    the main job installs it, not only the tests' set-up."""
    synth = (ROOT / "scripts" / "synth").read_text()
    assert re.search(r"^spawnit_setup_boavizta\b", synth, re.M) and re.search(r"^spawnit_setup_python\b", synth, re.M)
    assert "spawnit_setup_boavizta() {" in (ROOT / "scripts" / "setup").read_text()
