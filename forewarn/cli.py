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
# Piped output (CI logs, `| tee`) would otherwise be cut to 80 columns.
stdout = Console(width=None if sys.stdout.isatty() else 120)

DataArg = Annotated[
    Path,
    typer.Argument(help="portfolio in data contract v1: a folder of CSV/Parquet or a workbook"),
]
AsOfOpt = Annotated[
    str | None, typer.Option("--as-of", help="date the world is seen from (YYYY-MM-DD)")
]
JsonOpt = Annotated[bool, typer.Option("--json", help="print one JSON object on stdout")]
# --- language (serving/i18n.py): pages, driver sentences and tables; JSON keys never change
LangOpt = Annotated[
    str | None,
    typer.Option(
        "--lang",
        help="language of the page, sentences and tables: en or zh-CN "
        "(default FOREWARN_LANG, else en)",
    ),
]


def _language(settings: Settings, lang: str | None) -> Any:
    """The language block a command writes in: --lang, else FOREWARN_LANG; exit 2 if unknown."""
    from serving import i18n

    try:
        chosen = i18n.check(lang or settings.lang)
    except ValueError as exc:
        _fail(f"--lang: {exc}")
    return i18n.use(chosen, wan_yi=settings.wan_yi)


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
        day = date.fromisoformat(value)
    except ValueError:
        _fail(f"{option} {value!r} is not a date: use YYYY-MM-DD")
    # As a file load and the API refuse them: pandas would wrap such a date round silently.
    from serving.request_models import DATE_RULE, in_contract_years

    if not in_contract_years(day):
        _fail(f"{option} {value}: {DATE_RULE}")
    return day


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
        try:  # written whole or not at all (features.atomic)
            path = write_quarantine(result.quarantine, target)
        except OSError as exc:
            _fail(f"could not write the quarantine file under {target}: {exc.strerror}", 1)
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
                # a type with no closed project has no rate: null, not NaN (invalid JSON)
                "base_rates": rates.astype(object)
                .where(rates.notna(), None)
                .to_dict(orient="records"),
            }
        )
        return
    table = Table(
        title=f"Simulated portfolio → {out} (today = {sim.today}); shares of closed projects"
    )
    shown = {
        "project_type": "type",
        "projects": "projects",
        "closed": "closed",
        "running": "running",
        "cancelled": "cancelled",
        "share_late": "late",
        "share_over_budget": "over budget",
        "median_slip": "median slip",
        "mean_overrun": "mean overrun",
    }
    for col, label in shown.items():
        table.add_column(label, justify="left" if col == "project_type" else "right")
    count_columns = ("projects", "closed", "running", "cancelled")
    for row in rates[list(shown)].to_dict(orient="records"):
        table.add_row(
            *[
                str(v) if k == "project_type" else _fmt(v, share=k not in count_columns)
                for k, v in row.items()
            ]
        )
    stdout.print(table)
    counts = sim.portfolio.counts()
    stdout.print(
        f"{counts['projects']} projects, {counts['status_reports']} status reports, "
        f"{counts['changes']} changes"
    )


def _fmt(value: Any, share: bool = False) -> str:
    """A count as 1,234, a share as 12.3%, a missing value as a dash."""
    if value is None or (isinstance(value, float) and value != value):
        return "—"
    return f"{value:.1%}" if share else f"{value:,.0f}"


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


@app.command("features")
def features_command(
    data: DataArg,
    out: Annotated[Path, typer.Option("--out", help="file to write: .parquet or .csv")],
    as_of: Annotated[
        str | None,
        typer.Option(
            "--as-of",
            help="instead of the training table, one row per project started by this date "
            "(YYYY-MM-DD), as known then",
        ),
    ] = None,
    json_out: JsonOpt = False,
) -> None:
    """Write the training table (or an --as-of snapshot) and print the label counts."""
    from features.labels import label_counts, label_projects
    from features.pointintime import snapshot, training_table, write_features

    settings = _settings()
    if out.suffix.lower() not in (".parquet", ".csv"):
        _fail(f"--out {out}: use a .parquet or .csv file")
    day = _parse_date(as_of)
    portfolio = _load(data, settings, out.parent).portfolio
    tolerances = (settings.delay_tolerance, settings.overrun_tolerance)
    with console.status("building features…") if not json_out else _quiet():
        if day is None:
            table = training_table(
                portfolio, *tolerances, extra_attributes=settings.extra_attributes
            )
            frame, excluded, counts = table.frame, table.excluded_reports, table.label_counts
        else:
            frame = snapshot(
                portfolio,
                day,
                running_only=False,
                delay_tolerance=settings.delay_tolerance,
                overrun_tolerance=settings.overrun_tolerance,
                extra_attributes=settings.extra_attributes,
            )
            labels = label_projects(portfolio.projects, *tolerances, as_of=day)
            excluded, counts = None, label_counts(labels, portfolio.projects, as_of=day)
        write_features(frame, out)
    n_projects = int(frame["project_id"].nunique())
    if json_out:
        _print_json(
            {
                "source": str(data),
                "out": str(out),
                "as_of": None if day is None else day.isoformat(),
                "rows": len(frame),
                "projects": n_projects,
                "columns": len(frame.columns),
                "excluded_reports": excluded,
                "delay_tolerance": settings.delay_tolerance,
                "overrun_tolerance": settings.overrun_tolerance,
                "label_counts": counts,
            }
        )
        return
    what = "training table" if day is None else f"projects started by {day}, as known then"
    table_out = Table(
        title=f"Labels of {counts['projects']:,} projects ({what})",
        caption=f"late: slip > {settings.delay_tolerance:g}; "
        f"over budget: overrun > {settings.overrun_tolerance:g}",
    )
    for col in ("label", "yes", "no", "no cost data", "unlabelled", "cancelled"):
        table_out.add_column(col, justify="left" if col == "label" else "right")
    delay, overrun = counts["delay"], counts["overrun"]
    table_out.add_row(
        "late",
        *(f"{delay[k]:,}" for k in ("late", "on_time")),
        "—",
        *(f"{delay[k]:,}" for k in ("unlabelled", "cancelled")),
    )
    table_out.add_row(
        "over budget",
        *(
            f"{overrun[k]:,}"
            for k in ("over_budget", "within_budget", "no_cost_data", "unlabelled", "cancelled")
        ),
    )
    stdout.print(table_out)
    stdout.print(
        f"{len(frame):,} rows of {n_projects:,} projects × {len(frame.columns)} columns → {out}"
    )
    if excluded is not None:
        stdout.print(f"{excluded:,} status report(s) dated on or after the actual finish excluded")


