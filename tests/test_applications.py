"""Applications plug into the command line through one interface and an entry point: a third team's
application, from a package outside SpawnIt's, is listed, synthesized, planned and priced like GreenLeaf."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from spawnit.applications import BUILT_IN, registered, third_party
from spawnit.cli import main

SHOP = '''
from spawnit.applications import Application, StackEntry


class Shop(Application):
    name, title = "shop", "The shop team's cache, on Docker"

    def stacks(self):
        return [StackEntry("shop-cache", "a Docker network for the shop's cache", "local file")]

    def build(self, app):
        from spawnit.constructs import SpawnitStack
        from spawnit.constructs.docker import DockerNetwork, docker_provider

        stack = SpawnitStack(app, "shop-cache")
        docker_provider(stack, host="unix:///var/run/docker.sock")
        DockerNetwork(stack, "network", name="shop")

    def budget(self):
        return 42.0

    def fingerprint(self):
        return {"network": "shop"}
'''


def install(folder: Path, name: str, value: str, code: str | None = None) -> None:
    """A distribution on sys.path registering ``value`` in the spawnit.applications group, as pip installs one."""
    if code is not None:
        (folder / "shopapp").mkdir(parents=True)
        (folder / "shopapp" / "__init__.py").write_text(code)
    info = folder / f"{name}-1.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(f"[spawnit.applications]\n{name} = {value}\n")


@pytest.fixture
def shop(tmp_path, monkeypatch):
    install(tmp_path / "site", "shop", "shopapp:Shop", SHOP)
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    for key in [key for key in __import__("os").environ if key.startswith("SPAWNIT_")]:
        monkeypatch.delenv(key)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_an_application_from_another_package_is_registered_listed_synthesized_planned_and_priced(shop, monkeypatch, capsys):
    assert [application.name for application in registered()] == [*(application.name for application in BUILT_IN), "shop"]
    assert main(["list"]) == 0
    output = capsys.readouterr().out
    assert "shop: The shop team's cache, on Docker\n" in output and "  shop-cache " in output
    # Its stacks join a synthesis as the built-in applications' do (here alone: one small stack, in this process).
    from cdktf import App

    app = App(outdir=str(shop / "out"))
    [application] = third_party()
    application.build(app)
    app.synth()
    assert json.loads((shop / "out" / "stacks" / "shop-cache" / "cdk.tf.json").read_text())["resource"]["docker_network"]
    from standin import stand_in_tofu

    environ, calls = stand_in_tofu(shop)
    monkeypatch.setenv("PATH", environ["PATH"])
    monkeypatch.setenv("TOFU_LOG", environ["TOFU_LOG"])
    assert main(["plan", "shop-cache", "--no-synth", "--outdir", "out"]) == 0
    assert [call["cwd"] for call in calls() if "argv" in call] == [str(shop / "out" / "stacks" / "shop-cache")] * 2
    assert main(["cost", "shop-cache", "--outdir", "out", "--format", "json"]) == 0
    assert json.loads(capsys.readouterr().out)["budget_usd"] == 42.0  # its own budget


def test_the_synthesis_cache_covers_another_team_application(shop):
    from spawnit import synthcache

    before = synthcache.fingerprint([], applications=third_party())
    (shop / "site" / "shopapp" / "__init__.py").write_text(SHOP.replace('"network": "shop"', '"network": "shop2"'))
    import importlib
    import sys

    importlib.reload(sys.modules["shopapp"])
    assert synthcache.fingerprint([], applications=third_party()) != before


def test_a_broken_or_clashing_application_is_refused_naming_it(tmp_path, monkeypatch, capsys):
    install(tmp_path / "site", "broken", "nowhere:App")
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    assert main(["list"]) == 2
    assert "spawnit: application 'broken' (nowhere:App): cannot be loaded: ModuleNotFoundError: No module named 'nowhere'" in capsys.readouterr().err
    clash = tmp_path / "clash"
    install(clash, "greenleaf2", "spawnit.applications:GreenLeaf")
    monkeypatch.syspath_prepend(str(clash))
    (tmp_path / "site" / "broken-1.0.dist-info" / "entry_points.txt").write_text("")
    assert main(["list"]) == 2
    assert "application 'greenleaf' (spawnit.applications:GreenLeaf): the name is taken" in capsys.readouterr().err
