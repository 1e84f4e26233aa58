"""Shared fixtures. The jsii runtime loads once: every stack the tests read is synthesized by one
session-scoped App (the default dev/preprod/prod stacks plus a few variants)."""

from __future__ import annotations

import contextlib
import json
import os
import re
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")

from stackjson import StackJson  # noqa: E402

from session_synthesis import CATALOG_VARIANTS, PLATFORM_VARIANTS, TEST_STACKS, VARIANTS, default_spec  # noqa: E402,F401 - tests read them here

ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS = ROOT / "test-artifacts"


@pytest.fixture(scope="session")
def outdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Every default stack and the VARIANTS, synthesized once per test run into a folder every worker reads:
    the first worker that needs it runs session_synthesis.py (its own process: the jsii runtime it loads is
    gone once the stacks are written) while the others wait on a lock."""
    import fcntl
    import subprocess
    import sys

    base = tmp_path_factory.getbasetemp()
    shared = base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base  # xdist: <run>/popen-gwN
    target = shared / "session-cdktf.out"
    with open(shared / "session-synthesis.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (target / "manifest.json").is_file():
            partial = shared / f"session-cdktf.out.{os.getpid()}"
            subprocess.run([sys.executable, str(Path(__file__).with_name("session_synthesis.py")), str(partial)], check=True, timeout=900)
            partial.rename(target)
    return target


@pytest.fixture(scope="session")
def all_stacks(outdir) -> dict[str, StackJson]:
    """Every synthesized stack by name: the defaults and the VARIANTS."""
    return {path.parent.name: StackJson.load(path) for path in sorted(outdir.glob("stacks/*/cdk.tf.json"))}


def _stack_fixture(name: str):
    @pytest.fixture(scope="session", name=name.replace("-", "_"))
    def stack(all_stacks) -> StackJson:
        return all_stacks[name]

    return stack


for _name in ("dev", "preprod", "prod", *VARIANTS):  # a session fixture per stack: prod, prod_custom, ...
    globals()[_name.replace("-", "_")] = _stack_fixture(_name)


@pytest.fixture(scope="session")
def artifacts() -> Path:
    """Folder for files tests leave for people to look at (screenshots, rendered user data)."""
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS


@pytest.fixture
def isolated_config(monkeypatch, tmp_path) -> Path:
    """No SPAWNIT_* variable or spawnit.toml of the machine leaks into the command; runs in tmp_path."""
    for key in list(os.environ):
        if key.startswith("SPAWNIT_"):
            monkeypatch.delenv(key)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="session")
def aws_endpoint():
    """moto in server mode on 127.0.0.1: real HTTP S3 and DynamoDB, for the session."""
    from moto.server import ThreadedMotoServer

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    yield f"http://127.0.0.1:{port}"
    server.stop()


@pytest.fixture
def aws_account(aws_endpoint, monkeypatch) -> str:
    """Fake credentials and an emptied emulator; returns the endpoint URL."""
    import urllib.request

    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    urllib.request.urlopen(urllib.request.Request(f"{aws_endpoint}/moto-api/reset", method="POST")).close()
    return aws_endpoint


@contextlib.contextmanager
def serving(app, **config):
    """``app`` on a real uvicorn server on 127.0.0.1 (in a thread); yields its base URL, stops it after.
    ``config``: more of uvicorn.Config's settings (log_level is warning unless given)."""
    import threading
    import time

    import uvicorn

    # An open event stream (a browser's EventSource) would hold a graceful shutdown: 1 s, then it is cut.
    settings = {"log_level": "warning", "timeout_graceful_shutdown": 1, **config}
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=free_port(), **settings))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{server.config.port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def wait_job(api, job_id: str, timeout: float = 60) -> dict:
    """A job's record once it has ended, read through the API (a TestClient or an httpx client)."""
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        record = api.get(f"/api/jobs/{job_id}").json()
        if record["status"] in ("succeeded", "failed", "cancelled", "interrupted"):
            return record
        time.sleep(0.05)
    raise AssertionError(f"job {job_id} did not end")


def local_app(tmp_path: Path, synth_worker, environ: dict[str, str] | None = None, **job_options):
    """The API without login over a local store in ``tmp_path``, its jobs run here (``environ``: the
    jobs' environment, a stand-in engine's for instance)."""
    from spawnit.api import create_app
    from spawnit.api.auth import AuthSettings
    from spawnit.api.jobs import JobManager
    from spawnit.api.store import LocalObjectStore, Store

    store = Store(LocalObjectStore(tmp_path / "store"))
    jobs = JobManager(store, synth_worker, workdir=tmp_path / "work", environ=environ, **job_options)
    return create_app(store=store, jobs=jobs, auth=AuthSettings("off"))


@pytest.fixture(scope="session")
def synth_worker():
    """One long-lived synthesis worker for the session (its jsii runtime loads once)."""
    from spawnit.api.synthesizer import SynthWorker

    worker = SynthWorker()
    worker.start()
    yield worker
    worker.close()


def slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


def answering_server(name: str):
    """An HTTP server on 127.0.0.1 (in a thread) answering every GET and POST with ``name``: an upstream
    whose answers tell which one a proxy chose. Call ``shutdown()`` when done."""
    import http.server
    import threading

    class Answer(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - the handler's API
            body = name.encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        do_POST = do_GET  # noqa: N815

        def log_message(self, *args) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Answer)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


@contextlib.contextmanager
def running_caddy(caddyfile: Path, listen: int, home: Path):
    """Real Caddy running ``caddyfile`` (which listens on ``listen``), once it answers; stopped after."""
    import shutil
    import subprocess
    import time

    import httpx

    caddy = subprocess.Popen(
        [shutil.which("caddy") or "caddy", "run", "--config", str(caddyfile), "--adapter", "caddyfile"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env={"HOME": str(home), "XDG_DATA_HOME": str(home), "XDG_CONFIG_HOME": str(home), "PATH": "/usr/bin:/bin"},
    )
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                httpx.get(f"http://127.0.0.1:{listen}/", timeout=2)
                break
            except httpx.TransportError:
                time.sleep(0.1)
        yield
    finally:
        caddy.terminate()
        caddy.wait(10)


def wait_until(predicate, timeout: float = 90.0, what: str = "condition", interval: float = 0.1):
    """Polls ``predicate`` every ``interval`` seconds until it returns something true (returned) or ``timeout``
    seconds pass (AssertionError)."""
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"{what}: not reached within {timeout} s")


def wait_for_redis(client, what: str, timeout: float = 30) -> None:  # noqa: ANN001 - a redis.Redis
    """Until ``client``'s server answers PING (a server just started refuses connections first)."""
    import redis

    def answers() -> bool:
        try:
            return client.ping()
        except redis.ConnectionError:
            return False

    wait_until(answers, timeout, what)


@contextlib.contextmanager
def redis_server(directory: Path):
    """A real redis-server (Debian package) on 127.0.0.1, without persistence; yields its URL."""
    import shutil
    import subprocess

    import redis

    port = free_port()
    server = subprocess.Popen(
        [shutil.which("redis-server") or "redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", str(directory)],
        stdout=subprocess.DEVNULL,
    )
    client = redis.Redis(port=port)
    try:
        wait_for_redis(client, "redis-server answering")
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        client.close()
        server.terminate()
        server.wait(10)


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory):
    """One real redis-server for the session; each user keeps to its own key prefix."""
    with redis_server(tmp_path_factory.mktemp("redis")) as url:
        yield url