def _quiet() -> Any:
    """A do-nothing context manager (no spinner when stdout carries JSON)."""
    from contextlib import nullcontext

    return nullcontext()


# ----------------------------------------------------------------------- report, explain


def _champions(settings: Settings) -> Any:
    """The champion models from the MLflow registry; exit 2 saying how to get some, or
    that the store could not be reached (then training would not help)."""
    from serving.champions import load_from_registry
    from training.tracking import TrackingStoreUnavailableError

    try:
        return load_from_registry(settings.resolved_tracking_uri())
    except TrackingStoreUnavailableError as exc:
        _fail(_escaped(exc))
    except LookupError as exc:
        _fail(f"{exc}. Train first: forewarn train DATA")


def _escaped(exc: BaseException) -> str:
    """An error's text as rich shows it (URIs and driver messages hold square brackets)."""
    from rich.markup import escape

    return escape(str(exc))


def _drift_for_report(settings: Settings, portfolio: Any, as_of: date, champions: Any) -> Any:
    """The drift verdict the report shows, as plain data (serving never imports monitoring);
    drift checks the champions the report scores with, not loaded a second time.

    Any failure of the check is reported as "unknown" on the page rather than stopping
    the report: a PMO still gets the scores, with the warning that drift was not checked.
    """
    import pandas as pd

    from monitoring.drift import run_drift
    from serving.report import DriftStatus

    try:
        result = run_drift(
            portfolio,
            tracking_uri=settings.resolved_tracking_uri(),
            as_of=pd.Timestamp(as_of),
            # The same limits and seed as `forewarn drift`, so both give one verdict.
            thresholds=_drift_thresholds(settings),
            delay_tolerance=settings.delay_tolerance,
            overrun_tolerance=settings.overrun_tolerance,
            extra_attributes=settings.extra_attributes,
            seed=settings.seed,
            models=champions.by_target,
            references=champions.references,
        ).result
    except Exception as exc:  # the report must not fail because monitoring did
        return DriftStatus("unknown", _("the drift check could not run: {error}").format(error=exc))
    drifted = len(result.drifted_columns)
    share = (
        f"{drifted} of {len(result.columns)} features drifted ({result.share_drifted:.0%}; "
        f"the check fails at {result.share_threshold:.0%})"
    )
    failed = [t.description or t.name for t in result.tests if not t.passed]
    # The figures go along, so the page words the verdict in its own language.
    details = {
        "drifted": drifted,
        "columns": len(result.columns),
        "share": result.share_drifted,
        "threshold": result.share_threshold,
        "failed": failed,
    }
    if failed:
        return DriftStatus("drift", f"{share}. Failed: {'; '.join(failed)}", details=details)
    return DriftStatus("ok", f"{share}; every drift test passed", details=details)


def _(message: str) -> str:
    """A CLI message in the language in force (serving.i18n; imported on use: --help stays
    fast)."""
    from serving import i18n

    return i18n._(message)


def N_(message: str) -> str:  # noqa: N802 - gettext's name for the marker
    """Marks a message for extraction; `_` translates it where it is printed."""
    return message


def _write_report(
    settings: Settings, data: Path, out: Path, as_of: date | None, since: date | None
) -> tuple[Any, Any]:
    """Score, check drift, render and write the report; returns (ReportResult, DriftStatus)."""
    from serving.report import build_report, model_cards, report_dates

    loaded = _load(data, settings, out.parent)
    champions = _champions(settings)
    try:
        as_of, since = report_dates(loaded.portfolio, as_of, since)
    except ValueError as exc:
        _fail(str(exc))
    with console.status("checking the inputs for drift"):
        drift = _drift_for_report(settings, loaded.portfolio, as_of, champions)
    with console.status("scoring the running projects at both dates"):
        result = build_report(
            loaded.portfolio,
            champions.models(),
            model_cards(champions.by_target),
            as_of=as_of,
            since=since,
            red=settings.red_threshold,
            amber=settings.amber_threshold,
            top_drivers=settings.top_drivers,
            delay_tolerance=settings.delay_tolerance,
            overrun_tolerance=settings.overrun_tolerance,
            drift=drift,
            context=champions.context,
            watch_list_size=settings.watch_list_size,
            quantiles=champions.quantiles,
            kpi=_kpi_options(settings),
        )
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(result.html, encoding="utf-8")
    return result, drift


@app.command()
def report(
    data: DataArg,
    out: Annotated[
        Path | None, typer.Option("--out", help="HTML file to write (default: OUT_DIR/report.html)")
    ] = None,
    as_of: AsOfOpt = None,
    since: Annotated[
        str | None,
        typer.Option(
            "--since",
            help="previous report date to compare with (default: one reporting period earlier)",
        ),
    ] = None,
    json_out: JsonOpt = False,
    lang: LangOpt = None,
) -> None:
    """Early-warning report: one self-contained HTML page of the running projects' risks."""
    settings = _settings()
    with _language(settings, lang):
        _report(settings, data, out, as_of, since, json_out)


def _report(
    settings: Settings,
    data: Path,
    out: Path | None,
    as_of: str | None,
    since: str | None,
    json_out: bool,
) -> None:
    as_of_date, since_date = _parse_date(as_of), _parse_date(since, "--since")
    out = out or settings.out_dir / "report.html"
    result, drift = _write_report(settings, data, out, as_of_date, since_date)
    counts = {
        risk: {
            rag: int((result.scores[f"rag_{risk}"] == rag).sum())
            for rag in ("red", "amber", "green", "n/a")
        }
        for risk in ("late", "over_budget")
    }
    if json_out:
        _print_json(
            {
                "out": str(out),
                "as_of": result.as_of.isoformat(),
                "since": result.since.isoformat(),
                "running": len(result.scores),
                "counts": counts,
                "red": result.scores.loc[result.scores["rag"] == "red", "project_id"].tolist(),
                "drift": drift.state,
            }
        )
        return
    from serving.report import drift_words

    table = _rag_table(
        _("Running projects on {day} (compared with {since})").format(
            day=result.as_of, since=result.since
        )
    )
    for risk, words in (("late", N_("finish late")), ("over_budget", N_("over budget"))):
        table.add_row(_(words), *[str(counts[risk][r]) for r in ("red", "amber", "green", "n/a")])
    stdout.print(table)
    stdout.print(
        _("drift: {state} — {summary}").format(
            state=_(_DRIFT_STATES[drift.state]), summary=drift_words(drift)
        )
    )
    stdout.print(_("report → {path} (open it in a browser; it works offline)").format(path=out))


