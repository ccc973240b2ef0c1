"""A state type of the application's own, importable by name (no tests here)."""

from __future__ import annotations

from typing import TypedDict

from pydantic import BaseModel


class Plan(BaseModel):
    steps: list[str]


class PlanState(TypedDict):
    plan: Plan