def local_caddyfile(listen: int, backend: int, storefront: int) -> str:
    """The project's application Caddyfile, listening on ``listen`` with its upstreams (``backend:9000``,
    ``storefront:8000`` in the containers' network) on those ports of 127.0.0.1."""
    text = (Path(__file__).resolve().parents[1] / "spawnit" / "assets" / "app" / "Caddyfile").read_text()
    for upstream, port in (("backend:9000", backend), ("storefront:8000", storefront)):
        assert upstream in text, f"the Caddyfile no longer names {upstream}"
        text = text.replace(upstream, f"127.0.0.1:{port}")
    assert ":80 {" in text
    return text.replace(":80 {", f":{listen} {{")


def tool(name: str) -> str:
    """A tool from the virtualenv (Python tools) or the system (Debian packages)."""
    import shutil
    import sys

    path = shutil.which(name, path=f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}")
    assert path, f"{name} is not installed: run the tests through ./scripts/test, which installs it"
    return path


def run_checkov(files: list[Path], framework: str, timeout: float = 600):
    """Checkov (its own virtualenv) over ``files`` with one framework; returns the process and its JSON report."""
    import json
    import subprocess

    checkov = Path(__file__).resolve().parents[1] / ".venv-checkov" / "bin" / "checkov"
    assert checkov.exists(), "Checkov is not installed: run the tests through ./scripts/test, which installs it"
    arguments = [arg for path in files for arg in ("--file", str(path))]
    result = subprocess.run(
        [str(checkov), *arguments, "--framework", framework, "--quiet", "--compact", "--output", "json", "--skip-download"],
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    report = json.loads(result.stdout) if result.stdout.strip() else {}
    return result, report[0] if isinstance(report, list) else report


def dockerfile_stages(dockerfile: Path) -> list[list[str]]:
    """A Dockerfile's instructions (continuations joined, comments left out), one list per stage, each
    starting with its FROM line."""
    stages: list[list[str]] = []
    for line in dockerfile.read_text().replace("\\\n", " ").splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("FROM "):
            stages.append([])
        stages[-1].append(line)
    return stages


# The engine tier (marker `engine`): a real engine and a real AWS provider plugin from this machine.
PROVIDER_MIRROR_ROOTS = ("/opt", "/usr/local/share", "/usr/share", "~/.terraform.d/plugins", "~/.local/share/terraform/plugins")


def find_aws_provider_mirror() -> tuple[Path, str, str] | None:
    """(mirror root, registry host, version) of an AWS provider plugin in a filesystem-mirror layout
    (``<root>/<host>/hashicorp/aws/<version>/linux_amd64/terraform-provider-aws*``, the host being
    registry.terraform.io for a mirror Terraform made, registry.opentofu.org for one OpenTofu made):
    ``$SPAWNIT_TEST_PROVIDER_MIRROR``, or a root (or one folder below it) of PROVIDER_MIRROR_ROOTS."""
    configured = os.environ.get("SPAWNIT_TEST_PROVIDER_MIRROR")
    roots = [Path(configured)] if configured else [Path(root).expanduser() for root in PROVIDER_MIRROR_ROOTS]
    for root in roots:
        for host in ("registry.terraform.io", "registry.opentofu.org"):
            for pattern in (f"{host}/hashicorp/aws/*/linux_amd64/terraform-provider-aws*", f"*/{host}/hashicorp/aws/*/linux_amd64/terraform-provider-aws*"):
                for plugin in sorted(root.glob(pattern)):
                    return plugin.parents[5], host, plugin.parents[1].name
    return None


def real_plan(real_engine, folder, resources: dict) -> dict:
    """A plan of ``resources`` by the real engine and AWS provider (creations only: no AWS call at plan time)."""
    import json

    from spawnit.tofu import run_plan_json

    folder.mkdir(parents=True, exist_ok=True)
    (folder / "cdk.tf.json").write_text(json.dumps({
        "terraform": {"required_providers": {"aws": {"source": "hashicorp/aws", "version": real_engine["aws_version"]}}},
        "provider": {"aws": [{"region": "eu-west-3", "access_key": "test", "secret_key": "test", "skip_credentials_validation": True,
                              "skip_requesting_account_id": True, "skip_metadata_api_check": True}]},
        **resources,
    }))
    (folder / "cli.tfrc").write_text('provider_installation {\n  filesystem_mirror {\n    path = "%s"\n  }\n}\n' % real_engine["mirror"])
    environ = {**os.environ, "SPAWNIT_TOFU": real_engine["path"], "TF_CLI_CONFIG_FILE": str(folder / "cli.tfrc")}
    code, plan = run_plan_json(folder, environ=environ)
    assert code == 2 and plan is not None
    return plan


# A plan opening SSH to the world (Checkov CKV_AWS_24) beside an instance with a public address (CKV_AWS_88,
# accepted for catalog instances in assets/gate/accepted.yaml), made by the real engine and AWS provider.
RISKY_STACK = {
    "resource": {
        "aws_security_group": {"open": {"name": "open", "description": "open", "ingress": [{
            "from_port": 22, "to_port": 22, "protocol": "tcp", "cidr_blocks": ["0.0.0.0/0"], "description": "ssh",
            "ipv6_cidr_blocks": [], "prefix_list_ids": [], "security_groups": [], "self": False}]}},
        "aws_instance": {"instance": {"ami": "ami-12345678", "instance_type": "t3.small", "associate_public_ip_address": True,
                                      "monitoring": True, "ebs_optimized": True, "metadata_options": {"http_tokens": "required"},
                                      "root_block_device": {"encrypted": True}}},
    },
}


@pytest.fixture(scope="session")
def risky_plan(real_engine, tmp_path_factory):
    return real_plan(real_engine, tmp_path_factory.mktemp("risky"), RISKY_STACK)


@pytest.fixture(scope="session")
def real_engine() -> dict[str, str]:
    """The engine (OpenTofu or Terraform) and the AWS provider mirror the tier runs with; the suite fails
    with one line saying what to install when either is missing (never a silent skip)."""
    from spawnit.tofu import TofuNotFound, find_engine

    try:
        engine = find_engine()
    except TofuNotFound:
        pytest.fail(
            "engine tier: no engine found; install OpenTofu (tofu) or Terraform 1.11+ (terraform) on PATH, or set SPAWNIT_TOFU to its path", pytrace=False
        )
    mirror = find_aws_provider_mirror()
    if mirror is None:
        pytest.fail(
            "engine tier: no AWS provider plugin found; put terraform-provider-aws in a filesystem mirror "
            "(<root>/registry.terraform.io/hashicorp/aws/<version>/linux_amd64/, or registry.opentofu.org for OpenTofu; "
            "scripts/provider-mirror makes one) "
            f"under one of {', '.join(PROVIDER_MIRROR_ROOTS)}, or set SPAWNIT_TEST_PROVIDER_MIRROR to its root",
            pytrace=False,
        )
    return {"path": engine.path, "name": engine.name, "version": engine.version, "mirror": str(mirror[0]), "aws_host": mirror[1], "aws_version": mirror[2]}


@pytest.fixture(scope="session")
def docker_engine(tmp_path_factory):
    """A real Docker engine (Debian's docker.io) for the session, on a private socket, its data under the
    test's folder, touching none of the host's firewall rules; with a small image made by `docker import`
    of a busybox root filesystem (no registry is reachable here). Yields (host URL, image tag)."""
    import shutil
    import subprocess
    import tarfile

    dockerd, busybox = shutil.which("dockerd"), shutil.which("busybox")
    if not dockerd or not busybox:
        pytest.fail("docker tier: dockerd or busybox missing; install Debian's docker.io and busybox-static (./scripts/test does)", pytrace=False)
    root = tmp_path_factory.mktemp("docker")
    host = f"unix://{root}/docker.sock"
    log = open(root / "dockerd.log", "w")  # noqa: SIM115 - the daemon writes it
    daemon = subprocess.Popen(
        [dockerd, "--data-root", str(root / "data"), "--exec-root", str(root / "exec"), "-H", host, "--pidfile", str(root / "docker.pid"),
         "--iptables=false", "--ip-forward=false", "--ip-masq=false"],
        stdout=log, stderr=subprocess.STDOUT,
    )
    import docker

    def answers():
        try:
            return docker.DockerClient(base_url=host, timeout=5).ping()
        except Exception:  # noqa: BLE001 - not up yet
            return False

    try:
        wait_until(answers, 60, "dockerd answering")
        archive = root / "rootfs.tar"
        with tarfile.open(archive, "w") as tar:
            tar.add(busybox, arcname="bin/busybox")
            for name in ("sh", "sleep", "true", "false"):
                link = tarfile.TarInfo(f"bin/{name}")
                link.type, link.linkname = tarfile.SYMTYPE, "busybox"
                tar.addfile(link)
        client = docker.DockerClient(base_url=host, timeout=60)
        client.api.import_image_from_data(archive.read_bytes(), repository="spawnit-test/busybox", tag="1")
        client.close()
        yield host, "spawnit-test/busybox:1"
    finally:
        daemon.terminate()
        daemon.wait(30)
        log.close()


# A realm's signing key and its JWKS on 127.0.0.1, for tests of OIDC tokens, roles and grants -----------

ISSUER = "http://localhost:8080/realms/spawnit"
AUDIENCE = "spawnit-api"
ALICE = "6f1c2b8e-4b7a-4c57-9a0e-2f8a1d3c5e7b"


def new_key():
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture(scope="session")
def signing_key():
    return new_key()


@pytest.fixture(scope="session")
def jwks_url(signing_key):
    public = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(signing_key.public_key()))
    body = json.dumps({"keys": [{**public, "kid": "test-key", "use": "sig", "alg": "RS256"}]}).encode()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/realms/spawnit/protocol/openid-connect/certs"
    server.shutdown()


