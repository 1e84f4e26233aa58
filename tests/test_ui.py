"""The web UI in headless Chromium (Debian's, driven by Playwright): deploy a service against a stand-in tofu,
watch the log stream, cancel, destroy; and log in through an OIDC provider with authorization code + PKCE.
Screenshots are saved in test-artifacts/."""

from __future__ import annotations

import base64
import hashlib
import json
import re
import shutil
import threading
import time
import urllib.parse
from pathlib import Path
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from playwright.sync_api import expect, sync_playwright

from conftest import serving
from spawnit.api import create_app
from spawnit.api.auth import AuthSettings
from spawnit.api.jobs import JobManager
from spawnit.api.store import LocalObjectStore, Store
from plansamples import DRIFT_PLAN, FLOW_PLAN
from standin import stand_in_tofu

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync"]


@pytest.fixture(scope="module")
def chromium():
    """One Chromium for the module's tests; each test's pages live in contexts of their own."""
    assert shutil.which("chromium"), "Chromium is not installed: run the tests through ./scripts/test, which installs it"
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        yield launched
        launched.close()


class Pages:
    """What a test opens pages with: ``new_page(**options)`` as on a Browser, each page in a new context
    (its own cookies and storage), every one closed when the test ends."""

    def __init__(self, chromium) -> None:
        self.chromium, self.opened = chromium, []

    def new_page(self, **options):
        page = self.chromium.new_page(**options)
        self.opened.append(page)
        return page

    def close(self) -> None:
        for page in self.opened:
            page.context.close()


@pytest.fixture
def browser(chromium):
    pages = Pages(chromium)
    yield pages
    pages.close()


@pytest.fixture
def site(tmp_path, synth_worker):
    environ, calls = stand_in_tofu(tmp_path)
    environ["TOFU_SLOW_APPLY"] = "400"  # 40 s of output: time to watch and cancel
    environ |= {"TOFU_EXIT_CODES": json.dumps({"plan": 2}), "TOFU_SHOW_JSON": json.dumps(FLOW_PLAN)}  # a first plan creates and changes
    store = Store(LocalObjectStore(tmp_path / "store"))
    jobs = JobManager(store, synth_worker, workdir=tmp_path / "work", environ=environ, grace_seconds=2)
    app = create_app(store=store, jobs=jobs, auth=AuthSettings("off"))
    with serving(app) as url:
        yield url, app, jobs


def test_deploy_watch_cancel_destroy(browser, site, artifacts):
    url, app, jobs = site
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    page.on("dialog", lambda dialog: dialog.accept())
    page.goto(url)
    expect(page.locator(".category h3", has_text="database")).to_be_visible()
    page.click(".card[data-service=postgresql]")
    expect(page.locator("#deploy-service")).to_have_text("postgresql")

    page.fill("#field-port", "80")  # inline validation, before anything is sent
    expect(page.locator("#error-port")).not_to_be_empty()
    page.fill("#field-port", "5433")
    expect(page.locator("#error-port")).to_be_empty()
    page.fill("#field-instance", "orders-db")
    page.screenshot(path=str(artifacts / "ui-1-form.png"), full_page=True)
    page.click("#deploy")

    expect(page.locator("#review-section")).to_be_visible(timeout=60_000)  # Deploy makes a plan and stops for review
    expect(page.locator("#review-summary")).to_have_text("Plan: 1 to add, 1 to change, 1 to destroy.")
    page.click("#apply-plan")
    expect(page.locator("#log")).to_contain_text("$ tofu apply -input=false -no-color tfplan", timeout=30_000)
    expect(page.locator("#log")).to_contain_text("working 5", timeout=30_000)
    expect(page.locator("tr[data-instance=orders-db]")).to_be_visible()
    page.screenshot(path=str(artifacts / "ui-2-log.png"), full_page=True)
    assert app.state.store.get_spec("local", "orders-db")["parameters"]["port"] == 5433

    page.click("#cancel-job")
    expect(page.locator("#log-status")).to_have_text("cancelled", timeout=30_000)
    expect(page.locator("tr[data-instance=orders-db] .badge").first).to_have_text("cancelled", timeout=10_000)
    page.screenshot(path=str(artifacts / "ui-3-cancelled.png"), full_page=True)

    jobs.environ["TOFU_SLOW_APPLY"] = "0"
    page.click("tr[data-instance=orders-db] button.destroy")
    expect(page.locator("#log")).to_contain_text("$ tofu destroy", timeout=30_000)
    expect(page.locator("tr[data-instance=orders-db]")).to_have_count(0, timeout=30_000)
    page.screenshot(path=str(artifacts / "ui-4-destroyed.png"), full_page=True)


