"""The demo portfolio simulator: a portfolio in contract v1 that is hard the way real ones are.

Each project has hidden drivers (team capability, scope volatility, vendor reliability,
complexity) that are never exported. They set its true pace and cost efficiency, its scope
growth, how many change requests it raises and how large they are, how many risks and issues
it carries, and how likely it is to be hit by a shock. Shocks arrive after 60–85% of the
planned duration and nothing in earlier reports announces them; on some projects the last
stretch drags. What the PMO sees is the project manager's reporting: earned value a little
optimistic, forecasts anchored on the baseline and revised in jumps once the slip cannot be
denied, a status colour (``rag``) that lags and flatters, and reports that go missing more
often when the project is in trouble. docs/simulator.md lists every mechanism and its
parameters.

Everything is drawn from one ``numpy.random.default_rng(seed)`` in a fixed order and computed
over whole arrays (projects, report rows, change rows), so one seed always gives the same
portfolio and 20,000 projects take seconds.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import date

import numpy as np
import pandas as pd

from features.contract import Portfolio, conform

DEFAULT_TODAY = date(2026, 6, 30)
"""The simulated world's "today": fixed, so that a seed gives the same portfolio any day."""

_HISTORY_DAYS = 6 * 365  # projects start over the six years before today
_DAYS_PER_MONTH = 30.4375
_EPOCH = np.datetime64("1970-01-01", "D")
_CADENCE_ANCHOR = np.datetime64("2000-01-07", "D")  # a Friday: report days are Fridays

Arr = np.ndarray


@dataclass(frozen=True)
class _TypeProfile:
    """How one project type behaves; docs/simulator.md tabulates these numbers."""

    name: str
    budget_median: float  # currency units
    budget_sigma: float  # log-sd of the budget
    months_median: float  # planned duration
    months_sigma: float
    months_min: float
    months_max: float
    pace_mu: float  # mean log(no-shock duration / planned duration)
    pace_sigma: float
    cost_mu: float  # mean log(cost of the baseline scope / budget)
    cost_sigma: float
    growth: float  # median scope growth, share of the budget
    shock_p: float  # probability of a late shock for an average project
    shock_delay: float  # median shock delay, share of the planned duration
    shock_cost: float  # median (lognormal) or minimum (Pareto) shock cost, share of budget
    shock_pareto: float  # Pareto tail index of the shock cost and delay; 0: lognormal
    changes_per_year: float
    risks: float  # open risks of an average project mid-way
    milestones_per_year: float
    nouns: tuple[str, ...]


_TYPES: tuple[_TypeProfile, ...] = (
    _TypeProfile(
        "it", 1.5e6, 0.9, 12, 0.45, 4, 36,
        pace_mu=-0.10, pace_sigma=0.20, cost_mu=-0.28, cost_sigma=0.13, growth=0.06,
        shock_p=0.25, shock_delay=0.15, shock_cost=0.30, shock_pareto=1.15,
        changes_per_year=6, risks=6, milestones_per_year=6,
        nouns=("CRM replacement", "Data platform", "ERP upgrade", "Case management system",
               "Identity service", "Payments gateway", "Cloud migration", "Citizen app"),
    ),
    _TypeProfile(
        "rail", 80e6, 0.9, 36, 0.35, 18, 84,
        pace_mu=-0.02, pace_sigma=0.18, cost_mu=0.14, cost_sigma=0.16, growth=0.12,
        shock_p=0.35, shock_delay=0.15, shock_cost=0.10, shock_pareto=0.0,
        changes_per_year=4, risks=12, milestones_per_year=4,
        nouns=("Signalling upgrade", "Track renewal", "Station rebuild", "Electrification",
               "Depot expansion", "Level crossing removal"),
    ),
    _TypeProfile(
        "roads", 20e6, 0.8, 20, 0.40, 8, 48,
        pace_mu=-0.09, pace_sigma=0.15, cost_mu=-0.02, cost_sigma=0.13, growth=0.06,
        shock_p=0.30, shock_delay=0.12, shock_cost=0.15, shock_pareto=0.0,
        changes_per_year=3, risks=8, milestones_per_year=4,
        nouns=("Bypass", "Junction improvement", "Bridge strengthening", "Resurfacing",
               "Dual carriageway", "Cycle corridor"),
    ),
    _TypeProfile(
        "building", 12e6, 0.8, 18, 0.35, 8, 42,
        pace_mu=-0.10, pace_sigma=0.15, cost_mu=-0.20, cost_sigma=0.12, growth=0.06,
        shock_p=0.25, shock_delay=0.12, shock_cost=0.10, shock_pareto=0.0,
        changes_per_year=4, risks=8, milestones_per_year=5,
        nouns=("Office refurbishment", "School extension", "Hospital wing",
               "Data centre fit-out", "Library rebuild", "Depot construction"),
    ),
    _TypeProfile(
        "research", 0.8e6, 0.7, 15, 0.35, 6, 36,
        pace_mu=-0.10, pace_sigma=0.18, cost_mu=-0.18, cost_sigma=0.12, growth=0.04,
        shock_p=0.20, shock_delay=0.15, shock_cost=0.07, shock_pareto=0.0,
        changes_per_year=2, risks=5, milestones_per_year=4,
        nouns=("Battery chemistry study", "Sensor prototype", "Clinical pilot",
               "Materials trial", "Triage model pilot", "Soil carbon study"),
    ),
)  # fmt: skip


