"""Alerts, budget, off-hours schedules and the media bucket."""

from __future__ import annotations

import fnmatch
import json

import pytest


def alarm(stack, metric: str) -> dict:
    (found,) = [body for body in stack.resources("aws_cloudwatch_metric_alarm").values() if body["metric_name"] == metric]
    return found


# Alerts ---------------------------------------------------------------------------------


def test_topic_budget_and_key_names_carry_the_environment_so_two_environments_can_coexist(prod, preprod_with_alerts):
    names = {(s.only("aws_sns_topic")["name"], s.only("aws_budgets_budget")["name"], s.only("aws_kms_alias")["name"]) for s in (prod, preprod_with_alerts)}
    assert names == {
        ("greenleaf-prod-alerts", "greenleaf-prod-monthly", "alias/greenleaf-prod-alerts"),
        ("greenleaf-preprod-alerts", "greenleaf-preprod-monthly", "alias/greenleaf-preprod-alerts"),
    }


def test_alert_emails_are_subscribed_from_config(prod_custom, prod):
    subscriptions = prod_custom.resources("aws_sns_topic_subscription").values()
    assert sorted((s["protocol"], s["endpoint"]) for s in subscriptions) == [("email", "finance@example.com"), ("email", "ops@example.com")]
    assert prod.count("aws_sns_topic_subscription") == 0


def test_monthly_budget_of_500_usd_alerts_at_100_forecast_and_80_actual(prod):
    budget = prod.only("aws_budgets_budget")
    assert (budget["budget_type"], budget["limit_amount"], budget["limit_unit"], budget["time_unit"]) == ("COST", "500.00", "USD", "MONTHLY")
    notifications = {(n["notification_type"], n["threshold"], n["threshold_type"]) for n in budget["notification"]}
    assert notifications == {("FORECASTED", 100, "PERCENTAGE"), ("ACTUAL", 80, "PERCENTAGE")}
    (topic_key,) = prod.resources("aws_sns_topic")
    assert all(n["subscriber_sns_topic_arns"] == [prod.ref("aws_sns_topic", topic_key, "arn")] for n in budget["notification"])


def test_budget_amount_comes_from_config(prod_custom):
    assert prod_custom.only("aws_budgets_budget")["limit_amount"] == "450.00"


def _allows(policy: dict, service: str, action: str) -> bool:
    """Whether an Allow statement of ``policy`` grants ``action`` to AWS service principal ``service``."""
    for statement in policy["Statement"]:
        principals = statement.get("Principal", {}).get("Service", [])
        actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
        if statement["Effect"] == "Allow" and service in ([principals] if isinstance(principals, str) else principals):
            if any(fnmatch.fnmatch(action.lower(), pattern.lower()) for pattern in actions) and not statement.get("Condition"):
                return True
    return False


@pytest.mark.parametrize("service", ["cloudwatch.amazonaws.com", "budgets.amazonaws.com"])
def test_alarms_and_budgets_can_publish_to_the_encrypted_topic(prod, service):
    """An encrypted topic takes a publisher's message only if the publisher may also use its key
    (kms:GenerateDataKey* and kms:Decrypt): AWS-managed keys cannot grant that to CloudWatch or Budgets."""
    topic = prod.only("aws_sns_topic")
    (key_id,) = prod.resources("aws_kms_key")
    assert topic["kms_master_key_id"] == prod.ref("aws_kms_key", key_id, "arn")
    key_policy = json.loads(prod.only("aws_kms_key")["policy"])
    assert _allows(key_policy, service, "kms:GenerateDataKey") and _allows(key_policy, service, "kms:Decrypt")
    assert _allows(json.loads(prod.only("aws_sns_topic_policy")["policy"]), service, "sns:Publish")


def test_the_alerts_key_rotates_and_stays_administrable_by_the_account(prod):
    key = prod.only("aws_kms_key")
    assert key["enable_key_rotation"] is True
    statements = json.loads(key["policy"])["Statement"]
    assert any(s["Principal"].get("AWS", "").endswith(":root") and s["Action"] == "kms:*" for s in statements)