def token(key, *, subject=ALICE, roles=("user",), groups=None, audience=AUDIENCE, issuer=ISSUER, expires_in=300, kid="test-key") -> str:
    now = int(time.time())
    claims = {"sub": subject, "iss": issuer, "aud": audience, "iat": now, "exp": now + expires_in, "realm_access": {"roles": list(roles)}}
    if groups is not None:  # Keycloak's group-membership mapper with full paths
        claims["groups"] = list(groups)
    return jwt.encode(claims, key, algorithm="RS256", headers={"kid": kid})




# Every audit record the suite writes, read at its end: only the trail's own fields, no credential ----------

RECORD_FIELDS = {"id", "at", "action", "outcome", "subject", "roles", "grants", "status", "route", "client", "instance", "job", "plan_sha256", "address", "details"}
CREDENTIAL = re.compile(r"eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}|Bearer\s|ticket=|BEGIN [A-Z ]*PRIVATE KEY|hunter2|A-New-Password-For-2027")


def audit_offenders(root: Path) -> list[str]:
    """Audit records under ``root`` holding more than the trail's fields, a detail it does not name, or
    something that looks like a token, a ticket, a private key or one of the tests' secrets."""
    from spawnit.api.audit import DETAIL_FIELDS

    offenders = []
    for path in root.rglob("audit/*/*.json"):
        text = path.read_text()
        record = json.loads(text)
        if set(record) - RECORD_FIELDS or set(record.get("details") or {}) - set(DETAIL_FIELDS) or CREDENTIAL.search(text):
            offenders.append(f"{path}: {text[:200]}")
    return offenders


