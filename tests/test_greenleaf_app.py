"""GreenLeaf served for real on this machine, as its images run it but without Docker: the backend
(apps/greenleaf/backend) built with `medusa build`, its production modules installed in the build's
output as the Dockerfile does, migrated and started by the image's start.sh against PostgreSQL and
Redis (Debian packages) on 127.0.0.1, media on an S3 server (moto); the storefront (Next.js) built
and run from its standalone output; Caddy in front with the project's own Caddyfile. The checks are
ticket #4's: the site's page, /store/*, /admin/*, Medusa v2's /app and /auth, /health."""

from __future__ import annotations

import contextlib
import hashlib
import os
import pwd
import re
import shutil
import subprocess
import urllib.parse
from pathlib import Path

import boto3
import httpx
import pytest

from conftest import dockerfile_stages, free_port, local_caddyfile, redis_server, running_caddy, wait_until

ROOT = Path(__file__).resolve().parents[1]
APPS = ROOT / "apps" / "greenleaf"
BACKEND, STOREFRONT = APPS / "backend", APPS / "storefront"
DB_PASSWORD = "s3cret/with:special@chars"  # URL-encoded in DATABASE_URL, as the boot script does
ADMIN = ("admin@greenleaf.example", "an admin password")
BUCKET = "greenleaf-media"


def run(command: list[str], cwd: Path, env: dict[str, str] | None = None, timeout: float = 900) -> str:
    """Runs a build or admin command; its output is in the failure message if it fails."""
    result = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert result.returncode == 0, f"{' '.join(command)} (in {cwd}) failed:\n{result.stdout[-4000:]}\n{result.stderr[-4000:]}"
    return result.stdout + result.stderr


def node_env(**values: str) -> dict[str, str]:
    keep = {name: os.environ[name] for name in ("PATH", "HOME", "LANG") if name in os.environ}
    return {**keep, "NEXT_TELEMETRY_DISABLED": "1", "MEDUSA_DISABLE_TELEMETRY": "true", **values}


APP_USER = (1000, 1000)  # the images' unprivileged user (the node image's "node"), by number as their USER says


def owned_folder(directory: Path, uid: int, gid: int) -> Path:
    """A new folder that user owns and can reach (its parents become traversable: pytest's are 0700).
    Only as root; otherwise a plain new folder."""
    directory.mkdir(mode=0o755)
    if os.geteuid() != 0:
        return directory
    for parent in directory.parents:
        if parent == Path("/"):
            break
        parent.chmod(parent.stat().st_mode | 0o711)
    os.chown(directory, uid, gid)
    return directory


def as_app_user() -> list[str]:
    """The command prefix that runs a server as the images do: not root (when the tests run as root)."""
    if os.geteuid() != 0:
        return []
    return ["setpriv", f"--reuid={APP_USER[0]}", f"--regid={APP_USER[1]}", "--clear-groups"]


def postgres_bin() -> Path:
    bin_dirs = sorted(Path("/usr/lib/postgresql").glob("*/bin"))
    assert bin_dirs, "PostgreSQL's server binaries are missing (Debian package postgresql: scripts/test installs it)"
    return bin_dirs[-1]


def database_url(port: int, name: str) -> str:
    """As the boot script writes it: the password URL-encoded."""
    return f"postgres://medusa:{urllib.parse.quote(DB_PASSWORD, safe='')}@127.0.0.1:{port}/{name}"


def createdb(port: int, name: str) -> None:
    run([str(postgres_bin() / "createdb"), "-h", "127.0.0.1", "-p", str(port), "-U", "medusa", name], ROOT, env={"PGPASSWORD": DB_PASSWORD, "PATH": os.environ["PATH"]})


