"""The command line as a new user meets it: errors before anything slow, one line each, progress,
a synthesis cache, a manifest that keeps every stack, backends that change only when asked."""

from __future__ import annotations

import argparse
import ast
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from spawnit import synthcache
from spawnit.cli import _parser, main
from spawnit.stacks.environment_settings import load_spec
from spawnit.stacks.platform_settings import load_platform_settings
from spawnit.services import TARGETS, all_services

ROOT = Path(__file__).resolve().parent.parent
PROBE = (
    "import sys; from spawnit.cli import main; code = main(sys.argv[1:]); "
    "print(' '.join(sorted({'cdktf', 'cdktf_cdktf_provider_aws', 'fastapi'} & set(sys.modules))) or 'not loaded', file=sys.stderr); sys.exit(code)"
)


def run_cli(*arguments: str, env: dict[str, str] | None = None, cwd: Path | None = None) -> subprocess.CompletedProcess:
    """``spawnit ARGUMENTS`` in a fresh process, which says on its last line which of cdktf, the AWS binding
    and FastAPI (the web API's framework, which the catalog's store must not pull in) it loaded."""
    environ = {key: value for key, value in os.environ.items() if not key.startswith("SPAWNIT_")}
    return subprocess.run([sys.executable, "-c", PROBE, *arguments], capture_output=True, text=True, env={**environ, **(env or {})}, cwd=cwd, timeout=120)


# ---------------------------------------------------------------- errors before the runtime loads

BAD_INVOCATIONS = [
    (["synth", "--service", "oracle"], {}, "service: 'oracle' is not in the catalog"),
    (["synth", "--service", "redis", "--client", "Acme_Corp"], {}, "client: 'Acme_Corp' is not allowed"),
    (["synth", "--service", "wordpress", "--params", "wordpress.json"], {}, "--params: 'wordpress.json' does not exist"),
    (["synth", "--service", "wordpress", "--target", "aws"], {}, "allowed_cidrs = None is required for target aws"),
    (["synth"], {"SPAWNIT_PREPROD_TIMEZONE": "Mars/Base"}, "preprod.timezone = 'Mars/Base' is not allowed; allowed: an IANA time zone"),
    (["list"], {"SPAWNIT_PREPROD_TIMEZONE": "Mars/Base"}, "preprod.timezone = 'Mars/Base' is not allowed"),
    (["synth"], {"SPAWNIT_PROD_FLEET_MAXX": "3"}, "environment SPAWNIT_PROD_FLEET_MAXX: unknown field 'fleet_maxx'; did you mean 'fleet_max'?"),
    (["synth"], {"SPAWNIT_PROD_FLEET_MAX": "1"}, "fleet_max from environment SPAWNIT_PROD_FLEET_MAX"),
    (["synth"], {"SPAWNIT_PROD_APP_SUBNET_CIDRS": "10.0.10.0/24"}, "prod.app_subnet_cidrs = ['10.0.10.0/24'] is not allowed; allowed: 2 values"),
    (["plan", "staging"], {}, "STACK: 'staging' is not a stack of SpawnIt's applications; allowed: dev, preprod, prod, spotilike"),
    (["--config", "missing.toml", "synth"], {}, "config file: 'missing.toml' does not exist"),
]


