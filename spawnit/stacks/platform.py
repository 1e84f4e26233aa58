"""SpawnIt deploys itself on Docker, in four stacks that can be destroyed one by one and deploy in order
with ``cdktf deploy 'platform-*'``: network, volumes, instances (MinIO, Keycloak, SpawnIt), configs.

Later stacks take earlier stacks' objects (cross-stack references, not copied names).
Every password is a sensitive stack variable (``TF_VAR_...``), never a literal.
"""

from __future__ import annotations

import json
from pathlib import Path

from cdktf import Fn, Op, TerraformOutput, TerraformStack, Token
from cdktf_cdktf_provider_aws.provider import AwsProvider, AwsProviderEndpoints
from cdktf_cdktf_provider_aws.s3_bucket import S3Bucket
from cdktf_cdktf_provider_aws.s3_bucket_versioning import S3BucketVersioningA, S3BucketVersioningVersioningConfiguration
from cdktf_cdktf_provider_aws.s3_object import S3Object
from constructs import Construct

from .platform_settings import PlatformSettings
from ..constructs._common import SpawnitStack, optional_sensitive_variable, sensitive_variable
from ..constructs.storage import tidy_lifecycle
from ..constructs.docker import DockerNetwork, DockerService, DockerVolume, HostMount, ImageBuildSpec, Mount, PortMapping, built_image, docker_provider
from .realm import API_CLIENT, API_CLIENT_SECRET_ENV, realm_document, user_password_env, user_password_variable
from ..shared import MINIO_COMMAND, Health, keycloak_health, minio_health

STORE_FOLDERS = ("clients/", "templates/", "tfstates/")
REALM_FILE = "/opt/keycloak/data/import/spawnit-realm.json"
PLATFORM_IMAGE = "spawnit/platform:local"
FRONT_CADDYFILE = "/etc/caddy/Caddyfile"


def front_caddyfile(upstreams: list[str], listen: int = 8000) -> str:
    """Caddy in front of several API replicas (``host:port`` each): round robin among the healthy ones
    (``/healthz``), a request that cannot reach one replica retried on another for up to 5 s, event streams passed through as they come (``flush_interval -1``, Caddy's
    reverse_proxy docs)."""
    return (
        f":{listen} {{\n"
        f"\treverse_proxy {' '.join(upstreams)} {{\n"
        "\t\tlb_policy round_robin\n"
        "\t\tlb_try_duration 5s\n"
        "\t\thealth_uri /healthz\n"
        "\t\thealth_interval 10s\n"
        "\t\tflush_interval -1\n"
        "\t}\n"
        "}\n"
    )


class PlatformNetworkStack(SpawnitStack):
    """platform-network: the Docker network every platform container joins."""

    def __init__(self, scope: Construct, settings: PlatformSettings, id: str = "platform-network") -> None:
        super().__init__(scope, id)
        docker_provider(self, host=settings.docker_host)
        self.network = DockerNetwork(self, "network", name=settings.network, labels={"spawnit.platform": "network"})


class PlatformVolumesStack(SpawnitStack):
    """platform-volumes: MinIO's objects and Keycloak's database survive the containers."""

    def __init__(self, scope: Construct, settings: PlatformSettings, id: str = "platform-volumes") -> None:
        super().__init__(scope, id)
        docker_provider(self, host=settings.docker_host)
        self.minio_data = DockerVolume(self, "minio-data", name=f"{settings.network}-minio-data", labels={"spawnit.platform": "volumes"})
        self.keycloak_data = DockerVolume(self, "keycloak-data", name=f"{settings.network}-keycloak-data", labels={"spawnit.platform": "volumes"})
        self.valkey_data = DockerVolume(self, "valkey-data", name=f"{settings.network}-valkey-data", labels={"spawnit.platform": "volumes"})


