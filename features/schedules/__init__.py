"""Import schedules (Primavera P6 XER / XML, MS Project MPP / MSPDI) into data contract v1.

`import_schedules` reads every file through MPXJ (`reader`, the JVM started once), dates and
keys each project snapshot, and maps the snapshots to the contract's tables (`mapping`,
with the DCMA schedule-health checks of `health`); `write_import` writes the portfolio
folder. `docs/import.md` documents every rule. Importing this package starts no JVM.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from features.schedules.options import ImportOptions
from features.schedules.reader import (
    JavaNotFoundError,
    ReadAhead,
    ScheduleError,
    schedule_files,
    start_jvm,
)

if TYPE_CHECKING:
    from features.schedules.mapping import Mapped

__all__ = [
    "ImportOptions",
    "ImportResult",
    "JavaNotFoundError",
    "ScheduleError",
    "import_folder",
    "import_schedules",
    "read_project_map",
    "write_import",
]


@dataclass
class ImportResult:
    """What an import made: the contract tables, the quarantine and the per-project notes."""

    mapped: Mapped
    files: list[Path]
    snapshots: int
    date_sources: dict[str, str]  # file → "file" / "--status-date" / "file name"


def import_schedules(
    sources: Iterable[Path],
    options: ImportOptions,
    charset: str | None = None,
    on_file: Callable[[Path], None] | None = None,
) -> ImportResult:
    """Read every schedule file under `sources` and map it to contract v1.

    Raises `JavaNotFoundError` without Java, `ScheduleError` for a file that cannot be read, dated
    or keyed (its message names the file).
    """
    files = schedule_files(sources)
    if not files:
        raise ScheduleError("no schedule files (.xer, .xml, .pmxml, .mpp, .mpx) found")
    start_jvm()
    dated: list[DatedSnapshot] = []
    sources_of: dict[str, str] = {}
    with ReadAhead(files, charset) as read:
        # Java reads the first file while Python loads pandas for the mapping (importing
        # it here, not at the top, is what lets the two overlap on a second core).
        from features.schedules.mapping import (
            DatedSnapshot,
            IdentityError,
            data_date,
            map_snapshots,
            project_identity,
        )

        for path, snapshots in zip(files, read, strict=True):
            for snapshot in snapshots:
                try:
                    day, source = data_date(snapshot, options)
                    pid = project_identity(snapshot, options)
                except IdentityError as exc:
                    raise ScheduleError(str(exc)) from exc
                dated.append(DatedSnapshot(snapshot, pid, day, source))
                sources_of[str(path)] = source
            if on_file is not None:
                on_file(path)
    return ImportResult(map_snapshots(dated, options), files, len(dated), sources_of)


def read_project_map(path: Path) -> dict[str, str]:
    """``--project-map``: a CSV with columns ``source`` (file name or project code) and
    ``project_id``."""
    import pandas as pd

    try:
        frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    except (OSError, ValueError) as exc:
        raise ScheduleError(f"{path}: cannot read the project map: {exc}") from exc
    missing = {"source", "project_id"} - set(frame.columns)
    if missing:
        raise ScheduleError(
            f"{path}: the project map needs columns source, project_id (missing "
            f"{', '.join(sorted(missing))})"
        )
    for row, (source, pid) in enumerate(zip(frame["source"], frame["project_id"], strict=True)):
        if not source.strip() or not pid.strip():
            raise ScheduleError(f"{path}, row {row + 2}: source and project_id are required")
    return dict(zip(frame["source"].str.strip(), frame["project_id"].str.strip(), strict=True))


def write_import(result: ImportResult, out: Path) -> list[Path]:
    """Write the portfolio (projects.csv, status_reports.csv, changes.csv), the import's
    quarantine (import_quarantine.csv, always, so a stale one never remains) and
    import.json (per project: snapshots, files, baseline and percent-complete sources)."""
    out.mkdir(parents=True, exist_ok=True)
    m = result.mapped
    written = []
    for name, frame in (
        ("projects", m.projects),
        ("status_reports", m.status_reports),
        ("changes", m.changes),
    ):
        path = out / f"{name}.csv"
        frame.to_csv(path, index=False, date_format="%Y-%m-%d", float_format="%.10g")
        written.append(path)
    quarantine = out / "import_quarantine.csv"
    m.quarantine.to_csv(quarantine, index=False, encoding="utf-8-sig")
    summary = {
        "files": [str(p) for p in result.files],
        "snapshots": result.snapshots,
        "data_date_from": result.date_sources,
        "projects": [asdict(n) for n in m.notes],
        "quarantined": len(m.quarantine),
    }
    (out / "import.json").write_text(json.dumps(summary, indent=2, default=str) + "\n")
    return [*written, quarantine, out / "import.json"]


def import_folder(
    sources: Iterable[Path],
    out: Path,
    options: ImportOptions,
    charset: str | None = None,
    on_file: Callable[[Path], None] | None = None,
) -> dict[str, Any]:
    """`import_schedules`, then `write_import`; returns import.json's summary with the
    tables' row counts. (The written folder is contract v1 by construction — the tests load
    it with `features.loading` as `forewarn validate --strict` does; loading it here again
    would double the command's time on a large schedule.)"""
    result = import_schedules(sources, options, charset, on_file)
    write_import(result, out)
    summary: dict[str, Any] = json.loads((out / "import.json").read_text())
    summary["status_reports"] = len(result.mapped.status_reports)
    summary["changes"] = len(result.mapped.changes)
    return summary
