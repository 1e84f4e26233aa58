"""The catalog as Python classes, as it was before its services became templates: the reference the
built-in templates are compared with (tests/test_templates.py), never registered in the catalog."""

from __future__ import annotations

from typing import Annotated, ClassVar, Literal

from pydantic import Field, StringConstraints, field_validator

from spawnit.shared import KEYCLOAK_IMAGE, MINIO_COMMAND, MINIO_IMAGE, keycloak_health, minio_health
from spawnit.services.base import CatalogService, ContainerSpec, Health, ImageBuild, ServiceParameters, ServicePort

Identifier = Annotated[str, StringConstraints(pattern=r"^[a-z_][a-z0-9_]{0,62}$")]
Port = Annotated[int, Field(ge=1024, le=65535)]


def shell_health(command: str) -> Health:
    return Health(("CMD-SHELL", command))


# Databases and storage -------------------------------------------------------------------


class PostgresParameters(ServiceParameters):
    version: Literal["14", "15", "16", "17"] = Field("16", description="PostgreSQL major version.")
    database: Identifier = Field("app", description="Database created at first start.")
    username: Identifier = Field("app", description="Owner of the database.")
    port: Port = Field(5432, description="Published port.")
    memory_mb: int = Field(512, ge=128, le=65536, description="Memory limit of the container.")


class PostgreSQL(CatalogService, register=False):
    name = "postgresql"
    category = "database"
    description = "PostgreSQL relational database with a persistent volume."
    Parameters = PostgresParameters
    secrets: ClassVar[tuple[str, ...]] = ("password",)

    def containers(self) -> list[ContainerSpec]:
        p: PostgresParameters = self.parameters
        return [
            ContainerSpec(
                name="postgres",
                image=f"postgres:{p.version}-alpine",
                ports=(ServicePort(5432, p.port, description="PostgreSQL"),),
                env={"POSTGRES_DB": p.database, "POSTGRES_USER": p.username, "PGDATA": "/var/lib/postgresql/data/pgdata"},
                secrets={"POSTGRES_PASSWORD": "password"},
                volumes={"data": "/var/lib/postgresql/data"},
                health=shell_health(f"pg_isready -U {p.username} -d {p.database}"),
                memory_mb=p.memory_mb,
            )
        ]


class RedisParameters(ServiceParameters):
    version: Literal["7.2", "7.4"] = Field("7.4", description="Redis version.")
    port: Port = Field(6379, description="Published port.")
    maxmemory_mb: int = Field(256, ge=16, le=65536, description="Memory Redis may use for data (allkeys-lru beyond it).")


class Redis(CatalogService, register=False):
    name = "redis"
    category = "database"
    description = "Redis in-memory store, password-protected, with append-only persistence."
    Parameters = RedisParameters
    secrets: ClassVar[tuple[str, ...]] = ("password",)

    def containers(self) -> list[ContainerSpec]:
        p: RedisParameters = self.parameters
        return [
            ContainerSpec(
                name="redis",
                image=f"redis:{p.version}-alpine",
                ports=(ServicePort(6379, p.port, description="Redis"),),
                secrets={"REDIS_PASSWORD": "password"},
                volumes={"data": "/data"},
                command=(
                    "sh", "-c",
                    f'exec redis-server --appendonly yes --maxmemory {p.maxmemory_mb}mb --maxmemory-policy allkeys-lru --requirepass "$REDIS_PASSWORD"',
                ),
                health=shell_health('REDISCLI_AUTH="$REDIS_PASSWORD" redis-cli ping | grep -q PONG'),
                memory_mb=p.maxmemory_mb + 64,
            )
        ]


class MinioParameters(ServiceParameters):
    root_user: Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_-]{3,64}$")] = Field("admin", description="Root user name.")
    api_port: Port = Field(9000, description="Published S3 API port.")
    console_port: Port = Field(9001, description="Published web console port.")


class Minio(CatalogService, register=False):
    name = "minio"
    category = "storage"
    description = "MinIO S3-compatible object storage with its web console."
    Parameters = MinioParameters
    secrets: ClassVar[tuple[str, ...]] = ("root_password",)

    def containers(self) -> list[ContainerSpec]:
        p: MinioParameters = self.parameters
        return [
            ContainerSpec(
                name="minio",
                image=MINIO_IMAGE,
                ports=(ServicePort(9000, p.api_port, description="S3 API"), ServicePort(9001, p.console_port, description="console")),
                env={"MINIO_ROOT_USER": p.root_user},
                secrets={"MINIO_ROOT_PASSWORD": "root_password"},
                volumes={"data": "/data"},
                command=MINIO_COMMAND,
                health=minio_health(),
            )
        ]


