"""Creates what remote state needs before the first ``tofu init``: the S3 bucket and the lock table.

OpenTofu cannot create the bucket that holds its own state, so this runs with
boto3 first. It is idempotent: what exists is checked and left as it is, what
is missing or off is created or switched on.
"""

from __future__ import annotations

from dataclasses import dataclass

import boto3
from botocore.exceptions import ClientError

LOCK_KEY = "LockID"


@dataclass(frozen=True)
class StateTarget:
    """Where states live: a bucket, and a DynamoDB lock table (None: S3's own lock files only)."""

    bucket: str
    lock_table: str | None
    region: str


class BootstrapError(RuntimeError):
    """Something exists with a shape remote state cannot use."""


def bootstrap_state(target: StateTarget, *, endpoint_url: str | None = None, session: boto3.Session | None = None) -> list[str]:
    """Make sure the state bucket and lock table exist and are configured; returns what was done, one line each."""
    session = session or boto3.Session()
    s3 = session.client("s3", region_name=target.region, endpoint_url=endpoint_url)
    done = _ensure_bucket(s3, target)
    if target.lock_table is not None:
        dynamodb = session.client("dynamodb", region_name=target.region, endpoint_url=endpoint_url)
        done += _ensure_lock_table(dynamodb, target)
    return done


def _ensure_bucket(s3, target: StateTarget) -> list[str]:  # noqa: ANN001 - boto3 clients are untyped
    done = []
    try:
        s3.head_bucket(Bucket=target.bucket)
        done.append(f"bucket {target.bucket}: exists")
    except ClientError as error:
        if error.response["Error"]["Code"] not in ("404", "NoSuchBucket", "NotFound"):
            raise BootstrapError(f"bucket {target.bucket}: cannot be used ({error.response['Error']['Code']}); choose another state_bucket") from None
        arguments = {"Bucket": target.bucket}
        if target.region != "us-east-1":
            arguments["CreateBucketConfiguration"] = {"LocationConstraint": target.region}
        s3.create_bucket(**arguments)
        done.append(f"bucket {target.bucket}: created in {target.region}")
    s3.put_bucket_versioning(Bucket=target.bucket, VersioningConfiguration={"Status": "Enabled"})
    s3.put_bucket_encryption(
        Bucket=target.bucket,
        ServerSideEncryptionConfiguration={"Rules": [{"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"}, "BucketKeyEnabled": True}]},
    )
    s3.put_public_access_block(
        Bucket=target.bucket,
        PublicAccessBlockConfiguration={"BlockPublicAcls": True, "IgnorePublicAcls": True, "BlockPublicPolicy": True, "RestrictPublicBuckets": True},
    )
    done.append(f"bucket {target.bucket}: versioning on, encryption AES256, public access blocked")
    return done


def _ensure_lock_table(dynamodb, target: StateTarget) -> list[str]:  # noqa: ANN001
    try:
        table = dynamodb.describe_table(TableName=target.lock_table)["Table"]
    except ClientError as error:
        if error.response["Error"]["Code"] != "ResourceNotFoundException":
            raise
        dynamodb.create_table(
            TableName=target.lock_table,
            AttributeDefinitions=[{"AttributeName": LOCK_KEY, "AttributeType": "S"}],
            KeySchema=[{"AttributeName": LOCK_KEY, "KeyType": "HASH"}],
            BillingMode="PAY_PER_REQUEST",
            SSESpecification={"Enabled": True},
        )
        dynamodb.get_waiter("table_exists").wait(TableName=target.lock_table, WaiterConfig={"Delay": 1, "MaxAttempts": 60})
        return [f"lock table {target.lock_table}: created ({LOCK_KEY} string hash key, on-demand)"]
    key_schema = table["KeySchema"]
    attributes = {item["AttributeName"]: item["AttributeType"] for item in table["AttributeDefinitions"]}
    if key_schema != [{"AttributeName": LOCK_KEY, "KeyType": "HASH"}] or attributes.get(LOCK_KEY) != "S":
        raise BootstrapError(
            f"lock table {target.lock_table}: key schema {key_schema} is not usable; allowed: a single string hash key named {LOCK_KEY}"
        )
    return [f"lock table {target.lock_table}: exists"]