@pytest.fixture(scope="session", autouse=True)
def audit_records_hold_no_secret(tmp_path_factory):
    """After the whole session, every audit record written to a local store under the session's temporary
    folder is read (S3 stores in the emulator are read by their own tests): none may hold a credential."""
    yield
    offenders = audit_offenders(tmp_path_factory.getbasetemp())
    assert offenders == [], "audit records with more than they may hold:\n" + "\n".join(offenders)


# The suite on two workers (pytest-xdist, ``-n 2 --dist loadfile``: scripts/test and pyproject.toml) ---------
# A file's tests stay on one worker, so its module fixtures are made once; the files that use the session's
# dockerd make one scope (two daemons on one machine would hand out the same bridge subnets): the scheduler
# below. (xdist's own ``loadgroup`` marks do not group under pytest 9.2: pytest-xdist#1386.) Files are
# handed out longest first, by the previous run's durations (pytest's cache), so that both workers end
# together; with no previous run, the real-engine tier goes first, then the files with the most tests.

DOCKER_FILES = ("test_docker_live.py", "test_engine_loop.py", "test_worker_targets.py")  # checked at collection
DOCKER_SCOPE = "dockerd"
SCOPE_SECONDS = "spawnit/scope-seconds"  # the cache key: {scope: seconds} of the latest run of each scope
CPU_AT_START = pytest.StashKey[float]()