@pytest.mark.parametrize("width", [420, 1400])
def test_server_side_creation_errors_are_shown_beside_their_field(browser, site, artifacts, width):
    url, _, _ = site
    page = browser.new_page(viewport={"width": width, "height": 1000})
    page.goto(url)
    expect(page.locator("#instances tbody")).to_have_text("No instance yet: choose a service in the catalog above to deploy one.")  # an empty state
    page.click(".card[data-service=redis]")
    page.fill("#field-instance", "cache")
    page.click("#deploy")
    expect(page.locator("tr[data-instance=cache]")).to_be_visible(timeout=30_000)
    page.click(".card[data-service=redis]")
    page.fill("#field-instance", "cache")
    page.click("#deploy")  # the name is taken: only the API knows
    expect(page.locator("#error-instance")).to_have_text("'cache' is taken: choose another name")
    expect(page.locator("#form-error")).to_be_empty()

    page.click(".card[data-service=webapp]")  # a rule across fields (django needs its entrypoint): only the API checks it
    page.fill("#field-git_url", "https://git.example.com/acme/shop.git")
    page.select_option("#field-framework", "django")
    page.click("#deploy")
    expect(page.locator("#error-entrypoint")).to_contain_text("entrypoint = None is required for django")
    expect(page.locator("#error-git_url")).to_be_empty()
    assert fits(page, "#deploy-section *"), f"the deploy form overflows at {width} px"
    page.screenshot(path=str(artifacts / f"ui-field-errors-{width}.png"), full_page=True)


def test_the_catalog_and_each_service_form_have_deep_links(browser, site):
    url, _, _ = site
    page = browser.new_page(viewport={"width": 1400, "height": 900})
    page.goto(f"{url}/#service=postgresql")
    expect(page.locator("#deploy-section")).to_be_visible()
    expect(page.locator("#deploy-service")).to_have_text("postgresql")
    page.click("#deploy-cancel")
    assert page.evaluate("location.hash") == ""
    page.click(".card[data-service=redis]")  # opening a form links to it
    assert page.evaluate("location.hash") == "#service=redis"
    unknown = browser.new_page(viewport={"width": 1400, "height": 900})
    unknown.goto(f"{url}/#service=oracle")
    expect(unknown.locator("#notice")).to_contain_text("service oracle is not in the catalog")
    catalog = browser.new_page(viewport={"width": 420, "height": 700})
    catalog.goto(f"{url}/#catalog")
    expect(catalog.locator("#catalog .card").first).to_be_in_viewport()


# Login ---------------------------------------------------------------------------------------


class FakeKeycloak:
    """The realm's authorize, token and certs endpoints, enough for authorization code + PKCE."""

    def __init__(self, **claims) -> None:
        self.claims = {"sub": "alice-id", "preferred_username": "alice", **claims}  # what the tokens say (groups, realm_access...)
        self.key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.codes: dict[str, dict] = {}
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self.handler())
        self.issuer = f"http://127.0.0.1:{self.server.server_address[1]}/realms/spawnit"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def handler(self):
        provider = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def send(self, status, body=b"", headers=()):
                self.send_response(status)
                self.send_header("Access-Control-Allow-Origin", "*")
                for name, value in headers:
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(body)

            def do_OPTIONS(self):  # noqa: N802 - CORS preflight
                self.send(204, headers=[("Access-Control-Allow-Headers", "Content-Type"), ("Access-Control-Allow-Methods", "POST")])

            def do_GET(self):  # noqa: N802
                url = urllib.parse.urlparse(self.path)
                query = dict(urllib.parse.parse_qsl(url.query))
                if url.path.endswith("/certs"):
                    jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(provider.key.public_key()))
                    self.send(200, json.dumps({"keys": [{**jwk, "kid": "k1", "alg": "RS256", "use": "sig"}]}).encode())
                elif url.path.endswith("/auth"):
                    assert query["code_challenge_method"] == "S256" and query["client_id"] == "spawnit-web"
                    code = "code-" + str(len(provider.codes))
                    provider.codes[code] = query
                    target = query["redirect_uri"] + "?" + urllib.parse.urlencode({"code": code, "state": query["state"]})
                    self.send(302, headers=[("Location", target)])
                else:
                    self.send(404)

            def do_POST(self):  # noqa: N802
                form = dict(urllib.parse.parse_qsl(self.rfile.read(int(self.headers["Content-Length"])).decode()))
                request = provider.codes.pop(form.get("code"), None)
                digest = base64.urlsafe_b64encode(hashlib.sha256(form.get("code_verifier", "").encode()).digest()).rstrip(b"=").decode()
                if request is None or digest != request["code_challenge"]:
                    self.send(400, b'{"error": "invalid_grant"}')
                    return
                now = int(time.time())
                claims = {**provider.claims, "iss": provider.issuer, "aud": "spawnit-api", "iat": now, "exp": now + 300}
                token = jwt.encode(claims, provider.key, algorithm="RS256", headers={"kid": "k1"})
                self.send(200, json.dumps({"access_token": token, "token_type": "Bearer"}).encode(), [("Content-Type", "application/json")])

        return Handler