# Web ------------------------------------------------------------------------------------


class NginxParameters(ServiceParameters):
    port: Port = Field(8080, description="Published HTTP port.")
    index_html: Annotated[str, StringConstraints(min_length=1, max_length=100_000)] = Field(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>It works</title></head><body><h1>It works</h1></body></html>\n",
        description="The site's index.html.",
    )


class Nginx(CatalogService, register=False):
    name = "nginx"
    category = "web"
    description = "nginx serving a static site."
    Parameters = NginxParameters

    def containers(self) -> list[ContainerSpec]:
        p: NginxParameters = self.parameters
        return [
            ContainerSpec(
                name="nginx",
                image="nginx:1.27-alpine",
                ports=(ServicePort(80, p.port, description="HTTP"),),
                files={"/usr/share/nginx/html/index.html": p.index_html},
                health=Health(("CMD", "wget", "-q", "--spider", "http://127.0.0.1/")),
            )
        ]


class WordpressParameters(ServiceParameters):
    port: Port = Field(8080, description="Published HTTP port.")
    site_url: Annotated[str, StringConstraints(pattern=r"^https?://[A-Za-z0-9.-]+(:\d+)?$")] = Field(
        "http://localhost:8080", description="Address visitors use."
    )


class Wordpress(CatalogService, register=False):
    name = "wordpress"
    category = "web"
    description = "WordPress with its own MariaDB database."
    Parameters = WordpressParameters
    secrets: ClassVar[tuple[str, ...]] = ("db_password", "db_root_password")

    def containers(self) -> list[ContainerSpec]:
        p: WordpressParameters = self.parameters
        return [
            ContainerSpec(
                name="db",
                image="mariadb:11.4",
                env={"MARIADB_DATABASE": "wordpress", "MARIADB_USER": "wordpress"},
                secrets={"MARIADB_PASSWORD": "db_password", "MARIADB_ROOT_PASSWORD": "db_root_password"},
                volumes={"db": "/var/lib/mysql"},
                health=Health(("CMD", "healthcheck.sh", "--connect", "--innodb_initialized")),
            ),
            ContainerSpec(
                name="wordpress",
                image="wordpress:6.6-apache",
                ports=(ServicePort(80, p.port, description="HTTP"),),
                env={"WORDPRESS_DB_HOST": "db:3306", "WORDPRESS_DB_NAME": "wordpress", "WORDPRESS_DB_USER": "wordpress", "WP_HOME": p.site_url},
                secrets={"WORDPRESS_DB_PASSWORD": "db_password"},
                volumes={"content": "/var/www/html"},
                depends_on=("db",),
                health=shell_health("curl -fsS -o /dev/null http://localhost/wp-login.php || exit 1"),
            ),
        ]


class WebappParameters(ServiceParameters):
    git_url: Annotated[str, StringConstraints(pattern=r"^https://[A-Za-z0-9.-]+/[A-Za-z0-9._/-]+?(\.git)?$")] = Field(
        ..., description="Public HTTPS URL of the application's git repository."
    )
    ref: Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9._/-]{1,100}$")] = Field("main", description="Branch or tag to deploy.")
    framework: Literal["django", "flask", "express", "laravel"] = Field(..., description="How to build and start the application.")
    entrypoint: Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_.:-]{1,100}$")] | None = Field(
        None, description="WSGI module:object for django and flask (default: app:app for flask, <project>.wsgi:application is required for django)."
    )
    port: Port = Field(8080, description="Published HTTP port.")

    @field_validator("entrypoint")
    @classmethod
    def _module_object(cls, value: str | None) -> str | None:
        if value is not None and ":" not in value:
            raise ValueError("must be module:object, e.g. mysite.wsgi:application")
        return value


