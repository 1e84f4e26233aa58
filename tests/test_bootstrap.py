"""spawnit bootstrap against a real HTTP S3/DynamoDB emulator (moto in server mode on 127.0.0.1)."""

from __future__ import annotations

import boto3
import pytest

from spawnit.bootstrap import BootstrapError, StateTarget, bootstrap_state
from spawnit.cli import main

TARGET = StateTarget(bucket="greenleaf-tfstate-eu-west-3", lock_table="greenleaf-tf-lock", region="eu-west-3")


@pytest.fixture(autouse=True)
def fresh_account(aws_account):
    """A fresh emulated account for every test."""


def clients(endpoint):
    return (
        boto3.client("s3", region_name="eu-west-3", endpoint_url=endpoint),
        boto3.client("dynamodb", region_name="eu-west-3", endpoint_url=endpoint),
    )


def test_creates_a_versioned_encrypted_private_bucket_in_the_region(aws_endpoint):
    bootstrap_state(TARGET, endpoint_url=aws_endpoint)
    s3, _ = clients(aws_endpoint)
    assert s3.get_bucket_location(Bucket=TARGET.bucket)["LocationConstraint"] == "eu-west-3"
    assert s3.get_bucket_versioning(Bucket=TARGET.bucket)["Status"] == "Enabled"
    rule = s3.get_bucket_encryption(Bucket=TARGET.bucket)["ServerSideEncryptionConfiguration"]["Rules"][0]
    assert rule["ApplyServerSideEncryptionByDefault"]["SSEAlgorithm"] == "AES256"
    block = s3.get_public_access_block(Bucket=TARGET.bucket)["PublicAccessBlockConfiguration"]
    assert block == {"BlockPublicAcls": True, "IgnorePublicAcls": True, "BlockPublicPolicy": True, "RestrictPublicBuckets": True}


def test_creates_the_lock_table_with_a_lockid_string_hash_key_on_demand(aws_endpoint):
    bootstrap_state(TARGET, endpoint_url=aws_endpoint)
    _, dynamodb = clients(aws_endpoint)
    table = dynamodb.describe_table(TableName=TARGET.lock_table)["Table"]
    assert table["KeySchema"] == [{"AttributeName": "LockID", "KeyType": "HASH"}]
    assert table["AttributeDefinitions"] == [{"AttributeName": "LockID", "AttributeType": "S"}]
    assert table["BillingModeSummary"]["BillingMode"] == "PAY_PER_REQUEST"


def test_is_idempotent(aws_endpoint):
    first = bootstrap_state(TARGET, endpoint_url=aws_endpoint)
    second = bootstrap_state(TARGET, endpoint_url=aws_endpoint)
    assert "created" in first[0] and "created" in first[-1]
    assert second[0] == f"bucket {TARGET.bucket}: exists" and second[-1] == f"lock table {TARGET.lock_table}: exists"


def test_switches_versioning_on_for_an_existing_bucket(aws_endpoint):
    s3, _ = clients(aws_endpoint)
    s3.create_bucket(Bucket=TARGET.bucket, CreateBucketConfiguration={"LocationConstraint": "eu-west-3"})
    bootstrap_state(TARGET, endpoint_url=aws_endpoint)
    assert s3.get_bucket_versioning(Bucket=TARGET.bucket)["Status"] == "Enabled"


def test_refuses_a_lock_table_with_the_wrong_key(aws_endpoint):
    _, dynamodb = clients(aws_endpoint)
    dynamodb.create_table(
        TableName=TARGET.lock_table,
        AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
        KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
        BillingMode="PAY_PER_REQUEST",
    )
    with pytest.raises(BootstrapError, match="allowed: a single string hash key named LockID"):
        bootstrap_state(TARGET, endpoint_url=aws_endpoint)


def test_cli_bootstraps_the_configured_names(aws_endpoint, monkeypatch, tmp_path, capsys):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("SPAWNIT_STATE_BUCKET", "acme-tfstate")
    monkeypatch.setenv("SPAWNIT_STATE_LOCK_TABLE", "acme-tf-lock")
    assert main(["bootstrap", "--endpoint-url", aws_endpoint]) == 0
    output = capsys.readouterr().out
    assert "bucket acme-tfstate: created in eu-west-3" in output and "lock table acme-tf-lock: created" in output
    s3, dynamodb = clients(aws_endpoint)
    assert s3.get_bucket_versioning(Bucket="acme-tfstate")["Status"] == "Enabled"
    assert dynamodb.describe_table(TableName="acme-tf-lock")["Table"]["TableStatus"] == "ACTIVE"
    assert "bucket spotilike-tfstate-eu-west-3: created in eu-west-3" in output  # Spotilike's stacks: a bucket, S3 lock files
    assert s3.get_bucket_versioning(Bucket="spotilike-tfstate-eu-west-3")["Status"] == "Enabled"
    assert [table for table in dynamodb.list_tables()["TableNames"] if "spotilike" in table] == []
