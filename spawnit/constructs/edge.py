"""A site's edge on Cloudflare, and the ACM certificate its load balancer presents.

Cloudflare credentials never reach the synthesized JSON: the provider reads
``CLOUDFLARE_API_TOKEN`` from the environment OpenTofu runs in. R2's S3 keys are a
token the stack makes, limited to the media bucket, kept in Secrets Manager for the application.
"""

from __future__ import annotations

import re

from cdktf import Fn, TerraformIterator, TerraformOutput, TerraformResourceLifecycle, TerraformStack, Token
from cdktf_cdktf_provider_aws.acm_certificate import AcmCertificate
from cdktf_cdktf_provider_aws.acm_certificate_validation import AcmCertificateValidation
from cdktf_cdktf_provider_aws.secretsmanager_secret import SecretsmanagerSecret
from cdktf_cdktf_provider_aws.secretsmanager_secret_version import SecretsmanagerSecretVersion
from cdktf_cdktf_provider_cloudflare.data_cloudflare_ip_ranges import DataCloudflareIpRanges
from cdktf_cdktf_provider_cloudflare.data_cloudflare_zone import DataCloudflareZone, DataCloudflareZoneFilter
from cdktf_cdktf_provider_cloudflare.account_token import AccountToken, AccountTokenPolicies, AccountTokenPoliciesPermissionGroups
from cdktf_cdktf_provider_cloudflare.data_cloudflare_account_api_token_permission_groups_list import DataCloudflareAccountApiTokenPermissionGroupsList
from cdktf_cdktf_provider_cloudflare.data_cloudflare_rulesets import DataCloudflareRulesets
from cdktf_cdktf_provider_cloudflare.dns_record import DnsRecord
from cdktf_cdktf_provider_cloudflare.provider import CloudflareProvider
from cdktf_cdktf_provider_cloudflare.r2_bucket import R2Bucket
from cdktf_cdktf_provider_cloudflare.r2_custom_domain import R2CustomDomain
from cdktf_cdktf_provider_cloudflare.ruleset import Ruleset, RulesetRules, RulesetRulesActionParameters
from cdktf_cdktf_provider_cloudflare.zone_setting import ZoneSetting
from constructs import Construct

from ._common import append_to_stack
from .security import CidrList

# Managed WAF rulesets by plan (Cloudflare WAF docs, "Managed rules"): the Free Managed Ruleset is
# available on every plan, the Cloudflare Managed Ruleset from Pro up.
WAF_RULESETS = {"free": "77454fe2d30c4220b5701f6fdfb893ba", "managed": "efb7b8c949ac4650a09736fc376e9aee"}
# Zone settings the edge enforces (cloudflare_zone_setting ids): TLS to the origin checked against a
# publicly trusted certificate ("Full (strict)"), every http:// request redirected, TLS 1.2 at least.
ZONE_SETTINGS = {"ssl": "strict", "always_use_https": "on", "min_tls_version": "1.2"}
WAF_PHASE = "http_request_firewall_managed"


def adopt_entry_point(ruleset: Ruleset, *, zone_id: str, phase: str) -> None:
    """Take over the zone's entry point ruleset of ``phase`` if one exists, else create it.

    A zone has at most one entry point ruleset per phase (Cloudflare's ruleset engine docs): when one was
    made in the dashboard or by a former tool, creating ours fails (cloudflare/terraform-provider-cloudflare
    #1394). An ``import`` block whose ``for_each`` is the zone's rulesets of that kind and phase (a lookup at
    plan time: none, or that one) imports it into ``ruleset``, whose rules then replace the old ones on apply;
    with none, the import block does nothing and the ruleset is created (OpenTofu 1.7+ and Terraform 1.7+;
    the import id is ``zones/<zone id>/<ruleset id>``, the provider's own import format)."""
    stack = TerraformStack.of(ruleset)
    lookup = DataCloudflareRulesets(ruleset.node.scope, f"{ruleset.node.id}-existing", zone_id=zone_id)
    rulesets = f"data.{lookup.terraform_resource_type}.{stack.get_logical_id(lookup)}.result"
    append_to_stack(
        ruleset,
        "import",
        {
            "for_each": f'${{{{ for r in {rulesets} : r.id => r if r.kind == "zone" && r.phase == "{phase}" }}}}',
            "to": f"{ruleset.terraform_resource_type}.{stack.get_logical_id(ruleset)}",
            "id": f"zones/{zone_id}/${{each.key}}",
        },
    )


R2_LOCATIONS = ("weur", "eeur", "wnam", "enam", "apac", "oc")
HOSTNAME = re.compile(r"^(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}$")


def _check_hostname(field: str, value: str, zone: str | None = None) -> None:
    if not HOSTNAME.fullmatch(value):
        raise ValueError(f"Edge {field}: {value!r} is not allowed; allowed: a lowercase DNS name such as shop.example.com")
    if zone is not None and value != zone and not value.endswith("." + zone):
        raise ValueError(f"Edge {field}: {value!r} is not allowed; allowed: a name in the zone {zone!r}")