class PlatformInstancesStack(SpawnitStack):
    """platform-instances: MinIO (S3 API + console), Keycloak 26 with the generated realm, Valkey (the
    orchestrator's queue, leases and event streams), SpawnIt's API replicas and workers built from this
    repository's Dockerfile, and a Caddy front when there are several API replicas. Each waits for what
    it needs to be healthy."""

    def __init__(
        self,
        scope: Construct,
        settings: PlatformSettings,
        *,
        network: PlatformNetworkStack,
        volumes: PlatformVolumesStack,
        id: str = "platform-instances",
    ) -> None:
        super().__init__(scope, id)
        docker_provider(self, host=settings.docker_host)
        bind = str(settings.bind_address)
        net = network.network.name
        minio_user = sensitive_variable(self, "minio_root_user", "MinIO root user, the S3 access key")
        minio_password = sensitive_variable(self, "minio_root_password", "MinIO root password")
        keycloak_password = sensitive_variable(self, "keycloak_admin_password", "Keycloak bootstrap administrator password")
        api_client_secret = sensitive_variable(self, "api_client_secret", f"Secret of the {API_CLIENT} OIDC client")
        user_passwords = {
            user_password_env(user): sensitive_variable(self, user_password_variable(user), f"Initial password of {user.username} (changed at first login)")
            for user in settings.users
        }

        self.minio = DockerService(
            self,
            "minio",
            name=f"{settings.network}-minio",
            image=settings.minio_image,
            network=net,
            aliases=["minio"],
            ports=[PortMapping(9000, settings.minio_api_port, host_ip=bind), PortMapping(9001, settings.minio_console_port, host_ip=bind)],
            env={"MINIO_ROOT_USER": minio_user.string_value, "MINIO_ROOT_PASSWORD": minio_password.string_value},
            mounts=[Mount(volumes.minio_data.name, "/data")],
            command=list(MINIO_COMMAND),
            health=minio_health(),
            labels={"spawnit.platform": "minio"},
        )
        self.realm = realm_document(settings)
        self.keycloak = DockerService(
            self,
            "keycloak",
            name=f"{settings.network}-keycloak",
            image=settings.keycloak_image,
            network=net,
            aliases=["keycloak"],
            ports=[PortMapping(8080, settings.keycloak_port, host_ip=bind)],
            env={
                "KC_BOOTSTRAP_ADMIN_USERNAME": settings.keycloak_admin,
                "KC_BOOTSTRAP_ADMIN_PASSWORD": keycloak_password.string_value,
                "KC_HOSTNAME": f"http://localhost:{settings.keycloak_port}",
                "KC_HOSTNAME_BACKCHANNEL_DYNAMIC": "true",
                "KC_HTTP_ENABLED": "true",
                "KC_HEALTH_ENABLED": "true",
                "KC_DB": "dev-file",
                API_CLIENT_SECRET_ENV: api_client_secret.string_value,
                **{env: variable.string_value for env, variable in user_passwords.items()},
            },
            mounts=[Mount(volumes.keycloak_data.name, "/opt/keycloak/data")],
            command=["start", "--import-realm"],
            files={REALM_FILE: json.dumps(self.realm, indent=2)},
            health=keycloak_health(),
            labels={"spawnit.platform": "keycloak"},
        )
        valkey_password = sensitive_variable(self, "valkey_password", "Password of the orchestrator's Valkey")
        self.valkey = DockerService(
            self,
            "valkey",
            name=f"{settings.network}-valkey",
            image=settings.valkey_image,
            network=net,
            aliases=["valkey"],
            env={"VALKEY_PASSWORD": valkey_password.string_value},  # for the health check's valkey-cli only
            mounts=[Mount(volumes.valkey_data.name, "/data")],
            # The image's entrypoint runs a first argument ending in .conf as `valkey-server FILE`, after
            # dropping root for the image's valkey user (valkey-container's docker-entrypoint.sh); the password
            # is in that file, never on a command line (`ps` shows every argument).
            command=[VALKEY_CONF],
            files={VALKEY_CONF: valkey_config(settings.valkey_maxmemory_mb, _config_quoted(valkey_password.string_value))},
            memory_mb=settings.valkey_maxmemory_mb + VALKEY_OVERHEAD_MB,
            # valkey-cli reads the password from VALKEYCLI_AUTH (valkey.io/topics/cli), not from its command line
            health=Health(("CMD-SHELL", 'VALKEYCLI_AUTH="$VALKEY_PASSWORD" valkey-cli ping | grep -q PONG')),
            labels={"spawnit.platform": "valkey"},
        )
        issuer = f"http://localhost:{settings.keycloak_port}/realms/{settings.realm}"
        secret_key = sensitive_variable(self, "secret_key", "Key encrypting the instances' secrets in the store (a Fernet key), shared by the API and the workers")
        env = {
            "SPAWNIT_S3_ENDPOINT": "http://minio:9000",
            "SPAWNIT_S3_BUCKET": settings.bucket,
            # The store's own credentials: names no provider reads, so a job's aws target never signs with MinIO's keys
            "SPAWNIT_S3_ACCESS_KEY_ID": minio_user.string_value,
            "SPAWNIT_S3_SECRET_ACCESS_KEY": minio_password.string_value,
            "SPAWNIT_SECRET_KEY": secret_key.string_value,
            "AWS_REGION": "us-east-1",
            "SPAWNIT_REDIS_URL": f"redis://:{Fn.urlencode(valkey_password.string_value)}@valkey:6379/0",
        }
        image = built_image(self, "platform-image", ImageBuildSpec(context=settings.build_context or str(Path.cwd()), tag=PLATFORM_IMAGE))
        worker_env, worker_mounts, worker_groups = self._target_access(settings)
        # the API reads the cluster (pre-flight, live status) with the token; deploying is the workers' work
        api_proxmox = {key: value for key, value in worker_env.items() if key.startswith(("SPAWNIT_PROXMOX_ENDPOINT", "SPAWNIT_PROXMOX_TOKEN_"))}
        self.workers = [
            DockerService(
                self,
                f"worker-{index}",
                name=f"{settings.network}-worker-{index}",
                image=image,
                network=net,
                env={**env, **worker_env},
                mounts=worker_mounts,
                group_add=worker_groups,
                command=["spawnit", "worker", "--concurrency", str(settings.worker_concurrency)],
                # healthy while the worker can reach its queue
                health=Health(("CMD", "python3", "-c", "import os, redis; redis.Redis.from_url(os.environ['SPAWNIT_REDIS_URL']).ping()")),
                labels={"spawnit.platform": "worker"},
                depends_on=[self.minio, self.valkey],
            )
            for index in range(1, settings.workers + 1)
        ]
        fronted = settings.api_replicas > 1
        self.apis = [
            DockerService(
                self,
                "api" if index == 1 else f"api-{index}",
                name=f"{settings.network}-api" if index == 1 else f"{settings.network}-api-{index}",
                image=image,
                network=net,
                aliases=["spawnit"],
                ports=[] if fronted else [PortMapping(8000, settings.api_port, host_ip=bind)],
                env={
                    **env,
                    **api_proxmox,
                    "SPAWNIT_OIDC_ISSUER": issuer,
                    "SPAWNIT_OIDC_JWKS_URL": f"http://keycloak:8080/realms/{settings.realm}/protocol/openid-connect/certs",
                    "SPAWNIT_OIDC_AUDIENCE": API_CLIENT,
                },
                command=["spawnit", "serve", "--host", "0.0.0.0", "--port", "8000", "--worker-concurrency", "0"],  # the workers run the jobs
                health=Health(("CMD", "python3", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/healthz')")),
                labels={"spawnit.platform": "api"},
                depends_on=[self.minio, self.keycloak, self.valkey],
            )
            for index in range(1, settings.api_replicas + 1)
        ]
        self.api = self.apis[0]
        self.front = None
        if fronted:
            self.front = DockerService(
                self,
                "front",
                name=f"{settings.network}-front",
                image=settings.caddy_image,
                network=net,
                ports=[PortMapping(8000, settings.api_port, host_ip=bind)],
                files={FRONT_CADDYFILE: front_caddyfile([f"{api.name}:8000" for api in self.apis])},
                health=Health(("CMD", "wget", "-q", "-O", "/dev/null", "http://127.0.0.1:8000/healthz")),
                labels={"spawnit.platform": "front"},
                depends_on=self.apis,
            )
        TerraformOutput(self, "s3_endpoint", value=f"http://{bind}:{settings.minio_api_port}")
        TerraformOutput(self, "minio_console", value=f"http://{bind}:{settings.minio_console_port}")
        TerraformOutput(self, "oidc_issuer", value=issuer)
        TerraformOutput(self, "web_ui", value=f"http://localhost:{settings.api_port}")


    def _target_access(self, settings: PlatformSettings) -> tuple[dict[str, str], list[HostMount], list[str]]:
        """What the workers need to deploy to each target, and nothing the store uses (see
        :mod:`spawnit.api.credentials`): the Docker engine's socket (``docker``), the target account's keys
        (``aws``), the cluster's endpoint, token and root@pam login (``proxmox``). A target left unset
        answers "not reachable" in the worker's start lines and metrics."""
        env: dict[str, str] = {}
        mounts: list[HostMount] = []
        groups: list[str] = []
        if settings.docker_host.startswith("unix://"):  # the engine the platform runs on deploys the docker target
            socket = settings.docker_host.removeprefix("unix://")
            mounts.append(HostMount(socket, "/var/run/docker.sock"))
            groups.append(str(settings.docker_socket_group))  # the socket's group: the image's user is not root
        aws_key = optional_sensitive_variable(self, "target_aws_access_key_id", "Access key of the AWS account the aws target deploys to")
        aws_secret = optional_sensitive_variable(self, "target_aws_secret_access_key", "Secret key of the AWS account the aws target deploys to")
        env |= {"SPAWNIT_AWS_ACCESS_KEY_ID": aws_key.string_value, "SPAWNIT_AWS_SECRET_ACCESS_KEY": aws_secret.string_value}
        if settings.target_aws_role_arn:
            env["SPAWNIT_AWS_ROLE_ARN"] = settings.target_aws_role_arn
        if settings.proxmox_endpoint:
            env["SPAWNIT_PROXMOX_ENDPOINT"] = settings.proxmox_endpoint
            token = optional_sensitive_variable(self, "proxmox_token_secret", "Secret of the Proxmox API token the proxmox target uses")
            password = optional_sensitive_variable(self, "proxmox_root_password", "Password of root@pam, needed for LXC guests (Proxmox refuses their flags to tokens)")
            env |= {"SPAWNIT_PROXMOX_TOKEN_SECRET": token.string_value, "SPAWNIT_PROXMOX_PASSWORD": password.string_value}
            if settings.proxmox_token_id:
                env["SPAWNIT_PROXMOX_TOKEN_ID"] = settings.proxmox_token_id
            # root@pam only with its password: a login without one is a setting error for the worker
            env["SPAWNIT_PROXMOX_USERNAME"] = Token.as_string(Fn.conditional(Op.lt(Fn.length_of(password.string_value), 1), "", "root@pam"))  # cdktf renders Op.eq(x, "" or 0) as "== undefined"
        return env, mounts, groups


VALKEY_CONF = "/usr/local/etc/valkey/spawnit.conf"
VALKEY_OVERHEAD_MB = 128  # the container's limit above maxmemory: the server's own memory, AOF rewrites' buffers


def _config_quoted(value: str) -> str:
    """A Terraform expression: ``value`` escaped for a double-quoted string of a Valkey config file, whose
    parser reads backslash, quote and newline escapes there. ``Fn.raw_string`` escapes the quotes of its
    text but nothing else, so backslashes and newlines below are already in HCL's own escapes."""
    raw = Fn.raw_string
    backslashes = Fn.replace(value, raw("\\\\"), raw("\\\\\\\\"))  # a backslash -> two
    quotes = Fn.replace(backslashes, raw('"'), raw('\\\\"'))  # a quote -> backslash, quote
    return Fn.replace(quotes, raw("\\n"), raw("\\\\n"))  # a newline -> backslash, n


def valkey_config(maxmemory_mb: int, password: str) -> str:
    """The orchestrator's Valkey: a queue and its leases must never be evicted (noeviction makes a full
    Valkey refuse writes instead), bounded by ``maxmemory`` so that noeviction ever applies, its data kept
    (append-only file), a password required."""
    return (
        "appendonly yes\n"
        f"maxmemory {maxmemory_mb}mb\n"
        "maxmemory-policy noeviction\n"
        f'requirepass "{password}"\n'
    )


class PlatformConfigsStack(SpawnitStack):
    """platform-configs: the store in MinIO, through the AWS provider pointed at MinIO's S3 API (path style):
    the bucket ``spawnit``, versioned, with the folders ``clients/``, ``templates/`` and ``tfstates/``."""

    def __init__(self, scope: Construct, settings: PlatformSettings, *, instances: PlatformInstancesStack, id: str = "platform-configs") -> None:
        super().__init__(scope, id)
        self.add_dependency(instances)
        minio_user = sensitive_variable(self, "minio_root_user", "MinIO root user, the S3 access key")
        minio_password = sensitive_variable(self, "minio_root_password", "MinIO root password")
        AwsProvider(
            self,
            "minio",
            region="us-east-1",
            access_key=minio_user.string_value,
            secret_key=minio_password.string_value,
            s3_use_path_style=True,
            skip_credentials_validation=True,
            skip_metadata_api_check="true",
            skip_region_validation=True,
            skip_requesting_account_id=True,
            endpoints=[AwsProviderEndpoints(s3=f"http://{settings.bind_address}:{settings.minio_api_port}")],
        )
        self.bucket = S3Bucket(self, "bucket", bucket=settings.bucket)
        S3BucketVersioningA(self, "versioning", bucket=self.bucket.id, versioning_configuration=S3BucketVersioningVersioningConfiguration(status="Enabled"))
        tidy_lifecycle(self, "lifecycle", bucket=self.bucket.id, noncurrent_version_days=90)
        self.folders = [
            S3Object(self, f"folder-{folder.rstrip('/')}", bucket=self.bucket.id, key=folder, content="", content_type="application/x-directory")
            for folder in STORE_FOLDERS
        ]


def add_platform_stacks(app: Construct, settings: PlatformSettings) -> list[TerraformStack]:
    """The four platform stacks, wired in dependency order."""
    network = PlatformNetworkStack(app, settings)
    volumes = PlatformVolumesStack(app, settings)
    instances = PlatformInstancesStack(app, settings, network=network, volumes=volumes)
    configs = PlatformConfigsStack(app, settings, instances=instances)
    return [network, volumes, instances, configs]
