"""Static content on CloudFront: a private S3 origin reached only through origin access control."""

from __future__ import annotations

import re

from cdktf_cdktf_provider_aws.cloudfront_distribution import (
    CloudfrontDistribution,
    CloudfrontDistributionDefaultCacheBehavior,
    CloudfrontDistributionOrigin,
    CloudfrontDistributionRestrictions,
    CloudfrontDistributionRestrictionsGeoRestriction,
    CloudfrontDistributionViewerCertificate,
)
from cdktf_cdktf_provider_aws.cloudfront_origin_access_control import CloudfrontOriginAccessControl
from cdktf_cdktf_provider_aws.data_aws_cloudfront_cache_policy import DataAwsCloudfrontCachePolicy
from cdktf_cdktf_provider_aws.data_aws_cloudfront_response_headers_policy import DataAwsCloudfrontResponseHeadersPolicy
from cdktf_cdktf_provider_aws.s3_bucket import S3Bucket
from cdktf_cdktf_provider_aws.s3_bucket_policy import S3BucketPolicy
from constructs import Construct

from ._common import policy_document
from .storage import deny_without_tls, private_bucket

PRICE_CLASSES = ("PriceClass_100", "PriceClass_200", "PriceClass_All")
_OBJECT_KEY = re.compile(r"^[A-Za-z0-9!_.*'()/-]{1,1024}$")


class BucketDistribution(Construct):
    """A CloudFront distribution reading a private bucket through an origin access control (SigV4-signed
    requests): viewers redirected to HTTPS, AWS's managed *CachingOptimized* policy (compressed, no
    cookies or query strings in the key) and *SecurityHeadersPolicy* (HSTS, nosniff, frame options...).

    The bucket's policy belongs to the bucket's construct: it adds :attr:`read_statement`, which admits the
    CloudFront service for this distribution only (CloudFront developer guide, "Restrict access to an
    Amazon S3 origin": s3:GetObject to cloudfront.amazonaws.com, conditioned on ``AWS:SourceArn``).
    """

    def __init__(
        self,
        scope: Construct,
        id: str,
        *,
        bucket: S3Bucket,
        name: str,
        comment: str,
        default_root_object: str | None = None,
        price_class: str = "PriceClass_100",
    ) -> None:
        super().__init__(scope, id)
        if price_class not in PRICE_CLASSES:
            raise ValueError(f"{name} price_class: {price_class!r} is not allowed; allowed: {', '.join(PRICE_CLASSES)}")
        self.origin_access_control = CloudfrontOriginAccessControl(
            self,
            "oac",
            name=name[:64],
            description=f"CloudFront reads {name}",
            origin_access_control_origin_type="s3",
            signing_behavior="always",
            signing_protocol="sigv4",
        )
        caching = DataAwsCloudfrontCachePolicy(self, "caching-optimized", name="Managed-CachingOptimized")
        security_headers = DataAwsCloudfrontResponseHeadersPolicy(self, "security-headers", name="Managed-SecurityHeadersPolicy")
        origin_id = "s3-origin"
        self.distribution = CloudfrontDistribution(
            self,
            "distribution",
            enabled=True,
            is_ipv6_enabled=True,
            http_version="http2and3",
            comment=comment,
            default_root_object=default_root_object,
            price_class=price_class,
            origin=[CloudfrontDistributionOrigin(origin_id=origin_id, domain_name=bucket.bucket_regional_domain_name, origin_access_control_id=self.origin_access_control.id)],
            default_cache_behavior=CloudfrontDistributionDefaultCacheBehavior(
                target_origin_id=origin_id,
                viewer_protocol_policy="redirect-to-https",
                allowed_methods=["GET", "HEAD", "OPTIONS"],
                cached_methods=["GET", "HEAD"],
                cache_policy_id=caching.id,
                response_headers_policy_id=security_headers.id,
                compress=True,
            ),
            restrictions=CloudfrontDistributionRestrictions(geo_restriction=CloudfrontDistributionRestrictionsGeoRestriction(restriction_type="none")),
            viewer_certificate=CloudfrontDistributionViewerCertificate(cloudfront_default_certificate=True),
            tags={"Name": name},
        )
        self.read_statement = {
            "Sid": "CloudFrontReadsThroughOriginAccessControl",
            "Effect": "Allow",
            "Principal": {"Service": "cloudfront.amazonaws.com"},
            "Action": "s3:GetObject",
            "Resource": f"{bucket.arn}/*",
            "Condition": {"StringEquals": {"AWS:SourceArn": self.distribution.arn}},
        }
        self.domain_name = self.distribution.domain_name
        self.url = f"https://{self.distribution.domain_name}"


class StaticSite(Construct):
    """A CloudFront distribution in front of a private, encrypted S3 bucket (:class:`BucketDistribution`).

    The bucket blocks every public access; its policy admits the CloudFront service only for this
    distribution and denies any request without TLS. ``default_root_object`` answers ``/``. The bucket
    is versioned; old versions go after 30 days. ``price_class`` chooses the edge locations (100: North
    America and Europe, the cheapest).
    """

    def __init__(
        self,
        scope: Construct,
        id: str,
        *,
        bucket_name: str,
        default_root_object: str = "index.html",
        price_class: str = "PriceClass_100",
        comment: str = "",
    ) -> None:
        super().__init__(scope, id)
        if price_class not in PRICE_CLASSES:
            raise ValueError(f"StaticSite price_class: {price_class!r} is not allowed; allowed: {', '.join(PRICE_CLASSES)}")
        if not _OBJECT_KEY.match(default_root_object) or default_root_object.startswith("/"):
            raise ValueError(f"StaticSite default_root_object: {default_root_object!r} is not allowed; allowed: an object key without a leading /, e.g. index.html")
        self.bucket, public_access = private_bucket(self, bucket_name=bucket_name, noncurrent_version_days=30)
        self.cdn = BucketDistribution(
            self, "cdn", bucket=self.bucket, name=bucket_name, comment=comment or f"{bucket_name}: static content",
            default_root_object=default_root_object, price_class=price_class,
        )
        self.distribution = self.cdn.distribution
        S3BucketPolicy(
            self, "policy", bucket=self.bucket.id, policy=policy_document(self.cdn.read_statement, deny_without_tls(self.bucket)), depends_on=[public_access]
        )
        self.domain_name = self.cdn.domain_name
        self.url = self.cdn.url
