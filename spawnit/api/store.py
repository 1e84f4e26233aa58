"""Where the orchestrator keeps everything durable: S3 (MinIO in the platform) or a local folder.

Both stores have one interface and one key layout, so a restart or a second API
replica sees the same specs, job records and logs:

    clients/{client}/{instance}/spec.json          service, target, validated parameters, timestamps
    clients/{client}/{instance}/terraform.tfstate  OpenTofu's state (S3 backend, per instance)
    jobs/{job}.json, jobs/{job}.log                job records and their output
    jobs/active/{job}                              marks the jobs queued or running
"""

from __future__ import annotations

import json
import os
import re
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Protocol

SEGMENT = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}[a-z0-9]$")  # client ids are token subjects (often UUIDs)
ACTIVE_STATUSES = ("queued", "running")
JOB_ID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")


class StoreError(RuntimeError):
    """The store cannot be reached or refused an operation."""


class ObjectStore(Protocol):
    """Bytes by key. Keys are '/'-separated; listing is by prefix."""

    def put(self, key: str, data: bytes, content_type: str = "application/octet-stream") -> None: ...

    def put_new(self, key: str, data: bytes, content_type: str = "application/octet-stream") -> bool: ...

    def get(self, key: str) -> bytes | None: ...

    def delete(self, key: str) -> None: ...

    def list(self, prefix: str) -> list[str]: ...


