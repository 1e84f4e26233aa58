"""Off-hours: an environment that sleeps outside office hours and pays only for the hours it is used."""

from __future__ import annotations

import json
import re
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from cdktf_cdktf_provider_aws.autoscaling_schedule import AutoscalingSchedule
from cdktf_cdktf_provider_aws.iam_role import IamRole
from cdktf_cdktf_provider_aws.iam_role_policy import IamRolePolicy
from cdktf_cdktf_provider_aws.scheduler_schedule import (
    SchedulerSchedule,
    SchedulerScheduleFlexibleTimeWindow,
    SchedulerScheduleTarget,
)
from constructs import Construct

from ._common import assume_role_policy, policy_document
from .data import Database
from .web import AppFleet

_DAYS = ("MON", "TUE", "WED", "THU", "FRI", "SAT", "SUN")
_CLOCK = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)$")
_DAY_RANGE = re.compile(r"^(MON|TUE|WED|THU|FRI|SAT|SUN)(?:-(MON|TUE|WED|THU|FRI|SAT|SUN))?$")


class OffHours(Construct):
    """Scales ``fleet`` to zero and stops ``database`` outside ``start``-``stop`` on ``days``,
    in ``timezone`` (daylight saving is the schedules' business, not an edit twice a year).

    The fleet uses Auto Scaling scheduled actions; the database is stopped and
    started by EventBridge Scheduler calling the RDS API directly (no Lambda).
    Weekends stay off: nothing starts on a day outside ``days``. The database starts
    ``database_lead_minutes`` (15) before the fleet, so it is available when the app boots.
    """

    def __init__(
        self,
        scope: Construct,
        id: str,
        *,
        name: str,
        fleet: AppFleet,
        database: Database | None = None,
        start: str = "09:00",
        stop: str = "19:00",
        days: str = "MON-FRI",
        timezone: str = "Europe/Paris",
        database_lead_minutes: int = 15,
    ) -> None:
        super().__init__(scope, id)
        start_hour, start_minute = _clock("start", start)
        stop_hour, stop_minute = _clock("stop", stop)
        if (start_hour, start_minute) >= (stop_hour, stop_minute):
            raise ValueError(f"OffHours start: {start!r} is not before stop {stop!r}; allowed: start < stop on the same day")
        if not _DAY_RANGE.match(days):
            raise ValueError(f"OffHours days: {days!r} is not allowed; allowed: a day or a range such as MON-FRI")
        try:
            ZoneInfo(timezone)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"OffHours timezone: {timezone!r} is not allowed; allowed: an IANA zone such as Europe/Paris") from None
        if not 0 <= database_lead_minutes <= start_hour * 60 + start_minute:
            raise ValueError(
                f"OffHours database_lead_minutes: {database_lead_minutes} is not allowed; allowed: 0 to {start_hour * 60 + start_minute} (not before midnight)"
            )
        self.start, self.stop, self.days, self.timezone = start, stop, days, timezone
        unix_days = _unix_days(days)

        fleet.ignore_capacity_changes()
        self.sleep = AutoscalingSchedule(
            self,
            "fleet-sleep",
            scheduled_action_name=f"{name}-sleep",
            autoscaling_group_name=fleet.auto_scaling_group_name,
            recurrence=f"{stop_minute} {stop_hour} * * {unix_days}",
            time_zone=timezone,
            min_size=0,
            max_size=0,
            desired_capacity=0,
        )
        self.wake = AutoscalingSchedule(
            self,
            "fleet-wake",
            scheduled_action_name=f"{name}-wake",
            autoscaling_group_name=fleet.auto_scaling_group_name,
            recurrence=f"{start_minute} {start_hour} * * {unix_days}",
            time_zone=timezone,
            min_size=fleet.min_size,
            max_size=fleet.max_size,
            desired_capacity=fleet.desired_capacity,
        )

        self.database_schedules: list[SchedulerSchedule] = []
        if database is not None:
            role = IamRole(self, "scheduler-role", name=f"{name}-rds-scheduler", assume_role_policy=assume_role_policy("scheduler.amazonaws.com"))
            IamRolePolicy(
                self,
                "scheduler-policy",
                name=f"{name}-rds-start-stop",
                role=role.id,
                policy=policy_document({"Effect": "Allow", "Action": ["rds:StartDBInstance", "rds:StopDBInstance"], "Resource": database.arn}),
            )
            # A stopped RDS instance takes minutes to become available: it wakes ``database_lead_minutes``
            # before the fleet, whose first health checks would otherwise fail on a database still starting.
            wake = start_hour * 60 + start_minute - database_lead_minutes
            for action, hour, minute in (("stop", stop_hour, stop_minute), ("start", wake // 60, wake % 60)):
                self.database_schedules.append(
                    SchedulerSchedule(
                        self,
                        f"db-{action}",
                        name=f"{name}-db-{action}",
                        description=f"{action} {database.name}'s database at {hour:02d}:{minute:02d} {timezone} on {days}",
                        schedule_expression=f"cron({minute} {hour} ? * {','.join(_day_list(days))} *)",
                        schedule_expression_timezone=timezone,
                        flexible_time_window=SchedulerScheduleFlexibleTimeWindow(mode="OFF"),
                        target=SchedulerScheduleTarget(
                            arn=f"arn:aws:scheduler:::aws-sdk:rds:{action}DBInstance",
                            role_arn=role.arn,
                            input=json.dumps({"DbInstanceIdentifier": database.identifier}),
                        ),
                    )
                )

    @property
    def hours_per_week(self) -> float:
        """Hours per week the environment is awake."""
        (start_hour, start_minute), (stop_hour, stop_minute) = _clock("start", self.start), _clock("stop", self.stop)
        daily = (stop_hour * 60 + stop_minute - start_hour * 60 - start_minute) / 60
        return daily * len(_day_list(self.days))


def _clock(field: str, value: str) -> tuple[int, int]:
    match = _CLOCK.match(value)
    if not match:
        raise ValueError(f"OffHours {field}: {value!r} is not allowed; allowed: HH:MM, 24-hour clock")
    return int(match.group(1)), int(match.group(2))


def _day_list(days: str) -> list[str]:
    first, _, last = days.partition("-")
    start = _DAYS.index(first)
    end = _DAYS.index(last or first)
    return list(_DAYS[start : end + 1]) if end >= start else list(_DAYS[start:] + _DAYS[: end + 1])


def _unix_days(days: str) -> str:
    """Cron day-of-week field for Auto Scaling (0 = Sunday): MON-FRI -> 1-5."""
    numbers = [(_DAYS.index(day) + 1) % 7 for day in _day_list(days)]
    return ",".join(str(number) for number in numbers)