@pytest.mark.parametrize("arguments, env, message", BAD_INVOCATIONS, ids=[" ".join(a) + " " + " ".join(e) for a, e, _ in BAD_INVOCATIONS])
def test_a_bad_invocation_fails_with_exit_2_and_one_clear_line_before_the_runtime_loads(tmp_path, arguments, env, message):
    result = run_cli(*arguments, env=env, cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    assert message in result.stderr
    assert "Traceback" not in result.stderr
    assert result.stderr.splitlines()[-1] == "not loaded"
    assert not (tmp_path / "cdktf.out").exists(), "nothing is written for a bad invocation"


def test_missing_aws_credentials_are_one_line_and_debug_shows_the_traceback(tmp_path):
    env = {"AWS_ACCESS_KEY_ID": "", "AWS_SECRET_ACCESS_KEY": "", "AWS_CONFIG_FILE": os.devnull, "AWS_SHARED_CREDENTIALS_FILE": os.devnull, "AWS_EC2_METADATA_DISABLED": "true"}
    environ = {key: value for key, value in os.environ.items() if not key.startswith(("AWS_", "SPAWNIT_"))} | {k: v for k, v in env.items() if v}
    plain = subprocess.run([sys.executable, "-m", "spawnit", "bootstrap"], capture_output=True, text=True, env=environ, cwd=tmp_path, timeout=120)
    assert plain.returncode == 1
    assert plain.stderr.strip() == "spawnit: AWS: Unable to locate credentials (run with --debug for the traceback)"
    debug = subprocess.run([sys.executable, "-m", "spawnit", "--debug", "bootstrap"], capture_output=True, text=True, env=environ, cwd=tmp_path, timeout=120)
    assert debug.returncode == 1 and "Traceback (most recent call last)" in debug.stderr and "NoCredentialsError" in debug.stderr


def test_an_unknown_instance_type_is_a_warning_naming_the_closest_size(tmp_path):
    result = run_cli("list", env={"SPAWNIT_PROD_APP_INSTANCE_TYPE": "t3.smal"}, cwd=tmp_path)
    assert result.returncode == 0
    assert "spawnit: warning: prod.app_instance_type: 't3.smal' is not a size SpawnIt knows; did you mean 't3.small'?" in result.stderr


def test_list_warns_of_what_would_not_work_once_deployed_and_stops_when_it_is_set(tmp_path):
    """The bundled zone is a reserved example name (RFC 2606): no DNS provider serves it."""
    result = run_cli("list", cwd=tmp_path)
    assert result.returncode == 0
    assert "spawnit: warning: prod.cloudflare_zone: 'greenleaf.example' is a placeholder (a reserved example name); set your own before deploying" in result.stderr
    assert "spawnit: warning: prod.publishable_key: empty" in result.stderr
    assert "warning: dev.cloudflare_zone" not in result.stderr and "warning: dev.publishable_key: empty" in result.stderr  # no zone on the dev box
    ready = {"SPAWNIT_PROD_CLOUDFLARE_ZONE": "greenleaf.fr", "SPAWNIT_PROD_DOMAIN": "shop.greenleaf.fr", "SPAWNIT_PROD_PUBLISHABLE_KEY": "pk_" + "7" * 64}
    result = run_cli("list", env=ready, cwd=tmp_path)
    assert result.returncode == 0 and "warning: prod." not in result.stderr and "warning: preprod.cloudflare_zone" in result.stderr


def test_a_plan_of_a_placeholder_zone_says_so_before_anything_runs(tmp_path):
    result = run_cli("plan", "prod", env={"SPAWNIT_TOFU": str(tmp_path / "no-tofu")}, cwd=tmp_path)
    assert result.returncode == 127  # no OpenTofu here: the warning came first
    assert "prod.domain: 'shop.greenleaf.example' is a placeholder" in result.stderr


def test_version_and_help_on_every_option():
    assert run_cli("--version").stdout.strip().startswith("spawnit ")
    parser = _parser()
    subparsers = next(action for action in parser._actions if isinstance(action, argparse._SubParsersAction))
    for name, command in [("spawnit", parser), *subparsers.choices.items()]:
        for action in command._actions:
            if not isinstance(action, (argparse._HelpAction, argparse._SubParsersAction)):
                assert action.help, f"{name} {action.option_strings or action.dest} has no help"


def test_list_values_as_a_comma_list_in_set(isolated_config, capsys):
    code = main(["synth", "--service", "redis", "--target", "aws", "--set", "allowed_cidrs=10.0.0.0/8,192.168.0.0/16", "--client", "acme", "--outdir", str(isolated_config / "out")])
    assert code == 0, capsys.readouterr().err
    document = json.loads((isolated_config / "out" / "stacks" / "acme-redis" / "cdk.tf.json").read_text())
    peers = {rule["cidr_ipv4"] for rule in document["resource"]["aws_vpc_security_group_ingress_rule"].values()}
    assert peers == {"10.0.0.0/8", "192.168.0.0/16"}


def test_opening_an_aws_service_to_the_world_is_an_explicit_choice(isolated_config, capsys):
    assert main(["synth", "--service", "wordpress", "--target", "aws", "--client", "acme", "--outdir", str(isolated_config / "out")]) == 2
    assert "allowed_cidrs = None is required for target aws" in capsys.readouterr().err
    assert main(["synth", "--service", "wordpress", "--target", "aws", "--set", "allowed_cidrs=0.0.0.0/0", "--client", "acme", "--outdir", str(isolated_config / "out")]) == 0


# ---------------------------------------------------------------- the synthesis cache


def _digest(tmp_path: Path, environ: dict | None = None, **overrides) -> str:
    specs = [load_spec(name, config_file=None, environ=environ or {}, overrides=overrides or None) for name in ("dev", "preprod", "prod")]
    return synthcache.fingerprint([*specs, load_platform_settings(config_file=None, environ={})], cwd=tmp_path)


def test_the_synthesis_fingerprint_changes_with_every_kind_of_input(tmp_path, monkeypatch):
    base = _digest(tmp_path)
    assert _digest(tmp_path) == base, "same inputs, same fingerprint"
    assert _digest(tmp_path, fleet_max=5) != base, "configuration"
    assert _digest(tmp_path, environ={"SPAWNIT_PROD_FLEET_MAX": "5"}) != base, "environment override"
    assert _digest(tmp_path, state_backend="local") != base, "a CLI argument that shapes stacks (--local-state)"
    assert _digest(tmp_path / "elsewhere") != base, "the folder synth runs in"
    real_version = synthcache.metadata.version
    monkeypatch.setattr(synthcache.metadata, "version", lambda name: "9.9.9" if name == "cdktf-cdktf-provider-aws" else real_version(name))
    assert _digest(tmp_path) != base, "a pinned dependency's version"
    monkeypatch.undo()
    package = tmp_path / "package"
    import shutil

    shutil.copytree(synthcache.PACKAGE, package, ignore=shutil.ignore_patterns("__pycache__"))
    monkeypatch.setattr(synthcache, "PACKAGE", package)
    assert _digest(tmp_path) == base
    (package / "assets" / "app" / "Caddyfile").write_text("# changed\n")
    assert _digest(tmp_path) != base, "the package's code and assets"


@pytest.mark.parametrize("binding", ["cdktf-cdktf-provider-aws", "cdktf-cdktf-provider-docker", "cdktf-cdktf-provider-kubernetes", "cdktf-cdktf-provider-cloudflare"])
def test_every_bindings_version_is_in_the_fingerprint(tmp_path, monkeypatch, binding):
    base = _digest(tmp_path)
    real_version = synthcache.metadata.version
    monkeypatch.setattr(synthcache.metadata, "version", lambda name: "9.9.9" if name == binding else real_version(name))
    assert _digest(tmp_path) != base


def test_a_stack_rewritten_by_another_writer_makes_the_cache_stale(tmp_path):
    """`python main.py` with another setting (or `npx cdktf synth`) rewrites cdktf.out without SpawnIt's
    stamp: the stamp's digest of each stack no longer matches, and the next command synthesizes anew."""
    outdir = tmp_path / "out"
    for name in ("prod", "dev"):
        (outdir / "stacks" / name).mkdir(parents=True)
        (outdir / "stacks" / name / "cdk.tf.json").write_text(f'{{"stack": "{name}"}}')
    synthcache.record(outdir, "inputs", ["prod", "dev"])
    assert synthcache.cached_stacks(outdir, "inputs") == ["dev", "prod"]
    assert synthcache.cached_stacks(outdir, "other inputs") is None
    (outdir / "stacks" / "prod" / "cdk.tf.json").write_text('{"stack": "prod", "fleet_max": 9}')  # another writer
    assert synthcache.cached_stacks(outdir, "inputs") is None
    synthcache.record(outdir, "inputs", ["prod", "dev"])
    (outdir / "stacks" / "dev" / "cdk.tf.json").unlink()
    assert synthcache.cached_stacks(outdir, "inputs") is None


@pytest.fixture(scope="module")
def synthesized_once(tmp_path_factory):
    """One real synthesis through the command, in its own folder (the cache tests share it)."""
    folder = tmp_path_factory.mktemp("cli-cache")
    saved = {key: os.environ.pop(key) for key in list(os.environ) if key.startswith("SPAWNIT_")}
    cwd = os.getcwd()
    os.chdir(folder)
    try:
        assert main(["synth", "--outdir", "out"]) == 0
        yield folder
    finally:
        os.chdir(cwd)
        os.environ.update(saved)


@pytest.fixture
def in_synthesized(synthesized_once, monkeypatch):
    monkeypatch.chdir(synthesized_once)
    for key in list(os.environ):
        if key.startswith("SPAWNIT_"):
            monkeypatch.delenv(key)
    return synthesized_once


def _stand_in_tofu(monkeypatch, folder: Path):
    """A stand-in tofu first on PATH (it records its calls); returns the reader of its calls."""
    from standin import stand_in_tofu

    folder.mkdir(exist_ok=True)
    environ, calls = stand_in_tofu(folder)
    monkeypatch.setenv("PATH", environ["PATH"])
    monkeypatch.setenv("TOFU_LOG", environ["TOFU_LOG"])
    return calls


# main.py's stacks: three environments, the platform's four, the local one, Spotilike's two, and one example per service and target.
DEFAULT_STACK_COUNT = 3 + 4 + 1 + 2 + len(all_services()) * len(TARGETS)


def _refuse_synthesis(monkeypatch):
    import spawnit.stacks

    def refuse(*args, **kwargs):
        raise AssertionError("synthesized although nothing changed")

    monkeypatch.setattr(spawnit.stacks, "build_app", refuse)


def test_an_unchanged_synth_reuses_the_output_without_loading_anything(in_synthesized, monkeypatch, capsys):
    _refuse_synthesis(monkeypatch)
    assert main(["synth", "--outdir", "out"]) == 0
    assert f"out is up to date ({DEFAULT_STACK_COUNT} stacks, inputs unchanged; --force synthesizes anew)" in capsys.readouterr().err


def test_a_second_plan_reaches_tofu_without_synthesizing(in_synthesized, monkeypatch, capfd):
    calls = _stand_in_tofu(monkeypatch, in_synthesized / "tofu")
    _refuse_synthesis(monkeypatch)
    assert main(["plan", "prod", "--outdir", "out"]) == 0
    assert [call["argv"][0] for call in calls() if "argv" in call] == ["init", "plan"]


def test_synth_reports_every_stack_it_wrote_and_a_service_keeps_the_manifest(in_synthesized, capsys):
    assert main(["synth", "--service", "redis", "--client", "acme", "--instance", "cache", "--outdir", "out"]) == 0
    stacks = json.loads((in_synthesized / "out" / "manifest.json").read_text())["stacks"]
    assert len(stacks) == DEFAULT_STACK_COUNT + 1 and "acme-cache" in stacks and "prod" in stacks
    capsys.readouterr()
    assert main(["synth", "--force", "--outdir", "out"]) == 0
    output = capsys.readouterr().out
    assert output.count("synthesized out/stacks/") == DEFAULT_STACK_COUNT
    assert f"synthesized {DEFAULT_STACK_COUNT} stacks into out (kept 1 instance stacks)" in output
    assert "acme-cache" in json.loads((in_synthesized / "out" / "manifest.json").read_text())["stacks"]


def test_local_state_applies_only_to_the_named_stack(in_synthesized, monkeypatch):
    calls = _stand_in_tofu(monkeypatch, in_synthesized / "tofu-local")
    assert main(["--local-state", "plan", "dev", "--outdir", "out"]) == 0
    backends = {name: next(iter(json.loads((in_synthesized / "out" / "stacks" / name / "cdk.tf.json").read_text())["terraform"]["backend"])) for name in ("dev", "preprod", "prod")}
    assert backends == {"dev": "local", "preprod": "s3", "prod": "s3"}
    assert {call["cwd"] for call in calls() if "argv" in call} == {str(in_synthesized / "out" / "stacks" / "dev")}
    assert main(["synth", "--outdir", "out"]) == 0  # back to the configured backends for the tests that follow


def test_no_synth_refuses_a_stack_synthesized_with_another_backend(in_synthesized, monkeypatch, capsys):
    calls = _stand_in_tofu(monkeypatch, in_synthesized / "tofu-no-synth")
    assert main(["--local-state", "plan", "dev", "--no-synth", "--outdir", "out"]) == 2
    assert "was synthesized with the s3 backend but this run asks for local" in capsys.readouterr().err
    assert calls() == []


def test_a_backend_change_asks_for_reconfigure_or_migrate_state_and_passes_it_to_init(in_synthesized, monkeypatch, capsys):
    calls = _stand_in_tofu(monkeypatch, in_synthesized / "tofu-backend")
    terraform_dir = in_synthesized / "out" / "stacks" / "dev" / ".terraform"
    terraform_dir.mkdir(exist_ok=True)
    (terraform_dir / "terraform.tfstate").write_text(json.dumps({"backend": {"type": "local", "config": {"path": "terraform.dev.tfstate"}}}))
    try:
        assert main(["plan", "dev", "--no-synth", "--outdir", "out"]) == 2
        assert "the state backend changed since the last init (local -> s3)" in capsys.readouterr().err
        assert calls() == []
        assert main(["plan", "dev", "--no-synth", "--migrate-state", "--outdir", "out"]) == 0
        assert [call["argv"] for call in calls() if "argv" in call][0] == ["init", "-input=false", "-migrate-state"]
    finally:
        (terraform_dir / "terraform.tfstate").unlink()


def test_the_cost_footer_speaks_words_not_python(in_synthesized, capsys):
    assert main(["cost", "--outdir", "out"]) == 0
    footer = [line for line in capsys.readouterr().out.splitlines() if "assumptions" in line]
    assert footer and "{" not in footer[0] and "spot 70% off on-demand" in footer[0]


# ---------------------------------------------------------------- layers point down


def _imports(path: Path) -> set[str]:
    modules = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            modules.add("." * node.level + (node.module or ""))
    return modules


def test_the_construct_library_and_the_configuration_import_neither_the_catalog_nor_a_stack():
    for path in [*(ROOT / "spawnit" / "constructs").glob("*.py"), ROOT / "spawnit" / "config.py"]:
        upward = {module for module in _imports(path) if module.lstrip(".").startswith(("services", "stacks", "cli", "api"))}
        assert not upward, f"{path.name} imports {upward}"


def test_each_application_settings_live_beside_its_stacks_and_load_without_the_runtime():
    """config.py reads files and variables for every application and declares no application's settings;
    each application's model sits in stacks/ beside its stacks, importable without cdktf (the command line
    checks settings before the runtime loads)."""
    config = ast.parse((ROOT / "spawnit" / "config.py").read_text())
    models = [node.name for node in config.body if isinstance(node, ast.ClassDef) and any(getattr(base, "id", "") == "BaseModel" for base in node.bases)]
    assert models == [], f"config.py declares {models}"
    settings = sorted(path.stem for path in (ROOT / "spawnit" / "stacks").glob("*_settings.py"))
    assert settings == ["environment_settings", "platform_settings", "spotilike_settings"]
    from spawnit.config import SECTIONS
    from spawnit.stacks.environment_settings import ENVIRONMENTS

    assert SECTIONS == ("all", *ENVIRONMENTS, "platform", "spotilike")  # the file's sections name each environment as GreenLeaf does
    code = "import sys\n" + "".join(f"import spawnit.stacks.{name}\n" for name in settings) + "print(sorted(m for m in sys.modules if m.startswith(('cdktf', 'jsii', 'constructs'))))"
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True).stdout.strip()
    assert loaded == "[]", loaded