def test_login_through_the_realm_with_authorization_code_and_pkce(browser, tmp_path, synth_worker, artifacts):
    keycloak = FakeKeycloak()
    store = Store(LocalObjectStore(tmp_path / "store"))
    unreachable = {"docker_host": f"unix://{tmp_path}/no-engine.sock"}
    store.put_spec("alice-id", "blog", {"client": "alice-id", "instance": "blog", "service": "wordpress", "target": "docker", "parameters": unreachable, "drift": "compliant"})
    store.put_spec("bob-id", "secret", {"client": "bob-id", "instance": "secret", "service": "nginx", "target": "docker", "parameters": {}})
    jobs = JobManager(store, synth_worker, workdir=tmp_path / "work", environ=stand_in_tofu(tmp_path)[0])
    auth = AuthSettings("oidc", issuer=keycloak.issuer, audience="spawnit-api", jwks_url=keycloak.issuer + "/protocol/openid-connect/certs")
    with serving(create_app(store=store, jobs=jobs, auth=auth)) as url:
        page = browser.new_page()
        requested = []
        page.on("request", lambda request: requested.append(request.url))
        page.goto(url)
        expect(page.locator("#who")).to_have_text("alice", timeout=30_000)
        expect(page.locator("tr[data-instance=blog]")).to_be_visible()
        expect(page.locator("tr[data-instance=secret]")).to_have_count(0)
        expect(page.locator("tr[data-instance=blog] .badge.compliant")).to_be_visible()
        # beside drift, what the target reports now: no Docker engine at that socket
        expect(page.locator("tr[data-instance=blog] td:nth-child(5) .badge.unavailable")).to_be_visible()
        page.screenshot(path=str(artifacts / "ui-5-logged-in.png"), full_page=True)
        assert keycloak.codes == {}  # the code was exchanged, with the right verifier

        job = jobs.submit("alice-id", "blog", "plan").id
        linked = browser.new_page()  # logs in again (the realm answers at once), then opens the job's log
        linked.on("request", lambda request: requested.append(request.url))
        linked.goto(f"{url}/#job={job}")
        expect(linked.locator("#log")).to_contain_text("$ tofu plan", timeout=60_000)  # streamed with a ticket, never the token
        streams = [address for address in requested if address.split("?")[0].endswith("/events")]
        assert any(f"/api/jobs/{job}/events?ticket=" in address for address in streams)
        assert any("/api/clients/alice-id/events?ticket=" in address for address in streams)
        assert not any("access_token" in address or "eyJ" in address for address in requested)
    keycloak.server.shutdown()


def test_the_proxmox_panel_shows_the_clusters_nodes_and_the_form_offers_the_target(browser, tmp_path, synth_worker, fakepve, fakepve_url, fakepve_cafile, artifacts):
    from spawnit.proxmox import ProxmoxCluster

    fakepve.add_node("pve2", online=False)
    fakepve.apitokens["spawnit@pve!ui"] = "secret-of-the-ui-test"
    fakepve.storages["local"]["content"] = "iso,vztmpl,snippets"
    cluster = ProxmoxCluster(fakepve_url + "/", "spawnit@pve!ui", "secret-of-the-ui-test", verify=fakepve_cafile)
    store = Store(LocalObjectStore(tmp_path / "store"))
    jobs = JobManager(store, synth_worker, workdir=tmp_path / "work")
    with serving(create_app(store=store, jobs=jobs, auth=AuthSettings("off"), proxmox=lambda: cluster)) as url:
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.goto(url)
        online = page.locator("#proxmox-nodes tr[data-node=pve1]")
        expect(online).to_contain_text("online")
        expect(online).to_contain_text("6.0 / 8.0 GB")
        expect(online).to_contain_text("local-lvm 100 / 100 GB")
        expect(page.locator("#proxmox-nodes tr[data-node=pve2]")).to_contain_text("offline")
        page.screenshot(path=str(artifacts / "ui-proxmox-panel.png"), full_page=True)

        page.click(".card[data-service=redis]")
        expect(page.locator("#field-target option[value=proxmox]")).to_have_count(1)
        page.select_option("#field-target", "proxmox")
        page.fill("#field-proxmox_node", "pve1")
        page.fill("#field-proxmox_memory_mb", "12288")
        page.click("#deploy")
        expect(page.locator("#form-error")).to_contain_text("proxmox_memory_mb = 12288 is more than node pve1's 6144 MB of free memory")
        assert store.list_instances("local") == []


def test_every_form_pattern_compiles_in_the_browser_and_checks_values(browser, site):
    url, _, _ = site
    page = browser.new_page()
    page.goto(url)
    expect(page.locator(".card[data-service=postgresql]")).to_be_visible()
    services = page.eval_on_selector_all(".card", "cards => cards.map(card => card.dataset.service)")
    for service in services:
        page.click(f".card[data-service={service}]")
        expect(page.locator("#deploy-service")).to_have_text(service)
        problems = page.evaluate(
            """() => [...document.querySelectorAll('#fields [pattern]')].flatMap(input => {
                 try { new RegExp('^(?:' + input.pattern + ')$', 'v'); } catch (error) { return [input.name + ': ' + error.message]; }
                 return input.value && !input.validity.valid ? [input.name + ': default ' + input.value + ' refused'] : [];
               })"""
        )
        assert problems == [], service
        assert page.locator("#fields [pattern]").count() >= 3, service  # the patterns are there, not dropped
    page.click(".card[data-service=redis]")
    for value, valid in (("Bad Name", False), ("9cache", False), ("cache-1", True)):
        page.fill("#field-instance", value)
        assert page.eval_on_selector("#field-instance", "input => input.validity.valid") is valid, value
    page.select_option("#field-target", "aws")
    page.fill("#field-aws_region", "eu west 3")
    assert page.eval_on_selector("#field-aws_region", "input => input.validity.valid") is False


