"""AWS Backup for the database: a vault, a daily plan with its retention, the database selected by ARN."""

from __future__ import annotations

import re

from cdktf_cdktf_provider_aws.backup_plan import BackupPlan, BackupPlanRule, BackupPlanRuleLifecycle
from cdktf_cdktf_provider_aws.backup_selection import BackupSelection
from cdktf_cdktf_provider_aws.backup_vault import BackupVault
from cdktf_cdktf_provider_aws.iam_role import IamRole
from cdktf_cdktf_provider_aws.iam_role_policy_attachment import IamRolePolicyAttachment
from constructs import Construct

from ._common import account_key, assume_role_policy
from .data import Database

# AWS Backup's managed policies for its service role (AWS Backup developer guide, "Default service role").
BACKUP_POLICY = "arn:aws:iam::aws:policy/service-role/AWSBackupServiceRolePolicyForBackup"
RESTORE_POLICY = "arn:aws:iam::aws:policy/service-role/AWSBackupServiceRolePolicyForRestores"
_CRON = re.compile(r"^cron\(\S+ \S+ \S+ \S+ \S+ \S+\)$")


class DatabaseBackup(Construct):
    """Daily snapshots of ``database`` kept ``retention_days`` in a vault of their own, beside RDS's own
    automated backups (point-in-time recovery within the database's ``backup_retention_days``):
    AWS Backup's copies outlive the instance, so a deleted database can still be restored. The vault
    is encrypted with a key of its own unless ``kms_key_arn`` names one."""

    def __init__(
        self,
        scope: Construct,
        id: str,
        *,
        name: str,
        database: Database,
        schedule: str = "cron(0 3 * * ? *)",
        retention_days: int = 35,
        kms_key_arn: str | None = None,
    ) -> None:
        super().__init__(scope, id)
        if not _CRON.match(schedule):
            raise ValueError(f"DatabaseBackup schedule: {schedule!r} is not allowed; allowed: a six-field cron(...) expression in UTC")
        if not 1 <= retention_days <= 36500:
            raise ValueError(f"DatabaseBackup retention_days: {retention_days} is not allowed; allowed: 1-36500")
        if kms_key_arn is None:
            kms_key_arn = account_key(self, "key", description=f"{name}: encrypts the database's backups").arn
        self.vault = BackupVault(self, "vault", name=f"{name}-backups", kms_key_arn=kms_key_arn, tags={"Name": f"{name}-backups"})
        self.plan = BackupPlan(
            self,
            "plan",
            name=f"{name}-daily",
            rule=[
                BackupPlanRule(
                    rule_name="daily",
                    target_vault_name=self.vault.name,
                    schedule=schedule,
                    start_window=60,
                    completion_window=180,
                    lifecycle=BackupPlanRuleLifecycle(delete_after=retention_days),
                )
            ],
        )
        self.role = IamRole(self, "role", name=f"{name}-backup", assume_role_policy=assume_role_policy("backup.amazonaws.com"))
        for index, arn in enumerate((BACKUP_POLICY, RESTORE_POLICY)):
            IamRolePolicyAttachment(self, f"managed-{index}", role=self.role.name, policy_arn=arn)
        BackupSelection(self, "selection", name=f"{name}-database", plan_id=self.plan.id, iam_role_arn=self.role.arn, resources=[database.arn])
        self.retention_days = retention_days