class LocalObjectStore:
    """Objects as files under ``root``; writes are atomic (write then rename)."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)

    def _path(self, key: str) -> Path:
        path = (self.root / key).resolve()
        if not path.is_relative_to(self.root.resolve()):
            raise StoreError(f"key: {key!r} is not allowed; allowed: a path inside the store")
        return path

    def put(self, key: str, data: bytes, content_type: str = "application/octet-stream") -> None:
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path.parent, delete=False) as handle:
            handle.write(data)
        os.replace(handle.name, path)

    def put_new(self, key: str, data: bytes, content_type: str = "application/octet-stream") -> bool:
        """Write ``key`` only if it does not exist (a hard link fails on an existing name): True if written."""
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path.parent, delete=False) as handle:
            handle.write(data)
        try:
            os.link(handle.name, path)
            return True
        except FileExistsError:
            return False
        finally:
            os.unlink(handle.name)

    def get(self, key: str) -> bytes | None:
        path = self._path(key)
        return path.read_bytes() if path.is_file() else None

    def delete(self, key: str) -> None:
        self._path(key).unlink(missing_ok=True)

    def list(self, prefix: str) -> list[str]:
        """Keys under ``prefix``, walking only the folder the prefix names (not every job and log file)."""
        root = self.root.resolve()
        start = (root / prefix.rsplit("/", 1)[0]) if "/" in prefix else root
        if not start.resolve().is_relative_to(root) or not start.is_dir():
            return []
        return sorted(
            str(path.relative_to(root)) for path in start.rglob("*") if path.is_file() and str(path.relative_to(root)).startswith(prefix)
        )


class S3ObjectStore:
    """Objects in an S3 bucket (AWS, MinIO or any S3-compatible endpoint) through boto3."""

    def __init__(
        self, bucket: str, *, endpoint_url: str | None = None, region: str | None = None, client: Any = None, credentials: tuple[str, str] | None = None
    ) -> None:
        import boto3
        from botocore.config import Config

        self.bucket = bucket
        keys = {"aws_access_key_id": credentials[0], "aws_secret_access_key": credentials[1]} if credentials else {}
        self.client = client or boto3.client(
            "s3", endpoint_url=endpoint_url, region_name=region or "us-east-1", config=Config(s3={"addressing_style": "path"}), **keys
        )

    def put(self, key: str, data: bytes, content_type: str = "application/octet-stream") -> None:
        self._call("put_object", Bucket=self.bucket, Key=key, Body=data, ContentType=content_type)

    def put_new(self, key: str, data: bytes, content_type: str = "application/octet-stream") -> bool:
        """A conditional write (``If-None-Match: *``; S3 user guide, "conditional writes"): True if written,
        False if the key exists (412) or another writer is creating it (409)."""
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            self.client.put_object(Bucket=self.bucket, Key=key, Body=data, ContentType=content_type, IfNoneMatch="*")
            return True
        except ClientError as error:
            if error.response["Error"]["Code"] in ("PreconditionFailed", "ConditionalRequestConflict") or error.response.get("ResponseMetadata", {}).get("HTTPStatusCode") in (409, 412):
                return False
            raise StoreError(f"s3://{self.bucket}/{key}: {error}") from None
        except BotoCoreError as error:
            raise StoreError(f"s3://{self.bucket}/{key}: {error}") from None

    def get(self, key: str) -> bytes | None:
        from botocore.exceptions import ClientError

        try:
            return self.client.get_object(Bucket=self.bucket, Key=key)["Body"].read()
        except ClientError as error:
            if error.response["Error"]["Code"] in ("NoSuchKey", "404"):
                return None
            raise StoreError(f"s3://{self.bucket}/{key}: {error}") from None

    def delete(self, key: str) -> None:
        self._call("delete_object", Bucket=self.bucket, Key=key)

    def list(self, prefix: str) -> list[str]:
        from botocore.exceptions import BotoCoreError, ClientError

        keys: list[str] = []
        try:
            for page in self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=prefix):
                keys += [item["Key"] for item in page.get("Contents", [])]
        except (ClientError, BotoCoreError) as error:
            raise StoreError(f"s3://{self.bucket}/{prefix}: {error}") from None
        return sorted(keys)

    def _call(self, operation: str, **arguments: Any) -> Any:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            return getattr(self.client, operation)(**arguments)
        except (ClientError, BotoCoreError) as error:
            raise StoreError(f"s3://{self.bucket}/{arguments.get('Key', '')}: {error}") from None


def _check_segment(field: str, value: str) -> str:
    if not SEGMENT.fullmatch(value):  # match's $ also matches before a final newline
        raise ValueError(f"{field}: {value!r} is not allowed; allowed: 2-64 lowercase letters, digits and '-'")
    return value


class Store:
    """The orchestrator's records on top of an :class:`ObjectStore`."""

    def __init__(self, objects: ObjectStore) -> None:
        self.objects = objects

    # Instances
    @staticmethod
    def instance_prefix(client: str, instance: str) -> str:
        return f"clients/{_check_segment('client', client)}/{_check_segment('instance', instance)}/"

    @classmethod
    def state_key(cls, client: str, instance: str) -> str:
        return cls.instance_prefix(client, instance) + "terraform.tfstate"

    def create_spec(self, client: str, instance: str, spec: dict[str, Any]) -> bool:
        """Store a new instance's spec only if the name is free, atomically: False if it is taken."""
        return self.objects.put_new(self.instance_prefix(client, instance) + "spec.json", json.dumps(spec, indent=2, sort_keys=True).encode(), "application/json")

    def put_spec(self, client: str, instance: str, spec: dict[str, Any]) -> None:
        self.objects.put(self.instance_prefix(client, instance) + "spec.json", json.dumps(spec, indent=2, sort_keys=True).encode(), "application/json")

    def get_spec(self, client: str, instance: str) -> dict[str, Any] | None:
        data = self.objects.get(self.instance_prefix(client, instance) + "spec.json")
        return json.loads(data) if data is not None else None

    def list_instances(self, client: str | None = None) -> list[tuple[str, str]]:
        """(client, instance) of every stored spec, for one client or all."""
        prefix = f"clients/{_check_segment('client', client)}/" if client else "clients/"
        found = []
        for key in self.objects.list(prefix):
            parts = key.split("/")
            if len(parts) == 4 and parts[3] == "spec.json":
                found.append((parts[1], parts[2]))
        return found

    def delete_instance(self, client: str, instance: str) -> None:
        for key in self.objects.list(self.instance_prefix(client, instance)):
            self.objects.delete(key)

    # Clients' settings
    @staticmethod
    def _client_settings_key(client: str) -> str:
        return f"settings/clients/{_check_segment('client', client)}.json"

    def get_client_settings(self, client: str) -> dict[str, Any]:
        data = self.objects.get(self._client_settings_key(client))
        return json.loads(data) if data is not None else {}

    def put_client_settings(self, client: str, settings: dict[str, Any]) -> None:
        self.objects.put(self._client_settings_key(client), json.dumps(settings, indent=2, sort_keys=True).encode(), "application/json")

    # Jobs
    @staticmethod
    def _job_key(job_id: str, suffix: str) -> str:
        if not JOB_ID.fullmatch(job_id):
            raise ValueError(f"job id: {job_id!r} is not allowed; allowed: a UUID")
        return f"jobs/{job_id}.{suffix}"

    def put_job(self, record: dict[str, Any]) -> None:
        """Save a job record; queued and running jobs are also listed under ``jobs/active/`` so that
        finding them does not read every job ever run."""
        self.objects.put(self._job_key(record["id"], "json"), json.dumps(record, indent=2, sort_keys=True).encode(), "application/json")
        marker = f"jobs/active/{record['id']}"
        if record["status"] in ACTIVE_STATUSES:
            self.objects.put(marker, b"")
        else:
            self.objects.delete(marker)

    def active_jobs(self) -> Iterator[dict[str, Any]]:
        """Records of the jobs saved as queued or running."""
        for key in self.objects.list("jobs/active/"):
            record = self.get_job(key.rsplit("/", 1)[1])
            if record is not None:
                yield record

    def get_job(self, job_id: str) -> dict[str, Any] | None:
        data = self.objects.get(self._job_key(job_id, "json"))
        return json.loads(data) if data is not None else None

    def put_log(self, job_id: str, events: list[dict[str, Any]]) -> None:
        """A job's events so far, one JSON object a line (S3 has no append: the whole log is rewritten)."""
        body = "".join(json.dumps(event, sort_keys=True) + "\n" for event in events).encode()
        self.objects.put(self._job_key(job_id, "log"), body, "application/x-ndjson")

    def get_log(self, job_id: str) -> list[dict[str, Any]]:
        data = self.objects.get(self._job_key(job_id, "log"))
        return [json.loads(line) for line in data.decode().splitlines() if line.strip()] if data else []