def test_target_fields_follow_the_target_a_job_has_a_link_and_a_narrow_screen_fits(browser, site, artifacts):
    url, app, jobs = site
    jobs.environ["TOFU_SLOW_APPLY"] = "0"
    page = browser.new_page(viewport={"width": 420, "height": 900})
    page.goto(url)
    page.click(".card[data-service=redis]")
    expect(page.locator("#field-aws_region")).to_be_hidden()  # docker is the default target
    expect(page.locator("#field-docker_host")).to_be_visible()
    page.select_option("#field-target", "aws")
    expect(page.locator("#field-aws_region")).to_be_visible()
    expect(page.locator("#field-docker_host")).to_be_hidden()
    expect(page.locator("#field-proxmox_node")).to_be_hidden()
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth"), "the page overflows at 420 px"
    page.screenshot(path=str(artifacts / "ui-narrow-form.png"), full_page=True)
    page.select_option("#field-target", "docker")
    page.fill("#field-instance", "narrow")
    page.click("#deploy")
    expect(page.locator("#review-section")).to_be_visible(timeout=60_000)
    page.click("#apply-plan")
    expect(page.locator("#log")).to_contain_text("applying reviewed plan", timeout=60_000)
    expect(page.locator("#log-status")).to_have_text("succeeded", timeout=60_000)
    expect(page.locator("#cancel-job")).to_be_disabled()
    job = page.evaluate("location.hash").removeprefix("#job=")
    assert app.state.store.get_job(job)["status"] == "succeeded"

    other = browser.new_page()
    other.goto(f"{url}/#job={job}")  # the link opens that job's log
    expect(other.locator("#log-job")).to_have_text(job)
    expect(other.locator("#log")).to_contain_text("$ tofu apply", timeout=30_000)


# Review, gate, drift -----------------------------------------------------------------------------


def fits(page, sections: str = "#review-section *, #drift-section *") -> bool:
    """Nothing wider than the viewport: no sideways scrolling, no element of ``sections`` sticking out of it."""
    return page.evaluate(
        """(sections) => document.documentElement.scrollWidth <= window.innerWidth &&
        [...document.querySelectorAll(sections)].every((e) => e.getBoundingClientRect().right <= window.innerWidth + 1)""",
        sections,
    )


@pytest.mark.parametrize("width", [420, 1400])
def test_the_review_shows_deletes_first_marked_with_the_gate_beside_and_applies_that_plan(browser, site, artifacts, width):
    url, app, jobs = site
    jobs.environ["TOFU_SLOW_APPLY"] = "0"
    page = browser.new_page(viewport={"width": width, "height": 1000})
    page.goto(url)
    page.click(".card[data-service=redis]")
    page.fill("#field-instance", "reviewed")
    page.click("#deploy")
    expect(page.locator("#review-section")).to_be_visible(timeout=60_000)
    groups = page.locator("#review-diff .group")
    expect(groups.first).to_have_attribute("data-action", "delete")
    expect(groups.first.locator("h3")).to_have_text("⚠ Delete (1)")
    expect(page.locator("#review-diff .resource[data-address='docker_container.redis'] td", has_text="(sensitive)").first).to_be_visible()
    expect(page.locator("#review-gate .check[data-check=security] strong")).to_have_text("Security (Checkov): passed")
    expect(page.locator("#review-gate .check[data-check=cost] strong")).to_have_text("Monthly cost: passed")
    expect(page.locator("#apply-plan")).to_be_enabled()
    assert fits(page), f"the review overflows at {width} px"
    assert "hunter2" not in page.content() and "rotated-rotated" not in page.content()
    page.screenshot(path=str(artifacts / f"ui-review-{width}.png"), full_page=True)
    plan_job = page.evaluate("location.hash").removeprefix("#review=")

    page.click("#apply-plan")
    expect(page.locator("#log")).to_contain_text(f"applying reviewed plan {plan_job}", timeout=60_000)
    expect(page.locator("#log-status")).to_have_text("succeeded", timeout=60_000)
    expect(page.locator("#review-section")).to_be_hidden()
    assert app.state.store.get_spec("local", "reviewed")["deployed_at"]

    other = browser.new_page(viewport={"width": width, "height": 1000})
    other.goto(f"{url}/#review={plan_job}")  # a deep link to the review
    expect(other.locator("#review-summary")).to_have_text("Plan: 1 to add, 1 to change, 1 to destroy.")
    other.click("#apply-plan")  # applied already: the state moved, and the page says so
    expect(other.locator("#review-error")).to_contain_text("it was applied already", timeout=30_000)


@pytest.mark.parametrize("width", [420, 1400])
def test_a_blocked_gate_disables_apply_until_an_override_with_a_reason(browser, site, artifacts, risky_plan, width):
    url, app, jobs = site
    jobs.environ |= {"TOFU_SLOW_APPLY": "0", "TOFU_SHOW_JSON": json.dumps(risky_plan)}
    page = browser.new_page(viewport={"width": width, "height": 1000})
    page.goto(url)
    page.click(".card[data-service=redis]")
    page.fill("#field-instance", "risky")
    page.click("#deploy")
    expect(page.locator("#review-section")).to_be_visible(timeout=60_000)
    security = page.locator("#review-gate .check[data-check=security]")
    expect(security.locator("strong")).to_have_text("Security (Checkov): blocked")
    expect(security).to_contain_text("CKV_AWS_24 on aws_security_group.open")
    expect(security).to_contain_text("accepted: CKV_AWS_88 on aws_instance.instance")
    expect(page.locator("#apply-plan")).to_be_disabled()
    assert fits(page), f"the blocked gate overflows at {width} px"
    page.screenshot(path=str(artifacts / f"ui-gate-blocked-{width}.png"), full_page=True)

    page.fill("#override-security", "short")
    page.click("text=Override security")
    expect(page.locator("#review-error")).to_contain_text("at least 10 characters")
    page.fill("#override-security", "SSH is closed by the site firewall in front")
    page.click("text=Override security")
    expect(security.locator("strong")).to_have_text("Security (Checkov): overridden", timeout=30_000)
    expect(security).to_contain_text("SSH is closed by the site firewall in front")
    expect(page.locator("#apply-plan")).to_be_enabled()
    assert fits(page), f"the overridden gate overflows at {width} px"
    page.screenshot(path=str(artifacts / f"ui-gate-overridden-{width}.png"), full_page=True)
    page.click("#apply-plan")
    expect(page.locator("#log")).to_contain_text("policy gate overridden: security", timeout=60_000)
    expect(page.locator("#log-status")).to_have_text("succeeded", timeout=60_000)