def test_the_stacks_and_the_catalog_import_neither_each_other_nor_the_cli_or_api():
    """Stacks and catalog services sit side by side above the constructs; what both need lives below.
    (spawnit/stacks/__init__.py composes the whole app, the catalog's example instances included.)"""
    for folder, other in (("stacks", "services"), ("services", "stacks")):
        for path in (ROOT / "spawnit" / folder).glob("*.py"):
            if (folder, path.name) == ("stacks", "__init__.py"):
                continue
            sideways = {module for module in _imports(path) if module.lstrip(".").startswith((other, "cli", "api"))}
            assert not sideways, f"{folder}/{path.name} imports {sideways}"


def test_the_readme_names_every_configuration_field():
    from spawnit.stacks.environment_settings import FIELDS

    readme = (ROOT / "README.md").read_text()
    table = readme[readme.index("| field | default | meaning |") :].split("\n\n", 1)[0]
    missing = [field for field in FIELDS if f"`{field}`" not in table]
    assert not missing, f"fields missing from the README's table: {missing}"


@pytest.mark.parametrize("stack", ["spotilike", "spotilike-web", "local", "platform-network", "platform-configs", "catalog-redis-docker", "acme-cache"])
@pytest.mark.parametrize("action", ["plan", "deploy", "destroy"])
def test_every_command_takes_any_stack_of_any_application_and_the_instance_stacks(in_synthesized, monkeypatch, capsys, stack, action):
    if stack == "acme-cache" and not (in_synthesized / "out" / "stacks" / "acme-cache").is_dir():
        assert main(["synth", "--service", "redis", "--client", "acme", "--instance", "cache", "--outdir", "out"]) == 0
    calls = _stand_in_tofu(monkeypatch, in_synthesized / f"tofu-{stack}-{action}")
    _refuse_synthesis(monkeypatch)  # the synthesis is up to date: nothing is synthesized again
    arguments = [action, stack, "--outdir", "out"] + (["--auto-approve"] if action != "plan" else [])
    assert main(arguments) == 0, capsys.readouterr().err
    runs = [call for call in calls() if "argv" in call]
    assert [call["argv"][0] for call in runs] == ["init", {"deploy": "apply"}.get(action, action)]
    assert {call["cwd"] for call in runs} == {str(in_synthesized / "out" / "stacks" / stack)}


