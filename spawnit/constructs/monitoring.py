"""Alerts: an SNS topic, a monthly budget, and the three alarms that matter."""

from __future__ import annotations

from collections.abc import Sequence

from cdktf_cdktf_provider_aws.budgets_budget import BudgetsBudget, BudgetsBudgetNotification
from cdktf_cdktf_provider_aws.cloudwatch_metric_alarm import CloudwatchMetricAlarm
from cdktf_cdktf_provider_aws.kms_alias import KmsAlias
from cdktf_cdktf_provider_aws.sns_topic import SnsTopic
from cdktf_cdktf_provider_aws.sns_topic_policy import SnsTopicPolicy
from cdktf_cdktf_provider_aws.sns_topic_subscription import SnsTopicSubscription
from constructs import Construct

from ._common import account_key, policy_document
from .data import Database
from .web import AppFleet, LoadBalancer

GIB = 1024**3
# Services that publish to the topic: they need sns:Publish on it and, the topic being encrypted,
# kms:GenerateDataKey* and kms:Decrypt on its key. AWS-managed keys (alias/aws/sns) cannot grant that,
# so alarms on such a topic are dropped without a word (SNS developer guide, "Key management":
# compatibility between event sources from AWS services and encrypted topics).
PUBLISHERS = ("cloudwatch.amazonaws.com", "budgets.amazonaws.com")
KEY_ACTIONS_FOR_PUBLISHERS = ("kms:GenerateDataKey*", "kms:Decrypt")


class Alerts(Construct):
    """Notifications for one environment: SNS topic ``<name>-alerts`` (encrypted with a key of its own
    that CloudWatch and AWS Budgets may use) with e-mail subscriptions, a monthly cost budget
    ``<name>-monthly``, and CloudWatch alarms on what is given:

    - ``load_balancer``: a target is unhealthy (UnhealthyHostCount >= 1 for 1 minute);
    - ``fleet``: the app saturates (average CPU > 85 % for 5 minutes);
    - ``database``: storage runs out (FreeStorageSpace < 2 GiB).

    The budget alerts at 100 % of the forecast and 80 % of actual spend.
    E-mail subscriptions must be confirmed from the message AWS sends.
    """

    def __init__(
        self,
        scope: Construct,
        id: str,
        *,
        name: str,
        emails: Sequence[str] = (),
        monthly_budget_usd: float | None = 500.0,
        load_balancer: LoadBalancer | None = None,
        fleet: AppFleet | None = None,
        database: Database | None = None,
    ) -> None:
        super().__init__(scope, id)
        if monthly_budget_usd is not None and monthly_budget_usd <= 0:
            raise ValueError(f"Alerts monthly_budget_usd: {monthly_budget_usd} is not allowed; allowed: a positive amount")
        self.name = name
        self.key = account_key(
            self,
            "key",
            description=f"{name}: encrypts the alerts topic; CloudWatch alarms and AWS Budgets may use it",
            statements=[
                {
                    "Sid": "AlarmsAndBudgetsEncryptForTheTopic",
                    "Effect": "Allow",
                    "Principal": {"Service": list(PUBLISHERS)},
                    "Action": list(KEY_ACTIONS_FOR_PUBLISHERS),
                    "Resource": "*",
                }
            ],
        )
        KmsAlias(self, "key-alias", name=f"alias/{name}-alerts", target_key_id=self.key.key_id)
        self.topic = SnsTopic(self, "topic", name=f"{name}-alerts", kms_master_key_id=self.key.arn)
        self.topic_policy = SnsTopicPolicy(
            self,
            "topic-policy",
            arn=self.topic.arn,
            policy=policy_document(
                {
                    "Sid": "AlarmsAndBudgetsPublish",
                    "Effect": "Allow",
                    "Principal": {"Service": list(PUBLISHERS)},
                    "Action": "SNS:Publish",
                    "Resource": self.topic.arn,
                },
            ),
        )
        for index, email in enumerate(emails):
            SnsTopicSubscription(self, f"email-{index}", topic_arn=self.topic.arn, protocol="email", endpoint=email)

        self.budget = None
        if monthly_budget_usd is not None:
            self.budget = BudgetsBudget(
                self,
                "budget",
                name=f"{name}-monthly",
                budget_type="COST",
                limit_amount=f"{monthly_budget_usd:.2f}",
                limit_unit="USD",
                time_unit="MONTHLY",
                notification=[
                    self._budget_notification("FORECASTED", 100, emails),
                    self._budget_notification("ACTUAL", 80, emails),
                ],
            )
        self.alarms: list[CloudwatchMetricAlarm] = []
        if load_balancer is not None:
            self._alarm(
                "unhealthy-hosts",
                name=f"{load_balancer.name}-unhealthy-hosts",
                description="At least one instance fails the load balancer's health check: the site may be down.",
                namespace="AWS/ApplicationELB",
                metric_name="UnhealthyHostCount",
                dimensions={"TargetGroup": load_balancer.target_group_arn_suffix, "LoadBalancer": load_balancer.arn_suffix},
                statistic="Maximum",
                comparison_operator="GreaterThanOrEqualToThreshold",
                threshold=1,
                period=60,
            )
        if fleet is not None:
            self._alarm(
                "fleet-cpu",
                name=f"{fleet.name}-cpu-high",
                description="The app fleet averages more than 85 % CPU for 5 minutes: it saturates.",
                namespace="AWS/EC2",
                metric_name="CPUUtilization",
                dimensions={"AutoScalingGroupName": fleet.auto_scaling_group_name},
                statistic="Average",
                comparison_operator="GreaterThanThreshold",
                threshold=85,
                period=300,
            )
        if database is not None:
            self._alarm(
                "db-storage",
                name=f"{database.name}-db-free-storage-low",
                description="The database has less than 2 GiB of free storage left.",
                namespace="AWS/RDS",
                metric_name="FreeStorageSpace",
                dimensions={"DBInstanceIdentifier": database.identifier},
                statistic="Minimum",
                comparison_operator="LessThanThreshold",
                threshold=2 * GIB,
                period=300,
            )

    def _budget_notification(self, kind: str, percent: int, emails: Sequence[str]) -> BudgetsBudgetNotification:
        return BudgetsBudgetNotification(
            notification_type=kind,
            comparison_operator="GREATER_THAN",
            threshold=percent,
            threshold_type="PERCENTAGE",
            subscriber_sns_topic_arns=[self.topic.arn],
            subscriber_email_addresses=list(emails) or None,
        )

    def _alarm(self, id: str, *, name: str, description: str, **metric: object) -> None:
        self.alarms.append(
            CloudwatchMetricAlarm(
                self,
                id,
                alarm_name=name,
                alarm_description=description,
                evaluation_periods=1,
                treat_missing_data="notBreaching",
                alarm_actions=[self.topic.arn],
                ok_actions=[self.topic.arn],
                **metric,
            )
        )