@pytest.mark.parametrize("width", [420, 1400])
def test_drift_detail_and_both_remedies_through_review(browser, site, artifacts, width):
    url, app, jobs = site
    jobs.environ |= {"TOFU_SLOW_APPLY": "0", "TOFU_EXIT_CODES": "{}"}
    page = browser.new_page(viewport={"width": width, "height": 1000})
    page.goto(url)
    import httpx

    assert httpx.post(f"{url}/api/clients/local/instances", json={"service": "redis", "parameters": {"port": 6380}, "instance": "cache"}).status_code == 201
    applied = httpx.post(f"{url}/api/clients/local/instances/cache/apply", json={"auto_approve": True}).json()["job"]
    assert jobs.wait(applied, 60)["status"] == "succeeded"
    jobs.environ |= {"TOFU_EXIT_CODES": json.dumps({"plan": 2}), "TOFU_SHOW_JSON": json.dumps(DRIFT_PLAN)}
    assert app.state.drift.check_all() == {"local/cache": "drifted"}
    page.reload()
    page.click("tr[data-instance=cache] button.drift-open")
    expect(page.locator("#drift-section")).to_be_visible()
    change = page.locator("#drift-diff .resource[data-address='docker_container.redis']")
    expect(change).to_contain_text("memory")
    expect(change.locator("tr", has_text="memory")).to_contain_text("256")
    expect(change.locator("tr", has_text="memory")).to_contain_text("1024")
    expect(page.locator("#drift-diff .group h3")).to_have_text("Changed outside SpawnIt (1)")
    assert fits(page), f"the drift view overflows at {width} px"
    page.screenshot(path=str(artifacts / f"ui-drift-{width}.png"), full_page=True)

    page.click("#drift-accept")  # a refresh-only plan, then its review
    expect(page.locator("#review-meta")).to_contain_text("refresh-only", timeout=60_000)
    page.click("#apply-plan")
    expect(page.locator("#log")).to_contain_text("applying reviewed plan", timeout=60_000)
    expect(page.locator("#log-status")).to_have_text("succeeded", timeout=60_000)

    assert app.state.drift.check_all() == {"local/cache": "drifted"}  # the declared state still differs
    page.reload()
    page.click("tr[data-instance=cache] button.drift-open")
    page.click("#drift-restore")  # the round's own plan, reviewed
    expect(page.locator("#review-section")).to_be_visible(timeout=30_000)
    expect(page.locator("#review-diff .resource[data-address='docker_container.redis']").first).to_be_visible()
    page.click("#apply-plan")
    expect(page.locator("#log")).to_contain_text("applying reviewed plan", timeout=60_000)
    expect(page.locator("#log-status")).to_have_text("succeeded", timeout=60_000)
    expect(page.locator("tr[data-instance=cache] .badge", has_text="compliant")).to_be_visible(timeout=30_000)