def test_an_unknown_stack_is_refused_with_the_closest_name_before_anything_runs(in_synthesized, monkeypatch, capsys):
    calls = _stand_in_tofu(monkeypatch, in_synthesized / "tofu-unknown")
    assert main(["plan", "spotilik", "--outdir", "out"]) == 2
    assert "STACK: 'spotilik' is not a stack of SpawnIt's applications; did you mean 'spotilike'? allowed: dev, preprod, prod, spotilike" in capsys.readouterr().err
    assert calls() == []
    assert main(["--local-state", "plan", "spotilike", "--outdir", "out"]) == 2
    assert "--local-state: applies to GreenLeaf's dev, preprod, prod" in capsys.readouterr().err


def test_a_bad_spotilike_setting_stops_its_plan_with_exit_2_naming_it_before_anything_loads(in_synthesized, monkeypatch, capsys):
    calls = _stand_in_tofu(monkeypatch, in_synthesized / "tofu-bad-setting")
    _refuse_synthesis(monkeypatch)
    monkeypatch.setenv("SPAWNIT_SPOTILIKE_API_CPU", "300")
    assert main(["plan", "spotilike", "--outdir", "out"]) == 2
    assert "spotilike.api_cpu = 300 is not allowed; allowed: 256, 512, 1024, 2048, 4096, 8192, 16384 (CPU units) (from SPAWNIT_SPOTILIKE_API_CPU)" in capsys.readouterr().err
    assert calls() == []