def store_from_environment(environ: dict[str, str] | None = None) -> Store:
    """S3 when ``SPAWNIT_S3_ENDPOINT`` or ``SPAWNIT_S3_BUCKET`` is set, else a local folder (``SPAWNIT_DATA_DIR``, default ./spawnit-data).

    The store signs with ``SPAWNIT_S3_ACCESS_KEY_ID`` / ``SPAWNIT_S3_SECRET_ACCESS_KEY`` when set (its own
    credentials, never the names the AWS provider reads), else with the default AWS credential chain."""
    environ = dict(os.environ if environ is None else environ)
    if environ.get("SPAWNIT_S3_ENDPOINT") or environ.get("SPAWNIT_S3_BUCKET"):
        key, secret = environ.get("SPAWNIT_S3_ACCESS_KEY_ID"), environ.get("SPAWNIT_S3_SECRET_ACCESS_KEY")
        return Store(
            S3ObjectStore(
                environ.get("SPAWNIT_S3_BUCKET", "spawnit"),
                endpoint_url=environ.get("SPAWNIT_S3_ENDPOINT"),
                region=environ.get("AWS_REGION"),
                credentials=(key, secret) if key and secret else None,
            )
        )
    return Store(LocalObjectStore(environ.get("SPAWNIT_DATA_DIR", "spawnit-data")))
