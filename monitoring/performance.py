"""Performance on matured outcomes: is the model still as good as it was at training?

Projects that closed after the model was trained are scored as they were at each of their
report dates (point in time, the same rows as training), and ROC-AUC, Brier and
calibration error are computed overall and by stage, then compared with the figures logged
at training. A stage fails when its figure got worse by more than the set margin *and* the
change is beyond sampling noise: a handful of newly closed projects per stage gives an AUC
that easily moves by 0.05 on chance alone, and a check that cries wolf gets ignored.
Noise is measured with a Poisson bootstrap over projects (rows of one project move
together), vectorised over replicates.

`check_performance` is a pure function of a scored frame and the training figures.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from statistics import NormalDist
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from monitoring.drift import json_safe
from training.evaluate import STAGE_LABELS, brier, calibration_error, stage_labels, weighted_auc

if TYPE_CHECKING:
    from features.contract import Portfolio

OVERALL = "overall"
# Figures where higher is worse get a "rise" margin, AUC a "drop" margin.
HIGHER_IS_BETTER = {"auc": True, "brier": False, "ece": False}
ECE_BINS = 10


@dataclass(frozen=True)
class StageCheck:
    """One figure at one stage (or overall): now, at training, and the verdict."""

    target: str
    stage: str
    metric: str
    value: float
    baseline: float | None
    change: float | None  # worse is positive: AUC drop, Brier or ECE rise
    change_low: float | None  # lower end of the one-sided interval of `change`
    margin: float
    failed: bool
    n_projects: int
    n_rows: int
    note: str = ""


@dataclass
class PerformanceResult:
    """Every comparison made, and which ones failed."""

    checks: list[StageCheck]
    n_projects: int
    n_rows: int
    context: dict[str, Any] = field(default_factory=dict)

    @property
    def passed(self) -> bool:
        """True when no figure got worse beyond its margin and beyond noise."""
        return not any(c.failed for c in self.checks)

    @property
    def failures(self) -> list[StageCheck]:
        """The failed comparisons, each naming its target, stage and figure."""
        return [c for c in self.checks if c.failed]

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready summary (no NaN: missing figures are null)."""
        return json_safe(
            {
                "passed": self.passed,
                "failures": [
                    f"{c.target} at stage {c.stage}: {c.metric} {c.value:.3f} vs "
                    f"{c.baseline:.3f} at training (margin {c.margin})"
                    for c in self.failures
                ],
                "n_projects": self.n_projects,
                "n_rows": self.n_rows,
                "checks": [asdict(c) for c in self.checks],
                "context": self.context,
            }
        )

    def to_json(self, indent: int | None = 2) -> str:
        """The summary as a JSON string."""
        return json.dumps(self.to_dict(), indent=indent, default=str, allow_nan=False)


# ----------------------------------------------------------------------------- figures


def auc_matrix(y: np.ndarray, p: np.ndarray, w: np.ndarray) -> np.ndarray:
    """ROC-AUC with row weights; `w` may be (n,) or (B, n) for B weightings at once.

    Ties count one half, as in scikit-learn. NaN when a weighting has no positive or no
    negative weight.
    """
    w2 = np.atleast_2d(w).astype("float64")
    order = np.argsort(p, kind="mergesort")
    ps, ys, ws = p[order], y[order].astype(bool), w2[:, order]
    starts = np.flatnonzero(np.r_[True, ps[1:] != ps[:-1]])
    pos = np.add.reduceat(np.where(ys, ws, 0.0), starts, axis=1)
    neg = np.add.reduceat(np.where(ys, 0.0, ws), starts, axis=1)
    neg_below = np.cumsum(neg, axis=1) - neg
    num = (pos * (neg_below + 0.5 * neg)).sum(axis=1)
    den = pos.sum(axis=1) * neg.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        out = np.where(den > 0, num / np.where(den > 0, den, 1.0), np.nan)
    return out if np.ndim(w) == 2 else out[:1]