_WEBAPP_DOCKERFILES = {
    "flask": (
        "python:3.12-slim",
        8000,
        "RUN apt-get update && apt-get install -y --no-install-recommends git && rm -rf /var/lib/apt/lists/*\n"
        "RUN git clone --depth 1 --branch \"$REF\" \"$REPOSITORY\" /app\nWORKDIR /app\n"
        "RUN pip install --no-cache-dir -r requirements.txt gunicorn\n"
        "ENV ENTRYPOINT={entrypoint}\n"
        "CMD exec gunicorn --bind 0.0.0.0:8000 \"$ENTRYPOINT\"\n",
    ),
    "express": (
        "node:20-alpine",
        3000,
        "RUN apk add --no-cache git\n"
        "RUN git clone --depth 1 --branch \"$REF\" \"$REPOSITORY\" /app\nWORKDIR /app\n"
        "RUN npm ci --omit=dev\nENV PORT=3000 NODE_ENV=production\n"
        "CMD [\"npm\", \"start\"]\n",
    ),
    "laravel": (
        "composer:2",
        8000,
        "RUN apk add --no-cache git\n"
        "RUN git clone --depth 1 --branch \"$REF\" \"$REPOSITORY\" /app\nWORKDIR /app\n"
        "RUN composer install --no-dev --optimize-autoloader --no-interaction\n"
        "CMD [\"php\", \"artisan\", \"serve\", \"--host=0.0.0.0\", \"--port=8000\"]\n",
    ),
}
_WEBAPP_DOCKERFILES["django"] = _WEBAPP_DOCKERFILES["flask"]


class Webapp(CatalogService, register=False):
    name = "webapp"
    category = "paas"
    description = "Build and run a Django, Flask, Express or Laravel application from a git repository."
    Parameters = WebappParameters
    example: ClassVar[dict[str, object]] = {"git_url": "https://git.example.com/acme/hello-flask.git", "framework": "flask"}

    def containers(self) -> list[ContainerSpec]:
        p: WebappParameters = self.parameters
        if p.framework == "django" and p.entrypoint is None:
            from spawnit.services.base import ParameterError

            raise ParameterError("invalid parameters for service 'webapp':\n  entrypoint = None is required for django: give <project>.wsgi:application")
        base, container_port, steps = _WEBAPP_DOCKERFILES[p.framework]
        dockerfile = (
            f"FROM {base}\nARG REPOSITORY={p.git_url}\nARG REF={p.ref}\n"
            + steps.replace("{entrypoint}", p.entrypoint or "app:app")
            + f"EXPOSE {container_port}\n"
        )
        return [
            ContainerSpec(
                name="app",
                image=ImageBuild(dockerfile=dockerfile, tag=f"spawnit-webapp-{p.framework}:{p.ref.replace('/', '-')}"),
                ports=(ServicePort(container_port, p.port, description="HTTP"),),
            )
        ]


# Developer tools --------------------------------------------------------------------------


class GiteaParameters(ServiceParameters):
    http_port: Port = Field(3000, description="Published web port.")
    ssh_port: Port = Field(2222, description="Published git-over-SSH port.")
    domain: Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9.-]{1,253}$")] = Field("localhost", description="Domain in clone URLs.")


class Gitea(CatalogService, register=False):
    name = "gitea"
    category = "devtools"
    description = "Gitea self-hosted git service (web and SSH), SQLite on a persistent volume."
    Parameters = GiteaParameters

    def containers(self) -> list[ContainerSpec]:
        p: GiteaParameters = self.parameters
        return [
            ContainerSpec(
                name="gitea",
                image="gitea/gitea:1.22",
                ports=(ServicePort(3000, p.http_port, description="HTTP"), ServicePort(22, p.ssh_port, description="SSH")),
                env={
                    "GITEA__server__DOMAIN": p.domain,
                    "GITEA__server__ROOT_URL": f"http://{p.domain}:{p.http_port}/",
                    "GITEA__server__SSH_PORT": str(p.ssh_port),
                    "GITEA__database__DB_TYPE": "sqlite3",
                },
                volumes={"data": "/data"},
                health=Health(("CMD", "curl", "-fsS", "http://localhost:3000/api/healthz")),
            )
        ]


class JenkinsParameters(ServiceParameters):
    http_port: Port = Field(8080, description="Published web port.")
    agent_port: Port = Field(50000, description="Published inbound agent port.")
    memory_mb: int = Field(2048, ge=512, le=65536, description="Memory limit of the container.")


