"""Each instance's secrets, owned by the instance: generated at creation, kept encrypted in the store.

A catalog service declares its secrets (PostgreSQL's ``password``, WordPress's database passwords);
its stack takes each as a required sensitive variable. At creation every declared secret is generated
(strong, per instance) unless the request supplies it. The values live in one object beside the
instance's spec, ``clients/<client>/<instance>/secrets``, encrypted with Fernet (AES-128-CBC and
HMAC-SHA256, from ``cryptography``) under the platform's key; they reach the engine only through the
environment of that instance's jobs (``TF_VAR_<name>``), never a record, an event or a log.

A rotation stores the new value as *pending*: plans and applies use it, the deployed value stays
what :meth:`SecretVault.reveal` reports as current until an apply succeeds, then the pending value
becomes current.

The key: ``SPAWNIT_SECRET_KEY`` (one or more Fernet keys separated by ``,``: the first encrypts, all
decrypt, so a key is rotated by putting the new one first), or the file ``SPAWNIT_SECRET_KEY_FILE``
(default ``<data dir>/secret.key``, made 0600 on first use). A store in S3 shared by replicas and
workers needs the same key in each: there the file is not made and a missing key is an error.
"""

from __future__ import annotations

import json
import os
import re
import secrets as random
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

from .store import ObjectStore, Store

SECRET_VALUE = re.compile(r"^[\x21-\x7e]{12,256}$")  # printable ASCII, no space: safe in any env file or shell
GENERATED_BYTES = 24  # 32 URL-safe characters, 192 bits


class VaultError(ValueError):
    """A secret or the vault's key is invalid: the message names the field, the value's rule and what is allowed."""


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def generate() -> str:
    return random.token_urlsafe(GENERATED_BYTES)


def check_value(name: str, value: object) -> str:
    """A supplied secret value, or a :class:`VaultError` that names the secret but never echoes the value."""
    if not isinstance(value, str) or not SECRET_VALUE.fullmatch(value):
        raise VaultError(f"secrets.{name}: the value given is not allowed; allowed: 12-256 printable ASCII characters without spaces")
    return value


def check_supplied(declared: tuple[str, ...], supplied: Mapping[str, str] | None, service: str = "this service") -> dict[str, str]:
    """Supplied secrets, each a declared one with an allowed value, or a :class:`VaultError` naming the
    first that is not (before anything is stored)."""
    supplied = dict(supplied or {})
    for name in sorted(supplied):
        if name not in declared:
            raise VaultError(f"secrets.{name}: is not a secret of {service}; allowed: {', '.join(declared) or 'none'}")
        check_value(name, supplied[name])
    return supplied


def key_from_environment(environ: Mapping[str, str], data_dir: Path, *, shared: bool) -> MultiFernet:
    """The vault's key (see the module's docstring)."""
    text = environ.get("SPAWNIT_SECRET_KEY", "").strip()
    source = "SPAWNIT_SECRET_KEY"
    if not text:
        path = Path(environ.get("SPAWNIT_SECRET_KEY_FILE") or data_dir / "secret.key")
        source = "SPAWNIT_SECRET_KEY_FILE"
        if path.is_file():
            text = path.read_text().strip()
        elif shared and not environ.get("SPAWNIT_SECRET_KEY_FILE"):
            raise VaultError(
                "SPAWNIT_SECRET_KEY: not set; allowed: a Fernet key (python -c 'from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())'), "
                "the same in every API replica and worker sharing the store"
            )
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            text = Fernet.generate_key().decode()
            with os.fdopen(descriptor, "w") as handle:
                handle.write(text + "\n")
    try:
        return MultiFernet([Fernet(part.strip().encode()) for part in text.split(",") if part.strip()])
    except (ValueError, TypeError):
        raise VaultError(f"{source}: the key is not allowed; allowed: URL-safe base64 Fernet keys of 32 bytes, separated by ','") from None


class SecretVault:
    """The secrets of every instance, encrypted in the store."""

    def __init__(self, objects: ObjectStore, key: MultiFernet) -> None:
        self.objects, self.key = objects, key

    @staticmethod
    def _key(client: str, instance: str) -> str:
        return Store.instance_prefix(client, instance) + "secrets"

    def _read(self, client: str, instance: str) -> dict[str, Any]:
        data = self.objects.get(self._key(client, instance))
        if data is None:
            return {}
        try:
            return json.loads(self.key.decrypt(data))
        except InvalidToken:
            raise VaultError(f"secrets of {client}/{instance}: cannot be decrypted with the configured SPAWNIT_SECRET_KEY; allowed: the key they were written with") from None

    def _write(self, client: str, instance: str, entries: dict[str, Any]) -> None:
        self.objects.put(self._key(client, instance), self.key.encrypt(json.dumps(entries, sort_keys=True).encode()))

    def seal(self, text: str) -> str:
        """A value encrypted with the vault's key, for a setting that is itself a secret (a webhook's)."""
        return self.key.encrypt(text.encode()).decode()

    def unseal(self, token: str) -> str:
        try:
            return self.key.decrypt(token.encode()).decode()
        except InvalidToken:
            raise VaultError("a sealed setting cannot be read with SPAWNIT_SECRET_KEY (another key sealed it); allowed: the key it was sealed with, first or among the keys") from None

    def create(self, client: str, instance: str, declared: tuple[str, ...], supplied: Mapping[str, str] | None = None) -> list[str]:
        """Store the instance's secrets: each declared one supplied or generated. Returns the names generated."""
        supplied = check_supplied(declared, supplied)
        entries = {
            name: {"value": supplied.get(name) or generate(), "created_at": _now(), "generated": name not in supplied} for name in declared
        }
        generated = [name for name in declared if name not in supplied]
        if entries:
            self._write(client, instance, entries)
        return generated

    def for_job(self, client: str, instance: str) -> dict[str, str]:
        """name -> value a job hands the engine: the pending value where a rotation waits to be applied."""
        return {name: entry.get("pending", entry["value"]) for name, entry in self._read(client, instance).items()}

    def describe(self, client: str, instance: str) -> list[dict[str, Any]]:
        """Each secret's name and dates, whether it was generated and whether a rotation is pending: no value."""
        return [
            {"name": name, "created_at": entry["created_at"], "rotated_at": entry.get("rotated_at"), "generated": entry["generated"], "pending": "pending" in entry}
            for name, entry in sorted(self._read(client, instance).items())
        ]

    def reveal(self, client: str, instance: str, name: str) -> dict[str, Any]:
        entries = self._read(client, instance)
        if name not in entries:
            raise LookupError(f"secret: {name!r} does not exist; allowed: {', '.join(sorted(entries)) or 'none'}")
        entry = entries[name]
        return {"name": name, "value": entry["value"], "pending": entry.get("pending")}

    def rotate(self, client: str, instance: str, name: str, value: str | None = None) -> None:
        """A new value, pending until an apply deploys it."""
        entries = self._read(client, instance)
        if name not in entries:
            raise LookupError(f"secret: {name!r} does not exist; allowed: {', '.join(sorted(entries)) or 'none'}")
        entries[name]["pending"] = check_value(name, value) if value is not None else generate()
        entries[name]["rotated_at"] = _now()
        self._write(client, instance, entries)

    def deployed(self, client: str, instance: str) -> None:
        """An apply succeeded: pending values are now the deployed ones."""
        entries = self._read(client, instance)
        changed = False
        for entry in entries.values():
            if "pending" in entry:
                entry["value"] = entry.pop("pending")
                changed = True
        if changed:
            self._write(client, instance, entries)