def scope_of(path: Path) -> str:
    return DOCKER_SCOPE if path.name in DOCKER_FILES else path.name


def pytest_xdist_make_scheduler(config, log):
    if config.getvalue("dist") != "loadfile":
        return None
    from xdist.scheduler import LoadFileScheduling

    class DockerdTogether(LoadFileScheduling):
        """Each file a scope, but the files using the session's dockerd one scope."""

        def _split_scope(self, nodeid: str) -> str:
            return scope_of(Path(nodeid.split("::", 1)[0]))

    return DockerdTogether(config, log)


def pytest_collection_modifyitems(config, items):
    strays = sorted({item.path.name for item in items if "docker_engine" in getattr(item, "fixturenames", ())} - set(DOCKER_FILES))
    if strays:
        raise pytest.UsageError(f"{', '.join(strays)} use the session's dockerd: add them to DOCKER_FILES in tests/conftest.py (one daemon per run)")
    cache = getattr(config, "cache", None)  # None under -p no:cacheprovider
    known = cache.get(SCOPE_SECONDS, {}) if cache else {}
    counts: dict[str, int] = {}
    engine: set[str] = set()
    for item in items:
        scope = scope_of(item.path)
        counts[scope] = counts.get(scope, 0) + 1
        if item.get_closest_marker("engine"):
            engine.add(scope)

    def weight(scope: str) -> tuple:
        return (scope in known, known.get(scope, 0.0), scope in engine, counts[scope])

    order = {scope: rank for rank, scope in enumerate(sorted(counts, key=weight, reverse=True))}
    items.sort(key=lambda item: order[scope_of(item.path)])  # stable: a file's own order is kept