class Edge(Construct):
    """Cloudflare in front of a site (ticket #5): the site's DNS record, proxied, pointing at the origin
    (:meth:`route_to`);
    optionally the zone-wide settings (Full (strict) TLS, always HTTPS, TLS 1.2 minimum) and the managed
    WAF ruleset, which one stack per zone must own (a zone has one managed-WAF entry point); Cloudflare's
    published IPv4 ranges (:attr:`ipv4_ranges`) for the origin's firewall; an R2 bucket for media,
    served on its own public hostname, with its S3 endpoint (:attr:`media_endpoint`, :attr:`media_url`).
    """

    def __init__(
        self,
        scope: Construct,
        id: str,
        *,
        zone_name: str,
        hostname: str,
        manage_zone: bool = True,
        waf: str = "free",
        media_bucket: str | None = None,
        media_hostname: str | None = None,
        media_location: str = "weur",
    ) -> None:
        super().__init__(scope, id)
        _check_hostname("zone_name", zone_name)
        _check_hostname("hostname", hostname, zone_name)
        if waf not in WAF_RULESETS:
            raise ValueError(f"Edge waf: {waf!r} is not allowed; allowed: {', '.join(WAF_RULESETS)} (managed needs a Pro plan)")
        if (media_bucket is None) != (media_hostname is None):
            raise ValueError("Edge media_bucket, media_hostname: give both (R2 media on its public hostname) or neither")
        if media_location not in R2_LOCATIONS:
            raise ValueError(f"Edge media_location: {media_location!r} is not allowed; allowed: {', '.join(R2_LOCATIONS)}")
        self.provider = CloudflareProvider(self, "cloudflare")  # the token: CLOUDFLARE_API_TOKEN, from the environment
        zone = DataCloudflareZone(self, "zone", filter=DataCloudflareZoneFilter(name=zone_name))
        self.zone_id = zone.id
        self.account_id = zone.account.id
        self.hostname = hostname
        self.site_record: DnsRecord | None = None
        self.settings: dict[str, ZoneSetting] = {}
        self.waf = None
        if manage_zone:
            for setting, value in ZONE_SETTINGS.items():
                zone_setting = ZoneSetting(self, f"setting-{setting}", zone_id=self.zone_id, setting_id=setting, value={})
                zone_setting.add_override("value", value)  # a string: the binding types this dynamic value as a map
                self.settings[setting] = zone_setting
            self.waf = Ruleset(
                self,
                "waf",
                zone_id=self.zone_id,
                kind="zone",
                phase=WAF_PHASE,
                name="SpawnIt managed WAF",
                description=f"Cloudflare's {waf} managed ruleset on every request",
                rules=[
                    RulesetRules(
                        action="execute",
                        expression="true",
                        enabled=True,
                        description=f"Execute the {waf} managed ruleset",
                        action_parameters=RulesetRulesActionParameters(id=WAF_RULESETS[waf]),
                    )
                ],
            )
            adopt_entry_point(self.waf, zone_id=self.zone_id, phase=WAF_PHASE)
        self.ipv4_ranges = CidrList("cloudflare", DataCloudflareIpRanges(self, "ranges").ipv4_cidrs)
        self.media_endpoint = self.media_url = self.media_bucket_name = None
        if media_bucket is not None and media_hostname is not None:
            _check_hostname("media_hostname", media_hostname, zone_name)
            bucket = R2Bucket(self, "media", account_id=self.account_id, name=media_bucket, location=media_location)
            self.media_domain = R2CustomDomain(
                self, "media-domain", account_id=self.account_id, bucket_name=bucket.name, domain=media_hostname, zone_id=self.zone_id, enabled=True, min_tls="1.2"
            )
            self.media_bucket_name = bucket.name
            # R2's S3 API (R2 docs, "S3 API compatibility"): https://<account id>.r2.cloudflarestorage.com, region "auto"
            self.media_endpoint = f"https://{self.account_id}.r2.cloudflarestorage.com"
            self.media_url = f"https://{media_hostname}"

    def route_to(self, origin: str) -> DnsRecord:
        """The site's DNS record: a proxied CNAME to ``origin`` (a load balancer's DNS name); visitors reach
        Cloudflare, which reaches the origin over HTTPS."""
        if self.site_record is not None:
            raise ValueError(f"Edge route_to: {self.hostname} already routes to an origin")
        self.site_record = DnsRecord(
            self, "site", zone_id=self.zone_id, name=self.hostname, type="CNAME", content=origin, proxied=True, ttl=1, comment="SpawnIt: the site, through Cloudflare"
        )
        return self.site_record

    def media_settings(self) -> dict[str, str]:
        """The application's S3 settings for R2 media (uploads through the S3 API, reads on the public hostname)."""
        if self.media_bucket_name is None:
            raise ValueError("Edge media_settings: this edge has no R2 media (give media_bucket and media_hostname)")
        return {"S3_BUCKET": self.media_bucket_name, "S3_REGION": "auto", "S3_ENDPOINT": self.media_endpoint, "S3_URL": self.media_url}


R2_BUCKET_WRITE = "Workers R2 Storage Bucket Item Write"  # the permission group of a token scoped to buckets


class MediaKeys(Construct):
    """R2's S3 key pair for the application, limited to the edge's media bucket, made by the stack itself and
    kept in a Secrets Manager secret the application hosts read: never a variable, never in the JSON.

    An account API token with the *Workers R2 Storage Bucket Item Write* permission on this bucket only
    (resource ``com.cloudflare.edge.r2.bucket.<account id>_default_<bucket>``); R2's S3 access key id is the
    token's id and its secret access key the SHA-256 of the token's value (R2 docs, "Authentication"). The
    token deploying the stack needs *Account API Tokens: Edit* to create it.
    """

    def __init__(self, scope: Construct, id: str, *, name: str, edge: Edge) -> None:
        super().__init__(scope, id)
        if edge.media_bucket_name is None:
            raise ValueError("MediaKeys edge: this edge has no R2 media (give media_bucket and media_hostname)")
        group = DataCloudflareAccountApiTokenPermissionGroupsList(self, "bucket-write", account_id=edge.account_id, name=R2_BUCKET_WRITE)
        bucket_resource = f"com.cloudflare.edge.r2.bucket.{edge.account_id}_default_{edge.media_bucket_name}"
        self.token = AccountToken(
            self,
            "token",
            account_id=edge.account_id,
            name=f"{name} media (R2, {edge.media_bucket_name} only)",
            policies=[
                AccountTokenPolicies(
                    effect="allow",
                    permission_groups=[AccountTokenPoliciesPermissionGroups(id=Token.as_string(group.result.get(0).id))],
                    # a JSON object as the provider wants it; its key holds no quote (an account id, a bucket name)
                    resources=f'{{"{bucket_resource}":"*"}}',
                )
            ],
        )
        self.secret = SecretsmanagerSecret(self, "secret", name=f"{name}/media-keys", description=f"{name}: R2 S3 keys of the media bucket", recovery_window_in_days=7)
        SecretsmanagerSecretVersion(
            self,
            "value",
            secret_id=self.secret.id,
            secret_string=Fn.jsonencode({"access_key_id": self.token.id, "secret_access_key": Fn.sha256(self.token.value)}),
        )
        self.arn = self.secret.arn


class R2Media:
    """Media in the edge's R2 bucket, as an application fleet uses it (the same interface as
    :class:`~spawnit.constructs.storage.MediaBucket`): S3 settings pointing at R2, uploads with the
    key pair from :class:`MediaKeys` (no ACL: R2 has none, reads go through the public hostname)."""

    def __init__(self, edge: Edge, keys: MediaKeys) -> None:
        self.app_settings = {**edge.media_settings(), "S3_KEYS_SECRET_ARN": keys.arn}
        self.read_write_statements: list[dict[str, object]] = [
            {"Effect": "Allow", "Action": "secretsmanager:GetSecretValue", "Resource": [keys.arn]},
        ]


class SiteCertificate(Construct):
    """The ACM certificate of ``hostname``, validated by DNS. With an :class:`Edge`, the validation records
    are created in its Cloudflare zone (DNS only, not proxied) and the certificate is waited for until
    issued; without, apply waits while someone creates the record from the output
    ``certificate_validation`` (also shown by ``aws acm describe-certificate``) in the domain's DNS."""

    def __init__(self, scope: Construct, id: str, *, hostname: str, edge: Edge | None = None) -> None:
        super().__init__(scope, id)
        _check_hostname("hostname", hostname)
        self.certificate = AcmCertificate(
            self,
            "certificate",
            domain_name=hostname,
            validation_method="DNS",
            lifecycle=TerraformResourceLifecycle(create_before_destroy=True),  # a renewal never leaves the listener without one
            tags={"Name": hostname},
        )
        options = TerraformIterator.from_complex_list(self.certificate.domain_validation_options, "domain_name")
        depends = []
        if edge is not None:
            records = DnsRecord(
                edge,
                f"validation-{id}",
                for_each=options,
                zone_id=edge.zone_id,
                # ACM gives fully-qualified names with a trailing dot; Cloudflare stores them without it, so
                # written as ACM gives them every plan would show an update (cloudflare/terraform-provider-cloudflare#154, #7286)
                name=Fn.trimsuffix(options.get_string("resource_record_name"), "."),
                type=options.get_string("resource_record_type"),
                content=Fn.trimsuffix(options.get_string("resource_record_value"), "."),
                proxied=False,
                ttl=60,
                comment="SpawnIt: ACM validation of the origin certificate",
            )
            depends.append(records)
        else:
            TerraformOutput(self, "certificate_validation", value=self.certificate.domain_validation_options, description="Create this DNS record so ACM issues the certificate")
        self.validation = AcmCertificateValidation(self, "issued", certificate_arn=self.certificate.arn, depends_on=depends or None)
        self.arn = self.validation.certificate_arn
