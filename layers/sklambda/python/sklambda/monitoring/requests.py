"""What the scheduled monitoring checks (drift, model quality) share around their domain code: the on-demand request
and the models a scheduled run checks. No Lambda event shapes: the handlers tell a schedule from a request."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

from pydantic import BaseModel, ConfigDict, Field, field_validator

from sklambda.monitoring.windows import Window, not_in_future
from sklambda.registry.store import Registry


class OnDemandCheck(BaseModel):
    """An on-demand check of one model: `window_hours` (default: the function's) ending at `end` (default: now; a
    naive time is read as UTC; not in the future beyond windows.MAX_CLOCK_SKEW). Unknown fields are refused."""

    model_config = ConfigDict(extra="forbid")

    model: str = Field(min_length=1, max_length=128)
    window_hours: float | None = Field(default=None, gt=0, le=24 * 31)
    end: datetime | None = None

    @field_validator("end")
    @classmethod
    def _not_in_future(cls, end: datetime | None) -> datetime | None:
        return None if end is None else not_in_future(end, datetime.now(UTC))

    def window(self, now: datetime, default_hours: float) -> Window:
        """The window [end - hours, end) the request asks for."""
        return Window.ending(self.end or now, self.window_hours or default_hours)


def models_with_alias(registry: Registry, alias: str, on_error: Callable[[str], None] = lambda name: None) -> list[str]:
    """Every model with `alias`, for a scheduled run. A model whose aliases cannot be read is listed too (after
    `on_error(name)`, which may log it), so that its check fails as an entry of its own rather than stopping the
    others'."""
    names = []
    for name in registry.list_models():
        try:
            if alias not in registry.list_aliases(name):
                continue
        except Exception:
            on_error(name)
        names.append(name)
    return names