def test_unhealthy_host_alarm_fires_at_1_for_1_minute(prod):
    found = alarm(prod, "UnhealthyHostCount")
    assert (found["namespace"], found["comparison_operator"], found["threshold"]) == ("AWS/ApplicationELB", "GreaterThanOrEqualToThreshold", 1)
    assert found["period"] * found["evaluation_periods"] == 60
    (target_key,) = prod.resources("aws_lb_target_group")
    assert found["dimensions"]["TargetGroup"] == prod.ref("aws_lb_target_group", target_key, "arn_suffix")


def test_fleet_cpu_alarm_fires_above_85_percent_for_5_minutes(prod):
    found = alarm(prod, "CPUUtilization")
    assert (found["namespace"], found["statistic"], found["comparison_operator"], found["threshold"]) == ("AWS/EC2", "Average", "GreaterThanThreshold", 85)
    assert found["period"] * found["evaluation_periods"] == 300
    assert "AutoScalingGroupName" in found["dimensions"]


def test_rds_free_storage_alarm_fires_below_2_gb(prod):
    found = alarm(prod, "FreeStorageSpace")
    assert (found["namespace"], found["comparison_operator"], found["threshold"]) == ("AWS/RDS", "LessThanThreshold", 2 * 1024**3)
    (db_key,) = prod.resources("aws_db_instance")
    assert found["dimensions"] == {"DBInstanceIdentifier": prod.ref("aws_db_instance", db_key, "identifier")}


def test_every_alarm_notifies_the_topic(prod):
    (topic_key,) = prod.resources("aws_sns_topic")
    for found in prod.resources("aws_cloudwatch_metric_alarm").values():
        assert found["alarm_actions"] == [prod.ref("aws_sns_topic", topic_key, "arn")]


# Off-hours ------------------------------------------------------------------------------


def schedule(stack, suffix: str) -> dict:
    (found,) = [body for body in stack.resources("aws_autoscaling_schedule").values() if body["scheduled_action_name"].endswith(suffix)]
    return found


def test_preprod_fleet_goes_to_zero_at_19_00_paris_on_weekdays(preprod):
    sleep = schedule(preprod, "-sleep")
    assert (sleep["min_size"], sleep["max_size"], sleep["desired_capacity"]) == (0, 0, 0)
    assert (sleep["recurrence"], sleep["time_zone"]) == ("0 19 * * 1,2,3,4,5", "Europe/Paris")


def test_preprod_fleet_wakes_at_09_00_paris_on_weekdays_only(preprod):
    wake = schedule(preprod, "-wake")
    assert (wake["min_size"], wake["max_size"], wake["desired_capacity"]) == (2, 4, 2)
    assert (wake["recurrence"], wake["time_zone"]) == ("0 9 * * 1,2,3,4,5", "Europe/Paris")
    assert "0" not in wake["recurrence"].split()[4].split(",") and "6" not in wake["recurrence"].split()[4].split(",")


@pytest.mark.parametrize("action, clock", [("stop", "0 19"), ("start", "45 8")])
def test_preprod_database_stops_at_19_00_and_wakes_15_minutes_before_the_fleet(preprod, action, clock):
    (found,) = [body for body in preprod.resources("aws_scheduler_schedule").values() if body["name"].endswith(f"-db-{action}")]
    assert found["schedule_expression"] == f"cron({clock} ? * MON,TUE,WED,THU,FRI *)"
    assert found["schedule_expression_timezone"] == "Europe/Paris"
    assert found["target"]["arn"] == f"arn:aws:scheduler:::aws-sdk:rds:{action}DBInstance"
    (db_key,) = preprod.resources("aws_db_instance")
    assert json.loads(found["target"]["input"]) == {"DbInstanceIdentifier": preprod.ref("aws_db_instance", db_key, "identifier")}


