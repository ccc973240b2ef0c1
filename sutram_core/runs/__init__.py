"""The run ledger: runs, their leases and fences, budgets and spend."""

from sutram_core.runs.records import Budget, RunRecord, RunStatus, Spend

__all__ = ["Budget", "RunRecord", "RunStatus", "Spend"]