# The suite's own figures, printed at its end: duration (set-up by scripts/test, fixtures, tests), the
# slowest tests (--durations), the CPU spent (the busiest files), and the peak memory of the machine and of
# the largest process. Under xdist the workers' reports carry their figures to the controller, which prints.

_SUITE: dict = {"start": time.monotonic(), "setup": 0.0, "machine_peak": 0, "largest": 0, "tree_peak": 0, "tree_at_peak": [], "sampling": None, "cpu": {}, "seconds": {}}


def _worker(config) -> bool:
    return hasattr(config, "workerinput")


def _own_cpu() -> float:
    import resource

    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def _largest_rss() -> int:
    import resource

    return max(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss) * 1024


def _process_label(process) -> str:
    """A process's name and what tells it apart: a Python module or script, a Node script, a subcommand."""
    command = process.cmdline()
    name = Path(command[0]).name if command else process.name()
    detail = next((arg for arg in command[1:] if not arg.startswith("-")), "")
    if name.startswith("python") and "-m" in command:
        detail = command[command.index("-m") + 1]
    return f"{name} {Path(detail).name if '/' in detail else detail}".strip()[:60]


def _tree_at_peak() -> str:
    """The process tree's memory at its peak (resident, summed), by kind of process, largest first."""
    kinds: dict[str, list[int]] = {}
    for rss, label in _SUITE["tree_at_peak"]:
        kinds.setdefault(label, []).append(rss)
    parts = sorted(kinds.items(), key=lambda pair: -sum(pair[1]))
    return ", ".join(f"{label} {sum(sizes) / 2**30:.2f}" + (f" ({len(sizes)})" if len(sizes) > 1 else "") for label, sizes in parts[:8])