@pytest.mark.parametrize("width", [420, 1400])
def test_the_instance_page_edits_parameters_through_a_reviewed_plan_reveals_a_secret_and_lists_its_history(browser, site, artifacts, width):
    import httpx

    url, app, jobs = site
    jobs.environ["TOFU_SLOW_APPLY"] = "0"
    assert httpx.post(f"{url}/api/clients/local/instances", json={"service": "redis", "parameters": {"port": 6380}, "instance": "cache"}).status_code == 201
    page = browser.new_page(viewport={"width": width, "height": 1000})
    page.goto(url)
    page.click(".card[data-service=webapp]")
    expect(page.locator("label[for=field-git_url]")).to_have_text(re.compile(r"^.+ \*$"))  # a required field is marked
    page.click("#deploy-cancel")
    page.click("tr[data-instance=cache] button.instance-open")
    expect(page.locator("#instance-section")).to_be_visible()
    expect(page.locator("#instance-history tbody")).to_contain_text("No job yet.")  # an empty state, said
    expect(page.locator("#instance-outputs")).to_contain_text("No outputs yet")
    expect(page.locator("label[for=edit-field-port]")).to_have_text("Port")  # defaulted: not required
    expect(page.locator("label[for=edit-field-maxmemory_mb]")).to_have_text("Max memory (MB)")  # written for people
    expect(page.locator(".category[data-category=paas] h3")).to_have_text("PaaS")

    page.fill("#edit-field-port", "80")  # refused by the API, shown beside its field
    page.click("#edit-save")
    expect(page.locator("#edit-error-port")).to_contain_text("port", timeout=30_000)
    page.fill("#edit-field-port", "6390")
    page.click("#edit-save")
    expect(page.locator("#review-section")).to_be_visible(timeout=60_000)  # the edit goes through a plan, reviewed
    assert app.state.store.get_spec("local", "cache")["parameters"]["port"] == 6390
    page.click("#apply-plan")
    expect(page.locator("#log")).to_contain_text("applying reviewed plan", timeout=60_000)
    expect(page.locator("#log-status")).to_have_text("succeeded", timeout=60_000)

    page.click("tr[data-instance=cache] button.instance-open")
    history = page.locator("#instance-history tbody tr")
    expect(history).to_have_count(2)
    expect(history.first).to_contain_text("apply (reviewed plan)")
    expect(history.nth(1)).to_contain_text("plan — Plan: 1 to add, 1 to change, 1 to destroy.")
    secret = page.locator("#instance-secrets tr[data-secret=password]")
    expect(secret).to_contain_text("••••••••")
    secret.locator("button.reveal").click()
    revealed = app.state.jobs.vault.reveal("local", "cache", "password")["value"]
    expect(secret.locator("code")).to_have_text(revealed)
    assert fits(page) and fits(page, "#instance-section *"), f"the instance page overflows at {width} px"
    page.screenshot(path=str(artifacts / f"ui-instance-{width}.png"), full_page=True)
    audit = [json.loads(app.state.store.objects.get(key)) for key in app.state.store.objects.list("audit/")]
    assert [record["details"] for record in audit if record["action"] == "secret.reveal"] == [{"secret": "password"}]

    other = browser.new_page(viewport={"width": width, "height": 1000})
    other.goto(f"{url}/#instance=cache")  # a deep link to the instance
    expect(other.locator("#instance-name")).to_have_text("cache")


def test_a_form_opened_while_the_page_still_loads_is_not_reopened_when_loading_ends(browser, site):
    """The page's deep link is the address it was opened with: a card clicked before the page has finished
    loading rewrites the address to #service=..., and the end of loading must not open that form again
    (which reset the target a user had just chosen and disabled its fields)."""
    url, app, jobs = site
    page = browser.new_page()
    held = []
    page.route("**/api/targets/proxmox/resources", lambda route: held.append(route))  # the last panel the page loads, held back
    page.goto(url)
    page.click(".card[data-service=postgresql]")
    page.select_option("#field-target", "aws")
    deadline = time.monotonic() + 60
    while not held and time.monotonic() < deadline:
        page.wait_for_timeout(50)
    assert held, "the page never asked for the Proxmox panel"
    held[0].continue_()
    expect(page.locator("#proxmox-message")).not_to_be_empty(timeout=30_000)  # loading has ended
    expect(page.locator("#field-target")).to_have_value("aws")
    expect(page.locator("#field-allowed_cidrs")).to_be_enabled()
    page.fill("#field-allowed_cidrs", "203.0.113.0/24")


def test_the_deploy_form_estimates_the_cost_before_the_first_plan_and_the_jobs_page_lists_every_job(browser, site, artifacts):
    url, app, jobs = site
    jobs.environ["TOFU_SLOW_APPLY"] = "0"
    page = browser.new_page(viewport={"width": 420, "height": 1000})
    page.goto(url)
    page.click("#jobs-open")
    expect(page.locator("#jobs tbody")).to_contain_text("No job yet")  # an empty state, said
    page.click(".card[data-service=postgresql]")
    page.select_option("#field-target", "aws")
    page.fill("#field-allowed_cidrs", "203.0.113.0/24")
    page.click("#estimate-cost")
    expect(page.locator("#estimate")).to_have_text(re.compile(r"^About \d+\.\d\d USD a month"), timeout=60_000)
    page.select_option("#field-target", "docker")
    page.click("#estimate-cost")
    expect(page.locator("#estimate")).to_have_text("0.00 USD a month from the cloud: it runs on your own host.", timeout=60_000)
    page.fill("#field-instance", "listed")
    page.click("#deploy")
    expect(page.locator("#review-section")).to_be_visible(timeout=60_000)
    page.click("#apply-plan")
    expect(page.locator("#log")).to_contain_text("applying reviewed plan", timeout=60_000)
    expect(page.locator("#log-status")).to_have_text("succeeded", timeout=60_000)
    page.click("#jobs-open")
    rows = page.locator("#jobs tbody tr")
    expect(rows).to_have_count(2)
    expect(rows.first).to_contain_text("apply (reviewed plan)")
    expect(rows.nth(1)).to_contain_text("listed")
    assert fits(page) and fits(page, "#jobs-section *, #deploy-section *"), "the jobs page overflows at 420 px"
    page.screenshot(path=str(artifacts / "ui-jobs-420.png"), full_page=True)
    other = browser.new_page(viewport={"width": 1400, "height": 1000})
    other.goto(f"{url}/#jobs")  # a deep link to the jobs page
    expect(other.locator("#jobs tbody tr")).to_have_count(2)


