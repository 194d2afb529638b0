"""Five-field cron expressions, as `Upstash-Cron` takes them (optionally `CRON_TZ=Zone ...`).

Fields: minute, hour, day of month, month, day of week (0-7, Sunday is 0 or 7); each a list of
`*`, `n`, `a-b`, with an optional `/step`; month and day names (`JAN`, `MON`) and the macros
`@yearly`, `@monthly`, `@weekly`, `@daily`, `@hourly` are accepted. As in Vixie cron, when both
day fields are restricted a day matches either of them.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

_MACROS = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}
_MONTHS = ["JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"]
_WEEKDAYS = ["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"]
_SEARCH_LIMIT = timedelta(days=366 * 5)


class CronError(ValueError):
    """The expression is not a cron expression this server understands."""


@dataclass(frozen=True)
class Cron:
    expression: str
    minutes: frozenset[int]
    hours: frozenset[int]
    days: frozenset[int]
    months: frozenset[int]
    weekdays: frozenset[int]
    days_restricted: bool
    weekdays_restricted: bool
    zone: ZoneInfo | None

    @classmethod
    def parse(cls, expression: str) -> Cron:
        text = expression.strip()
        zone = None
        if text.startswith("CRON_TZ="):
            zone_name, _, text = text[len("CRON_TZ=") :].partition(" ")
            try:
                zone = ZoneInfo(zone_name)
            except (ZoneInfoNotFoundError, ValueError):
                raise CronError(f"unknown time zone {zone_name!r} in cron {expression!r}") from None
        text = _MACROS.get(text.strip().lower(), text)
        fields = text.split()
        if len(fields) != 5:
            raise CronError(f"cron {expression!r} must have 5 fields, has {len(fields)}")
        minute, hour, day, month, weekday = fields
        weekdays = _field(weekday, 0, 7, _WEEKDAYS, expression)
        return cls(
            expression=expression,
            minutes=_field(minute, 0, 59, None, expression),
            hours=_field(hour, 0, 23, None, expression),
            days=_field(day, 1, 31, None, expression),
            months=_field(month, 1, 12, _MONTHS, expression, first_name_value=1),
            weekdays=frozenset(value % 7 for value in weekdays),
            days_restricted=not day.startswith("*"),
            weekdays_restricted=not weekday.startswith("*"),
            zone=zone,
        )

    def matches(self, moment: datetime) -> bool:
        """Whether the cron fires in the minute of `moment` (an aware datetime)."""
        local = moment.astimezone(self.zone or UTC)
        return local.minute in self.minutes and local.hour in self.hours and self._day_matches(local)

    def next_after(self, moment: datetime) -> datetime | None:
        """The first minute strictly after `moment` at which the cron fires (UTC), None if never."""
        local = moment.astimezone(self.zone or UTC).replace(tzinfo=None, second=0, microsecond=0)
        candidate = local + timedelta(minutes=1)
        limit = candidate + _SEARCH_LIMIT
        while candidate < limit:
            if not self._day_matches(candidate):
                candidate = candidate.replace(hour=0, minute=0) + timedelta(days=1)
            elif candidate.hour not in self.hours:
                candidate = candidate.replace(minute=0) + timedelta(hours=1)
            elif candidate.minute not in self.minutes:
                candidate += timedelta(minutes=1)
            else:
                return candidate.replace(tzinfo=self.zone or UTC).astimezone(UTC)
        return None

    def _day_matches(self, local: datetime) -> bool:
        if local.month not in self.months:
            return False
        day_ok = local.day in self.days
        weekday_ok = (local.isoweekday() % 7) in self.weekdays
        if self.days_restricted and self.weekdays_restricted:
            return day_ok or weekday_ok
        return day_ok and weekday_ok


def _field(
    text: str,
    low: int,
    high: int,
    names: list[str] | None,
    expression: str,
    first_name_value: int = 0,
) -> frozenset[int]:
    values: set[int] = set()
    for item in text.split(","):
        span, _, step_text = item.partition("/")
        try:
            step = int(step_text) if step_text else 1
            if span == "*":
                start, end = low, high
            else:
                first, _, last = span.partition("-")
                start = _value(first, names, first_name_value)
                end = _value(last, names, first_name_value) if last else (high if step_text else start)
        except ValueError:
            raise CronError(f"invalid field {text!r} in cron {expression!r}") from None
        if step < 1 or not low <= start <= end <= high:
            raise CronError(f"field {text!r} out of range {low}-{high} in cron {expression!r}")
        values.update(range(start, end + 1, step))
    return frozenset(values)


def _value(text: str, names: list[str] | None, first_name_value: int) -> int:
    if names and text.upper() in names:
        return names.index(text.upper()) + first_name_value
    if not text.isdigit():
        raise ValueError(text)
    return int(text)
