"""The GreenLeaf application on Docker only, for developers without an AWS account."""

from __future__ import annotations

from cdktf import Fn, TerraformOutput, TerraformVariable
from constructs import Construct

from ..constructs._common import SpawnitStack, asset, sensitive_variable
from ..constructs.app import AppRelease
from ..constructs.docker import DockerNetwork, DockerService, DockerVolume, HealthCheck, Mount, PortMapping, docker_provider


class LocalEnvStack(SpawnitStack):
    """PostgreSQL, Redis, the Medusa backend, the storefront and Caddy, with the same images and the
    same Caddyfile as the AWS environments. Open http://localhost:<http_port>/ once deployed.

    Secrets (database password, JWT and cookie secrets) are sensitive variables: ``TF_VAR_db_password``...
    The storefront's publishable key (printed by the backend's seed script) is ``TF_VAR_publishable_key``.
    """

    def __init__(
        self,
        scope: Construct,
        id: str = "local",
        *,
        release: AppRelease | None = None,
        docker_host: str = "unix:///var/run/docker.sock",
        http_port: int = 8080,
        name: str = "greenleaf-local",
    ) -> None:
        super().__init__(scope, id)
        if not 1024 <= http_port <= 65535:
            raise ValueError(f"LocalEnvStack http_port: {http_port} is not allowed; allowed: 1024 to 65535")
        release = release or AppRelease()
        docker_provider(self, host=docker_host)
        secrets = {
            key: sensitive_variable(self, key, f"{key} of the local environment")
            for key in ("db_password", "jwt_secret", "cookie_secret")
        }
        network = DockerNetwork(self, "network", name=name)
        volumes = {label: DockerVolume(self, f"{label}-data", name=f"{name}-{label}") for label in ("postgres", "redis", "caddy", "media")}

        def service(alias: str, **props: object) -> DockerService:
            return DockerService(self, f"{alias}-service", name=f"{name}-{alias}", network=network, aliases=[alias], labels={"spawnit.environment": "local"}, **props)

        postgres = service(
            "postgres",
            image="postgres:16-alpine",
            env={"POSTGRES_DB": "medusa", "POSTGRES_USER": "medusa", "POSTGRES_PASSWORD": secrets["db_password"].string_value},
            mounts=[Mount(volumes["postgres"], "/var/lib/postgresql/data")],
            health=HealthCheck(("CMD-SHELL", "pg_isready -U medusa -d medusa")),
        )
        redis = service(
            "redis",
            image="redis:7-alpine",
            mounts=[Mount(volumes["redis"], "/data")],
            command=["redis-server", "--appendonly", "yes"],
            health=HealthCheck(("CMD", "redis-cli", "ping")),
        )
        database_url = "postgres://medusa:" + Fn.urlencode(secrets["db_password"].string_value) + "@postgres:5432/medusa"
        backend = service(
            "backend",
            image=release.backend_image,
            env={
                "NODE_ENV": "development",
                "DATABASE_URL": database_url,
                "REDIS_URL": "redis://redis:6379",
                "JWT_SECRET": secrets["jwt_secret"].string_value,
                "COOKIE_SECRET": secrets["cookie_secret"].string_value,
                "MEDUSA_FILE_URL": f"http://localhost:{http_port}/static",  # uploads' public address
            },
            # Uploads (no bucket here): a volume, which takes the image's folder and its owner at first use.
            mounts=[Mount(volumes["media"], "/server/static")],
            depends_on=[postgres, redis],
        )
        publishable_key = TerraformVariable(
            self,
            "publishable_key",
            type="string",
            default=release.publishable_key,
            description="The storefront's Medusa publishable API key (public by design), printed by the backend's seed script",
        )
        storefront = service(
            "storefront",
            image=release.storefront_image,
            env={"MEDUSA_BACKEND_URL": "http://backend:9000", "MEDUSA_PUBLISHABLE_KEY": publishable_key.string_value},
            depends_on=[backend],
        )
        self.caddy = service(
            "caddy",
            image=release.caddy_image,
            ports=[PortMapping(80, http_port)],
            mounts=[Mount(volumes["caddy"], "/data")],
            files={"/etc/caddy/Caddyfile": asset("app/Caddyfile")},
            depends_on=[backend, storefront],
        )
        TerraformOutput(self, "url", value=f"http://localhost:{http_port}/")