_DRIFT_STATES = {"ok": N_("ok"), "drift": N_("drift"), "unknown": N_("unknown")}


def _rag_table(title: str) -> Table:
    """A table of counts per risk and RAG, headed in the language in force."""
    from serving.i18n import rag_word

    table = Table(title=title)
    table.add_column(_("risk"))
    for rag in ("red", "amber", "green", "n/a"):
        table.add_column(rag_word(rag), justify="right")
    return table


def _write_explanation(
    settings: Settings, data: Path, project_id: str, out: Path, as_of: date | None
) -> Any:
    """Score one project at as_of and its past report dates; write its page."""
    from serving.report import model_cards
    from serving.views import UnknownProjectError, build_explanation

    loaded = _load(data, settings, out.parent)
    champions = _champions(settings)
    with console.status(f"explaining {project_id}"):
        try:
            result = build_explanation(
                loaded.portfolio,
                project_id,
                champions.models(),
                model_cards(champions.by_target),
                as_of=as_of,
                red=settings.red_threshold,
                amber=settings.amber_threshold,
                top_drivers=settings.top_drivers,
                delay_tolerance=settings.delay_tolerance,
                overrun_tolerance=settings.overrun_tolerance,
                context=champions.context,
                quantiles=champions.quantiles,
            )
        except UnknownProjectError:
            _fail(f"no project {project_id!r} in {data}")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(result.html, encoding="utf-8")
    return result


@app.command()
def explain(
    data: DataArg,
    project_id: Annotated[str, typer.Argument(help="the project to explain")],
    out: Annotated[
        Path | None,
        typer.Option("--out", help="HTML file to write (default: OUT_DIR/explain-PROJECT.html)"),
    ] = None,
    as_of: AsOfOpt = None,
    json_out: JsonOpt = False,
    lang: LangOpt = None,
) -> None:
    """Explanation view of one project: SHAP waterfalls, S-curves, SPI/CPI, risk history."""
    settings = _settings()
    with _language(settings, lang):
        _explain(settings, data, project_id, out, as_of, json_out)


def _explain(
    settings: Settings,
    data: Path,
    project_id: str,
    out: Path | None,
    as_of: str | None,
    json_out: bool,
) -> None:
    out = out or settings.out_dir / f"explain-{project_id}.html"
    result = _write_explanation(settings, data, project_id, out, _parse_date(as_of))
    score = result.score
    if json_out:
        _print_json(
            {
                "out": str(out),
                "project_id": project_id,
                "as_of": result.as_of.isoformat(),
                "p_late": _json_number(score.get("p_late")),
                "p_over_budget": _json_number(score.get("p_over_budget")),
                "rag_late": score.get("rag_late"),
                "rag_over_budget": score.get("rag_over_budget"),
                "report_dates": len(result.history),
            }
        )
        return
    from serving.i18n import rag_word

    stdout.print(
        _("{project} on {day}: late {late}, over budget {over} → {path}").format(
            project=project_id,
            day=result.as_of,
            late=rag_word(str(score.get("rag_late"))).lower(),
            over=rag_word(str(score.get("rag_over_budget"))).lower(),
            path=out,
        )
    )


def _json_number(value: Any) -> float | None:
    return None if value is None or value != value else float(value)


def _demo_report_and_explain(settings: Settings, data: Path, out: Path) -> list[tuple[str, str]]:
    """The demo's report and explanation steps; returns what they wrote and how to open it."""
    report_path = out / "report.html"
    result, drift = _write_report(settings, data, report_path, None, None)
    scores = result.scores
    stdout.print(
        f"{len(scores)} running projects on {result.as_of}: "
        f"{int((scores['rag'] == 'red').sum())} red, "
        f"{int((scores['rag'] == 'amber').sum())} amber; drift: {drift.state}"
    )
    outputs = [
        (
            "early-warning report (self-contained HTML: any browser, offline)",
            report_path.resolve().as_uri(),
        )
    ]
    # The same report for a Chinese-speaking PMO (--lang zh-CN): same data, same numbers.
    zh_path = out / "report.zh-CN.html"
    from serving import i18n

    with i18n.use("zh-CN", wan_yi=settings.wan_yi):
        _write_report(settings, data, zh_path, result.as_of, result.since)
    outputs.append(("预警报告 early-warning report in Chinese (zh-CN)", zh_path.resolve().as_uri()))
    if len(scores):
        # The riskiest project: the larger of its two probabilities, highest first.
        top = scores[["p_late", "p_over_budget"]].max(axis=1, skipna=True)
        project_id = str(scores.loc[top.idxmax(), "project_id"])
        console.rule(f"6. explain the riskiest project, {project_id}")
        view = out / f"explain-{project_id}.html"
        _write_explanation(settings, data, project_id, view, result.as_of)
        outputs.append((f"explanation view of {project_id} (HTML)", view.resolve().as_uri()))
    return outputs


# ------------------------------------------------------------------------- score, serve


@app.command()
def score(
    data: DataArg,
    out: Annotated[
        Path,
        typer.Option(
            "--out", help="file to write: .csv or .parquet (--engine spark: a folder or URI)"
        ),
    ],
    as_of: AsOfOpt = None,
    explain: Annotated[
        bool, typer.Option("--explain", help="add each risk's top drivers (SHAP and sentence)")
    ] = False,
    json_out: JsonOpt = False,
    lang: LangOpt = None,
    engine: Annotated[
        str, typer.Option("--engine", help="local (this process) or spark (docs/operations.md)")
    ] = "local",
    master: Annotated[
        str | None,
        typer.Option("--master", help="Spark master, e.g. local[2] (default: spark-submit's)"),
    ] = None,
    buckets: Annotated[
        int | None,
        typer.Option(
            "--buckets",
            min=1,
            help="Spark: partitions of whole projects, each scored in one call "
            "(default: one per 2,000 projects, at least one per core)",
        ),
    ] = None,
) -> None:
    """Score every running project (at --as-of, default the latest report) with the champions."""
    if engine == "spark":
        _score_spark(_uri_argument("DATA", data), _uri_argument("--out", out), as_of, explain,
                     json_out, master, buckets)  # fmt: skip
        return
    if engine != "local":
        _fail(f"--engine {engine!r}: use local or spark")
    if buckets is not None:
        _fail("--buckets applies to --engine spark only")
    settings = _settings()
    with _language(settings, lang):
        _score(settings, data, out, as_of, explain, json_out)


