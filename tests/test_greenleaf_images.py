"""GreenLeaf's images as files: the Dockerfiles (linted by hadolint, non-root, pinned, health-checked),
the release workflow that pushes them to GHCR, the compose file that builds them, and the stacks'
defaults that name what the workflow pushes. (The images' contents are run for real by
test_greenleaf_app.py.)"""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest
import yaml

from conftest import dockerfile_stages, run_checkov, tool

from spawnit.shared import GREENLEAF_BACKEND_IMAGE, GREENLEAF_STOREFRONT_IMAGE

ROOT = Path(__file__).resolve().parents[1]
APPS = ROOT / "apps" / "greenleaf"
WORKFLOW = ROOT / ".github" / "workflows" / "greenleaf-images.yml"
COMPONENTS = ("backend", "storefront")


def hadolint(*paths: Path) -> subprocess.CompletedProcess:
    return subprocess.run([tool("hadolint"), "--no-color", *map(str, paths)], capture_output=True, text=True)


def stages(component: str) -> list[list[str]]:
    return dockerfile_stages(APPS / component / "Dockerfile")


def test_hadolint_finds_nothing_in_the_dockerfiles():
    result = hadolint(*(APPS / component / "Dockerfile" for component in COMPONENTS))
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout == ""


def test_hadolint_does_report_a_bad_dockerfile(tmp_path):
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM node:latest\nRUN cd /app && npm install\nUSER node\n")
    result = hadolint(bad)
    assert result.returncode != 0
    assert "DL3007" in result.stdout and "DL3003" in result.stdout  # latest tag; cd in RUN


@pytest.mark.parametrize("component", COMPONENTS)
def test_each_image_is_built_in_stages_and_runs_unprivileged_with_a_health_check(component):
    built = stages(component)
    assert len(built) >= 2, "multi-stage: the build tools stay out of the image"
    for stage in built:
        image = stage[0].split()[1]
        assert re.fullmatch(r"node:\d+\.\d+\.\d+-bookworm-slim", image), f"unpinned base image {image}"
    final = built[-1]
    users = [line.split()[1] for line in final if line.startswith("USER ")]
    assert users and re.fullmatch(r"[1-9]\d*:[1-9]\d*", users[-1]), users  # numeric, not root
    health = [line for line in final if line.startswith("HEALTHCHECK ")]
    assert len(health) == 1 and "fetch('http://127.0.0.1:" in health[0]
    port = {"backend": "9000", "storefront": "8000"}[component]
    assert f"EXPOSE {port}" in final and f":{port}/" in health[0]
    assert not any(line.startswith(("ARG ", "ENV ")) and re.search(r"SECRET|PASSWORD|TOKEN", line) for stage in built for line in stage)


