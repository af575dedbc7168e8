"""The `forewarn` command line: parses, builds settings, calls the stages, prints.

Heavy libraries (pandas, LightGBM, MLflow, SHAP, Evidently, BentoML) are imported inside
the commands so that `forewarn --help` stays fast.
"""

from __future__ import annotations

import json
import sys
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, NoReturn

import typer
from rich.console import Console
from rich.table import Table

if TYPE_CHECKING:
    from features.loading import LoadResult
    from forewarn.settings import Settings

app = typer.Typer(
    name="forewarn",
    help="Forewarn: how likely each running project is to finish late and over budget, "
    "why, and what changed since the last report.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
console = Console(stderr=True)
stdout = Console()

DataArg = Annotated[
    Path,
    typer.Argument(help="portfolio in data contract v1: a folder of CSV/Parquet or a workbook"),
]
AsOfOpt = Annotated[
    str | None, typer.Option("--as-of", help="date the world is seen from (YYYY-MM-DD)")
]
JsonOpt = Annotated[bool, typer.Option("--json", help="print one JSON object on stdout")]


def _settings() -> Settings:
    # Imported here: pydantic-settings alone costs ~0.4 s, and --help must stay fast.
    from forewarn.settings import Settings

    try:
        return Settings()
    except Exception as exc:  # pydantic's ValidationError: show it, no traceback
        _fail(f"invalid FOREWARN_* setting: {exc}")


def _fail(message: str, code: int = 2) -> NoReturn:
    console.print(f"[bold red]error:[/] {message}", highlight=False, markup=True)
    raise typer.Exit(code)


def _print_json(obj: Any) -> None:
    sys.stdout.write(json.dumps(obj, indent=2, default=str, allow_nan=False) + "\n")


def _parse_date(value: str | None, option: str = "--as-of") -> date | None:
    if value is None:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        _fail(f"{option} {value!r} is not a date: use YYYY-MM-DD")


def _load(data: Path, settings: Settings, out_dir: Path | None = None) -> LoadResult:
    """Load and validate a portfolio; quarantine goes under out_dir; whole-file errors exit 2."""
    from rich.markup import escape

    from features.loading import (
        ContractError,
        load_portfolio,
        quarantined_rows,
        write_quarantine,
    )

    try:
        result = load_portfolio(data, extra_attributes=settings.extra_attributes)
    except ContractError as exc:
        _fail(escape(str(exc)))  # file names and values are not rich markup
    target = out_dir or settings.out_dir
    if len(result.quarantine) or (target / "quarantine.csv").exists():
        # Rewritten even when clean, so that a stale file never describes an older load.
        path = write_quarantine(result.quarantine, target)
    if len(result.quarantine):
        rows = sum(quarantined_rows(result.quarantine).values())
        console.print(
            f"[yellow]{rows} row(s) quarantined[/] → {escape(str(path))} "
            "(each with file, row, column, value and rule)"
        )
    return result


# --------------------------------------------------------------------------- foundation


@app.command()
def simulate(
    out: Annotated[Path, typer.Option("--out", help="folder to write the portfolio into")],
    projects: Annotated[int, typer.Option("--projects", min=1, help="number of projects")] = 500,
    seed: Annotated[int, typer.Option("--seed", help="random seed")] = 7,
    drift: Annotated[
        bool, typer.Option("--drift", help="shifted mix and cost levels, for drift monitoring")
    ] = False,
    fmt: Annotated[str, typer.Option("--format", help="csv or parquet")] = "csv",
    json_out: JsonOpt = False,
) -> None:
    """Write a simulated portfolio in contract v1 and print its base rates."""
    from features.loading import write_portfolio
    from features.simulator import base_rates, simulate_portfolio

    if fmt not in ("csv", "parquet"):
        _fail(f"--format {fmt!r}: use csv or parquet")
    settings = _settings()
    sim = simulate_portfolio(projects, seed=seed, drift=drift)
    write_portfolio(sim.portfolio, out, fmt=fmt)
    rates = base_rates(sim.portfolio, settings.delay_tolerance, settings.overrun_tolerance)
    if json_out:
        _print_json(
            {
                "out": str(out),
                "today": sim.today.isoformat(),
                "counts": sim.portfolio.counts(),
                "base_rates": rates.to_dict(orient="records"),
            }
        )
        return
    table = Table(title=f"Simulated portfolio → {out} (today = {sim.today})")
    for col in rates.columns:
        table.add_column(str(col), justify="left" if col == "project_type" else "right")
    for row in rates.itertuples(index=False):
        table.add_row(*[_fmt(v) for v in row])
    stdout.print(table)
    counts = sim.portfolio.counts()
    stdout.print(
        f"{counts['projects']} projects, {counts['status_reports']} status reports, "
        f"{counts['changes']} changes"
    )


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return "—" if value != value else f"{value:.1%}" if abs(value) <= 1 else f"{value:,.0f}"
    return str(value)


@app.command()
def validate(
    data: DataArg,
    strict: Annotated[
        bool, typer.Option("--strict", help="exit 1 when any row is quarantined")
    ] = False,
    out: Annotated[
        Path | None, typer.Option("--out", help="folder for the quarantine file")
    ] = None,
    json_out: JsonOpt = False,
) -> None:
    """Check a portfolio against data contract v1; bad rows go to a quarantine file."""
    from rich.markup import escape

    from features.loading import quarantined_rows, summarise_quarantine

    settings = _settings()
    result = _load(data, settings, out)
    counts = result.portfolio.counts()
    held = quarantined_rows(result.quarantine)  # distinct rows; a row may break several rules
    n_held = sum(held.values())
    by_rule = summarise_quarantine(result.quarantine)
    if json_out:
        _print_json(
            {
                "source": str(data),
                "loaded": counts,
                "quarantined": n_held,
                "quarantined_by_table": held,
                "problems": len(result.quarantine),
                "quarantine_file": str((out or settings.out_dir) / "quarantine.csv")
                if n_held
                else None,
                "by_rule": by_rule.to_dict(orient="records"),
            }
        )
    else:
        table = Table(title=escape(f"Contract v1 check of {data}"))
        table.add_column("table")
        table.add_column("loaded", justify="right")
        table.add_column("quarantined", justify="right")
        for name, n in counts.items():
            table.add_row(name, f"{n:,}", f"{held[name]:,}")
        stdout.print(table)
        if len(by_rule):
            rules = Table(title="Quarantined rows by rule")
            for col in ("file", "rule", "rows"):
                rules.add_column(col, justify="right" if col == "rows" else "left")
            for row in by_rule.itertuples(index=False):
                rules.add_row(escape(str(row.file)), escape(str(row.rule)), f"{row.rows:,}")
            stdout.print(rules)
        stdout.print(f"{sum(counts.values()):,} rows loaded, {n_held:,} quarantined")
    if strict and n_held:
        raise typer.Exit(1)


# ------------------------------------------------------------------------------- demo


@app.command()
def demo(
    out: Annotated[Path, typer.Option("--out", help="folder for every demo output")] = Path(
        "forewarn-out/demo"
    ),
    projects: Annotated[int, typer.Option("--projects", min=50)] = 2000,
    seed: Annotated[int, typer.Option("--seed")] = 7,
) -> None:
    """Simulate a portfolio, then run every job on it, and say where each output is."""
    settings = _settings()
    outputs: list[tuple[str, str]] = []
    data = out / "portfolio"
    console.rule("1. simulate")
    simulate(out=data, projects=projects, seed=seed, drift=False, fmt="csv", json_out=False)
    outputs.append(("simulated portfolio (contract v1 CSV)", str(data)))
    console.rule("2. validate")
    validate(data=data, strict=True, out=out, json_out=False)
    del settings
    console.rule("outputs")
    table = Table(title="Forewarn demo: outputs")
    table.add_column("what")
    table.add_column("where / how to open")
    for what, where in outputs:
        table.add_row(what, where)
    stdout.print(table)


def main() -> None:  # pragma: no cover - console entry
    app()


if __name__ == "__main__":  # pragma: no cover
    main()
