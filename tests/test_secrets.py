"""No secret literal anywhere in the synthesized JSON (user data decoded too)."""

from __future__ import annotations

import base64

import pytest

from spawnit.secretscan import find_secret_literals


def test_no_stack_holds_a_secret_literal(all_stacks):
    assert len(all_stacks) >= 3
    findings = {name: find_secret_literals(stack.document) for name, stack in all_stacks.items()}
    assert findings == {name: [] for name in all_stacks}


@pytest.mark.parametrize(
    "document, reason",
    [
        ({"resource": {"aws_db_instance": {"db": {"password": "hunter2hunter2"}}}}, "key 'password' holds a literal value"),
        ({"resource": {"x": {"y": {"tags": {"k": "AKIAABCDEFGHIJKLMNOP"}}}}}, "AWS access key id"),
        ({"output": {"url": {"value": "postgres://medusa:s3cr3tpass@db:5432/medusa"}}}, "credentials in a URL"),
        ({"x": {"user_data_base64": base64.b64encode(b"#!/bin/sh\nDB_PASSWORD=correcthorsebattery\n").decode()}}, "password assignment"),
        ({"x": {"key": "-----BEGIN RSA PRIVATE KEY-----\nMIIE"}}, "private key"),
    ],
)
def test_the_scan_catches_each_kind_of_literal(document, reason):
    assert reason in [finding.reason for finding in find_secret_literals(document)]


@pytest.mark.parametrize(
    "document",
    [
        {"db": {"password": "${random_password.db.result}", "manage_master_user_password": True}},
        {"url": "rediss://${aws_elasticache_replication_group.r.primary_endpoint_address}:6379"},
        {"script": 'DATABASE_URL="postgres://$(urlencode "$user"):$(urlencode "$pass")@$DB_HOST:5432/medusa"'},
        {"compose": "POSTGRES_PASSWORD_FILE: /run/secrets/postgres_password"},
    ],
)
def test_references_and_boot_time_lookups_are_not_literals(document):
    assert find_secret_literals(document) == []