def test_the_cost_of_spotilike_is_weighed_against_spotilike_budget(in_synthesized, capsys):
    assert main(["cost", "spotilike", "spotilike-web", "--outdir", "out", "--format", "json"]) == 0
    assert json.loads(capsys.readouterr().out)["budget_usd"] == 300.0  # [spotilike] monthly_budget_usd, not GreenLeaf's 500
    assert main(["cost", "prod", "--outdir", "out", "--format", "json"]) == 0
    assert json.loads(capsys.readouterr().out)["budget_usd"] == 500.0


def test_list_groups_every_stack_by_application_with_the_instance_stacks_after(in_synthesized, capsys):
    assert main(["synth", "--service", "redis", "--client", "acme", "--instance", "cache", "--outdir", "out"]) == 0
    capsys.readouterr()
    assert main(["list", "--outdir", "out"]) == 0
    output = capsys.readouterr().out
    sections = [line.split(":")[0] for line in output.splitlines() if line and not line.startswith(" ") and not line.startswith("engine")]
    assert sections == ["greenleaf", "spotilike", "platform", "local", "catalog", "instances"]
    listed = [line.split()[0] for line in output.splitlines() if line.startswith("  ") and not line.strip().startswith("STACK")]
    assert len(listed) == DEFAULT_STACK_COUNT + 1 and listed[:3] == ["dev", "preprod", "prod"] and listed[-1] == "acme-cache"
    assert listed[5:9] == ["platform-network", "platform-volumes", "platform-instances", "platform-configs"]  # in their order