def _score(
    settings: Settings, data: Path, out: Path, as_of: str | None, explain: bool, json_out: bool
) -> None:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

    from serving.batch import (
        check_output,
        default_as_of,
        rag_counts,
        score_portfolio,
        write_scores,
    )

    try:
        check_output(out)
    except ValueError as exc:
        _fail(str(exc))
    as_of_date = _parse_date(as_of)
    loaded = _load(data, settings, out.parent)
    champions = _champions(settings)
    day = as_of_date or default_as_of(loaded.portfolio)
    with Progress(
        "[progress.description]{task.description}",
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=json_out,
    ) as bar:
        task = bar.add_task(_("scoring projects running on {day}").format(day=day), total=None)
        scores = score_portfolio(
            loaded.portfolio,
            champions,
            day,
            red=settings.red_threshold,
            amber=settings.amber_threshold,
            top_drivers=settings.top_drivers,
            explain=explain,
            delay_tolerance=settings.delay_tolerance,
            overrun_tolerance=settings.overrun_tolerance,
            progress=lambda done, total: bar.update(task, completed=done, total=total),
        )
    try:  # written whole or not at all (features.atomic)
        write_scores(scores, out, explain)
    except OSError as exc:
        _fail(f"could not write {out}: {exc.strerror}; no partial file was left", 1)
    counts = rag_counts(scores.frame)
    if json_out:
        _print_json(
            {
                "out": str(out),
                "as_of": day.isoformat(),
                "projects": len(scores.frame),
                "models": scores.models,
                "counts": counts,
            }
        )
        return
    table = _rag_table(_("{n} running projects on {day}").format(n=len(scores.frame), day=day))
    for col, words in (
        ("rag_late", N_("finish late")),
        ("rag_over_budget", N_("over budget")),
        ("rag", N_("overall")),
    ):
        table.add_row(_(words), *[str(counts[col][r]) for r in ("red", "amber", "green", "n/a")])
    stdout.print(table)
    stdout.print(
        _("models: {models}; scores → {path}").format(
            models=", ".join(scores.models.values()), path=out
        )
    )


def _uri_argument(name: str, given: Path) -> str:
    """The text the user typed for a path option: a URI (s3a://…) must keep its '//'."""
    text = str(given)
    for arg in sys.argv:
        value = arg.split("=", 1)[1] if arg.startswith("--out=") else arg
        if "://" in value and Path(value) == given:
            return value
    return text


def _score_spark(
    data: str,
    out: str,
    as_of: str | None,
    explain: bool,
    json_out: bool,
    master: str | None,
    buckets: int | None,
) -> None:
    """`forewarn score --engine spark`: serving.spark_batch does the work."""
    try:
        from serving import spark_batch
    except ImportError as exc:  # pragma: no cover - pyspark is a dev and [spark] dependency
        _fail(f"--engine spark needs pyspark (pip install 'forewarn[spark]'): {exc}")
    settings = _settings()
    day = _parse_date(as_of)
    champions = _champions(settings)
    console.print(f"starting Spark ({master or 'spark-submit master'})")
    spark = spark_batch.spark_session(master)
    try:
        day = day or spark_batch.default_as_of(spark, data)
        if day is None:
            _fail(f"{data}: no status report has a date: pass --as-of")
        parameters = spark_batch.ScoringParameters(
            as_of=day,
            red=settings.red_threshold,
            amber=settings.amber_threshold,
            top_drivers=settings.top_drivers,
            explain=explain,
            delay_tolerance=settings.delay_tolerance,
            overrun_tolerance=settings.overrun_tolerance,
            extra_attributes=tuple(settings.extra_attributes),
        )
        try:
            done = spark_batch.score_with_spark(
                spark, data, out, champions, parameters, buckets=buckets
            )
        except (ValueError, FileNotFoundError) as exc:
            _fail(str(exc))
    finally:
        spark.stop()
    if json_out:
        _print_json(
            {
                "out": done.out,
                "as_of": done.as_of.isoformat(),
                "projects": done.projects,
                "quarantined": done.quarantined,
                "models": done.models,
                "counts": done.counts,
                "engine": "spark",
            }
        )
        return
    stdout.print(
        f"{done.projects} running projects on {done.as_of} scored on Spark → {out}/scores "
        f"(Parquet by as_of); models: {', '.join(done.models.values())}"
    )
    if done.quarantined:
        console.print(f"[yellow]{done.quarantined} row(s) quarantined[/] → {out}/quarantine")


@app.command()
def serve(
    host: Annotated[
        str | None, typer.Option("--host", help="address to listen on (default 127.0.0.1)")
    ] = None,
    port: Annotated[int | None, typer.Option("--port", help="port (default 3000)")] = None,
) -> None:
    """Serve the champion models over HTTP (BentoML): /score, /explain, /models, /docs.json."""
    import os

    from serving.guards import bind_refusal

    settings = _settings()
    host = host or settings.host
    port = port or settings.port
    reason = bind_refusal(host, settings.api_key)
    if reason:
        _fail(reason)
    store = settings.resolved_tracking_uri()
    workers = f"{settings.workers} worker{'s' if settings.workers > 1 else ''}"
    console.print(f"serving on http://{host}:{port} ({workers}), champion models from {store}")
    # The service module reads FOREWARN_* itself (it is an entry point): pass ours down.
    env = {**os.environ, "FOREWARN_HOST": host, "FOREWARN_PORT": str(port)}
    command = [sys.executable, "-m", "bentoml", "serve", "serving.service:Forewarn"]
    command += ["--host", host, "--port", str(port)]
    sys.stdout.flush()
    # Become `bentoml serve` (same pid): SIGTERM and Ctrl+C reach it with no orphan left.
    os.execve(sys.executable, command, env)


# ------------------------------------------------------------- train, evaluate, retrain

TargetOpt = Annotated[str, typer.Option("--target", help="delay, overrun or both")]
CvOpt = Annotated[
    int | None,
    typer.Option("--cv", min=2, help="project-grouped K-fold cross-validation (small portfolios)"),
]


def _training_setup(settings: Settings) -> tuple[Any, Any, dict[str, Any]]:
    """TrainingOptions and Store from the settings, and the settings to log (no secrets)."""
    from training.pipeline import Store, TrainingOptions

    options = TrainingOptions(
        delay_tolerance=settings.delay_tolerance,
        overrun_tolerance=settings.overrun_tolerance,
        red_threshold=settings.red_threshold,
        amber_threshold=settings.amber_threshold,
        seed=settings.seed,
        extra_attributes=tuple(settings.extra_attributes),
        holdout_days=settings.holdout_days,
        min_holdout_projects=settings.min_holdout_projects,
        gate_auc_margin=settings.gate_auc_margin,
        gate_brier_margin=settings.gate_brier_margin,
        gate_interval_margin=settings.gate_interval_margin,
        forward_min_projects=settings.forward_min_projects,
        cv_repeats=settings.cv_repeats,
        quantiles=settings.quantiles,
    )
    store = Store(
        tracking_uri=settings.resolved_tracking_uri(),
        artifact_root=settings.artifact_root(),
        experiment=settings.experiment,
    )
    return options, store, settings.model_dump(mode="json", exclude={"api_key"})