def test_the_backend_image_migrates_then_serves_as_its_start_script_says():
    final = stages("backend")[-1]
    assert final[-1] == 'CMD ["./start.sh"]'
    script = (APPS / "backend" / "start.sh").read_text()
    assert script.index("node ./migrate.js") < script.index("exec ./node_modules/.bin/medusa start")
    assert "COPY start.sh migrate.js ./" in final
    result = subprocess.run([tool("shellcheck"), str(APPS / "backend" / "start.sh")], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout


def workflow() -> dict:
    document = yaml.safe_load(WORKFLOW.read_text())
    document["on"] = document.pop(True, document.get("on"))  # YAML 1.1 reads the key `on` as true
    return document


def test_the_workflow_pushes_both_images_to_ghcr_on_release_tags_only():
    document = workflow()
    assert document["on"] == {"push": {"tags": ["greenleaf-v*"]}}
    assert document["permissions"] == {"contents": "read", "packages": "write"}
    (job,) = document["jobs"].values()
    matrix = job["strategy"]["matrix"]["include"]
    assert {entry["component"] for entry in matrix} == set(COMPONENTS)
    steps = {step.get("uses", step.get("name")).split("@")[0]: step for step in job["steps"]}
    assert steps["docker/login-action"]["with"]["registry"] == "ghcr.io"
    assert steps["docker/login-action"]["with"]["password"] == "${{ secrets.GITHUB_TOKEN }}"
    assert steps["docker/metadata-action"]["with"]["images"] == "ghcr.io/${{ github.repository_owner }}/${{ matrix.image }}"
    assert steps["docker/build-push-action"]["with"]["context"] == "apps/greenleaf/${{ matrix.component }}"
    assert steps["docker/build-push-action"]["with"]["push"] is True
    assert steps["hadolint/hadolint-action"]["with"]["dockerfile"] == "apps/greenleaf/${{ matrix.component }}/Dockerfile"
    for entry in matrix:
        assert (APPS / entry["component"] / "Dockerfile").is_file()


def test_a_tag_gives_the_version_tag_the_stacks_default_to():
    """metadata-action's `type=match` takes group 1 of the pattern from the tag: greenleaf-v1.0.0 -> 1.0.0.
    The defaults are ghcr.io/greenleaf/<image>:<the apps' package.json version> (the repository's owner
    is greenleaf), so that the images they name are the ones the release tag pushes."""
    (job,) = workflow()["jobs"].values()
    meta = next(step for step in job["steps"] if step.get("uses", "").startswith("docker/metadata-action"))
    patterns = [re.search(r"pattern=(\S+?),group=1", line).group(1) for line in meta["with"]["tags"].strip().splitlines()]
    images = {entry["component"]: entry["image"] for entry in job["strategy"]["matrix"]["include"]}
    for component, default in (("backend", GREENLEAF_BACKEND_IMAGE), ("storefront", GREENLEAF_STOREFRONT_IMAGE)):
        version = json.loads((APPS / component / "package.json").read_text())["version"]
        tags = {re.fullmatch(pattern, f"greenleaf-v{version}").group(1) for pattern in patterns}
        assert tags == {version, version.rsplit(".", 1)[0]}
        assert default == f"ghcr.io/greenleaf/{images[component]}:{version}"


def test_the_workflow_refuses_a_tag_that_is_not_the_apps_version(tmp_path):
    """The workflow's version check, run with bash and node as the runner would."""
    (job,) = workflow()["jobs"].values()
    check = next(step for step in job["steps"] if step.get("name", "").startswith("The tag names the version"))
    version = json.loads((APPS / "backend" / "package.json").read_text())["version"]

    def run(tag: str) -> subprocess.CompletedProcess:
        return subprocess.run(["bash", "-e", "-c", check["run"]], cwd=ROOT, env={"PATH": "/usr/bin:/bin", "GITHUB_REF_NAME": tag, "COMPONENT": "backend"}, capture_output=True, text=True)

    assert run(f"greenleaf-v{version}").returncode == 0
    wrong = run("greenleaf-v9.9.9")
    assert wrong.returncode == 1 and "does not match" in wrong.stdout


def test_the_compose_file_builds_both_images_behind_the_projects_caddyfile():
    compose = yaml.safe_load((APPS / "compose.yaml").read_text())
    services = compose["services"]
    for component in COMPONENTS:
        assert (APPS / services[component]["build"] / "Dockerfile").is_file()
    backend = services["backend"]["environment"]
    assert {"DATABASE_URL", "REDIS_URL", "JWT_SECRET", "COOKIE_SECRET"} <= set(backend)
    assert services["storefront"]["environment"]["MEDUSA_BACKEND_URL"] == "http://backend:9000"
    (mount,) = services["caddy"]["volumes"]
    source, target, _ = mount.split(":")
    assert (APPS / source).resolve() == ROOT / "spawnit" / "assets" / "app" / "Caddyfile" and target == "/etc/caddy/Caddyfile"
    # Secrets come from .env, never from the file itself.
    for name in ("JWT_SECRET", "COOKIE_SECRET"):
        assert re.fullmatch(r"\$\{" + name + r":\?[^}]+\}", backend[name])


def test_the_backend_reads_every_setting_the_hosts_write():
    """The names the boot script writes into .env are the names medusa-config.ts reads."""
    config = (APPS / "backend" / "medusa-config.ts").read_text()
    boot = (ROOT / "spawnit" / "assets" / "scripts" / "app-boot.sh").read_text()
    written = set(re.findall(r"^([A-Z][A-Z0-9_]+)=\$", boot.split("cat >.env.new <<ENV")[1].split("\nENV")[0], re.M))
    for name in ("DATABASE_URL", "REDIS_URL", "JWT_SECRET", "COOKIE_SECRET", "S3_BUCKET", "S3_REGION", "S3_ENDPOINT", "S3_URL", "S3_ACCESS_KEY_ID", "S3_SECRET_ACCESS_KEY"):
        assert name in written, name
        assert f"process.env.{name}" in config or f'setting("{name}")' in config, name
    assert "acl: false" in config


def test_checkov_finds_nothing_in_the_dockerfiles():
    """The security gate's Dockerfile checks (non-root user, health check, no secrets, pinned, ...)."""
    result, report = run_checkov([APPS / component / "Dockerfile" for component in COMPONENTS], "dockerfile", timeout=300)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    assert report["summary"]["failed"] == 0 and report["summary"]["parsing_errors"] == 0
    assert report["summary"]["passed"] >= 40
