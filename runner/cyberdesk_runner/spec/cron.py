"""Crontab expressions -> APScheduler 3 `CronTrigger` keyword arguments.

APScheduler 3 numbers weekdays from Monday = 0 while crontab uses Sunday = 0 (and 7), so
`CronTrigger.from_crontab("0 6 * * 1-5")` would run Tuesday to Saturday (apscheduler#286). The
day-of-week field is therefore expanded here with crontab's numbering and handed over as day names.
"""

from __future__ import annotations

__all__ = ["cron_fields"]

_MACROS = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}
_CRONTAB_DAYS = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")  # index = crontab number
_APSCHEDULER_DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


def cron_fields(expression: str) -> dict[str, str]:
    """`"0 6 * * 1-5"` (or 6 fields with seconds first, or a macro like `@daily`) -> CronTrigger kwargs.

    Raises ValueError for a wrong number of fields or a bad day-of-week; APScheduler checks the rest.
    """
    text = expression.strip()
    if text.startswith("@"):
        if text.lower() not in _MACROS:
            raise ValueError(f"unknown macro {text!r}; use one of {', '.join(_MACROS)}")
        text = _MACROS[text.lower()]
    parts = text.split()
    if len(parts) == 5:
        parts.insert(0, "0")
    elif len(parts) != 6:
        raise ValueError(
            f"expected 5 fields (minute hour day month day_of_week) or 6 (second first), got {len(parts)}"
        )
    second, minute, hour, day, month, day_of_week = parts
    return {
        "second": second,
        "minute": minute,
        "hour": hour,
        "day": day,
        "month": month,
        "day_of_week": _day_of_week(day_of_week),
    }


def _day_of_week(field: str) -> str:
    if field in ("*", "?"):
        return "*"
    days: set[int] = set()
    for token in field.split(","):
        base, has_step, step_text = token.partition("/")
        step = _step(step_text, token) if has_step else 1
        if base == "*":
            first, last = 0, 6
        elif "-" in base:
            start, _, end = base.partition("-")
            first, last = _day(start, token), _day(end, token, is_end=True)
        else:
            first = _day(base, token)
            last = 6 if has_step else first  # `1/2`: every other day from Monday on
        if first > last:
            raise ValueError(f"day of week: range {token!r} runs backwards")
        days.update(day % 7 for day in range(first, last + 1, step))
    return ",".join(name for name in _APSCHEDULER_DAYS if _CRONTAB_DAYS.index(name) in days)


def _day(text: str, token: str, *, is_end: bool = False) -> int:
    name = text.lower()
    if name in _CRONTAB_DAYS:
        # `fri-sun` ends on Sunday, which crontab also numbers 7.
        return 7 if is_end and name == "sun" else _CRONTAB_DAYS.index(name)
    if text.isdigit() and int(text) <= 7:
        return int(text)
    where = f" in {token!r}" if token != text else ""
    raise ValueError(f"day of week: {text!r}{where} is not a day (0-7 with 0 and 7 Sunday, or sun-sat)")


def _step(text: str, token: str) -> int:
    if not text.isdigit() or int(text) == 0:
        raise ValueError(f"day of week: step in {token!r} must be a whole number of at least 1")
    return int(text)