def pytest_sessionstart(session):
    if _worker(session.config):
        return
    import psutil

    _SUITE["start"] = time.monotonic()
    stop = threading.Event()
    me = psutil.Process()

    def sample():
        while not stop.wait(0.5):
            _SUITE["machine_peak"] = max(_SUITE["machine_peak"], psutil.virtual_memory().used)
            held = []
            for process in me.children(recursive=True):  # the workers and what they run, still alive
                with contextlib.suppress(psutil.Error):
                    held.append((process.memory_info().rss, _process_label(process)))
            if held:
                _SUITE["largest"] = max(_SUITE["largest"], max(held)[0])
                if sum(rss for rss, _ in held) > _SUITE["tree_peak"]:
                    _SUITE["tree_peak"], _SUITE["tree_at_peak"] = sum(rss for rss, _ in held), held

    threading.Thread(target=sample, name="memory-sampler", daemon=True).start()
    _SUITE["sampling"] = stop


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item):
    item.stash[CPU_AT_START] = _own_cpu()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    """The teardown report carries the test's CPU (its process and the children it waited for,
    set-up and teardown included) and the largest process so far: the controller adds them up."""
    report = yield
    if call.when == "teardown":
        cpu = _own_cpu() - item.stash.get(CPU_AT_START, _own_cpu())
        report.user_properties += [("spawnit-cpu", cpu), ("spawnit-largest", _largest_rss())]
    return report


def pytest_runtest_logreport(report):
    if report.when == "setup":
        _SUITE["setup"] += report.duration
    file = report.nodeid.split("::")[0]
    _SUITE["seconds"][file] = _SUITE["seconds"].get(file, 0.0) + report.duration
    figures = dict(report.user_properties)
    if "spawnit-cpu" in figures:
        _SUITE["cpu"][file] = _SUITE["cpu"].get(file, 0.0) + figures["spawnit-cpu"]
        _SUITE["largest"] = max(_SUITE["largest"], figures["spawnit-largest"])


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    import psutil

    if _worker(config):
        return
    if _SUITE["sampling"] is not None:
        _SUITE["sampling"].set()
    cache = getattr(config, "cache", None)
    if cache and _SUITE["seconds"]:
        seconds: dict[str, float] = {}
        for file, spent in _SUITE["seconds"].items():
            seconds[scope_of(Path(file))] = seconds.get(scope_of(Path(file)), 0.0) + spent
        cache.set(SCOPE_SECONDS, {**cache.get(SCOPE_SECONDS, {}), **{scope: round(value, 1) for scope, value in seconds.items()}})
    _SUITE["machine_peak"] = max(_SUITE["machine_peak"], psutil.virtual_memory().used)
    total = time.monotonic() - _SUITE["start"]
    installs = float(os.environ.get("SPAWNIT_TEST_SETUP_SECONDS") or 0)
    largest = max(_SUITE["largest"], _largest_rss()) / 2**30
    workers = getattr(config.option, "numprocesses", None) or 1

    def clock(seconds: float) -> str:
        return f"{int(seconds // 60)} min {seconds % 60:04.1f} s"

    terminalreporter.write_sep("=", "suite figures")
    terminalreporter.write_line(
        f"total: {clock(total + installs)} (installs by scripts/test: {clock(installs)}; tests: {clock(total)} on {workers} worker(s), of which fixtures' set-up {clock(_SUITE['setup'])})"
    )
    terminalreporter.write_line(f"CPU: {_own_cpu():.0f} s (user + system, every process of the suite); the busiest files:")
    for file, seconds in sorted(_SUITE["cpu"].items(), key=lambda pair: -pair[1])[:10]:
        terminalreporter.write_line(f"  {seconds:7.1f} s  {file}")
    terminalreporter.write_line(f"peak memory: machine {_SUITE['machine_peak'] / 2**30:.1f} GB in use at most; largest single process {largest:.2f} GB")
    if _SUITE["tree_at_peak"]:
        terminalreporter.write_line(f"  the suite's processes at their peak: {_SUITE['tree_peak'] / 2**30:.1f} GB resident (GB: {_tree_at_peak()})")

