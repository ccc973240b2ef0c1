"""The run ledger's records: a run, its status, its budget and what it has spent.

A run is one invocation of a graph on a thread. Its lifecycle::

    pending --claim--> running --finish--> completed | failed | cancelled
                        |  ^
                  pause |  | resume (claim again)
                        v  |
                       paused

A running run is owned by one executor through a lease that the executor renews
(heartbeat). When the lease expires (the worker died), another executor may claim the
run; every claim raises the run's ``fence``, and writes carrying an older fence are
refused (:class:`~sutram_core.errors.LeaseLostError`), so a worker that was presumed
dead cannot write over its successor.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from datetime import datetime
from enum import Enum
from typing import Any

from sutram_core.errors import InvalidRunError

__all__ = ["LLAMA_INDEX_VERSION", "Budget", "RunRecord", "RunStatus", "Spend"]

# what the recorded version (RunRecord.graph_version) of a LlamaIndex workflow's run starts
# with: the ledger is shared, and each runner refuses the other framework's runs
LLAMA_INDEX_VERSION = "llama-index:"


class RunStatus(str, Enum):
    """Where a run is in its lifecycle."""

    PENDING = "pending"
    RUNNING = "running"
    PAUSED = "paused"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def finished(self) -> bool:
        """True for completed, failed and cancelled."""
        return self in (RunStatus.COMPLETED, RunStatus.FAILED, RunStatus.CANCELLED)


def _limit(name: str, value: Any) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
        raise InvalidRunError(f"budget {name} is a number >= 0 or None, not {value!r}")
    return float(value)


@dataclass(frozen=True)
class Budget:
    """Limits of one run; None means no limit. A run pauses before it would exceed one."""

    max_tokens: int | None = None
    max_cost_usd: float | None = None
    max_steps: int | None = None
    max_seconds: float | None = None

    def __post_init__(self) -> None:
        for name in ("max_tokens", "max_cost_usd", "max_steps", "max_seconds"):
            _limit(name, getattr(self, name))

    def as_dict(self) -> dict[str, Any]:
        """The limits that are set."""
        return {k: v for k, v in asdict(self).items() if v is not None}

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> Budget:
        """The inverse of :meth:`as_dict`."""
        return cls(**{k: v for k, v in (data or {}).items() if k in cls.__dataclass_fields__})

    def overshoot(self, spend: Spend) -> str | None:
        """Which limit ``spend`` went past, and by how much, as a sentence, or None.

        A budget is checked before each model call and node, against what was spent so far:
        the call that crosses a limit still completes (its usage is known only once it
        answers), so a run can end past its budget by at most that one call's usage. This
        says by how much, so it is never silent."""
        checks = (("max_tokens", spend.tokens, "tokens"), ("max_cost_usd", spend.cost_usd, "USD"))
        over = [f"{name} by {used - limit:g} ({used:g} of {limit:g} {unit})"
                for name, used, unit in checks if (limit := getattr(self, name)) is not None and used > limit]
        return "over " + ", ".join(over) if over else None

    def exceeded(self, spend: Spend) -> str | None:
        """Which limit ``spend`` has reached, as a sentence, or None."""
        checks = (("max_tokens", spend.tokens, "tokens"), ("max_cost_usd", spend.cost_usd, "USD"),
                  ("max_steps", spend.steps, "steps"), ("max_seconds", spend.seconds, "seconds"))
        for name, used, unit in checks:
            limit = getattr(self, name)
            if limit is not None and used >= limit:
                return f"{name} reached: {used:g} of {limit:g} {unit}"
        return None


@dataclass
class Spend:
    """What a run has used so far."""

    tokens: int = 0
    cost_usd: float = 0.0
    steps: int = 0
    seconds: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> Spend:
        return cls(**{k: v for k, v in (data or {}).items() if k in cls.__dataclass_fields__})

    def plus(self, other: Spend) -> Spend:
        """The sum of two spends."""
        return Spend(self.tokens + other.tokens, self.cost_usd + other.cost_usd, self.steps + other.steps,
                     self.seconds + other.seconds)


@dataclass
class RunRecord:
    """One run as the ledger stores it (times are UTC datetimes)."""

    run_id: str
    tenant_id: str
    thread_id: str
    status: RunStatus
    graph_name: str = ""
    graph_version: str = ""
    executor_id: str | None = None
    fence: int = 0
    lease_expires_at: datetime | None = None
    budget: Budget = field(default_factory=Budget)
    spend: Spend = field(default_factory=Spend)
    pause_reason: str | None = None
    error: str | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None
    finished_at: datetime | None = None
    attempts: int = 0

    @property
    def overshoot(self) -> str | None:
        """How far the run's spend went past its budget (see :meth:`Budget.overshoot`)."""
        return self.budget.overshoot(self.spend)