@dataclass(frozen=True)
class _PortfolioProfile:
    """A programme or department: its share of projects, report cadence and type mix."""

    name: str
    share: float
    cadence_days: int
    mix: tuple[float, ...]  # weight per entry of _TYPES, in order


_PORTFOLIOS: tuple[_PortfolioProfile, ...] = (
    _PortfolioProfile("Transport Capital", 0.14, 28, (0.00, 0.50, 0.40, 0.10, 0.00)),
    _PortfolioProfile("Highways", 0.16, 14, (0.05, 0.00, 0.80, 0.15, 0.00)),
    _PortfolioProfile("Digital Services", 0.32, 14, (0.85, 0.00, 0.00, 0.00, 0.15)),
    _PortfolioProfile("Estates", 0.18, 28, (0.15, 0.00, 0.05, 0.80, 0.00)),
    _PortfolioProfile("Research & Innovation", 0.20, 28, (0.30, 0.00, 0.00, 0.00, 0.70)),
)

_DRIFT_PORTFOLIO = _PortfolioProfile("Net Zero Transition", 0.22, 14, (0.35, 0.10, 0.15, 0.40, 0.0))


@dataclass(frozen=True)
class _World:
    """The parameters one simulation runs with; drift changes them."""

    portfolios: tuple[_PortfolioProfile, ...]
    types: tuple[_TypeProfile, ...]
    budget_factor: float  # multiplies every budget
    cost_shift: float  # added to every type's cost_mu (cost inflation)
    growth_factor: float  # multiplies every type's scope growth


def _world(drift: bool) -> _World:
    if not drift:
        return _World(_PORTFOLIOS, _TYPES, budget_factor=1.0, cost_shift=0.0, growth_factor=1.0)
    # The drifted portfolio: a new programme takes a fifth of the projects, every programme
    # leans further into IT, budgets are larger and cost inflation eats into efficiency.
    it_boost = np.array([2.0 if t.name == "it" else 1.0 for t in _TYPES])
    shrink = 1 - _DRIFT_PORTFOLIO.share
    portfolios = (
        *(
            replace(
                p, mix=tuple(float(w) for w in np.asarray(p.mix) * it_boost), share=p.share * shrink
            )
            for p in _PORTFOLIOS
        ),
        _DRIFT_PORTFOLIO,
    )
    return _World(portfolios, _TYPES, budget_factor=1.8, cost_shift=0.10, growth_factor=1.3)


@dataclass
class Simulation:
    """A simulated portfolio, the date it is seen from, and its hidden drivers.

    ``hidden`` (one row per project: capability, volatility, vendor reliability, complexity
    and the true outcomes they caused) is for tests only and is never written to disk.
    """

    portfolio: Portfolio
    today: date
    hidden: pd.DataFrame


def simulate_portfolio(
    n_projects: int, seed: int, drift: bool = False, today: date | None = None
) -> Simulation:
    """Simulate `n_projects` projects seen on `today` (default 2026-06-30), in contract v1."""
    if n_projects < 1:
        raise ValueError(f"n_projects must be at least 1, got {n_projects}")
    today = today or DEFAULT_TODAY
    today_day = int((np.datetime64(today, "D") - _EPOCH).astype(np.int64))
    rng = np.random.default_rng(seed)
    world = _world(drift)
    truth = _draw_projects(rng, n_projects, world, today_day)
    reports = _status_reports(rng, truth, world, today_day)
    changes = _change_requests(rng, truth, world, today_day)
    projects = _projects_table(truth, world)
    portfolio = Portfolio(
        projects=conform(projects, "projects"),
        status_reports=conform(reports, "status_reports"),
        changes=conform(changes, "changes"),
        source=f"simulated(n={n_projects}, seed={seed}, drift={drift}, today={today})",
    )
    return Simulation(portfolio=portfolio, today=today, hidden=_hidden_table(truth))


# ------------------------------------------------------------------------------ projects


