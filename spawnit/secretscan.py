"""Finds secret literals in synthesized Terraform JSON: passwords, keys and tokens written as plain values.

A reference (``${...}``) is never a literal; a boolean or number is never a
secret. User data is decoded from base64 (and gzip, when compressed) and read too.
"""

from __future__ import annotations

import base64
import binascii
import gzip
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

SECRET_KEY = re.compile(r"(^|_)(password|passwd|secret|token|private_key|secret_key|access_key|auth_token|api_key)$", re.IGNORECASE)
SECRET_VALUES = {
    "AWS access key id": re.compile(r"\b(AKIA|ASIA)[0-9A-Z]{16}\b"),
    "private key": re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----"),
    "credentials in a URL": re.compile(r"[a-z][a-z0-9+.-]*://[^\s:/@'\"$]+:(?!\$\{)[^\s@/'\"]+@"),
    "password assignment": re.compile(r"(?im)^[ \t]*[A-Z_]*(PASSWORD|SECRET|TOKEN)[A-Z_]*[ \t]*[=:][ \t]*['\"]?(?![$/])[A-Za-z0-9+/_\-]{8,}"),
}
BASE64_KEYS = ("user_data", "user_data_base64")
REFERENCE_ONLY = re.compile(r"^\$?\$\{.*\}$", re.DOTALL)  # a reference, or an escaped placeholder read at run time


@dataclass(frozen=True)
class Finding:
    path: str
    reason: str

    def __str__(self) -> str:
        return f"{self.path}: {self.reason}"


def find_secret_literals(document: Any, path: str = "") -> list[Finding]:
    """Every place in ``document`` that holds a secret as a literal value."""
    return list(_walk(document, path))


def _walk(node: Any, path: str) -> Iterator[Finding]:
    if isinstance(node, dict):
        for key, value in node.items():
            child = f"{path}.{key}" if path else str(key)
            if isinstance(value, str) and SECRET_KEY.search(str(key)) and value and not REFERENCE_ONLY.match(value):
                yield Finding(child, f"key {key!r} holds a literal value")
            if isinstance(value, str) and key in BASE64_KEYS:
                yield from _scan_text(_decode(value), f"{child} (decoded)")
            yield from _walk(value, child)
    elif isinstance(node, list):
        for index, item in enumerate(node):
            yield from _walk(item, f"{path}[{index}]")
    elif isinstance(node, str):
        yield from _scan_text(node, path)


def _scan_text(text: str, path: str) -> Iterator[Finding]:
    for reason, pattern in SECRET_VALUES.items():
        if pattern.search(text):
            yield Finding(path, reason)


def _decode(value: str) -> str:
    try:
        raw = base64.b64decode(value, validate=True)
        if raw[:2] == b"\x1f\x8b":  # gzip-compressed user data (over EC2's 16 KB)
            raw = gzip.decompress(raw)
        return raw.decode("utf-8")
    except (binascii.Error, UnicodeDecodeError, ValueError, OSError, EOFError):
        return value
