"""Five-field cron expressions (`*/5 * * * *`) for periodic tasks, evaluated in UTC."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from perfkit.errors import ConfigurationError

_FIELDS = (
    ("minute", 0, 59),
    ("hour", 0, 23),
    ("day of month", 1, 31),
    ("month", 1, 12),
    ("day of week", 0, 7),  # 0 and 7 are both Sunday
)


def _parse_field(text: str, name: str, low: int, high: int, expr: str) -> frozenset[int]:
    values: set[int] = set()
    for part in text.split(","):
        body, _, step_text = part.partition("/")
        try:
            step = int(step_text) if step_text else 1
            if body == "*":
                start, stop = low, high
            elif "-" in body:
                a, b = body.split("-", 1)
                start, stop = int(a), int(b)
            else:
                start = stop = int(body)
                if step_text:
                    stop = high
        except ValueError:
            raise ConfigurationError(
                "cron", f"{expr!r}: {name} field {text!r} is not a number, range or */n"
            ) from None
        if step < 1 or start < low or stop > high or start > stop:
            raise ConfigurationError("cron", f"{expr!r}: {name} field {text!r} is outside {low}-{high}")
        values.update(range(start, stop + 1, step))
    if name == "day of week" and 7 in values:
        values.discard(7)
        values.add(0)
    return frozenset(values)


class Cron:
    """A parsed cron expression; `next_after(t)` is the first matching minute strictly after `t`."""

    def __init__(self, expr: str) -> None:
        parts = expr.split()
        if len(parts) != 5:
            raise ConfigurationError(
                "cron", f"{expr!r} needs 5 fields: minute hour day-of-month month day-of-week"
            )
        self.expr = expr
        fields = [_parse_field(p, n, lo, hi, expr) for p, (n, lo, hi) in zip(parts, _FIELDS, strict=True)]
        self.minutes, self.hours, self.days, self.months, self.weekdays = fields
        self._any_day, self._any_weekday = parts[2] == "*", parts[4] == "*"

    def _day_matches(self, t: datetime) -> bool:
        dom, dow = t.day in self.days, (t.weekday() + 1) % 7 in self.weekdays
        if self._any_day or self._any_weekday:
            return dom and dow
        return dom or dow  # cron's rule: both restricted means either matches

    def next_after(self, when: float) -> float:
        t = datetime.fromtimestamp(when, UTC).replace(second=0, microsecond=0) + timedelta(minutes=1)
        limit = t + timedelta(days=366 * 5)
        while t < limit:
            if t.month not in self.months or not self._day_matches(t):
                t = (t + timedelta(days=1)).replace(hour=0, minute=0)
            elif t.hour not in self.hours:
                t = (t + timedelta(hours=1)).replace(minute=0)
            elif t.minute not in self.minutes:
                t += timedelta(minutes=1)
            else:
                return t.timestamp()
        raise ConfigurationError("cron", f"{self.expr!r} never matches")