def test_scheduler_role_may_only_start_and_stop_that_database(preprod):
    (policy,) = [json.loads(body["policy"]) for body in preprod.resources("aws_iam_role_policy").values() if body["name"].endswith("-rds-start-stop")]
    (db_key,) = preprod.resources("aws_db_instance")
    assert policy["Statement"] == [{"Effect": "Allow", "Action": ["rds:StartDBInstance", "rds:StopDBInstance"], "Resource": preprod.ref("aws_db_instance", db_key, "arn")}]


def test_sleeping_fleet_capacity_is_not_undone_by_the_next_plan(preprod):
    group = preprod.named("aws_autoscaling_group", "name", "greenleaf-preprod-app")[1]
    assert set(group["lifecycle"]["ignore_changes"]) == {"desired_capacity", "min_size", "max_size"}


def test_off_hours_keep_the_preprod_fleet_awake_50_hours_a_week(preprod):
    """Read back from the synthesized Auto Scaling schedules (their recurrence is a Unix cron, in the time
    zone they name): a week of wake and sleep events, as croniter reads the crons."""
    from datetime import datetime, timedelta

    from croniter import croniter_range

    schedules = {schedule["scheduled_action_name"]: schedule for schedule in preprod.resources("aws_autoscaling_schedule").values()}
    wake, sleep = schedules["greenleaf-preprod-wake"], schedules["greenleaf-preprod-sleep"]
    assert wake["time_zone"] == sleep["time_zone"] == "Europe/Paris"
    monday = datetime(2026, 1, 5)
    events = sorted([(at, "wake") for at in croniter_range(monday, monday + timedelta(days=7), wake["recurrence"])]
                    + [(at, "sleep") for at in croniter_range(monday, monday + timedelta(days=7), sleep["recurrence"])])
    awake, since = timedelta(), None
    for at, event in events:
        if event == "wake":
            since = at
        elif since is not None:
            awake, since = awake + (at - since), None
    assert awake == timedelta(hours=50)


# Media bucket ---------------------------------------------------------------------------


def test_media_bucket_is_versioned_encrypted_and_private(prod_custom):
    prod = prod_custom  # without the edge, media are in S3
    (bucket_key,) = prod.resources("aws_s3_bucket")
    bucket_id = prod.ref("aws_s3_bucket", bucket_key)
    assert prod.only("aws_s3_bucket_versioning")["versioning_configuration"]["status"] == "Enabled"
    encryption = prod.only("aws_s3_bucket_server_side_encryption_configuration")
    assert encryption["bucket"] == bucket_id
    assert encryption["rule"][0]["apply_server_side_encryption_by_default"]["sse_algorithm"] == "AES256"
    block = prod.only("aws_s3_bucket_public_access_block")
    assert all(block[flag] is True for flag in ("block_public_acls", "block_public_policy", "ignore_public_acls", "restrict_public_buckets"))


def test_the_media_bucket_refuses_every_request_that_is_not_over_tls(prod_custom):
    """aws:SecureTransport is false for plain-HTTP requests; one Deny statement on the bucket and its
    objects turns them all away, whoever signs them (S3 user guide, security best practices)."""
    prod = prod_custom
    (bucket_key,) = prod.resources("aws_s3_bucket")
    policy = prod.only("aws_s3_bucket_policy")
    assert policy["bucket"] == prod.ref("aws_s3_bucket", bucket_key)
    arn = prod.ref("aws_s3_bucket", bucket_key, "arn")
    assert json.loads(policy["policy"])["Statement"] == [
        {
            "Sid": "DenyRequestsWithoutTls",
            "Effect": "Deny",
            "Principal": "*",
            "Action": "s3:*",
            "Resource": [arn, f"{arn}/*"],
            "Condition": {"Bool": {"aws:SecureTransport": "false"}},
        }
    ]


def test_s3_compatible_endpoint_reaches_the_app(prod_custom, prod_http_only):
    assert "S3_ENDPOINT='https://account.r2.cloudflarestorage.com'" in prod_custom.only("aws_ssm_parameter")["value"]
    assert "S3_ENDPOINT=''" in prod_http_only.only("aws_ssm_parameter")["value"]
