"""`forewarn import`'s options: a module of its own, free of pandas, so that the command can
start Java reading the first file before it loads the mapping (`import_schedules`)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date


@dataclass(frozen=True)
class ImportOptions:
    """How schedule files are dated, recognised and compared (`forewarn import`'s options)."""

    status_date: date | None = None  # for files without a data/status date
    project_key: str | None = None  # regex; first group of a match on code, else file name
    project_map: Mapping[str, str] = field(default_factory=dict)  # file / code → project_id
    change_threshold: float = 0.05  # relative change of duration or cost that is a change
    high_float_days: float = 44.0
    high_duration_days: float = 44.0
    portfolio_field: str | None = None  # project field (P6 project code, MSP custom property)
    type_field: str | None = None
    risks_field: str | None = None
    issues_field: str | None = None