def test_the_instance_page_shows_the_applied_footprint_or_why_there_is_none(browser, site):
    import httpx

    url, app, jobs = site
    jobs.environ |= {"TOFU_SLOW_APPLY": "0", "TOFU_EXIT_CODES": "{}"}
    for instance, target, parameters in (("cloud", "aws", {"allowed_cidrs": ["203.0.113.0/24"]}), ("home", "docker", {})):
        body = {"service": "redis", "target": target, "instance": instance, "parameters": parameters}
        assert httpx.post(f"{url}/api/clients/local/instances", json=body).status_code == 201
        applied = httpx.post(f"{url}/api/clients/local/instances/{instance}/apply", json={"auto_approve": True}).json()["job"]
        assert jobs.wait(applied, 60)["status"] == "succeeded"
    footprint = app.state.store.get_spec("local", "cloud")["footprint"]  # a t3.small in eu-west-3, by boaviztapi
    assert footprint["total_kg"] > 0 and footprint["problems"] == []
    page = browser.new_page(viewport={"width": 1400, "height": 900})
    page.goto(f"{url}/#instance=cloud")
    expect(page.locator("#instance-facts dd[data-fact=Footprint]")).to_have_text(f"{footprint['total_kg']:.2f} kgCO2e a month (Boavizta)")
    page = browser.new_page(viewport={"width": 1400, "height": 900})
    page.goto(f"{url}/#instance=home")
    expect(page.locator("#instance-facts dd[data-fact=Footprint]")).to_contain_text("not estimated: no cloud machine in this stack")


# Teams, roles, audit ------------------------------------------------------------------------------


def test_a_viewer_picks_its_team_client_and_is_offered_no_change(browser, tmp_path, synth_worker, artifacts):
    keycloak = FakeKeycloak(sub="dave-id", preferred_username="dave", groups=["/clients/acme/viewer"], realm_access={"roles": ["user"]})
    store = Store(LocalObjectStore(tmp_path / "store"))
    unreachable = {"docker_host": f"unix://{tmp_path}/no-engine.sock"}
    store.put_spec("acme", "shop", {"client": "acme", "instance": "shop", "service": "nginx", "target": "docker", "parameters": unreachable, "drift": "compliant"})
    jobs = JobManager(store, synth_worker, workdir=tmp_path / "work", environ=stand_in_tofu(tmp_path)[0])
    auth = AuthSettings("oidc", issuer=keycloak.issuer, audience="spawnit-api", jwks_url=keycloak.issuer + "/protocol/openid-connect/certs")
    try:
        with serving(create_app(store=store, jobs=jobs, auth=auth)) as url:
            page = browser.new_page(viewport={"width": 420, "height": 900})
            page.goto(url)
            expect(page.locator("#client-choice")).to_be_visible(timeout=30_000)  # two clients: its own and the team's
            page.select_option("#client", "acme")
            expect(page.locator("#role")).to_have_text("viewer")
            row = page.locator("tr[data-instance=shop]")
            expect(row).to_be_visible()
            expect(row.locator("button.logs")).to_be_visible()
            expect(row.locator("button.plan")).to_be_hidden()  # what a viewer may not do is not offered
            expect(row.locator("button.destroy")).to_be_hidden()
            page.click(".card[data-service=redis]")
            expect(page.locator("#deploy")).to_be_hidden()
            assert fits(page, "header *, #instances *"), "the client picker or the instances overflow at 420 px"
            page.screenshot(path=str(artifacts / "ui-viewer-420.png"), full_page=True)
            page.select_option("#client", "dave-id")  # its own client: an operator there
            expect(page.locator("#role")).to_have_text("operator")
            expect(page.locator("#deploy")).to_be_visible()
            assert page.evaluate("sessionStorage.getItem('client')") == "dave-id"
    finally:
        keycloak.server.shutdown()


@pytest.mark.parametrize("width", [420, 1400])
def test_the_audit_page_filters_pages_older_records_and_exports_csv(browser, site, artifacts, width):
    import httpx

    url, app, jobs = site
    jobs.environ["TOFU_SLOW_APPLY"] = "0"
    for name in ("one", "two"):
        assert httpx.post(f"{url}/api/clients/local/instances", json={"service": "redis", "instance": name}).status_code == 201
    for budget in range(1, 61):  # more records than a page holds
        assert httpx.put(f"{url}/api/clients/local/budget", json={"monthly_usd": budget}).status_code == 200
    page = browser.new_page(viewport={"width": width, "height": 1000}, accept_downloads=True)
    page.goto(url)
    page.click("#audit-open")
    rows = page.locator("#audit tbody tr")
    expect(rows).to_have_count(50)
    expect(rows.first).to_contain_text("budget.set")
    page.click("#audit-more")  # the next page, by cursor
    expect(rows).to_have_count(62)
    expect(page.locator("#audit-more")).to_be_hidden()
    page.fill("#audit-filters input[name=action]", "instance.create")
    page.click("#audit-search")
    expect(rows).to_have_count(2)
    expect(rows.first).to_contain_text("two")
    page.fill("#audit-filters input[name=instance]", "nothing-here")
    page.click("#audit-search")
    expect(rows).to_have_text(["No record matches these filters."])
    page.fill("#audit-filters input[name=instance]", "")
    assert fits(page, "#audit-section *"), f"the audit page overflows at {width} px"
    page.screenshot(path=str(artifacts / f"ui-audit-{width}.png"), full_page=True)
    with page.expect_download() as download:
        page.click("#audit-csv")
    lines = Path(download.value.path()).read_text().splitlines()
    assert lines[0].startswith("at,outcome,status,action") and len(lines) == 3 and all(",instance.create," in line for line in lines[1:])
    other = browser.new_page(viewport={"width": width, "height": 1000})
    other.goto(f"{url}/#audit")  # a deep link to the audit page
    expect(other.locator("#audit tbody tr")).to_have_count(50)


