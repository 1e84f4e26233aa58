"""The bundled artifacts, validated by the real tools: cloud-init, Caddy, ansible-lint, ShellCheck."""

from __future__ import annotations

import os
import shutil
import subprocess
from importlib import resources
from pathlib import Path

import pytest

from spawnit.shared import user_data_text

from conftest import tool

ASSETS = Path(str(resources.files("spawnit") / "assets"))
USER_DATA_LIMIT = 16 * 1024


def user_data_documents(all_stacks) -> dict[str, str]:
    """Decoded user data of every launch template and instance of every stack, by a readable name."""
    found = {}
    for stack_name, stack in all_stacks.items():
        for body in stack.resources("aws_launch_template").values():
            found[f"{stack_name}/{body['name']}"] = user_data_text(body["user_data"])
        for key, body in stack.resources("aws_instance").items():
            found[f"{stack_name}/{key}"] = user_data_text(body["user_data_base64"])
    return found


def test_every_user_data_is_valid_cloud_config(all_stacks, tmp_path, artifacts):
    documents = user_data_documents(all_stacks)
    assert len(documents) >= 8  # 3 launch templates per HA stack, a dev box per dev stack
    for name, text in documents.items():
        path = tmp_path / (name.replace("/", "_") + ".yaml")
        path.write_text(text)
        (artifacts / path.name).write_text(text)
        result = subprocess.run([tool("cloud-init"), "schema", "--config-file", str(path)], capture_output=True, text=True)
        assert result.returncode == 0, f"{name}: {result.stdout}{result.stderr}"
        assert "Valid cloud-config" in result.stdout


def test_cloud_init_schema_check_does_reject_a_broken_document(tmp_path):
    path = tmp_path / "broken.yaml"
    path.write_text("#cloud-config\nwrite_files: 5\n")
    result = subprocess.run([tool("cloud-init"), "schema", "--config-file", str(path)], capture_output=True, text=True)
    assert result.returncode != 0 and "write_files" in result.stdout + result.stderr


def test_every_user_data_fits_the_16_kib_ec2_limit_as_sent(all_stacks):
    """What EC2 receives (the base64-decoded bytes, compressed when the text is over) fits its limit."""
    import base64

    for stack_name, stack in all_stacks.items():
        for kind, key in (("aws_launch_template", "user_data"), ("aws_instance", "user_data_base64")):
            for name, body in stack.resources(kind).items():
                sent = base64.b64decode(body[key])
                assert len(sent) <= USER_DATA_LIMIT, f"{stack_name}/{name}"
                assert (sent[:2] == b"\x1f\x8b") == (len(user_data_text(body[key]).encode()) > USER_DATA_LIMIT)  # compressed only when needed


def caddy_validate(path: Path) -> subprocess.CompletedProcess:
    return subprocess.run([tool("caddy"), "validate", "--config", str(path), "--adapter", "caddyfile"], capture_output=True, text=True)


def test_caddyfile_is_valid():
    result = caddy_validate(ASSETS / "app" / "Caddyfile")
    assert result.returncode == 0, result.stderr
    assert "Valid configuration" in result.stdout + result.stderr


def test_caddy_validate_does_reject_a_broken_caddyfile(tmp_path):
    broken = tmp_path / "Caddyfile"
    broken.write_text(":80 {\n\treverse_proxi backend:9000\n}\n")
    assert caddy_validate(broken).returncode != 0


def test_caddyfile_routes_medusas_paths_to_the_backend_and_the_rest_to_the_storefront(tmp_path):
    """Real Caddy with the project's Caddyfile (its upstreams pointed at two local servers that answer
    their name): Medusa v2's /store, /admin, /app (its dashboard), /auth and /health reach the backend,
    everything else the storefront."""
    import httpx

    from conftest import answering_server, free_port, local_caddyfile, running_caddy

    backend, storefront, listen = answering_server("backend"), answering_server("storefront"), free_port()
    text = (ASSETS / "app" / "Caddyfile").read_text()
    assert "format json" in text and "encode zstd gzip" in text and "X-Content-Type-Options" in text
    caddyfile = tmp_path / "Caddyfile"
    caddyfile.write_text(local_caddyfile(listen, backend.server_port, storefront.server_port))

    def reach(path: str, method: str = "GET") -> str:
        return httpx.request(method, f"http://127.0.0.1:{listen}{path}", timeout=10).text

    routes = {
        "/": "storefront",
        "/products/green-tea": "storefront",
        "/application": "storefront",
        "/store/products": "backend",
        "/admin/products": "backend",
        "/app": "backend",
        "/app/login": "backend",
        "/health": "backend",
        "/static/leaf-01J.png": "backend",
    }
    try:
        with running_caddy(caddyfile, listen, tmp_path):
            assert {path: reach(path) for path in routes} == routes
            assert reach("/auth/user/emailpass", "POST") == "backend"
    finally:
        backend.shutdown()
        storefront.shutdown()


def test_playbook_passes_ansible_lint_production_profile(tmp_path):
    # ansible-lint reads the folder it runs in: give it the playbook alone.
    shutil.copy(ASSETS / "ansible" / "playbook.yml", tmp_path / "playbook.yml")
    result = subprocess.run(
        [tool("ansible-lint"), "--offline", "--profile", "production", "--strict", "playbook.yml"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_playbook_passes_ansible_syntax_check(tmp_path):
    result = subprocess.run(
        [tool("ansible-playbook"), "--syntax-check", str(ASSETS / "ansible" / "playbook.yml")],
        capture_output=True,
        text=True,
        env={**os.environ, "ANSIBLE_LOCALHOST_WARNING": "false"},
    )
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("script", ["app-boot.sh", "nat-boot.sh"])
def test_boot_scripts_pass_shellcheck(script):
    result = subprocess.run([tool("shellcheck"), "--severity=style", str(ASSETS / "scripts" / script)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout
