"""The GreenLeaf edge (seed 003, ticket #5): Cloudflare in front, HTTPS to the origin, R2 media that
loads, and nothing secret in the JSON. The real Terraform core validates these resources too
(test_terraform_core)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from spawnit.config import ConfigError
from spawnit.stacks.environment_settings import load_spec
from spawnit.constructs.edge import WAF_RULESETS

RANGES = "data.cloudflare_ip_ranges"
ROOT = Path(__file__).resolve().parents[1]


def by_name(stack, kind: str) -> dict[str, dict]:
    return {key: body for key, body in stack.resources(kind).items()}


def listeners(stack) -> dict[int, dict]:
    return {body["port"]: body for body in stack.resources("aws_lb_listener").values()}


def alb_ingress(stack) -> list[dict]:
    group = next(key for key, body in stack.resources("aws_security_group").items() if body["name"].endswith("-alb"))
    return [rule for rule in stack.resources("aws_vpc_security_group_ingress_rule").values() if group in rule["security_group_id"]]


def test_the_origin_serves_https_with_the_validated_certificate_and_a_modern_policy(prod):
    https = listeners(prod)[443]
    assert https["protocol"] == "HTTPS" and https["ssl_policy"] == "ELBSecurityPolicy-TLS13-1-2-2021-06"
    assert https["certificate_arn"].startswith("${aws_acm_certificate_validation.")  # only once ACM has issued it
    assert https["default_action"][0]["type"] == "forward"
    (certificate,) = prod.resources("aws_acm_certificate").values()
    assert certificate["domain_name"] == "shop.greenleaf.example" and certificate["validation_method"] == "DNS"
    assert certificate["lifecycle"]["create_before_destroy"] is True


def test_http_is_redirected_permanently_to_https(prod):
    http = listeners(prod)[80]
    assert http["default_action"] == [{"type": "redirect", "redirect": {"port": "443", "protocol": "HTTPS", "status_code": "HTTP_301"}}]


def test_with_the_edge_only_cloudflares_ranges_reach_the_load_balancer(prod):
    rules = alb_ingress(prod)
    assert {rule["from_port"] for rule in rules} == {80, 443}
    for rule in rules:
        assert rule["for_each"].startswith(f"${{toset({RANGES}.") and rule["for_each"].endswith(".ipv4_cidrs)}")
        assert rule["cidr_ipv4"] == "${each.value}"
    assert "0.0.0.0/0" not in json.dumps(rules)


def test_the_site_is_a_proxied_record_pointing_at_the_load_balancer(prod):
    site = next(body for body in prod.resources("cloudflare_dns_record").values() if body.get("proxied"))
    assert site["name"] == "shop.greenleaf.example" and site["type"] == "CNAME" and site["ttl"] == 1
    assert site["content"].startswith("${aws_lb.") and site["content"].endswith(".dns_name}")
    (zone,) = prod.data("cloudflare_zone").values()
    assert zone["filter"] == {"name": "greenleaf.example"}


def test_the_certificate_is_validated_through_dns_only_records_in_the_zone(prod):
    validation = next(body for body in prod.resources("cloudflare_dns_record").values() if "for_each" in body)
    assert "aws_acm_certificate." in validation["for_each"] and ".domain_validation_options" in validation["for_each"]
    assert validation["proxied"] is False  # ACM must see the record itself
    assert validation["type"] == "${each.value.resource_record_type}"
    (waiting,) = prod.resources("aws_acm_certificate_validation").values()
    assert any(dependency.startswith("cloudflare_dns_record.") for dependency in waiting["depends_on"])


def test_acm_validation_records_never_change_on_the_next_plan_because_the_trailing_dot_is_trimmed(prod, tmp_path):
    """ACM gives names and values ending in '.'; Cloudflare stores them without it, so a record written as ACM
    gives it shows an update on every plan (cloudflare/terraform-provider-cloudflare#154, #7286 in v5). The
    record's expressions, evaluated by the real Terraform core on ACM-shaped options, end without the dot."""
    import subprocess
    import sys

    from tfcheck.core import prepare

    validation = next(body for body in prod.resources("cloudflare_dns_record").values() if "for_each" in body)
    option = '{resource_record_name = "_0a1b.shop.greenleaf.example.", resource_record_value = "_9f8e.xlfgrmvvlj.acm-validations.aws.", resource_record_type = "CNAME"}'
    core = prepare()
    for field, expected in (("name", "_0a1b.shop.greenleaf.example"), ("content", "_9f8e.xlfgrmvvlj.acm-validations.aws")):
        expression = validation[field].removeprefix("${").removesuffix("}").replace("each.value", f"({option})")
        result = subprocess.run([sys.executable, "-m", "tfcheck.terraform", "console"], input=expression + "\n", cwd=tmp_path, env={**core.environment, "PYTHONPATH": str(ROOT)},
                                capture_output=True, text=True, timeout=120)
        assert result.returncode == 0, result.stderr
        assert json.loads(result.stdout.strip()) == expected, (field, validation[field])


def test_the_zone_enforces_full_strict_tls_and_always_https_and_runs_the_free_managed_waf(prod):
    settings = {body["setting_id"]: body["value"] for body in prod.resources("cloudflare_zone_setting").values()}
    assert settings == {"ssl": "strict", "always_use_https": "on", "min_tls_version": "1.2"}
    (waf,) = prod.resources("cloudflare_ruleset").values()
    assert (waf["kind"], waf["phase"]) == ("zone", "http_request_firewall_managed")
    (rule,) = waf["rules"]
    assert rule["action"] == "execute" and rule["expression"] == "true" and rule["enabled"] is True
    assert rule["action_parameters"]["id"] == WAF_RULESETS["free"] == "77454fe2d30c4220b5701f6fdfb893ba"


def test_preprod_shares_the_zone_but_leaves_its_settings_and_waf_to_prod(preprod):
    assert preprod.count("cloudflare_zone_setting") == 0 and preprod.count("cloudflare_ruleset") == 0
    site = next(body for body in preprod.resources("cloudflare_dns_record").values() if body.get("proxied"))
    assert site["name"] == "preprod.greenleaf.example"
    (domain,) = preprod.resources("cloudflare_r2_custom_domain").values()
    assert domain["domain"] == "media-preprod.greenleaf.example"  # one level under the zone: the free certificate covers it


def test_media_live_in_r2_behind_a_public_hostname(prod):
    (bucket,) = prod.resources("cloudflare_r2_bucket").values()
    (domain,) = prod.resources("cloudflare_r2_custom_domain").values()
    assert bucket["name"] == "greenleaf-prod-media" and bucket["location"] == "weur"
    assert domain["bucket_name"].startswith("${cloudflare_r2_bucket.") and domain["enabled"] is True
    assert domain["domain"] == "media.greenleaf.example" and domain["min_tls"] == "1.2"
    assert prod.count("aws_s3_bucket") == 0  # no second media store


def app_settings(stack) -> dict[str, str]:
    parameter = next(body for body in stack.resources("aws_ssm_parameter").values() if body["name"].endswith("/app/settings"))
    return dict(line.split("=", 1) for line in parameter["value"].splitlines())


def test_the_app_uploads_to_r2_and_serves_product_images_from_the_public_hostname(prod):
    """A product image's URL is <S3_URL>/<key>: the R2 custom domain serves the bucket to anyone, by
    design; uploads go through R2's S3 API with a key pair and no ACL (R2 has none)."""
    settings = app_settings(prod)
    (domain,) = prod.resources("cloudflare_r2_custom_domain").values()
    assert settings["S3_URL"].strip("'\"") == f"https://{domain['domain']}"
    assert settings["S3_REGION"].strip("'\"") == "auto"
    assert settings["S3_ENDPOINT"].strip("'\"") == "https://${data.cloudflare_zone.edge_zone_0AE99B69.account.id}.r2.cloudflarestorage.com"
    keys = settings["S3_KEYS_SECRET_ARN"].strip("'\"")
    assert keys.startswith("${aws_secretsmanager_secret.") and keys.endswith(".arn}")
    statements = [json.loads(body["policy"]) for body in prod.resources("aws_iam_role_policy").values()]
    readable = [resource for policy in statements for statement in policy["Statement"] for resource in statement.get("Resource", []) if "secretsmanager_secret" in str(resource)]
    assert keys in readable  # the app hosts may read the key pair


def test_no_cloudflare_or_r2_secret_is_in_any_stack(all_stacks):
    for name, stack in all_stacks.items():
        for provider in stack.document.get("provider", {}).get("cloudflare", []):
            assert not {"api_token", "api_key", "email", "api_user_service_key"} & set(provider), name  # CLOUDFLARE_API_TOKEN from the environment
        assert not {key for key in stack.document.get("variable", {}) if key.startswith("r2_")}, name  # no account-wide key handed in


def _console(expression: str, locals_: dict, tmp_path: Path) -> object:
    """``expression`` evaluated by the real Terraform core, with ``locals_`` as ``local.*``."""
    import subprocess
    import sys

    from tfcheck.core import prepare

    (tmp_path / "values.tf.json").write_text(json.dumps({"locals": locals_}))
    core = prepare()
    result = subprocess.run([sys.executable, "-m", "tfcheck.terraform", "console"], input=f"jsonencode({expression})\n", cwd=tmp_path,
                            env={**core.environment, "PYTHONPATH": str(ROOT)}, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    return json.loads(json.loads(result.stdout.strip()))


def test_the_r2_key_pair_is_a_token_the_stack_makes_limited_to_the_media_bucket(prod, tmp_path):
    """Defect: the R2 keys were variables needed before the bucket existed, so users gave an account-wide
    key to every host. The stack makes an account token with the bucket-item write permission on this bucket
    only; R2's S3 keys are its id and the SHA-256 of its value (R2 docs, "Authentication"). Both expressions
    are evaluated by the real Terraform core."""
    import hashlib

    (token_key, token), = prod.resources("cloudflare_account_token").items()
    (lookup_key, lookup), = prod.data("cloudflare_account_api_token_permission_groups_list").items()
    assert lookup["name"] == "Workers R2 Storage Bucket Item Write"
    (policy,) = token["policies"]
    assert policy["effect"] == "allow" and policy["permission_groups"] == [{"id": f"${{data.cloudflare_account_api_token_permission_groups_list.{lookup_key}.result[0].id}}"}]
    (bucket_key,) = prod.resources("cloudflare_r2_bucket")
    values = {"account": "0123456789abcdef0123456789abcdef", "bucket": "greenleaf-prod-media", "token_id": "f1e2d3c4b5a6", "token_value": "t0k3n-v4lu3"}
    template = policy["resources"].replace("${data.cloudflare_zone.edge_zone_0AE99B69.account.id}", "${local.account}").replace(
        f"${{cloudflare_r2_bucket.{bucket_key}.name}}", "${local.bucket}"
    )
    (tmp_path / "resources").mkdir()
    (tmp_path / "resources" / "template.tf.json").write_text(json.dumps({"locals": {"resources": template}}))
    rendered = _console("local.resources", values, tmp_path / "resources")
    assert json.loads(rendered) == {"com.cloudflare.edge.r2.bucket.0123456789abcdef0123456789abcdef_default_greenleaf-prod-media": "*"}
    (version,) = [body for body in prod.resources("aws_secretsmanager_secret_version").values() if "cloudflare_account_token" in body["secret_string"]]
    expression = version["secret_string"].removeprefix("${").removesuffix("}")
    expression = expression.replace(f"cloudflare_account_token.{token_key}.id", "local.token_id").replace(f"cloudflare_account_token.{token_key}.value", "local.token_value")
    (tmp_path / "secret").mkdir()
    keys = json.loads(_console(expression, values, tmp_path / "secret"))
    assert keys == {"access_key_id": "f1e2d3c4b5a6", "secret_access_key": hashlib.sha256(b"t0k3n-v4lu3").hexdigest()}


def test_without_the_edge_the_origin_keeps_its_own_certificate_and_cidrs(prod_custom):
    assert prod_custom.count("cloudflare_dns_record") == 0 and "cloudflare" not in prod_custom.document.get("provider", {})
    assert listeners(prod_custom)[443]["protocol"] == "HTTPS"
    assert "certificate_validation" in json.dumps(prod_custom.document["output"])  # the record to create by hand
    assert sorted(rule["cidr_ipv4"] for rule in alb_ingress(prod_custom) if rule["from_port"] == 443) == ["103.21.244.0/22", "173.245.48.0/20"]
    assert app_settings(prod_custom)["S3_ENDPOINT"].strip("'\"") == "https://account.r2.cloudflarestorage.com"


def test_plain_http_only_when_chosen(prod_http_only):
    assert set(listeners(prod_http_only)) == {80} and listeners(prod_http_only)[80]["default_action"][0]["type"] == "forward"
    assert prod_http_only.count("aws_acm_certificate") == 0


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"cloudflare_zone": None, "domain": None}, "prod.domain = missing; allowed: the site's hostname"),
        ({"domain": "shop.other.example"}, "prod.domain = 'shop.other.example' is not allowed; allowed: a name in the zone 'greenleaf.example' (domain from overrides)"),
        ({"media_domain": "media.other.example"}, "prod.media_domain = 'media.other.example' is not allowed; allowed: a name in the zone"),
        ({"origin_http_only": True}, "prod.origin_http_only = true is not allowed with cloudflare_zone; allowed: false"),
        ({"domain": "Shop.Example"}, "domain"),
        ({"waf_ruleset": "enterprise"}, "waf_ruleset"),
    ],
)
def test_edge_settings_that_do_not_fit_are_refused_naming_the_field(overrides, message):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        load_spec("prod", config_file=None, environ={}, overrides=overrides)


def _reads_through(stack, url: str) -> list[str]:
    """What a browser needs to read ``<url>/<key>`` of a private media bucket, missing from ``stack``: the
    URL is a CloudFront distribution's, whose origin is the bucket through an origin access control, and the
    bucket's policy lets CloudFront (this distribution only) get its objects. S3 bucket policies are not
    evaluated by any emulator here, so this reads the policy as AWS documents it (CloudFront developer
    guide, "Restrict access to an Amazon S3 origin")."""
    missing = []
    match = re.fullmatch(r"https://\$\{aws_cloudfront_distribution\.([A-Za-z0-9_-]+)\.domain_name\}", url)
    if not match:
        return [f"S3_URL {url!r} is not a CloudFront distribution's address (the bucket blocks public access: a browser gets 403)"]
    distribution = stack.resources("aws_cloudfront_distribution")[match.group(1)]
    origin = distribution["origin"][0]
    bucket_key = re.fullmatch(r"\$\{aws_s3_bucket\.([A-Za-z0-9_-]+)\.bucket_regional_domain_name\}", origin["domain_name"]).group(1)
    if not origin.get("origin_access_control_id", "").startswith("${aws_cloudfront_origin_access_control."):
        missing.append("the distribution signs no request (no origin access control)")
    policies = [json.loads(body["policy"]) for body in stack.resources("aws_s3_bucket_policy").values() if body["bucket"] == f"${{aws_s3_bucket.{bucket_key}.id}}"]
    allowed = [
        statement for policy in policies for statement in policy["Statement"]
        if statement["Effect"] == "Allow" and statement["Principal"] == {"Service": "cloudfront.amazonaws.com"} and statement["Action"] == "s3:GetObject"
        and statement["Resource"] == f"${{aws_s3_bucket.{bucket_key}.arn}}/*"
        and statement["Condition"] == {"StringEquals": {"AWS:SourceArn": f"${{aws_cloudfront_distribution.{match.group(1)}.arn}}"}}
    ]
    if not allowed:
        missing.append("the bucket's policy does not let this distribution get its objects")
    return missing


def test_without_the_edge_product_images_are_read_through_cloudfront_which_the_private_bucket_admits(prod_http_only):
    """Defect: S3_URL was the bucket's own regional address while the bucket blocks public access and
    uploads carry no ACL: every image was a 403."""
    url = app_settings(prod_http_only)["S3_URL"].strip("'\"")
    assert _reads_through(prod_http_only, url) == []
    planted = app_settings(prod_http_only)["S3_BUCKET"].strip("'\"").replace(".bucket}", ".bucket_regional_domain_name}")
    assert _reads_through(prod_http_only, f"https://{planted}")[0].endswith("a browser gets 403)")


def test_spotilike_media_links_are_read_through_cloudfront_too(all_stacks):
    spotilike = all_stacks["spotilike"]
    task = spotilike.only("aws_ecs_task_definition")["container_definitions"]
    url = re.search(r'\{"name" = "MEDIA_URL", "value" = "(https://\$\{aws_cloudfront_distribution\.[A-Za-z0-9_-]+\.domain_name\})"\}', task)
    assert url, task
    assert _reads_through(spotilike, url.group(1)) == []