def test_a_cold_plan_synthesizes_its_stack_alone_and_the_next_plan_reuses_it(tmp_path, monkeypatch, capsys):
    from spawnit import synthcache

    monkeypatch.chdir(tmp_path)
    for key in [key for key in os.environ if key.startswith("SPAWNIT_")]:
        monkeypatch.delenv(key)
    calls = _stand_in_tofu(monkeypatch, tmp_path / "tofu")
    assert main(["plan", "prod", "--outdir", "out"]) == 0
    assert list(synthcache.stacks_in_manifest(tmp_path / "out")) == ["prod"]  # not the 40 default stacks
    assert "synthesized prod into out" in capsys.readouterr().out
    assert main(["plan", "prod", "--outdir", "out"]) == 0
    assert "out/stacks/prod is up to date (inputs unchanged" in capsys.readouterr().err
    assert [call["argv"][0] for call in calls() if "argv" in call] == ["init", "plan", "init", "plan"]
    monkeypatch.setenv("SPAWNIT_PROD_FLEET_MAX", "5")  # other inputs: synthesized again
    assert main(["plan", "prod", "--outdir", "out"]) == 0
    assert "synthesized prod into out" in capsys.readouterr().out
    assert json.loads((tmp_path / "out" / "stacks" / "prod" / "cdk.tf.json").read_text())["resource"]["aws_autoscaling_group"]


def test_stacks_synthesized_alone_are_no_whole_synthesis(tmp_path):
    from spawnit import synthcache

    outdir = tmp_path / "out"
    for name in ("prod", "dev"):
        (outdir / "stacks" / name).mkdir(parents=True)
        (outdir / "stacks" / name / "cdk.tf.json").write_text(f'{{"stack": "{name}"}}')
    synthcache.record(outdir, "inputs", ["prod", "dev"])
    synthcache.record_some(outdir, "inputs", ["prod"])  # the same inputs again: still whole
    assert synthcache.cached_stacks(outdir, "inputs") == ["dev", "prod"] and synthcache.cached_stack(outdir, "inputs", "dev")
    synthcache.record_some(outdir, "other", ["prod"])  # other inputs: prod alone is current, the folder is not whole
    assert synthcache.cached_stacks(outdir, "other") is None and synthcache.cached_stacks(outdir, "inputs") is None
    assert synthcache.cached_stack(outdir, "other", "prod") and not synthcache.cached_stack(outdir, "other", "dev")
    (outdir / "stacks" / "prod" / "cdk.tf.json").write_text('{"stack": "prod", "by": "npx cdktf synth"}')  # another writer
    assert not synthcache.cached_stack(outdir, "other", "prod")