def _draw_projects(rng: np.random.Generator, n: int, world: _World, today: int) -> dict[str, Arr]:
    """Every per-project quantity, observable or not, as arrays of length n (days as ints)."""
    types = world.types
    shares = np.array([p.share for p in world.portfolios])
    portfolio = rng.choice(len(world.portfolios), size=n, p=shares / shares.sum())
    mix = np.array([p.mix for p in world.portfolios])
    mix = mix / mix.sum(axis=1, keepdims=True)
    cum = np.cumsum(mix[portfolio], axis=1)
    kind = np.minimum((rng.random(n)[:, None] > cum).sum(axis=1), len(types) - 1)

    def param(attr: str) -> Arr:
        return np.array([getattr(t, attr) for t in types], dtype=float)[kind]

    # Hidden drivers, standard normal; complexity rises with size, so size tells a little.
    capability = rng.standard_normal(n)
    volatility = rng.standard_normal(n)
    vendor = rng.standard_normal(n)
    size = rng.standard_normal(n)
    complexity = 0.5 * size + np.sqrt(0.75) * rng.standard_normal(n)

    budget = np.round(
        param("budget_median") * world.budget_factor * np.exp(param("budget_sigma") * size), -3
    )
    budget = np.maximum(budget, 10_000.0)
    months = param("months_median") * np.exp(
        param("months_sigma") * (0.5 * size + np.sqrt(0.75) * rng.standard_normal(n))
    )
    months = np.clip(np.round(months), param("months_min"), param("months_max"))
    planned_days = np.round(months * _DAYS_PER_MONTH).astype(np.int64)
    planned_start = today - rng.integers(20, _HISTORY_DAYS, size=n)
    # A third of projects start late, by a few weeks typically.
    start_delay = np.where(
        rng.random(n) < 0.35, np.round(rng.exponential(0.04 * planned_days + 7)), 0
    ).astype(np.int64)

    # Scope growth (share of the budget): volatile scope grows, and part of the growth is luck.
    growth = (
        param("growth")
        * world.growth_factor
        * np.exp(0.6 * volatility + 0.5 * rng.standard_normal(n))
    )
    # True pace: log(no-shock duration / planned duration). Capable teams and reliable vendors
    # are faster; complexity, volatility and scope growth slow a project down.
    log_pace = (
        param("pace_mu")
        + param("pace_sigma") * rng.standard_normal(n)
        - 0.07 * capability
        + 0.04 * volatility
        - 0.05 * vendor
        + 0.05 * complexity
        + np.log1p(0.5 * growth)
    )
    # Pace changes part-way (a new team lead, a hard integration phase): the work after a
    # change point runs at its own pace, only loosely tied to the first part's, so mid-project
    # earned value predicts the finish only partly.
    change_at = rng.uniform(0.45, 0.75, n)  # share of the work done before the change
    late_pace = np.exp(0.04 + 0.12 * complexity + 0.16 * rng.standard_normal(n))
    early_duration = planned_days * np.exp(log_pace)  # whole-project duration at early pace
    base_duration = early_duration * (change_at + (1 - change_at) * late_pace)
    # Cost of the baseline scope per unit of budget (1 / true CPI at the start); slow projects
    # burn more (standing army), and it inflates as work proceeds by the scope growth.
    cost_luck = rng.standard_normal(n)
    log_cost = (
        param("cost_mu")
        + world.cost_shift
        + param("cost_sigma") * cost_luck
        - 0.02 * capability
        - 0.02 * vendor
        + 0.02 * complexity
        + 0.15 * (log_pace - param("pace_mu"))
    )

    # Late shocks: a minority, clearly likelier for complex work with unreliable vendors,
    # between 60% and 85% of the planned duration after the start; nothing announces them.
    shock_logit = (
        np.log(param("shock_p") / (1 - param("shock_p"))) + 0.7 * complexity - 0.7 * vendor
    )
    shocked = rng.random(n) < 1 / (1 + np.exp(-shock_logit))
    shock_at = np.minimum(rng.uniform(0.60, 0.85, n) * planned_days, 0.9 * base_duration)
    pareto = param("shock_pareto")
    tail = rng.pareto(np.where(pareto > 0, pareto, 1.0), size=n) + 1.0  # classical Pareto, min 1
    lognormal_delay = np.exp(0.6 * rng.standard_normal(n))
    lognormal_cost = np.exp(0.8 * rng.standard_normal(n))
    delay_factor = np.where(pareto > 0, np.minimum(tail**0.6, 8.0), lognormal_delay)
    cost_factor = np.where(pareto > 0, np.minimum(tail * lognormal_cost**0.5, 20.0), lognormal_cost)
    shock_delay = np.where(shocked, param("shock_delay") * planned_days * delay_factor, 0.0)
    shock_cost = np.where(shocked, param("shock_cost") * cost_factor, 0.0)

    # The last stretch (commissioning, acceptance, handover) drags on some projects: once
    # 92% of the no-delay time is behind them, progress crawls; likelier on complex work and
    # weak teams, and nothing before it shows it (the "90% syndrome"). It costs standing time.
    tail_logit = np.log(_TAIL_P / (1 - _TAIL_P)) + 0.9 * complexity - 0.5 * capability
    tailed = rng.random(n) < 1 / (1 + np.exp(-tail_logit))
    tail_delay = np.where(
        tailed, _TAIL_DELAY * planned_days * np.exp(0.6 * rng.standard_normal(n)), 0.0
    )
    tail_cost = _TAIL_COST * tail_delay / planned_days

    duration = np.maximum(np.round(base_duration + shock_delay + tail_delay), 30).astype(np.int64)
    actual_start = planned_start + start_delay
    actual_finish = actual_start + duration
    # The late part costs more (or less) per unit of work, following its pace, plus rework
    # and claims: nearly always some, now and then a lot, likelier on complex work.
    # A project that burns money from the start keeps doing so: its rework follows its cost
    # luck (cumulative CPI rarely recovers once a fifth of the work is done).
    rework_luck = 0.6 * cost_luck + 0.8 * rng.standard_normal(n)
    rework = 0.06 * np.exp(0.5 * complexity + 1.0 * rework_luck)
    late_cost = np.exp(0.5 * np.log(late_pace) + 0.05 * rng.standard_normal(n)) + rework
    change_progress = _s_curve(change_at)
    cost_shape = 1 + growth + (late_cost - 1) * (1 - change_progress)
    final_cost = np.round(budget * (np.exp(log_cost) * (cost_shape + tail_cost) + shock_cost))

    # Cancellation: likelier for projects in deep trouble; the decision comes part-way through.
    trouble = np.maximum(0.0, np.log(duration / planned_days))
    cancel_flag = rng.random(n) < np.clip(0.02 + 0.15 * trouble + 0.04 * shocked, 0, 0.5)
    cancel_day = actual_start + np.round(rng.uniform(0.2, 0.8, n) * duration).astype(np.int64)
    hold_flag = rng.random(n) < 0.05
    hold_day = np.maximum(actual_start + 14, today - rng.integers(20, 150, size=n))

    started = actual_start <= today
    cancelled = started & cancel_flag & (cancel_day <= today)
    closed = started & ~cancelled & (actual_finish <= today)
    on_hold = started & ~cancelled & ~closed & hold_flag & (hold_day < today)
    status = np.select(
        [cancelled, closed, on_hold], ["cancelled", "closed", "on_hold"], default="active"
    )
    # Reports run from the start until (not including) the finish, the cancellation (its day
    # included), the hold, or today (included).
    report_end = np.select(
        [~started, cancelled, closed, on_hold],
        [actual_start, cancel_day + 1, actual_finish, hold_day],
        default=today + 1,
    )

    return {
        "portfolio": portfolio,
        "kind": kind,
        "capability": capability,
        "volatility": volatility,
        "vendor": vendor,
        "complexity": complexity,
        "budget": budget,
        "planned_days": planned_days,
        "planned_start": planned_start,
        "start_delay": start_delay,
        "actual_start": actual_start,
        "growth": growth,
        "base_duration": base_duration,
        "early_duration": early_duration,
        "change_at": change_at,
        "late_pace": late_pace,
        "late_cost": late_cost,
        "cost_index": np.exp(log_cost),
        "shocked": shocked,
        "shock_at": shock_at,
        "shock_delay": shock_delay,
        "shock_cost": shock_cost,
        "tail_delay": tail_delay,
        "tail_cost": tail_cost,
        "duration": duration,
        "actual_finish": actual_finish,
        "final_cost": final_cost,
        "cancel_day": cancel_day,
        "hold_day": hold_day,
        "status": status,
        "started": started,
        "report_end": report_end,
        "noun": rng.integers(0, 1 << 30, size=n),
        "place": rng.integers(0, len(_PLACES), size=n),
    }


