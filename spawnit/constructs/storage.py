"""Object storage for product media."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol

from cdktf_cdktf_provider_aws.s3_bucket import S3Bucket
from cdktf_cdktf_provider_aws.s3_bucket_lifecycle_configuration import (
    S3BucketLifecycleConfiguration,
    S3BucketLifecycleConfigurationRule,
    S3BucketLifecycleConfigurationRuleAbortIncompleteMultipartUpload,
    S3BucketLifecycleConfigurationRuleFilter,
    S3BucketLifecycleConfigurationRuleNoncurrentVersionExpiration,
)
from cdktf_cdktf_provider_aws.s3_bucket_policy import S3BucketPolicy
from cdktf_cdktf_provider_aws.s3_bucket_ownership_controls import S3BucketOwnershipControls, S3BucketOwnershipControlsRule
from cdktf_cdktf_provider_aws.s3_bucket_public_access_block import S3BucketPublicAccessBlock
from cdktf_cdktf_provider_aws.s3_bucket_server_side_encryption_configuration import (
    S3BucketServerSideEncryptionConfigurationA,
    S3BucketServerSideEncryptionConfigurationRuleA,
    S3BucketServerSideEncryptionConfigurationRuleApplyServerSideEncryptionByDefaultA,
)
from cdktf_cdktf_provider_aws.s3_bucket_versioning import S3BucketVersioningA, S3BucketVersioningVersioningConfiguration
from constructs import Construct

from ._common import policy_document
from .security import Grantable


class MediaStore(Protocol):
    """Where an application keeps its media: its S3 settings (``S3_BUCKET``, ``S3_REGION``, ``S3_ENDPOINT``,
    ``S3_URL``, ``S3_KEYS_SECRET_ARN``) and the IAM statements its hosts need."""

    app_settings: Mapping[str, str]

    @property
    def read_write_statements(self) -> list[dict[str, object]]: ...


class MediaBucket(Construct):
    """S3 bucket for product media: versioned, encrypted (SSE-S3), public access blocked, owner-enforced,
    reachable over TLS only (a bucket policy denies every request without it); old versions expire
    after ``noncurrent_version_days`` and unfinished uploads after 7 days.

    ``endpoint`` names an S3-compatible service the application should use
    instead (for example Cloudflare R2, free of egress fees); it reaches the app
    as ``S3_ENDPOINT`` through :attr:`app_settings`. ``public_url`` is where browsers read the media
    (``S3_URL``); without it, and without an endpoint, a CloudFront distribution reads the private
    bucket through an origin access control and its address is the media's public URL.
    """

    def __init__(
        self,
        scope: Construct,
        id: str,
        *,
        bucket_name: str,
        region: str,
        endpoint: str | None = None,
        public_url: str | None = None,
        noncurrent_version_days: int = 90,
    ) -> None:
        super().__init__(scope, id)
        if noncurrent_version_days < 1:
            raise ValueError(f"MediaBucket noncurrent_version_days: {noncurrent_version_days} is not allowed; allowed: 1 or more")
        self.bucket, public_access = private_bucket(self, bucket_name=bucket_name, noncurrent_version_days=noncurrent_version_days)
        statements = [deny_without_tls(self.bucket)]
        self.cdn = None
        if public_url is None and endpoint is None:
            # The bucket is private: a browser reads the media through CloudFront, which the bucket's policy
            # admits (origin access control), never from the bucket's own address (403: public access blocked).
            from .cdn import BucketDistribution  # cdn builds on this module's private_bucket

            self.cdn = BucketDistribution(self, "cdn", bucket=self.bucket, name=bucket_name, comment=f"{bucket_name}: media")
            statements.insert(0, self.cdn.read_statement)
            public_url = self.cdn.url
        self.tls_only_policy = S3BucketPolicy(
            self, "tls-only", bucket=self.bucket.id, policy=policy_document(*statements), depends_on=[public_access]
        )
        self.name = self.bucket.bucket
        self.arn = self.bucket.arn
        self.region = region
        self.endpoint = endpoint
        self.app_settings = {
            "S3_BUCKET": self.bucket.bucket,
            "S3_REGION": "auto" if endpoint else region,
            "S3_ENDPOINT": endpoint or "",
            "S3_URL": public_url or f"https://{self.bucket.bucket_regional_domain_name}",
            "S3_KEYS_SECRET_ARN": "",  # the instance role signs the requests
        }

    def grant_read_write(self, grantee: Grantable) -> None:
        """Let ``grantee`` (a :class:`FargateService`, or anything with ``grant``) read and write the media."""
        grantee.grant(self.read_write_statements, purpose=f"media-{self.node.id}")

    @property
    def read_write_statements(self) -> list[dict[str, object]]:
        """IAM statements letting an application read and write the media."""
        return [
            {"Effect": "Allow", "Action": ["s3:ListBucket"], "Resource": [self.arn]},
            {"Effect": "Allow", "Action": ["s3:GetObject", "s3:PutObject", "s3:DeleteObject"], "Resource": [f"{self.arn}/*"]},
        ]


def private_bucket(scope: Construct, *, bucket_name: str, noncurrent_version_days: int) -> tuple[S3Bucket, S3BucketPublicAccessBlock]:
    """A bucket reached only through IAM or its bucket policy: owner-enforced (no ACLs), public access
    blocked, versioned, encrypted (SSE-S3 with bucket keys), tidied by :func:`tidy_lifecycle`. Returns
    the bucket and its public access block, which a bucket policy should depend on."""
    bucket = S3Bucket(scope, "bucket", bucket=bucket_name, force_destroy=False, tags={"Name": bucket_name})
    S3BucketOwnershipControls(scope, "ownership", bucket=bucket.id, rule=S3BucketOwnershipControlsRule(object_ownership="BucketOwnerEnforced"))
    public_access = S3BucketPublicAccessBlock(
        scope, "public-access", bucket=bucket.id,
        block_public_acls=True, block_public_policy=True, ignore_public_acls=True, restrict_public_buckets=True,
    )
    S3BucketVersioningA(scope, "versioning", bucket=bucket.id, versioning_configuration=S3BucketVersioningVersioningConfiguration(status="Enabled"))
    S3BucketServerSideEncryptionConfigurationA(
        scope,
        "encryption",
        bucket=bucket.id,
        rule=[
            S3BucketServerSideEncryptionConfigurationRuleA(
                apply_server_side_encryption_by_default=S3BucketServerSideEncryptionConfigurationRuleApplyServerSideEncryptionByDefaultA(sse_algorithm="AES256"),
                bucket_key_enabled=True,
            )
        ],
    )
    tidy_lifecycle(scope, "lifecycle", bucket=bucket.id, noncurrent_version_days=noncurrent_version_days)
    return bucket, public_access


def deny_without_tls(bucket: S3Bucket) -> dict[str, object]:
    """The bucket policy statement denying every request that does not come over TLS (S3 user guide,
    security best practices: enforce encryption in transit with aws:SecureTransport). Deny-only: not public."""
    return {
        "Sid": "DenyRequestsWithoutTls",
        "Effect": "Deny",
        "Principal": "*",
        "Action": "s3:*",
        "Resource": [bucket.arn, f"{bucket.arn}/*"],
        "Condition": {"Bool": {"aws:SecureTransport": "false"}},
    }


def tidy_lifecycle(scope: Construct, id: str, *, bucket: str, noncurrent_version_days: int = 90) -> S3BucketLifecycleConfiguration:
    """Lifecycle rules for a versioned bucket: old versions expire, unfinished uploads are cleaned up after 7 days."""
    return S3BucketLifecycleConfiguration(
        scope,
        id,
        bucket=bucket,
        rule=[
            S3BucketLifecycleConfigurationRule(
                id="tidy-up",
                status="Enabled",
                filter=[S3BucketLifecycleConfigurationRuleFilter(prefix="")],
                abort_incomplete_multipart_upload=[S3BucketLifecycleConfigurationRuleAbortIncompleteMultipartUpload(days_after_initiation=7)],
                noncurrent_version_expiration=[S3BucketLifecycleConfigurationRuleNoncurrentVersionExpiration(noncurrent_days=noncurrent_version_days)],
            )
        ],
    )