@pytest.mark.parametrize("width", [420, 1400])
def test_the_instance_page_shows_and_extends_the_expiry_and_a_warning_reaches_the_page(browser, site, artifacts, width):
    import httpx
    from datetime import datetime, timedelta

    url, app, jobs = site
    assert httpx.put(f"{url}/api/clients/local/expiry-policy", json={"max_hours": 72}).status_code == 200
    created = httpx.post(f"{url}/api/clients/local/instances", json={"service": "redis", "instance": "temp", "expires_in_hours": 5}).json()
    page = browser.new_page(viewport={"width": width, "height": 1000})
    page.goto(f"{url}/#instance=temp")
    expires = page.locator("#instance-facts dd[data-fact=Expires]")
    expect(expires.locator(".expires-at")).to_have_text(created["spec"]["expires_at"].replace("T", " ").replace("Z", " UTC"))
    page.fill("#expiry-hours", "100")
    page.click("text=Extend")
    expect(page.locator("#expiry-error")).to_contain_text("expires_in_hours: 100 is not allowed; allowed: at most 72 hours from now")
    page.fill("#expiry-hours", "48")
    page.click("text=Extend")
    expect(page.locator("#expiry-error")).to_be_empty()
    # The error is cleared when Extend is clicked, before the answer: wait for the new expiry to be stored.
    from conftest import wait_until

    extended = wait_until(lambda: (found := app.state.store.get_spec("local", "temp")["expires_at"]) != created["spec"]["expires_at"] and found, 30, "the extension stored")
    expect(expires.locator(".expires-at")).to_have_text(extended.replace("T", " ").replace("Z", " UTC"))
    assert fits(page, "#instance-section *"), f"the expiry overflows at {width} px"
    page.screenshot(path=str(artifacts / f"ui-expiry-{width}.png"), full_page=True)

    moment = datetime.fromisoformat(extended.replace("Z", "+00:00")) - timedelta(minutes=90)  # the time, injected
    assert app.state.expiry.sweep(moment) == {"warned": ["local/temp 2h"], "destroying": []}
    expect(page.locator("#notice")).to_contain_text("temp expires in less than 2 hours", timeout=30_000)


@pytest.mark.parametrize("width", [420, 1400])
def test_a_service_added_as_a_file_has_its_form_and_an_instance_upgrades_through_review(browser, site, artifacts, width):
    import httpx

    from test_templates import MOSQUITTO, mosquitto

    url, app, jobs = site
    jobs.environ["TOFU_SLOW_APPLY"] = "0"
    objects = app.state.store.objects
    objects.put("templates/mosquitto.yaml", MOSQUITTO.encode())  # dropped into the store: no code, no restart
    objects.put("templates/broken.yaml", mosquitto(**{"name: mosquitto": "name: mqtt", "default: 1883": "default: 80"}).encode())
    page = browser.new_page(viewport={"width": width, "height": 1000})
    page.goto(url)
    card = page.locator(".card[data-service=mosquitto]")
    expect(card).to_contain_text("1.0.0")
    expect(page.locator(".category[data-category=messaging] h3")).to_have_text("Messaging")
    expect(page.locator("#catalog-broken li[data-source='templates/broken.yaml']")).to_contain_text("parameters.port.default = 80 breaks the parameter's own rules")
    card.click()
    expect(page.locator("#deploy-version")).to_have_text("Version 1.0.0, maintained by messaging team <mqtt@example.com>.")
    expect(page.locator("label[for=field-memory_mb]")).to_have_text("Memory (MB)")
    page.fill("#field-port", "80")  # the template's bounds, checked in the page
    expect(page.locator("#error-port")).not_to_be_empty()
    page.fill("#field-port", "1884")
    page.fill("#field-instance", "broker")
    page.click("#deploy")
    expect(page.locator("#review-section")).to_be_visible(timeout=60_000)
    assert app.state.store.get_spec("local", "broker")["service_version"] == "1.0.0"

    assert httpx.put(f"{url}/api/catalog/mosquitto", content=mosquitto("1.1.0").encode(), headers={"Content-Type": "application/yaml"}).status_code == 201
    page = browser.new_page(viewport={"width": width, "height": 1000})
    page.goto(f"{url}/#instance=broker")
    expect(page.locator("#instance-facts [data-fact=Version]")).to_contain_text("upgrade available: 1.1.0")
    expect(page.locator("#edit-field-port")).to_have_value("1884")
    assert fits(page, "#instance-section *"), f"the instance page overflows at {width} px"
    page.screenshot(path=str(artifacts / f"ui-upgrade-{width}.png"), full_page=True)
    page.click("#instance-facts button.upgrade")
    expect(page.locator("#review-section")).to_be_visible(timeout=60_000)  # the upgrade is a plan, reviewed
    assert app.state.store.get_spec("local", "broker")["service_version"] == "1.0.0"
    page.click("#apply-plan")
    expect(page.locator("#log")).to_contain_text("instance moved to mosquitto 1.1.0 (from 1.0.0)", timeout=60_000)
    assert app.state.store.get_spec("local", "broker")["service_version"] == "1.1.0"