class Jenkins(CatalogService, register=False):
    name = "jenkins"
    category = "devtools"
    description = "Jenkins LTS automation server with a persistent home."
    Parameters = JenkinsParameters

    def containers(self) -> list[ContainerSpec]:
        p: JenkinsParameters = self.parameters
        return [
            ContainerSpec(
                name="jenkins",
                image="jenkins/jenkins:lts-jdk17",
                ports=(ServicePort(8080, p.http_port, description="HTTP"), ServicePort(50000, p.agent_port, description="agents")),
                volumes={"home": "/var/jenkins_home"},
                health=Health(("CMD", "curl", "-fsS", "-o", "/dev/null", "http://localhost:8080/login"), start_period="120s"),
                memory_mb=p.memory_mb,
            )
        ]


class KeycloakParameters(ServiceParameters):
    port: Port = Field(8080, description="Published HTTP port.")
    admin_user: Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_.-]{3,64}$")] = Field("admin", description="Bootstrap administrator.")


class Keycloak(CatalogService, register=False):
    name = "keycloak"
    category = "identity"
    description = "Keycloak identity and access management (OpenID Connect, SAML)."
    Parameters = KeycloakParameters
    secrets: ClassVar[tuple[str, ...]] = ("admin_password",)

    def containers(self) -> list[ContainerSpec]:
        p: KeycloakParameters = self.parameters
        return [
            ContainerSpec(
                name="keycloak",
                image=KEYCLOAK_IMAGE,
                ports=(ServicePort(8080, p.port, description="HTTP"),),
                env={"KC_BOOTSTRAP_ADMIN_USERNAME": p.admin_user, "KC_HEALTH_ENABLED": "true", "KC_HTTP_ENABLED": "true", "KC_HOSTNAME_STRICT": "false"},
                secrets={"KC_BOOTSTRAP_ADMIN_PASSWORD": "admin_password"},
                volumes={"data": "/opt/keycloak/data"},
                command=("start-dev",),
                health=keycloak_health(),
            )
        ]


# Games ----------------------------------------------------------------------------------


class MinecraftParameters(ServiceParameters):
    accept_eula: bool = Field(..., description="Minecraft's EULA must be accepted (https://aka.ms/MinecraftEULA).")
    version: Annotated[str, StringConstraints(pattern=r"^(LATEST|\d+\.\d+(\.\d+)?)$")] = Field("LATEST", description="Minecraft version.")
    port: Port = Field(25565, description="Published game port.")
    max_players: int = Field(10, ge=1, le=200, description="Most players at once.")
    difficulty: Literal["peaceful", "easy", "normal", "hard"] = Field("normal", description="Game difficulty.")
    memory_mb: int = Field(2048, ge=1024, le=32768, description="Java heap and container memory.")
    motd: Annotated[str, StringConstraints(max_length=59)] = Field("A SpawnIt server", description="Message of the day.")

    @field_validator("accept_eula")
    @classmethod
    def _eula(cls, accepted: bool) -> bool:
        if not accepted:
            raise ValueError("the Minecraft EULA must be accepted (true) to run a server")
        return accepted


class Minecraft(CatalogService, register=False):
    name = "minecraft"
    category = "games"
    description = "Minecraft Java Edition server."
    Parameters = MinecraftParameters
    example: ClassVar[dict[str, object]] = {"accept_eula": True}

    def containers(self) -> list[ContainerSpec]:
        p: MinecraftParameters = self.parameters
        return [
            ContainerSpec(
                name="minecraft",
                image="itzg/minecraft-server:java21",
                ports=(ServicePort(25565, p.port, description="game"),),
                env={
                    "EULA": "TRUE",
                    "VERSION": p.version,
                    "MAX_PLAYERS": str(p.max_players),
                    "DIFFICULTY": p.difficulty,
                    "MOTD": p.motd,
                    "MEMORY": f"{p.memory_mb * 3 // 4}M",
                },
                volumes={"data": "/data"},
                health=Health(("CMD", "mc-health"), start_period="120s"),
                memory_mb=p.memory_mb,
            )
        ]


LEGACY = {service.name: service for service in (PostgreSQL, Redis, Minio, Nginx, Wordpress, Webapp, Gitea, Jenkins, Keycloak, Minecraft)}