def _targets(value: str) -> tuple[str, ...]:
    if value == "both":
        return ("delay", "overrun")
    if value in ("delay", "overrun"):
        return (value,)
    _fail(f"--target {value!r}: use delay, overrun or both")


def _training_progress() -> Any:
    """A rich progress line on stderr; yields the callback the training pipeline calls."""
    from contextlib import contextmanager

    from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    @contextmanager
    def running() -> Any:
        with Progress(
            SpinnerColumn(),
            TextColumn("{task.description}"),
            TimeElapsedColumn(),
            console=console,
            transient=True,
        ) as bar:
            task = bar.add_task("starting", total=None)

            def step(message: str) -> None:
                bar.update(task, description=message)

            yield step

    return running()


def _n(value: Any, digits: int = 3) -> str:
    return "—" if value is None else f"{value:.{digits}f}"


def _print_evaluation(target: str, report: dict[str, Any], title: str) -> None:
    """Model beside every rule by stage (AUC), the verdict against the best rule, then
    overall figures and early warning."""
    from training.baselines import RULE_TITLES
    from training.evaluate import VERDICT_WORDS, verdict_sentence

    baselines = report["baselines"]
    names = {n: RULE_TITLES.get(n, n) for n in baselines}
    table = Table(title=f"{title}: {target} — AUC by stage (elapsed share of plan)")
    for col in ("stage", "rows", "model"):
        table.add_column(col, justify="left" if col == "stage" else "right")
    for name, words in names.items():
        table.add_column(words if baselines.get(name) else f"{words} (n/a)", justify="right")
    for col in ("best rule", "model − best rule [95%]", "verdict", "vs logistic"):
        table.add_column(col, justify="right")
    comparison = report.get("comparison", {})
    rows = [("all", report, comparison.get("all", {}))]
    rows += [
        (label, block, comparison.get("by_stage", {}).get(label, {}))
        for label, block in report["by_stage"].items()
    ]
    for label, block, c in rows:
        cells = [label, f"{block['n_rows']:,}", _n(block["auc"])]
        for name in names:
            b = baselines.get(name)
            other = None if b is None else (b if label == "all" else b["by_stage"].get(label))
            cells.append("—" if other is None else _n(other["auc"]))
        ci = c.get("auc_diff_ci")
        diff = "—" if c.get("auc_diff") is None else f"{c['auc_diff']:+.3f}"
        if ci:
            diff += f" [{ci[0]:+.3f}, {ci[1]:+.3f}]"
        best = c.get("best_rule")
        cells += [
            "—" if best is None else names.get(best, best),
            diff,
            VERDICT_WORDS[c.get("verdict")],
            VERDICT_WORDS[(c.get("vs_logistic") or {}).get("verdict")],
        ]
        table.add_row(*cells)
    stdout.print(table)
    figures = Table(title=f"{target}: overall and early warning (red flags)")
    for col in (
        "method",
        "AUC",
        "PR-AUC",
        "Brier",
        "ECE",
        "late flagged" if target == "delay" else "over flagged",
        "median first red",
        "false alarms",
    ):
        figures.add_column(col, justify="left" if col == "method" else "right")
    methods = [("model", report)] + [(names[n], baselines.get(n)) for n in names]
    for name, block in methods:
        if block is None:
            figures.add_row(name, "not applicable", *[""] * 6)
            continue
        ew = block["early_warning"]
        figures.add_row(
            name,
            _n(block["auc"]),
            _n(block["pr_auc"]),
            _n(block["brier"]),
            _n(block["ece"]),
            _fmt_share(ew["detected_share"]),
            _fmt_share(ew["median_first_red"]),
            _fmt_share(ew["false_alarm_share"]),
        )
    stdout.print(figures)
    for name in names:
        matched = (baselines.get(name) or {}).get("model_early_warning_same_false_alarms")
        if matched is None:
            continue
        rule = baselines[name]["early_warning"]
        stdout.print(
            f"at the {names[name]}'s false-alarm share ({_fmt_share(rule['false_alarm_share'])})"
            f" the model (red at p ≥ {matched['threshold']:.2f}) flags "
            f"{_fmt_share(matched['detected_share'])} at median "
            f"{_fmt_share(matched['median_first_red'])} elapsed; the rule "
            f"{_fmt_share(rule['detected_share'])} at {_fmt_share(rule['median_first_red'])}",
            highlight=False,
        )
    if report.get("recipe"):
        stdout.print(
            f"{target}: champion's recipe — {report.get('recipe_words')}"
            + (f" ({report['recipe_rule']})" if report.get("recipe_rule") else "")
            + f"; {report.get('recipe_reason')}",
            highlight=False,
        )
    stdout.print(
        f"{target}: {verdict_sentence(report).replace('**', '')} ({report.get('evaluation')})",
        highlight=False,
    )


def _fmt_share(value: Any) -> str:
    return "—" if value is None else f"{value:.0%}"


def _print_results(results: dict[str, Any], json_out: bool, title: str) -> None:
    for result in results.values():
        if result.skipped:  # one line, never wrapped: scripts grep for it
            console.print(f"[yellow]{result.skipped}[/]", highlight=False, soft_wrap=True)
    if json_out:
        _print_json({t: r.to_json() for t, r in results.items()})
        return
    for target, result in results.items():
        if result.report is None:
            continue
        _print_evaluation(target, result.report, title)
        for note in result.notes:
            stdout.print(f"  {note}", highlight=False)