_TAIL_P = 0.40  # chance that an average project's last stretch drags
_TAIL_DELAY = 0.16  # median drag, share of the planned duration (lognormal, σ 0.6)
_TAIL_COST = 0.5  # its cost: this share of the budget per planned duration of drag

_PLACES = ("North", "South", "East", "West", "Central", "Harbour", "Riverside", "Hillside",
           "Airport", "Valley", "Old Town", "Docklands")  # fmt: skip


def _projects_table(truth: dict[str, Arr], world: _World) -> pd.DataFrame:
    n = len(truth["budget"])
    status = truth["status"]
    closed = status == "closed"
    nouns = [world.types[k].nouns for k in truth["kind"]]
    names = [
        f"{ns[i % len(ns)]}, {_PLACES[p]}"
        for ns, i, p in zip(nouns, truth["noun"], truth["place"], strict=True)
    ]
    return pd.DataFrame(
        {
            "project_id": _project_ids(n),
            "name": names,
            "portfolio": np.array([p.name for p in world.portfolios], dtype=object)[
                truth["portfolio"]
            ],
            "project_type": np.array([t.name for t in world.types], dtype=object)[truth["kind"]],
            "planned_start": _dates(truth["planned_start"]),
            "planned_finish": _dates(truth["planned_start"] + truth["planned_days"]),
            "budget": truth["budget"],
            "actual_start": _dates(truth["actual_start"], truth["started"]),
            "actual_finish": _dates(truth["actual_finish"], closed),
            "final_cost": np.where(closed, truth["final_cost"], np.nan),
            "status": status.astype(object),
        }
    )


def _hidden_table(truth: dict[str, Arr]) -> pd.DataFrame:
    n = len(truth["budget"])
    return pd.DataFrame(
        {
            "project_id": _project_ids(n),
            "capability": truth["capability"],
            "scope_volatility": truth["volatility"],
            "vendor_reliability": truth["vendor"],
            "complexity": truth["complexity"],
            "scope_growth": truth["growth"],
            "cost_index": truth["cost_index"],
            "pace": truth["base_duration"] / truth["planned_days"],
            "shocked": truth["shocked"],
            "shock_day": np.where(truth["shocked"], truth["shock_at"], np.nan),
            "shock_delay_days": truth["shock_delay"],
            "shock_cost_share": truth["shock_cost"],
            "tail_delay_days": truth["tail_delay"],
            "true_finish": _dates(truth["actual_finish"]),
            "true_cost": truth["final_cost"],
        }
    )


def _project_ids(n: int) -> Arr:
    return np.array([f"P-{i:05d}" for i in range(1, n + 1)], dtype=object)


def _dates(days: Arr, valid: Arr | None = None) -> Arr:
    """Integer days since 1970 to datetime64[ns]; NaT where not valid."""
    out = (_EPOCH + np.asarray(days, dtype=np.int64)).astype("datetime64[ns]")
    if valid is not None:
        out = np.where(valid, out, np.datetime64("NaT", "ns"))
    return out


# ------------------------------------------------------------------------ status reports


def _s_curve(x: Arr) -> Arr:
    """Share of the value planned by elapsed fraction x: the beta(2, 2) CDF, an S-curve."""
    x = np.clip(x, 0.0, 1.0)
    return x * x * (3.0 - 2.0 * x)