@contextlib.contextmanager
def postgresql(directory: Path):
    """A real PostgreSQL (the Debian package's binaries) on 127.0.0.1 with password authentication and
    a database `medusa`; runs as the `postgres` user when the tests run as root (initdb refuses root).
    Yields its port."""
    bin_dir = postgres_bin()
    owner = pwd.getpwnam("postgres") if os.geteuid() == 0 else pwd.getpwuid(os.geteuid())
    owned_folder(directory, owner.pw_uid, owner.pw_gid)
    as_user = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
    data, password_file = directory / "data", directory / "password"
    password_file.write_text(DB_PASSWORD + "\n")
    password_file.chmod(0o644)
    run([*as_user, str(bin_dir / "initdb"), "-D", str(data), "-U", "medusa", "--auth=scram-sha-256", f"--pwfile={password_file}", "-E", "UTF8"], directory, timeout=120)
    port = free_port()
    server = subprocess.Popen(
        [*as_user, str(bin_dir / "postgres"), "-D", str(data), "-p", str(port), "-k", str(directory), "-c", "listen_addresses=127.0.0.1"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_until(lambda: subprocess.run([str(bin_dir / "pg_isready"), "-h", "127.0.0.1", "-p", str(port)], capture_output=True).returncode == 0, 60, "PostgreSQL accepting connections")
        createdb(port, "medusa")
        yield port
    finally:
        server.terminate()
        server.wait(30)


def dockerfile_runs(dockerfile: Path, stage: str) -> list[str]:
    """The RUN commands of one stage of a Dockerfile, to run them as the build does."""
    commands = [line.removeprefix("RUN ") for lines in dockerfile_stages(dockerfile) if lines[0].split()[-1] == stage for line in lines if line.startswith("RUN ")]
    assert commands, f"no RUN in stage {stage} of {dockerfile}"
    return commands


@contextlib.contextmanager
def process(command: list[str], cwd: Path, env: dict[str, str], log: Path):
    """A long-running server; its output goes to ``log`` (shown when a wait fails)."""
    with log.open("w") as out:
        proc = subprocess.Popen(command, cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        yield proc
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, 15)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, 9)
            proc.wait(10)


def answering(url: str, proc: subprocess.Popen, log: Path):
    def check() -> bool:
        assert proc.poll() is None, f"{url}: the server exited ({proc.returncode}):\n{log.read_text()[-6000:]}"
        try:
            return httpx.get(url, timeout=5).status_code == 200
        except httpx.TransportError:
            return False

    return check


# What the images' builds read: every file of the two applications but what npm and the builds write.
BUILD_OUTPUTS = {"node_modules", ".medusa", ".next", "next-env.d.ts"}
BUILD_CACHE = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "spawnit-tests" / "greenleaf-build"


def build_inputs_digest() -> str:
    """The build's inputs: the applications' sources, lockfiles and Dockerfiles, and Node's version."""
    digest = hashlib.sha256(run(["node", "--version"], ROOT).encode())
    for app in (BACKEND, STOREFRONT):
        for folder, subfolders, files in os.walk(app):
            subfolders[:] = sorted(name for name in subfolders if name not in BUILD_OUTPUTS)
            for name in sorted(files):
                if name in BUILD_OUTPUTS or name.endswith(".tsbuildinfo"):
                    continue
                path = Path(folder) / name
                digest.update(f"{path.relative_to(APPS)}\0".encode() + path.read_bytes() + b"\0")
    return digest.hexdigest()


def built_apps() -> tuple[Path, Path]:
    """Each image's build, as its Dockerfile's RUN commands say: the backend's build stage, then its
    production modules in the build's output; the storefront's build, then its standalone server with
    the static files beside it (the Dockerfile's COPY lines). Returns (backend server, storefront server).

    Built once per set of inputs (:func:`build_inputs_digest`): the outputs in the tree carry the digest
    they were built from, and a copy is kept in ``~/.cache/spawnit-tests/greenleaf-build/<digest>`` for
    the next clone. Any change to a source, a lockfile, a Dockerfile or Node builds again."""
    server_dir, standalone = BACKEND / ".medusa" / "server", STOREFRONT / ".next" / "standalone"
    digest = build_inputs_digest()
    stamps = [BACKEND / ".medusa" / "inputs.sha256", STOREFRONT / ".next" / "inputs.sha256"]
    if all(stamp.is_file() and stamp.read_text() == digest for stamp in stamps) and server_dir.is_dir() and standalone.is_dir():
        return server_dir, standalone
    cached = BUILD_CACHE / digest
    for output in (BACKEND / ".medusa", STOREFRONT / ".next"):
        shutil.rmtree(output, ignore_errors=True)
    if (cached / "complete").is_file():
        # node_modules is never written at run time: linked; the rest copied (Next.js rewrites its pages)
        server_dir.parent.mkdir(parents=True)
        run(["cp", "-a", "--link", str(cached / "backend"), str(server_dir)], ROOT)
        shutil.copytree(cached / "storefront", standalone, symlinks=True)
    else:
        build_env = {**node_env(), "npm_config_prefer_offline": "true"}
        for command in dockerfile_runs(BACKEND / "Dockerfile", "build"):
            run(["bash", "-c", command], BACKEND, build_env)
        assert (server_dir / "public" / "admin" / "index.html").is_file(), "the dashboard was not built"
        for command in dockerfile_runs(BACKEND / "Dockerfile", "runtime-modules"):
            run(["bash", "-c", command], server_dir, build_env)
        for script in ("start.sh", "migrate.js"):  # the Dockerfile's COPY
            shutil.copy2(BACKEND / script, server_dir / script)
        for command in dockerfile_runs(BACKEND / "Dockerfile", "runtime"):  # its one folder the server may write
            run(["bash", "-c", command], server_dir, build_env)
        for command in dockerfile_runs(STOREFRONT / "Dockerfile", "build"):
            run(["bash", "-c", command], STOREFRONT, build_env)
        shutil.copytree(STOREFRONT / ".next" / "static", standalone / ".next" / "static", dirs_exist_ok=True)
        shutil.copytree(STOREFRONT / "public", standalone / "public", dirs_exist_ok=True)
        shutil.rmtree(cached, ignore_errors=True)
        cached.mkdir(parents=True)
        run(["cp", "-a", str(server_dir), str(cached / "backend")], ROOT)
        shutil.copytree(standalone, cached / "storefront", symlinks=True)
        (cached / "complete").write_text(digest)
        for older in sorted(BUILD_CACHE.iterdir(), key=lambda path: path.stat().st_mtime)[:-2]:  # the last two builds kept
            shutil.rmtree(older, ignore_errors=True)
    for stamp in stamps:
        stamp.write_text(digest)
    return server_dir, standalone


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    """The whole site behind Caddy; yields its URL and what the checks need."""
    work = tmp_path_factory.mktemp("greenleaf")
    run(["bash", "-c", "source scripts/setup && spawnit_setup_greenleaf_apps"], ROOT)
    server_dir, standalone = built_apps()

    from moto.server import ThreadedMotoServer

    moto_port = free_port()
    moto = ThreadedMotoServer(ip_address="127.0.0.1", port=moto_port, verbose=False)
    moto.start()
    s3_endpoint = f"http://127.0.0.1:{moto_port}"
    s3 = boto3.client("s3", endpoint_url=s3_endpoint, region_name="us-east-1", aws_access_key_id="media-key", aws_secret_access_key="media-secret")
    s3.create_bucket(Bucket=BUCKET)
    s3.put_bucket_ownership_controls(Bucket=BUCKET, OwnershipControls={"Rules": [{"ObjectOwnership": "BucketOwnerEnforced"}]})

    with contextlib.ExitStack() as stack:
        stack.callback(moto.stop)
        db_port = stack.enter_context(postgresql(work / "postgres"))
        redis_url = stack.enter_context(redis_server(work))
        backend_port, storefront_port, listen = free_port(), free_port(), free_port()
        home = owned_folder(work / "home", *APP_USER)  # the servers run as the images' user, code not theirs to write
        backend_env = node_env(
            HOME=str(home),
            NODE_ENV="production",
            PORT=str(backend_port),
            DATABASE_URL=database_url(db_port, "medusa"),
            REDIS_URL=redis_url,
            JWT_SECRET="a-jwt-secret-for-the-test",
            COOKIE_SECRET="a-cookie-secret-for-the-test",
            S3_BUCKET=BUCKET,
            S3_REGION="us-east-1",
            S3_ENDPOINT=s3_endpoint,
            S3_URL=f"{s3_endpoint}/{BUCKET}",
            S3_FORCE_PATH_STYLE="true",
            S3_ACCESS_KEY_ID="media-key",
            S3_SECRET_ACCESS_KEY="media-secret",
        )
        backend_log = work / "backend.log"
        backend = stack.enter_context(process([*as_app_user(), "./start.sh"], server_dir, backend_env, backend_log))
        wait_until(answering(f"http://127.0.0.1:{backend_port}/health", backend, backend_log), 600, "the backend answering /health")
        # The admin commands run as the image's user too, as `docker compose exec backend ...` would.
        seeded = run([*as_app_user(), "./node_modules/.bin/medusa", "exec", "./src/scripts/seed.js"], server_dir, backend_env)
        key = re.search(r"publishable key: (pk_\w+)", seeded)
        assert key, seeded[-3000:]
        run([*as_app_user(), "./node_modules/.bin/medusa", "user", "--email", ADMIN[0], "--password", ADMIN[1]], server_dir, backend_env)

        storefront_env = node_env(HOME=str(home), NODE_ENV="production", PORT=str(storefront_port), HOSTNAME="127.0.0.1", MEDUSA_BACKEND_URL=f"http://127.0.0.1:{backend_port}", MEDUSA_PUBLISHABLE_KEY=key.group(1))
        storefront_log = work / "storefront.log"
        storefront = stack.enter_context(process([*as_app_user(), "node", "server.js"], standalone, storefront_env, storefront_log))
        wait_until(answering(f"http://127.0.0.1:{storefront_port}/healthz", storefront, storefront_log), 120, "the storefront answering /healthz")

        caddyfile = work / "Caddyfile"
        caddyfile.write_text(local_caddyfile(listen, backend_port, storefront_port))
        stack.enter_context(running_caddy(caddyfile, listen, work))
        yield {
            "url": f"http://127.0.0.1:{listen}",
            "key": key.group(1),
            "s3": s3,
            "s3_url": f"{s3_endpoint}/{BUCKET}",
            "backend_env": backend_env,
            "server_dir": server_dir,
            "db_port": db_port,
            "work": work,
            "storefront_env": storefront_env,
            "standalone": standalone,
        }


def get(site, path: str, **kwargs) -> httpx.Response:
    return httpx.get(site["url"] + path, headers={"Host": "localhost", **kwargs.pop("headers", {})}, timeout=30, **kwargs)


def login(site) -> str:
    answer = httpx.post(site["url"] + "/auth/user/emailpass", json={"email": ADMIN[0], "password": ADMIN[1]}, headers={"Host": "localhost"}, timeout=30)
    assert answer.status_code == 200, answer.text
    return answer.json()["token"]


def test_the_home_page_is_the_storefronts_rendered_from_the_backends_catalogue(site):
    page = get(site, "/")
    assert page.status_code == 200
    assert "text/html" in page.headers["content-type"]
    assert "<title>GreenLeaf</title>" in page.text
    # The product seeded in the backend, with its price in the French region: the storefront read the store API.
    assert "Monstera deliciosa" in page.text
    assert re.search(r"29,00\s*€", page.text), page.text[-2000:]
    # Caddy's headers are on every answer.
    assert page.headers["x-content-type-options"] == "nosniff"
    assert "server" not in page.headers


def test_health_answers_from_the_backend(site):
    answer = get(site, "/health")
    assert answer.status_code == 200 and answer.text == "OK"


def test_the_store_api_reaches_the_backend_and_needs_the_publishable_key(site):
    listed = get(site, "/store/products", headers={"x-publishable-api-key": site["key"]})
    assert listed.status_code == 200
    assert [product["handle"] for product in listed.json()["products"]] == ["monstera-deliciosa"]
    refused = get(site, "/store/products")
    assert refused.status_code == 400
    assert "publishable" in refused.json()["message"].lower()


def test_the_admin_api_reaches_the_backend_and_needs_a_login(site):
    assert get(site, "/admin/products").status_code == 401
    listed = get(site, "/admin/products", headers={"Authorization": f"Bearer {login(site)}"})
    assert listed.status_code == 200
    assert listed.json()["products"][0]["title"] == "Monstera deliciosa"


def test_auth_reaches_the_backend_and_refuses_a_wrong_password(site):
    answer = httpx.post(site["url"] + "/auth/user/emailpass", json={"email": ADMIN[0], "password": "wrong"}, headers={"Host": "localhost"}, timeout=30)
    assert answer.status_code == 401
    assert login(site)


def test_the_admin_dashboard_is_served_by_the_backend_at_app(site):
    for path in ("/app", "/app/login"):
        page = get(site, path, follow_redirects=True)
        assert page.status_code == 200, path
        assert "text/html" in page.headers["content-type"]
        assert '<div id="medusa"' in page.text, page.text[:500]


def test_uploads_go_to_the_bucket_without_an_acl_and_get_its_public_url(site):
    """Medusa's S3 provider with `acl: false`: the object lands in a BucketOwnerEnforced bucket with no
    ACL grant of its own (a public-read upload would add an AllUsers grant), under the public URL."""
    answer = httpx.post(
        site["url"] + "/admin/uploads",
        headers={"Host": "localhost", "Authorization": f"Bearer {login(site)}"},
        files={"files": ("leaf.png", b"\x89PNG\r\n\x1a\nnot really an image", "image/png")},
        timeout=60,
    )
    assert answer.status_code == 200, answer.text
    (uploaded,) = answer.json()["files"]
    assert uploaded["url"].startswith(site["s3_url"] + "/")
    key = uploaded["url"].removeprefix(site["s3_url"] + "/")
    s3 = site["s3"]
    assert s3.get_object(Bucket=BUCKET, Key=key)["Body"].read().startswith(b"\x89PNG")
    grants = s3.get_object_acl(Bucket=BUCKET, Key=key)["Grants"]
    assert not [grant for grant in grants if grant["Grantee"].get("URI", "").endswith("/global/AllUsers")], grants


def session(site, **headers: str) -> tuple[str, httpx.Response]:
    """The dashboard's login: a token from /auth, then a session cookie from /auth/session; returns the
    Set-Cookie header and /admin/users/me read with that cookie alone."""
    started = httpx.post(site["url"] + "/auth/session", headers={"Host": "localhost", "Authorization": f"Bearer {login(site)}", **headers}, timeout=30)
    assert started.status_code == 200, started.text
    cookie = started.headers["set-cookie"]
    assert cookie.startswith("connect.sid=") and "HttpOnly" in cookie
    me = httpx.get(site["url"] + "/admin/users/me", headers={"Host": "localhost", "Cookie": cookie.split(";")[0], **headers}, timeout=30)
    return cookie, me


def test_behind_the_https_load_balancer_the_dashboards_session_cookie_is_secure_and_works(site):
    """The load balancer ends TLS and sends X-Forwarded-Proto: https; Caddy passes it on from a private
    address, so express-session (Medusa's) marks the cookie Secure instead of refusing to set it."""
    cookie, me = session(site, **{"X-Forwarded-Proto": "https"})
    assert "Secure" in cookie
    assert me.status_code == 200 and me.json()["user"]["email"] == ADMIN[0]


def test_on_plain_http_the_session_cookie_is_plain_so_a_dev_boxs_dashboard_keeps_its_session(site):
    cookie, me = session(site)
    assert "Secure" not in cookie
    assert me.status_code == 200 and me.json()["user"]["email"] == ADMIN[0]


def test_hosts_starting_together_migrate_one_after_the_other(site):
    """The fleet's hosts start at once on a new database: each backend's migrate.js waits for the
    PostgreSQL advisory lock, so both runs succeed (two concurrent `medusa db:migrate` runs make one
    fail: "Payment provider with id: pp_system_default, already exists")."""
    createdb(site["db_port"], "medusa_fleet")
    env = {**site["backend_env"], "DATABASE_URL": database_url(site["db_port"], "medusa_fleet")}
    logs = [site["work"] / f"host-{index}.log" for index in range(2)]
    hosts = []
    for log in logs:
        with log.open("w") as out:
            hosts.append(subprocess.Popen([*as_app_user(), "node", "./migrate.js"], cwd=site["server_dir"], env=env, stdout=out, stderr=subprocess.STDOUT))
    codes = [host.wait(600) for host in hosts]
    assert codes == [0, 0], "\n".join(log.read_text()[-3000:] for log in logs)
    for log in logs:
        text = log.read_text()
        assert "waiting for the migration lock" in text and "already exists" not in text


def test_a_storefront_without_its_publishable_key_says_the_catalogue_is_unavailable(site):
    """Deployed before the seed printed the key (publishable_key empty): a page saying so, not an error."""
    port = free_port()
    env = {**site["storefront_env"], "PORT": str(port)}
    del env["MEDUSA_PUBLISHABLE_KEY"]
    log = site["work"] / "storefront-without-key.log"
    with process([*as_app_user(), "node", "server.js"], site["standalone"], env, log) as storefront:
        wait_until(answering(f"http://127.0.0.1:{port}/healthz", storefront, log), 120, "the second storefront answering")
        page = httpx.get(f"http://127.0.0.1:{port}/", timeout=30)
    assert page.status_code == 200
    assert "The catalogue is unavailable right now" in page.text and "Monstera" not in page.text
    assert "MEDUSA_PUBLISHABLE_KEY is not set" in log.read_text()  # the reason is in the server's log


def test_without_a_bucket_uploads_stay_in_the_backends_static_folder_and_are_served_there(site):
    """The local environment and the dev box have no bucket: Medusa's local file provider writes into
    /server/static (the image's one folder its user may write) and the backend serves it at /static/,
    which Caddy routes to it; the URL it returns is under MEDUSA_FILE_URL."""
    port = free_port()
    env = {name: value for name, value in site["backend_env"].items() if not name.startswith("S3_")}
    env |= {"PORT": str(port), "MEDUSA_MIGRATE_ON_START": "false", "MEDUSA_FILE_URL": f"{site['url']}/static"}
    log = site["work"] / "backend-without-bucket.log"
    with process([*as_app_user(), "./start.sh"], site["server_dir"], env, log) as backend:
        base = f"http://127.0.0.1:{port}"
        wait_until(answering(f"{base}/health", backend, log), 300, "the backend without a bucket answering /health")
        token = httpx.post(f"{base}/auth/user/emailpass", json={"email": ADMIN[0], "password": ADMIN[1]}, timeout=30).json()["token"]
        answer = httpx.post(f"{base}/admin/uploads", headers={"Authorization": f"Bearer {token}"}, files={"files": ("fern.png", b"\x89PNG fern", "image/png")}, timeout=60)
        assert answer.status_code == 200, answer.text
        (uploaded,) = answer.json()["files"]
        assert re.fullmatch(re.escape(site["url"]) + r"/static/\d+-fern\.png", uploaded["url"]), uploaded["url"]  # <time>-<name>
        path = uploaded["url"].removeprefix(site["url"])
        stored = site["server_dir"] / path.lstrip("/")
        assert stored.read_bytes() == b"\x89PNG fern"
        if os.geteuid() == 0:
            assert stored.stat().st_uid == APP_USER[0]  # written by the image's user
        assert httpx.get(base + path, timeout=30).content == b"\x89PNG fern"
        # And through Caddy to the site's own backend, which serves the same folder here.
        assert get(site, path).content == b"\x89PNG fern"
