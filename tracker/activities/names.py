"""An activity's name: the owner's, else one made of its sport and start."""

from __future__ import annotations

from datetime import datetime, timezone


def automatic_name(sport: str, start_ns: int) -> str:
    """e.g. "Cycling, 5 Dec 2026 07:12" (UTC); "Activity, ..." without a sport."""
    moment = datetime.fromtimestamp(start_ns // 1_000_000_000, timezone.utc)
    kind = sport.replace("-", " ").replace("_", " ").capitalize() if sport else "Activity"
    return f"{kind}, {moment.day} {moment:%b %Y %H:%M}"


def activity_name(name: str | None, sport: str, start_ns: int) -> str:
    return name if name is not None else automatic_name(sport, start_ns)