@app.command()
def train(
    data: DataArg,
    as_of: AsOfOpt = None,
    target: TargetOpt = "both",
    cv: CvOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Train the late and over-budget models, evaluate them beside the rules, register them."""
    from training.pipeline import train as train_models
    from training.tracking import TrackingStoreUnavailableError

    settings = _settings()
    stamp = _parse_date(as_of)
    targets = _targets(target)
    options, store, logged = _training_setup(settings)
    loaded = _load(data, settings)
    try:
        with _training_progress() as progress:
            results = train_models(
                loaded.portfolio,
                options,
                store,
                targets=targets,
                as_of=stamp,
                cv=cv,
                settings_params=logged,
                progress=progress,
            )
    except ValueError as exc:
        _fail(str(exc))
    except TrackingStoreUnavailableError as exc:
        _fail(_escaped(exc))
    _print_results(results, json_out, "train")
    if not json_out:
        stdout.print(f"MLflow store: {store.tracking_uri}")


@app.command()
def evaluate(
    data: DataArg,
    model: Annotated[
        str, typer.Option("--model", help="registry alias (or version number) to evaluate")
    ] = "champion",
    cv: CvOpt = None,
    target: TargetOpt = "both",
    json_out: JsonOpt = False,
) -> None:
    """Evaluate a registered model (or, with --cv, the training recipe) beside the rules."""
    from training.pipeline import evaluate as evaluate_models
    from training.tracking import TrackingStoreUnavailableError

    settings = _settings()
    targets = _targets(target)
    options, store, _ = _training_setup(settings)
    loaded = _load(data, settings)
    try:
        with _training_progress() as progress:
            results = evaluate_models(
                loaded.portfolio,
                options,
                store,
                targets=targets,
                alias=model,
                cv=cv,
                progress=progress,
            )
    except ValueError as exc:
        _fail(str(exc))
    except TrackingStoreUnavailableError as exc:
        _fail(_escaped(exc))
    _print_results(results, json_out, "evaluate")


@app.command()
def retrain(
    data: DataArg,
    as_of: Annotated[
        str, typer.Option("--as-of", help="retrain with what was known on this date (YYYY-MM-DD)")
    ],
    target: TargetOpt = "both",
    json_out: JsonOpt = False,
) -> None:
    """Train a challenger as of a date, gate it against the champion, promote or refuse."""
    from training.pipeline import retrain as retrain_models
    from training.tracking import TrackingStoreUnavailableError

    settings = _settings()
    stamp = _parse_date(as_of)
    if stamp is None:
        _fail("--as-of is required: the date whose knowledge the challenger is trained on")
    targets = _targets(target)
    options, store, logged = _training_setup(settings)
    loaded = _load(data, settings)
    try:
        with _training_progress() as progress:
            results = retrain_models(
                loaded.portfolio,
                stamp,
                options,
                store,
                targets=targets,
                settings_params=logged,
                progress=progress,
            )
    except ValueError as exc:
        _fail(str(exc))
    except TrackingStoreUnavailableError as exc:
        _fail(_escaped(exc))
    if json_out:
        _print_json({t: r.to_json() for t, r in results.items()})
        return
    for name, result in results.items():
        if result.decision == "skipped":
            console.print(
                f"[yellow]{'; '.join(result.reasons)}[/]", highlight=False, soft_wrap=True
            )
            continue
        colour = {"promoted": "green", "refused": "red"}.get(result.decision, "yellow")
        version = (result.challenger or {}).get("version")
        stdout.print(
            f"[bold]{name}[/]: [{colour}]{result.decision.upper()}[/]"
            + (f" — challenger v{version}" if version else "")
        )
        if result.challenger is not None:
            stdout.print(f"  gate rows: {result.gate_rows}", highlight=False)
            stdout.print(_gate_table(result.champion, result.challenger, version))
        for reason in result.reasons:
            stdout.print(f"  - {reason}", highlight=False)


def _gate_table(champion: dict[str, Any] | None, challenger: dict[str, Any], version: Any) -> Table:
    """Champion and challenger on the gate's rows: AUC and Brier for a classifier, the
    interval score and coverage error for a quantile model (forewarn-finish, -cost)."""
    table = Table()
    columns: tuple[str, ...]
    if "interval_score" in challenger:
        columns = ("model", "version", "method", "interval score", "coverage error")

        def cells(figures: dict[str, Any]) -> list[str]:
            return [
                str(figures.get("method")),
                _n(figures["interval_score"], 4),
                _n(figures["coverage_error"]),
            ]
    else:
        columns = ("model", "version", "AUC", "Brier")

        def cells(figures: dict[str, Any]) -> list[str]:
            return [_n(figures["auc"]), _n(figures["brier"], 4)]

    for col in columns:
        table.add_column(col, justify="left" if col in ("model", "method") else "right")
    if champion is not None:
        table.add_row("champion", str(champion.get("version")), *cells(champion))
    table.add_row("challenger", str(version), *cells(challenger))
    return table


# ------------------------------------------------------------------------------ drift


def _drift_thresholds(settings: Settings) -> Any:
    from monitoring.drift import DriftThresholds

    return DriftThresholds(
        numeric=settings.drift_numeric_threshold,
        categorical=settings.drift_categorical_threshold,
        share=settings.drift_share_threshold,
        prediction=settings.prediction_drift_threshold,
        unseen=settings.drift_unseen_threshold,
        alpha=settings.drift_stattest_threshold,
    )


def _drift_check(
    settings: Settings, data: Path, out: Path, alias: str, as_of: date | None, performance: bool
) -> tuple[Any, Any]:
    """Drift (and performance on matured projects) for `forewarn drift` and the demo."""
    import pandas as pd

    from monitoring.drift import DriftInputError, run_drift
    from monitoring.performance import run_performance
    from training.tracking import TrackingStoreUnavailableError

    loaded = _load(data, settings, out.parent)
    stamp = pd.Timestamp(as_of) if as_of else None
    common: dict[str, Any] = {
        "tracking_uri": settings.resolved_tracking_uri(),
        "alias": alias,
        "as_of": stamp,
        "delay_tolerance": settings.delay_tolerance,
        "overrun_tolerance": settings.overrun_tolerance,
        "extra_attributes": settings.extra_attributes,
        "experiment": settings.monitoring_experiment,
        "artifact_root": settings.artifact_root(),
        "seed": settings.seed,
    }
    try:
        drift_run = run_drift(
            loaded.portfolio,
            thresholds=_drift_thresholds(settings),
            out_html=out,
            out_json=out.with_suffix(".json"),
            **common,
        )
        perf_run = (
            run_performance(
                loaded.portfolio,
                auc_drop=settings.performance_auc_drop,
                brier_rise=settings.performance_brier_rise,
                ece_rise=settings.performance_ece_rise,
                min_projects=settings.performance_min_projects,
                **common,
            )
            if performance
            else None
        )
    except DriftInputError as exc:
        _fail(f"{data}: {exc}")
    except TrackingStoreUnavailableError as exc:
        _fail(_escaped(exc))
    except LookupError as exc:
        _fail(f"{exc}. Train first: forewarn train DATA")
    return drift_run, perf_run


def _print_drift(drift_run: Any, perf_run: Any) -> None:
    result = drift_run.result
    table = Table(title=f"Drift of the running projects on {result.context['as_of']}")
    for col in ("test", "value", "fails at", "result"):
        table.add_column(col, justify="left" if col in ("test", "result") else "right")
    for t in result.tests:
        table.add_row(
            t.name, f"{t.value:.3f}", f"{t.threshold:.3f}", "pass" if t.passed else "[red]FAIL[/]"
        )
    stdout.print(table)
    moved = [c for c in result.columns if c.drifted]
    if moved:
        features = Table(title="Features that moved (distance ≥ threshold)")
        for col in ("feature", "method", "distance", "threshold"):
            features.add_column(col, justify="left" if col in ("feature", "method") else "right")
        for name in result.drifted_columns:
            c = next(c for c in moved if c.column == name)
            features.add_row(c.column, c.method, f"{c.statistic:.3f}", f"{c.threshold:.3f}")
        stdout.print(features)
    if perf_run is not None:
        perf = perf_run.result
        matured = perf.context.get("matured_projects", {})
        counts = ", ".join(f"{t}: {n}" for t, n in matured.items())
        judged = any(not c.note for c in perf.checks)
        if not perf.passed:
            verdict = "[red]FAILED[/] — " + "; ".join(perf.to_dict()["failures"])
        else:
            verdict = "passed" if judged else "too few to judge yet"
        stdout.print(f"performance on projects closed since training ({counts}): {verdict}")
    if drift_run.report is not None:
        stdout.print(f"Evidently report → {drift_run.report.path}")
    if drift_run.summary_path is not None:
        stdout.print(f"JSON summary → {drift_run.summary_path}")


@app.command()
def drift(
    data: DataArg,
    model: Annotated[
        str, typer.Option("--model", help="registry alias or version to check")
    ] = "champion",
    out: Annotated[
        Path | None,
        typer.Option("--out", help="HTML report (default OUT_DIR/drift.html); JSON beside it"),
    ] = None,
    as_of: AsOfOpt = None,
    performance: Annotated[
        bool,
        typer.Option(
            "--performance/--no-performance",
            help="also check the models on projects closed since their training",
        ),
    ] = True,
    json_out: JsonOpt = False,
) -> None:
    """Drift watch: do the running projects still look like the training data? Exit 1 if not.

    Exit 0 when every test passes, 1 when a drift test (or the performance check) fails,
    2 on input that cannot be checked.
    """
    settings = _settings()
    out = out or settings.out_dir / "drift.html"
    with _quiet() if json_out else console.status("checking drift"):
        drift_run, perf_run = _drift_check(
            settings, data, out, model, _parse_date(as_of), performance
        )
    passed = drift_run.result.passed and (perf_run is None or perf_run.result.passed)
    if json_out:
        _print_json(
            {
                "passed": passed,
                "drift": drift_run.result.to_dict(),
                "performance": None if perf_run is None else perf_run.result.to_dict(),
                "report": str(drift_run.report.path) if drift_run.report else None,
                "summary": str(drift_run.summary_path) if drift_run.summary_path else None,
                "mlflow_run_id": drift_run.mlflow_run_id,
            }
        )
    else:
        _print_drift(drift_run, perf_run)
    if not passed:
        raise typer.Exit(1)


@app.command()
def kpi(
    data: DataArg,
    year: Annotated[
        int | None,
        typer.Option("--year", help="the year whose projects are due (default: the as-of year)"),
    ] = None,
    as_of: AsOfOpt = None,
    json_out: JsonOpt = False,
    lang: LangOpt = None,
) -> None:
    """Portfolio KPI forecast: the year's on-time and within-budget shares, and the realised
    KPIs of closed projects by year and portfolio."""
    settings = _settings()
    with _language(settings, lang):
        _kpi(settings, data, year, _parse_date(as_of), json_out)


def _kpi_options(settings: Settings) -> Any:
    from serving.kpi import KpiOptions

    return KpiOptions(
        on_time_target=settings.kpi_on_time_target,
        within_budget_target=settings.kpi_within_budget_target,
        correlation=settings.kpi_correlation,
    )


def _kpi(
    settings: Settings, data: Path, year: int | None, as_of: date | None, json_out: bool
) -> None:
    from dataclasses import replace

    from serving.batch import default_as_of
    from serving.kpi import kpi_sentences, portfolio_kpis

    loaded = _load(data, settings)
    champions = _champions(settings)
    day = as_of or default_as_of(loaded.portfolio)
    result = portfolio_kpis(
        loaded.portfolio,
        champions,
        day,
        replace(_kpi_options(settings), year=year),
        red=settings.red_threshold,
        amber=settings.amber_threshold,
        delay_tolerance=settings.delay_tolerance,
        overrun_tolerance=settings.overrun_tolerance,
    )
    if json_out:
        _print_json(result)
        return
    stdout.print(_("Portfolio KPIs as of {day}").format(day=day), highlight=False)
    for line in kpi_sentences(result):
        stdout.print(f"  {line}", highlight=False)
    table = Table(title=_("Realised KPIs of closed projects, by year of finish"))
    for header in (_("year"), _("portfolio"), _("closed"), _("on time"), _("within budget")):
        table.add_column(header, justify="left" if header == _("portfolio") else "right")
    for row in result["realised"]:
        budget = row["within_budget"]
        table.add_row(
            str(row["year"]),
            row["portfolio"],
            str(row["n_closed"]),
            f"{row['on_time']:.0%}",
            "—" if budget is None else f"{budget:.0%} ({row['n_with_budget']})",
        )
    stdout.print(table)


def _demo_drift(settings: Settings, out: Path, projects: int, seed: int) -> list[tuple[str, str]]:
    """Drift on a fresh same-settings portfolio (passes) and a drifted one (fails)."""
    outputs = []
    for kind, drifted, offset in (("fresh", False, 1), ("drifted", True, 2)):
        data = out / f"portfolio-{kind}"
        simulate(
            out=data,
            projects=projects,
            seed=seed + offset,
            drift=drifted,
            fmt="csv",
            json_out=False,
        )
        report = out / f"drift-{kind}.html"
        drift_run, _ = _drift_check(settings, data, report, "champion", None, performance=False)
        _print_drift(drift_run, None)
        moved = ", ".join(drift_run.result.drifted_columns[:6]) or "no feature moved"
        verdict = "passes" if drift_run.result.passed else f"fails; moved: {moved}"
        outputs.append((f"drift check, {kind} portfolio ({verdict})", str(report)))
    return outputs


# ----------------------------------------------------------------------------- import


@app.command("import")
def import_command(
    sources: Annotated[
        list[Path],
        typer.Argument(help="schedule files or folders: P6 .xer / .xml, MS Project .mpp / .xml"),
    ],
    out: Annotated[Path, typer.Option("--out", help="portfolio folder to write (contract v1)")],
    status_date: Annotated[
        str | None,
        typer.Option("--status-date", help="data date for files that carry none (YYYY-MM-DD)"),
    ] = None,
    project_key: Annotated[
        str | None,
        typer.Option(
            "--project-key",
            help="regex: its first group on the P6 project code, else on the file name, "
            "names the project (e.g. '(\\d{5})')",
        ),
    ] = None,
    project_map: Annotated[
        Path | None,
        typer.Option("--project-map", help="CSV source,project_id (file name or project code)"),
    ] = None,
    charset: Annotated[
        str | None, typer.Option("--charset", help="XER text encoding, e.g. windows-1251")
    ] = None,
    json_out: JsonOpt = False,
) -> None:
    """Import P6 / MS Project schedule updates (through MPXJ, needs Java) as a portfolio."""
    import re

    from rich.markup import escape
    from rich.progress import Progress

    from features.schedules import (
        ImportOptions,
        JavaNotFoundError,
        ScheduleError,
        import_folder,
        read_project_map,
    )

    settings = _settings()
    day = _parse_date(status_date, "--status-date")
    try:
        if project_key is not None:
            re.compile(project_key)
        options = ImportOptions(
            status_date=day,
            project_key=project_key,
            project_map=read_project_map(project_map) if project_map else {},
            change_threshold=settings.import_change_threshold,
            high_float_days=settings.import_high_float_days,
            high_duration_days=settings.import_high_duration_days,
            portfolio_field=settings.import_portfolio_field,
            type_field=settings.import_type_field,
            risks_field=settings.import_risks_field,
            issues_field=settings.import_issues_field,
        )
        # Off when stderr is no terminal: rich would leave a blank line there, and the one
        # line of an error (exit 2) is what a scheduler's log must read.
        with Progress(console=console, transient=True, disable=not console.is_terminal) as progress:
            task = progress.add_task("reading schedules", total=None)
            summary = import_folder(
                sources, out, options, charset, on_file=lambda _: progress.advance(task)
            )
    except re.error as exc:
        _fail(f"--project-key {project_key!r} is not a regular expression: {exc}")
    except (ScheduleError, JavaNotFoundError) as exc:
        # One line, however narrow the terminal: a scheduler's log reads it whole.
        console.print(f"[bold red]error:[/] {escape(str(exc))}", soft_wrap=True)
        raise typer.Exit(2) from None
    if json_out:
        _print_json(summary)
        return
    table = Table(title=escape(f"Imported into {out}"))
    for col in ("project", "snapshots", "first", "last", "baseline", "% complete", "cost"):
        table.add_column(col, justify="right" if col == "snapshots" else "left")
    for n in summary["projects"]:
        table.add_row(
            escape(str(n["project_id"])),
            str(n["snapshots"]),
            str(n["first"]),
            str(n["last"]),
            n["baseline"],
            n["percent_complete"],
            "cost-loaded" if n["cost_loaded"] else "no costs",
        )
    stdout.print(table)
    stdout.print(
        f"{len(summary['files'])} file(s), {summary['snapshots']} snapshot(s) → "
        f"{len(summary['projects'])} project(s), {summary['status_reports']} status report(s), "
        f"{summary['changes']} change(s); {summary['quarantined']} item(s) quarantined"
        + (f" → {escape(str(out / 'import_quarantine.csv'))}" if summary["quarantined"] else "")
    )


def _demo_import(data: Path, out: Path) -> list[tuple[str, str]]:
    """Write a small MSPDI update series of simulated projects with MPXJ, then import it."""
    from features.loading import load_portfolio
    from features.schedules import JavaNotFoundError
    from features.schedules.series import short_series, write_update_series

    portfolio = load_portfolio(data).portfolio
    series = out / "schedules"
    try:
        files = write_update_series(portfolio, series, short_series(portfolio, 2))
    except JavaNotFoundError as exc:
        console.print(f"[yellow]skipped:[/] {exc}", soft_wrap=True)
        return []
    imported = out / "imported"
    import_command(
        sources=[series],
        out=imported,
        status_date=None,
        project_key=r"(P-\d{5})",
        project_map=None,
        charset=None,
        json_out=False,
    )
    return [
        (f"MS Project update series ({len(files)} MSPDI files, written by MPXJ)", str(series)),
        ("the series imported (contract v1; forewarn import)", str(imported)),
    ]


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
    console.rule("2b. import: the same projects as MS Project schedule updates")
    outputs.extend(_demo_import(data, out))
    console.rule("3. train")
    train(data=data, as_of=None, target="both", cv=None, json_out=False)
    outputs.append(
        (
            "MLflow runs and models forewarn-delay / forewarn-overrun / forewarn-finish / "
            "forewarn-cost (champion aliases)",
            f"{settings.resolved_tracking_uri()} (make mlflow-ui)",
        )
    )
    console.rule("4. score")
    scores_path = out / "scores.csv"
    score(data=data, out=scores_path, as_of=None, explain=True, json_out=False, lang=None)
    outputs.append(("scores of the running projects, with drivers (batch, CSV)", str(scores_path)))
    console.rule("5. early-warning report")
    outputs.extend(_demo_report_and_explain(settings, data, out))
    console.rule("6. portfolio KPIs: this year's on-time and within-budget shares")
    kpi(data=data, year=None, as_of=None, json_out=False, lang=None)
    outputs.append(("portfolio KPI forecast (on time, within budget)", f"forewarn kpi {data}"))
    console.rule("drift watch: a fresh portfolio, then a drifted one")
    outputs.extend(_demo_drift(settings, out, projects, seed))
    console.rule("outputs")
    table = Table(title="Forewarn demo: outputs")
    table.add_column("what")
    table.add_column("where / how to open")
    for what, where in outputs:
        table.add_row(what, where)
    stdout.print(table)
    # The one command that opens every run, metric and registered model of the demo.
    stdout.print(
        "MLflow UI: mlflow ui --backend-store-uri "
        f"{settings.resolved_tracking_uri()} --default-artifact-root {settings.artifact_root()}"
    )


def main() -> None:  # pragma: no cover - console entry
    app()


if __name__ == "__main__":  # pragma: no cover
    main()