def brier_matrix(y: np.ndarray, p: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Brier score with row weights; `w` (n,) or (B, n)."""
    w2 = np.atleast_2d(w).astype("float64")
    total = w2.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return (w2 @ ((p - y) ** 2)) / total


def ece_matrix(y: np.ndarray, p: np.ndarray, w: np.ndarray, bins: int = ECE_BINS) -> np.ndarray:
    """Expected calibration error over equal-width probability bins; `w` (n,) or (B, n)."""
    w2 = np.atleast_2d(w).astype("float64")
    idx = np.minimum((p * bins).astype(int), bins - 1)
    onehot = np.zeros((len(p), bins))
    onehot[np.arange(len(p)), idx] = 1.0
    wb = w2 @ onehot  # (B, bins) weight per bin
    pb = (w2 * p) @ onehot
    yb = (w2 * y) @ onehot
    total = wb.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.abs(pb - yb).sum(axis=1) / total


# Bootstrap versions (many weightings at once) of training.evaluate's point figures; the
# point values themselves come from training.evaluate so they match the logged ones exactly.
FIGURES = {"auc": auc_matrix, "brier": brier_matrix, "ece": ece_matrix}
Metric = Callable[[np.ndarray, np.ndarray, np.ndarray], float | None]
POINT: dict[str, Metric] = {"auc": weighted_auc, "brier": brier, "ece": calibration_error}


def _poisson_weights(
    project_codes: np.ndarray, n_projects: int, replicates: int, seed: int
) -> np.ndarray:
    """(B, n_rows) multipliers: each project drawn Poisson(1) times, its rows together."""
    rng = np.random.default_rng(seed)
    per_project = rng.poisson(1.0, size=(replicates, n_projects)).astype("float64")
    return per_project[:, project_codes]


# ------------------------------------------------------------------------------- check


def stage_figures(
    scored: pd.DataFrame, label: str, score: str, weight: str = "weight"
) -> pd.DataFrame:
    """AUC, Brier, ECE, rows and projects per stage and overall (no comparison)."""
    rows = []
    frame = scored[scored[label].notna()]
    for stage, part in _scopes(frame):
        y = part[label].to_numpy(dtype="float64")
        p = part[score].to_numpy(dtype="float64")
        w = part[weight].to_numpy(dtype="float64")
        rows.append(
            {
                "stage": stage,
                "n_projects": int(part["project_id"].nunique()),
                "n_rows": len(part),
                "positive_rate": float(np.average(y, weights=w)) if w.sum() > 0 else math.nan,
                "mean_p": float(np.average(p, weights=w)) if w.sum() > 0 else math.nan,
                **{name: fn(y, p, w) for name, fn in POINT.items()},
            }
        )
    return pd.DataFrame(rows)


def _scopes(frame: pd.DataFrame) -> list[tuple[str, pd.DataFrame]]:
    stages = (
        frame["stage"]
        if "stage" in frame.columns
        else pd.Series(
            stage_labels(frame["elapsed_fraction"].to_numpy(dtype="float64")), index=frame.index
        )
    )
    scopes = [(OVERALL, frame)]
    scopes += [(s, frame[stages == s]) for s in STAGE_LABELS if bool((stages == s).any())]
    return scopes


def check_performance(
    scored: pd.DataFrame,
    baseline: Mapping[str, Mapping[str, Mapping[str, float | None]]],
    *,
    targets: Mapping[str, tuple[str, str]],
    auc_drop: float = 0.05,
    brier_rise: float = 0.05,
    ece_rise: float = 0.10,
    min_projects: int = 20,
    replicates: int = 300,
    confidence: float = 0.95,
    seed: int = 0,
) -> PerformanceResult:
    """Compare figures on matured projects with those at training, overall and by stage.

    `scored` has one row per (project, report date): `project_id`, `weight` (each project
    counting once), `elapsed_fraction` (or a `stage` column), and per target a label column
    and a score column, named by `targets` = {target: (label, score)}. `baseline` is
    {target: {stage or "overall": {"auc": .., "brier": .., "ece": ..}}} as logged at
    training; a stage the training evaluation did not report is compared with "overall".
    A comparison fails when the figure is worse than at training by more than its margin
    and the lower end of the one-sided interval of the change (at `confidence`) is still
    worse than at training: the interval combines today's bootstrap spread over projects
    with the training figure's own standard error when the baseline gives one (``auc_se``).
    Scopes with fewer than `min_projects` projects, or one class only, are reported but
    not judged.
    """
    margins = {"auc": auc_drop, "brier": brier_rise, "ece": ece_rise}
    checks: list[StageCheck] = []
    for target, (label, score) in targets.items():
        frame = scored[scored[label].notna() & scored[score].notna()]
        target_base = baseline.get(target, {})
        for stage, part in _scopes(frame):
            checks += _judge_scope(
                target,
                stage,
                part,
                label,
                score,
                target_base.get(stage) or target_base.get(OVERALL) or {},
                margins,
                min_projects,
                replicates,
                confidence,
                seed,
            )
    return PerformanceResult(
        checks=checks,
        n_projects=int(scored["project_id"].nunique()),
        n_rows=len(scored),
        context={"min_projects": min_projects, "replicates": replicates, "confidence": confidence},
    )


def _judge_scope(
    target: str,
    stage: str,
    part: pd.DataFrame,
    label: str,
    score: str,
    base: Mapping[str, float | None],
    margins: Mapping[str, float],
    min_projects: int,
    replicates: int,
    confidence: float,
    seed: int,
) -> list[StageCheck]:
    y = part[label].to_numpy(dtype="float64")
    p = part[score].to_numpy(dtype="float64")
    w = part["weight"].to_numpy(dtype="float64")
    codes, uniques = pd.factorize(part["project_id"])
    n_projects = len(uniques)
    both_classes = bool(np.any(y == 1) and np.any(y == 0))
    judged = n_projects >= min_projects and both_classes
    note = ""
    if not judged:
        note = (
            f"not judged: {n_projects} project(s) (< {min_projects})"
            if n_projects < min_projects
            else "not judged: one class only"
        )
    boot = _poisson_weights(codes, n_projects, replicates, seed) * w if judged else np.empty((0, 0))
    out = []
    for metric, fn in FIGURES.items():
        point = POINT[metric](y, p, w)
        value = math.nan if point is None else float(point)
        raw_base = base.get(metric)
        baseline = None if raw_base is None or not math.isfinite(raw_base) else float(raw_base)
        change = low = None
        failed = False
        if baseline is not None and math.isfinite(value):
            sign = 1.0 if HIGHER_IS_BETTER[metric] else -1.0
            change = sign * (baseline - value)
            if judged:
                samples = fn(y, p, boot)
                samples = samples[np.isfinite(samples)]
                if len(samples) > 1:
                    # Both figures are estimates: today's from the bootstrap, training's
                    # from the interval it logged (a few dozen holdout projects can make
                    # that as wide as today's). Normal one-sided bound on the change.
                    spread = math.hypot(float(np.std(samples)), base.get(f"{metric}_se") or 0.0)
                    low = change - NormalDist().inv_cdf(confidence) * spread
                failed = change > margins[metric] and low is not None and low > 0
        out.append(
            StageCheck(
                target=target,
                stage=stage,
                metric=metric,
                value=value,
                baseline=baseline,
                change=change,
                change_low=low,
                margin=margins[metric],
                failed=failed,
                n_projects=n_projects,
                n_rows=len(part),
                note=note if baseline is not None else "no figure logged at training",
            )
        )
    return out


def baseline_from_figures(
    figures: Mapping[str, pd.DataFrame | Sequence[Mapping[str, Any]]],
) -> dict[str, dict[str, dict[str, float | None]]]:
    """{target: frame of stage_figures} → the `baseline` mapping `check_performance` takes."""
    out: dict[str, dict[str, dict[str, float | None]]] = {}
    for target, rows in figures.items():
        frame = rows if isinstance(rows, pd.DataFrame) else pd.DataFrame(list(rows))
        out[target] = {
            str(r["stage"]): {m: _maybe_float(r.get(m)) for m in FIGURES}
            for r in frame.to_dict(orient="records")
        }
    return out


def _maybe_float(value: Any) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


# -------------------------------------------------------------------------- pipeline


@dataclass
class PerformanceRun:
    """One performance check: the result, the scored rows, the MLflow run."""

    result: PerformanceResult
    scored: pd.DataFrame
    mlflow_run_id: str | None = None


def baseline_from_report(report: Mapping[str, Any]) -> dict[str, dict[str, float | None]]:
    """Training's evaluation report (``evaluation/<target>.json``) → {scope: figures}."""
    out = {OVERALL: _figures_of(report)}
    for stage, block in (report.get("by_stage") or {}).items():
        out[str(stage)] = _figures_of(block or {})
    return out


def _figures_of(block: Mapping[str, Any]) -> dict[str, float | None]:
    """AUC, Brier, ECE of one block, and the AUC's standard error from its 95% interval."""
    figures = {m: _maybe_float(block.get(m)) for m in FIGURES}
    interval = block.get("auc_ci")
    if isinstance(interval, list | tuple) and len(interval) == 2:
        low, high = (_maybe_float(v) for v in interval)
        if low is not None and high is not None:
            figures["auc_se"] = (high - low) / (2 * NormalDist().inv_cdf(0.975))
    return figures


def score_matured(
    portfolio: Portfolio,
    models: Mapping[str, Any],
    *,
    as_of: pd.Timestamp | None = None,
    delay_tolerance: float = 0.05,
    overrun_tolerance: float = 0.05,
    extra_attributes: Sequence[str] = (),
) -> pd.DataFrame:
    """Rows of the projects that closed after each model's training data, scored.

    `models` maps a target to its `RiskModel`. A project counts for a target when it closed
    after that model's ``closed_through`` (and by `as_of`); its rows are the training
    table's (one per report before the finish plus the approval row, each project weighing
    one), scored as they were at each date. The frame has ``project_id, as_of, weight,
    elapsed_fraction``, the labels, and per target its label masked to NaN outside its
    matured projects, and its score (``p_late``, ``p_over_budget``).
    """
    from features.pointintime import training_table
    from training.models import PREDICTION_COLUMNS, TARGET_LABELS

    table = training_table(
        portfolio,
        delay_tolerance,
        overrun_tolerance,
        as_of=as_of,
        extra_attributes=list(extra_attributes),
    ).frame
    finish = pd.to_datetime(table["actual_finish"])
    keep = pd.Series(False, index=table.index)
    matured: dict[str, pd.Series] = {}
    for target, model in models.items():
        through = pd.Timestamp(model.metadata.get("closed_through", "1900-01-01"))
        matured[target] = finish > through
        keep |= matured[target]
    rows = table.loc[keep]
    out = rows[["project_id", "as_of", "weight", "elapsed_fraction", "late", "over_budget"]].copy()
    for target, model in models.items():
        label = TARGET_LABELS[target]
        out[label] = out[label].where(matured[target].loc[keep])
        out[PREDICTION_COLUMNS[target]] = model.predict(rows)
    return out.reset_index(drop=True)


def run_performance(
    portfolio: Portfolio,
    *,
    tracking_uri: str,
    alias: str = "champion",
    as_of: pd.Timestamp | None = None,
    auc_drop: float = 0.05,
    brier_rise: float = 0.05,
    ece_rise: float = 0.10,
    min_projects: int = 20,
    delay_tolerance: float = 0.05,
    overrun_tolerance: float = 0.05,
    extra_attributes: Sequence[str] = (),
    experiment: str | None = None,
    artifact_root: str | None = None,
    seed: int = 0,
) -> PerformanceRun:
    """Performance of the models under `alias` on projects closed since their training.

    Loads each target's model and the evaluation report logged with it, scores the matured
    projects (`score_matured`) and compares (`check_performance`); logs the figures in the
    MLflow `experiment` (None: not logged), tagged with the model versions.
    """
    from training import tracking
    from training.models import PREDICTION_COLUMNS, TARGET_LABELS, TARGETS

    loaded: dict[str, Any] = {}
    baseline: dict[str, dict[str, dict[str, float | None]]] = {}
    for target in TARGETS:
        try:
            loaded[target] = tracking.load_model(target, alias, tracking_uri=tracking_uri)
        except LookupError:
            continue
        report = tracking.load_evaluation(target, alias, tracking_uri=tracking_uri)
        baseline[target] = baseline_from_report(report)
    if not loaded:
        raise LookupError(f"no model with alias or version {alias!r}: train one first")
    scored = score_matured(
        portfolio,
        {t: m.model for t, m in loaded.items()},
        as_of=as_of,
        delay_tolerance=delay_tolerance,
        overrun_tolerance=overrun_tolerance,
        extra_attributes=extra_attributes,
    )
    result = check_performance(
        scored,
        baseline,
        targets={t: (TARGET_LABELS[t], PREDICTION_COLUMNS[t]) for t in loaded},
        auc_drop=auc_drop,
        brier_rise=brier_rise,
        ece_rise=ece_rise,
        min_projects=min_projects,
        seed=seed,
    )
    result.context.update(
        {
            "models": {
                t: {
                    "name": m.name,
                    "version": m.version,
                    "closed_through": m.model.metadata.get("closed_through"),
                }
                for t, m in loaded.items()
            },
            "matured_projects": {
                t: int(scored.loc[scored[TARGET_LABELS[t]].notna(), "project_id"].nunique())
                for t in loaded
            },
        }
    )
    run = PerformanceRun(result=result, scored=scored)
    if experiment is not None:
        tracking.configure(tracking_uri, artifact_root, experiment)
        metrics = {
            f"{c.target}/{c.stage.replace('+', 'plus')}/{c.metric}": c.value for c in result.checks
        }
        metrics["passed"] = float(result.passed)
        tags: dict[str, Any] = {
            "check": "performance",
            "passed": str(result.passed).lower(),
            "failures": "; ".join(result.to_dict()["failures"]) or "none",
        }
        for t, m in loaded.items():
            tags[f"model.{t}.name"] = m.name
            tags[f"model.{t}.version"] = m.version
            tags[f"model.{t}.run_id"] = m.run_id
        run.mlflow_run_id = tracking.log_monitoring(
            experiment, run_name="performance", metrics=metrics, tags=tags
        )
    return run