def _s_curve_inverse(y: Arr) -> Arr:
    y = np.clip(y, 0.0, 1.0)
    return 0.5 - np.sin(np.arcsin(1.0 - 2.0 * y) / 3.0)


def _group_cummax(values: Arr, group: Arr) -> Arr:
    """Running maximum within consecutive groups (rows sorted by group), without a loop."""
    span = float(values.max() - values.min()) + 1.0
    shifted = values + group * span
    return np.maximum.accumulate(shifted) - group * span


def _status_reports(
    rng: np.random.Generator, truth: dict[str, Arr], world: _World, today: int
) -> pd.DataFrame:
    n = len(truth["budget"])
    cadence = np.array([p.cadence_days for p in world.portfolios])[truth["portfolio"]]
    anchor = int((_CADENCE_ANCHOR - _EPOCH).astype(np.int64))
    # Reports fall on the portfolio's calendar: the first one after the start, then every
    # cadence days until the end of reporting.
    first = -((anchor - truth["actual_start"] - 1) // cadence)  # ceil((start + 1 - a) / c)
    last = (truth["report_end"] - 1 - anchor) // cadence
    counts = np.where(truth["started"], np.maximum(last - first + 1, 0), 0)

    # Per-project reporting behaviour, drawn for every project so the draw order is fixed.
    warp1 = rng.uniform(-0.08, 0.08, n)  # progress runs ahead of or behind its average pace
    warp2 = rng.uniform(-0.05, 0.05, n)
    cost_warp = rng.uniform(-0.05, 0.05, n)
    cost_lag = rng.integers(0, 15, n)  # invoices arrive late: AC lags by up to two weeks
    optimism = np.clip(0.06 - 0.03 * truth["capability"] + 0.03 * rng.standard_normal(n), 0, 0.2)
    wobble_phase = rng.uniform(0, 2 * np.pi, n)
    anchor_s = rng.uniform(0.4, 0.9, n)  # share of the perceived slip the PM admits
    denial_s = rng.uniform(0.03, 0.15, n)  # slip the PM keeps quiet about
    anchor_c = rng.uniform(0.3, 0.8, n)
    denial_c = rng.uniform(0.03, 0.12, n)
    discipline = np.clip(0.02 - 0.015 * truth["capability"], 0.0, 0.08)
    risk_level = np.exp(0.3 * rng.standard_normal(n))
    n_milestones = np.maximum(
        2,
        np.round(truth["planned_days"] / 365.25 * _type_param(world, truth, "milestones_per_year")),
    )

    total = int(counts.sum())
    proj = np.repeat(np.arange(n), counts)
    offset = np.arange(total) - np.repeat(np.cumsum(counts) - counts, counts)
    day = anchor + (first[proj] + offset) * cadence[proj]

    p_days = truth["planned_days"][proj].astype(float)
    budget = truth["budget"][proj]
    t = (day - truth["actual_start"][proj]).astype(float)
    tau = (day - truth["planned_start"][proj]) / p_days
    pv_share = _s_curve(tau)

    # True progress: the no-shock path (early pace, then late pace after the change point),
    # slowed after the shock so that it ends at the true finish, bent by a project-specific
    # warp that keeps both ends fixed.
    base = truth["base_duration"][proj]
    early = truth["early_duration"][proj]
    change_at = truth["change_at"][proj]
    late_pace = truth["late_pace"][proj]
    duration = truth["duration"][proj].astype(float)
    shock_at = truth["shock_at"][proj]
    tail_delay = truth["tail_delay"][proj]
    before_tail = duration - tail_delay  # the finish the project would have had without it
    slow = (base - shock_at) / np.maximum(before_tail - shock_at, 1.0)
    # The drag starts when 92% of the no-delay time has passed (shock_at is below 90% of it),
    # and stretches the rest of the calendar so that the project ends at the true finish.
    tail_at = shock_at + (0.92 * base - shock_at) / slow
    stretch = np.maximum(before_tail - tail_at, 0.0) / np.maximum(duration - tail_at, 1.0)
    w1, w2 = warp1[proj], warp2[proj]

    def work_done(days: Arr) -> Arr:
        """Share of the work done (before the S-curve) after `days` since the start."""
        days = np.where(days < tail_at, days, tail_at + (days - tail_at) * stretch)
        u = np.where(days < shock_at, days, shock_at + np.maximum(days - shock_at, 0) * slow)
        y = np.where(
            u < change_at * early,
            u / early,
            change_at + (u - change_at * early) / (early * late_pace),
        )
        y = np.clip(y, 0.0, 1.0)
        return y + w1 * np.sin(np.pi * y) + w2 * np.sin(2 * np.pi * y)

    y = work_done(t)
    progress = _s_curve(y)
    after = np.maximum(t - shock_at, 0.0)

    # True cumulative cost, booked with a lag: cost per unit of progress rises with the scope
    # growth and changes with the late pace; a shock adds cost in proportion to the time
    # since it struck.
    change_progress = _s_curve(change_at)
    late_cost = truth["late_cost"][proj]

    def cost_at(days: Arr) -> Arr:
        q = _s_curve(work_done(days))
        q = q + cost_warp[proj] * np.sin(np.pi * q) / np.pi
        shape = (
            q
            + truth["growth"][proj] * q**1.5
            + (late_cost - 1) * np.maximum(q - change_progress, 0)
        )
        shock_part = truth["shock_cost"][proj] * np.clip(
            (days - shock_at) / np.maximum(duration - shock_at, 1.0), 0.0, 1.0
        )
        tail_part = truth["tail_cost"][proj] * np.clip(
            (days - tail_at) / np.maximum(duration - tail_at, 1.0), 0.0, 1.0
        )
        return budget * (truth["cost_index"][proj] * (shape + tail_part) + shock_part)

    true_cost = cost_at(t)
    actual_cost = cost_at(t - np.minimum(cost_lag[proj], 0.2 * t))
    # How much trouble the project is really in; ignored in its first weeks, when the
    # ratios of tiny amounts mean nothing.
    settled = np.clip(tau / 0.15, 0.0, 1.0)
    schedule_trouble = settled * np.clip(1 - progress / np.maximum(pv_share, 0.02), 0, 1)
    cost_trouble = settled * np.clip(1 - progress * budget / np.maximum(true_cost, 1.0), 0, 1)
    post_shock = truth["shocked"][proj] & (t >= shock_at)
    recent_shock = post_shock & (after < 90)

    # Reported progress: optimistic mid-way (the 90% syndrome), with a slow wobble; both fade
    # as the work ends, so a project reads 100% only when it nearly is.
    wobble = 0.05 * np.sin(2 * np.pi * t / 120.0 + wobble_phase[proj])
    ev_share = np.clip(
        progress
        * (1 + (optimism[proj] + wobble + 0.02 * rng.standard_normal(total)) * (1 - progress)),
        0.0,
        1.0,
    )
    # Physical percent complete: the EV share, give or take, surer near the end.
    spread = 0.08 * ev_share * (1 - ev_share)
    percent = np.round(100 * np.clip(ev_share + spread * rng.standard_normal(total), 0.0, 1.0), 1)

    # The PM's finish forecast. What they could know is the earned-schedule estimate from the
    # true progress (they know the work better than the EV figures say) and, once it struck,
    # the shock's delay. They trust the estimate only as the plan unfolds, admit only part of
    # it and only past their denial threshold, in steps of a month or a twelfth of the plan;
    # they never revise back, and never forecast earlier than the work left allows.
    known = np.clip(tau, 0.0, 1.0)
    earned_schedule = np.maximum(_s_curve_inverse(progress), 0.02)
    slip_estimate = np.clip(np.maximum(tau, 0.0) / earned_schedule - 1, -0.5, 2.0)
    shock_slip = np.where(
        post_shock, truth["shock_delay"][proj] / p_days * np.clip(after / 45.0, 0, 1), 0.0
    )
    perceived = (
        slip_estimate * known + 0.7 * shock_slip + 0.04 * rng.standard_normal(total) * (1 - known)
    )
    step = np.maximum(1 / 12, 30.0 / p_days)
    admitted = np.ceil(np.maximum(anchor_s[proj] * (perceived - denial_s[proj]), 0) / step) * step
    admitted = _group_cummax(admitted, proj)
    planned_finish = truth["planned_start"][proj] + p_days
    floor = day + 14 + (1 - ev_share) * p_days * 0.5
    forecast_finish = np.round(np.maximum(planned_finish + admitted * p_days, floor))
    forecast_finish = _group_cummax(forecast_finish, proj).astype(np.int64)

    # The PM's cost forecast: the same anchoring on the true CPI so far, trusted as the work
    # gets done, plus most of a shock's cost once it has struck.
    overrun_estimate = np.clip(true_cost / np.maximum(progress * budget, 1.0) - 1, -0.5, 3.0)
    shock_overrun = np.where(
        post_shock, truth["shock_cost"][proj] * np.clip(after / 45.0, 0, 1), 0.0
    )
    perceived_c = (
        overrun_estimate * progress
        + 0.7 * shock_overrun
        + 0.03 * rng.standard_normal(total) * (1 - progress)
    )
    admitted_c = (
        np.ceil(np.maximum(anchor_c[proj] * (perceived_c - denial_c[proj]), 0) / 0.05) * 0.05
    )
    admitted_c = _group_cummax(admitted_c, proj)
    forecast_cost = np.maximum(
        budget * (1 + admitted_c), actual_cost + (1 - ev_share) * budget * 0.8
    )

    # Milestones: n per project, due at even fractions of the plan, done when the true
    # progress reaches the value planned by them.
    ms = n_milestones[proj]
    milestones_planned = np.floor(ms * np.clip(tau, 0, 1) + 1e-9)
    milestones_done = np.minimum(np.floor(ms * _s_curve_inverse(progress) + 1e-9), ms)

    # Risks follow the hidden drivers; issues follow actual trouble and spike after a shock.
    risk_base = _type_param(world, truth, "risks")[proj]
    c, v, k = (truth[name][proj] for name in ("capability", "volatility", "complexity"))
    risk_mean = (
        risk_base
        * risk_level[proj]
        * np.exp(0.3 * k + 0.25 * v - 0.2 * c)
        * (0.6 + 1.6 * y * (1 - y))
        + 2.0 * post_shock
    )
    issue_mean = (
        0.4
        * risk_base
        * np.exp(0.2 * k - 0.2 * c)
        * (0.3 + 3 * schedule_trouble + 3 * cost_trouble)
        + 3.0 * recent_shock
    )
    open_risks = rng.poisson(risk_mean)
    open_issues = rng.poisson(issue_mean)

    # Missing reports: a habit of some teams, and much likelier when things go wrong.
    p_missing = (
        discipline[proj] + 0.15 * np.clip(schedule_trouble / 0.4, 0, 1) + 0.08 * recent_shock
    )
    keep = rng.random(total) >= p_missing

    rag = _status_colour(
        rng,
        proj,
        settled * (1 - ev_share / np.maximum(pv_share, 0.02)),
        settled * (1 - ev_share * budget / np.maximum(actual_cost, 1.0)),
        admitted,
        admitted_c,
        truth["capability"],
    )

    frame = pd.DataFrame(
        {
            "project_id": _project_ids(n)[proj],
            "report_date": _dates(day),
            "percent_complete": percent + 0.0,
            "planned_value": np.round(budget * pv_share),
            "earned_value": np.round(budget * ev_share),
            "actual_cost": np.round(actual_cost),
            "forecast_finish": _dates(forecast_finish),
            "forecast_cost": np.round(forecast_cost),
            "milestones_planned": milestones_planned,
            "milestones_done": milestones_done,
            "open_risks": open_risks.astype(float),
            "open_issues": open_issues.astype(float),
            "rag": rag,
        }
    )
    return frame[keep]


_RAG = np.array(["green", "amber", "red", None], dtype=object)


def _status_colour(
    rng: np.random.Generator,
    proj: Arr,
    schedule_gap: Arr,
    cost_gap: Arr,
    admitted_slip: Arr,
    admitted_overrun: Arr,
    capability: Arr,
) -> Arr:
    """The PMO's status colour of each report (v1.1 ``rag``): the PM's own call.

    What the PM sees is the reported SPI and CPI (as gaps, 1 − index, quiet in the first
    weeks) and what they have admitted in their forecasts; the worse of schedule and cost,
    with a little noise, is their concern. Each PM has a spin, larger for weak teams, that
    raises the bar for amber and more so for red (watermelon projects: green outside, red
    inside). The colour lags: it follows the smaller of this and the last report's concern,
    so it worsens only once trouble has shown twice, and clears at once. 3% of reports
    carry no colour.
    """
    n = len(capability)
    spin = np.clip(rng.uniform(0.0, 0.10, n) - 0.03 * capability, 0.0, 0.15)
    concern = np.maximum(
        0.6 * schedule_gap + admitted_slip, 0.6 * cost_gap + admitted_overrun
    ) + 0.03 * rng.standard_normal(len(proj))
    first = np.r_[True, proj[1:] != proj[:-1]]
    previous = np.where(first, 0.0, np.r_[0.0, concern[:-1]])
    seen = np.minimum(concern, previous)
    colour = np.where(seen > 0.30 + 2.0 * spin[proj], 2, np.where(seen > 0.10 + spin[proj], 1, 0))
    colour = np.where(rng.random(len(proj)) < 0.03, 3, colour)
    return _RAG[colour]


def _type_param(world: _World, truth: dict[str, Arr], attr: str) -> Arr:
    return np.array([getattr(t, attr) for t in world.types], dtype=float)[truth["kind"]]


# ------------------------------------------------------------------------ change requests

_KINDS = ("scope", "schedule", "cost", "baseline", "other")


def _change_requests(
    rng: np.random.Generator, truth: dict[str, Arr], world: _World, today: int
) -> pd.DataFrame:
    n = len(truth["budget"])
    c, v, r, k = (truth[x] for x in ("capability", "volatility", "vendor", "complexity"))
    start = truth["actual_start"]
    end = np.minimum(truth["report_end"] - 1, today)  # raised while the project runs
    window = np.where(truth["started"], np.maximum(end - start, 0), 0)
    rate = _type_param(world, truth, "changes_per_year") * np.exp(0.5 * v - 0.25 * c + 0.2 * k)
    counts = rng.poisson(rate * window / 365.25)

    proj = np.repeat(np.arange(n), counts)
    m = len(proj)
    raised = start[proj] + np.floor(rng.random(m) * (window[proj] + 1)).astype(np.int64)

    # Kind: scope changes with volatile scope, schedule and cost changes with weak vendors.
    logits = np.stack(
        [
            0.8 + 0.6 * v[proj],
            0.3 - 0.4 * r[proj],
            0.0 - 0.3 * r[proj] - 0.2 * c[proj],
            np.full(m, -1.5),
            np.full(m, -0.7),
        ],
        axis=1,
    )
    prob = np.exp(logits)
    prob /= prob.sum(axis=1, keepdims=True)
    kind = np.minimum((rng.random(m)[:, None] > np.cumsum(prob, axis=1)).sum(axis=1), 4)

    # Impacts: approved scope and cost changes record part of the true scope growth, spread
    # over the project's expected number of them; schedule impacts likewise share the slip.
    expected = np.maximum(rate * truth["planned_days"] / 365.25 * 0.45, 1.0)
    share = rng.exponential(1.0, m) / expected[proj]
    budget = truth["budget"][proj]
    p_days = truth["planned_days"][proj]
    costly = np.isin(kind, (0, 2, 3))
    descoped = (kind == 0) & (rng.random(m) < 0.1)
    cost_impact = np.where(
        costly, budget * truth["growth"][proj] * share * rng.uniform(0.5, 1.0, m), 0.0
    )
    cost_impact = np.where(descoped, -0.3 * cost_impact, cost_impact)
    # (from the early pace: a change request cannot know how the late part will go)
    base_slip = np.maximum(truth["early_duration"][proj] - p_days, 0.1 * p_days)
    timed = np.isin(kind, (0, 1, 3))
    schedule_days = np.where(timed, np.round(base_slip * share * rng.uniform(0.3, 1.0, m)), 0.0)

    lag = np.round(3 + rng.gamma(2.0, 10.0 * np.exp(-0.3 * c[proj]), m)).astype(np.int64)
    decided = raised + lag
    u = rng.random(m)
    decision = np.where(u < 0.65, "approved", np.where(u < 0.85, "rejected", "withdrawn"))

    # A shock brings a re-baselining request a few weeks later, sized to the shock.
    shocked = truth["shocked"] & truth["started"]
    shock_raised = start + np.round(truth["shock_at"] + rng.uniform(10, 60, n)).astype(np.int64)
    with_shock = shocked & (shock_raised <= end)
    sp = np.flatnonzero(with_shock)
    s_budget = truth["budget"][sp]
    s_cost = s_budget * truth["shock_cost"][sp] * rng.uniform(0.6, 1.0, len(sp))
    s_days = np.round(truth["shock_delay"][sp] * rng.uniform(0.6, 1.0, len(sp)))
    s_decided = shock_raised[sp] + np.round(3 + rng.gamma(2.0, 10.0, len(sp))).astype(np.int64)

    proj = np.concatenate([proj, sp])
    raised = np.concatenate([raised, shock_raised[sp]])
    decided = np.concatenate([decided, s_decided])
    kind = np.concatenate([kind, np.full(len(sp), 3)])
    decision = np.concatenate([decision, np.full(len(sp), "approved")])
    cost_impact = np.concatenate([cost_impact, s_cost])
    schedule_days = np.concatenate([schedule_days, s_days])

    # What today shows: undecided requests are pending; a cancellation withdraws them.
    cancelled = truth["status"][proj] == "cancelled"
    cancel_day = truth["cancel_day"][proj]
    withdrawn = cancelled & (decided > cancel_day)
    decided = np.where(withdrawn, cancel_day, decided)
    decision = np.where(withdrawn, "withdrawn", decision)
    pending = decided > today
    decision = np.where(pending, "pending", decision)

    order = np.lexsort((raised, proj))
    proj, raised, decided, kind = proj[order], raised[order], decided[order], kind[order]
    decision, pending = decision[order], pending[order]
    cost_impact, schedule_days = cost_impact[order], schedule_days[order]
    return pd.DataFrame(
        {
            "project_id": _project_ids(n)[proj],
            "raised_date": _dates(raised),
            "change_id": np.array([f"C-{i:06d}" for i in range(1, len(proj) + 1)], dtype=object),
            "kind": np.array(_KINDS, dtype=object)[kind],
            "decided_date": _dates(decided, ~pending),
            "status": decision.astype(object),
            "cost_impact": np.round(cost_impact) + 0.0,
            "schedule_impact_days": schedule_days + 0.0,
        }
    )


# ---------------------------------------------------------------------------- base rates


def base_rates(
    portfolio: Portfolio, delay_tolerance: float, overrun_tolerance: float
) -> pd.DataFrame:
    """Counts by status and label rates of closed projects, per project type and for all.

    Labels as DESIGN.md defines them: slip = (actual_finish − planned_finish) / planned
    duration, late when slip > delay_tolerance; overrun = final_cost / budget − 1, over
    budget when overrun > overrun_tolerance; only closed projects have them.
    """
    p = portfolio.projects
    planned = (p["planned_finish"] - p["planned_start"]).dt.days.astype(float)
    closed = (p["status"] == "closed") & p["actual_finish"].notna()
    slip = ((p["actual_finish"] - p["planned_finish"]).dt.days / planned).where(
        closed & (planned > 0)
    )
    budget = p["budget"].where(p["budget"] > 0)
    # (final − budget) / budget: one rounding less than final / budget − 1, as features.labels
    overrun = ((p["final_cost"] - budget) / budget).where(closed)
    frame = pd.DataFrame(
        {
            "project_type": p["project_type"].fillna("unknown").astype(str),
            "status": p["status"],
            "slip": slip,
            "overrun": overrun,
        }
    )
    rows = [
        _rates_row(str(name), group, delay_tolerance, overrun_tolerance)
        for name, group in frame.groupby("project_type", sort=True)
    ]
    rows.append(_rates_row("all", frame, delay_tolerance, overrun_tolerance))
    return pd.DataFrame(rows)


def _rates_row(
    name: str, group: pd.DataFrame, delay_tolerance: float, overrun_tolerance: float
) -> dict[str, object]:
    slip = group["slip"].dropna()
    overrun = group["overrun"].dropna()
    status = group["status"]
    nan = float("nan")
    return {
        "project_type": name,
        "projects": len(group),
        "closed": int((status == "closed").sum()),
        "running": int((status == "active").sum()),
        "on_hold": int((status == "on_hold").sum()),
        "cancelled": int((status == "cancelled").sum()),
        "share_late": float((slip > delay_tolerance).mean()) if len(slip) else nan,
        "share_over_budget": float((overrun > overrun_tolerance).mean()) if len(overrun) else nan,
        "median_slip": float(slip.median()) if len(slip) else nan,
        "median_overrun": float(overrun.median()) if len(overrun) else nan,
        "mean_overrun": float(overrun.mean()) if len(overrun) else nan,
    }
