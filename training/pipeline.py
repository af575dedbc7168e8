"""What the CLI calls: train, evaluate and retrain, from a loaded portfolio to MLflow.

Wiring only: the steps live in `splits`, `models`, `baselines`, `evaluate`, `gate` and
`tracking`. Every tunable arrives as a plain value in `TrainingOptions` (the CLI fills it
from the settings); progress is reported through a callback so that this module knows
nothing of the terminal.

The recipe is judged out of time and the model served is fitted on everything: `train`
evaluates the recipe on a forward split (or grouped folds with ``cv``), then fits the model
it registers on every labelled project. `retrain` scores a challenger fitted before the
holdout against the champion on the holdout, and registers the challenger refitted on
everything known at as_of.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd

from features.contract import Portfolio
from features.pointintime import training_table
from training import tracking
from training.baselines import (
    BaselineScores,
    all_rule_scores,
    fit_logistic,
    logistic_from_p,
    logistic_p,
)
from training.calibration import Method
from training.evaluate import (
    VERDICT_WORDS,
    brier,
    evaluate_target,
    render_markdown,
    weighted_auc,
)
from training.fingerprint import data_fingerprint, training_fingerprint
from training.gate import Figures, GateDecision, decide
from training.models import (
    MAX_TREES,
    MIN_PROJECTS,
    PREDICTION_COLUMNS,
    TARGET_LABELS,
    TARGETS,
    RiskModel,
    categorical_columns,
    feature_columns,
)
from training.plots import calibration_plot, shap_summary_plot
from training.recipes import RECIPE_WORDS, RECIPES, fit_champion
from training.splits import (
    forward_cutoff,
    forward_split,
    grouped_folds,
    holdout_cutoff,
)

Progress = Callable[[str], None]
FitFn = Callable[[pd.DataFrame, str, "TrainingOptions"], RiskModel]
MIN_CLASS_PROJECTS = 3  # fewer projects of one outcome and there is nothing to learn
MIN_FORWARD_CLASS = 10  # a forward test side needs this many projects of each outcome
LABEL_SHARE_WARNING = (0.10, 0.90)
REPEAT_BELOW_PROJECTS = 100
SHAP_ROWS = 2000
DEFAULT_CV = 5
SECRET_WORDS = ("key", "token", "secret", "password")


@dataclass(frozen=True)
class TrainingOptions:
    """The plain values training needs (the CLI takes them from the settings)."""

    delay_tolerance: float = 0.05
    overrun_tolerance: float = 0.05
    red_threshold: float = 0.60
    amber_threshold: float = 0.35
    seed: int = 42
    extra_attributes: tuple[str, ...] = ()
    holdout_days: int = 91
    min_holdout_projects: int = 30
    gate_auc_margin: float = 0.01
    gate_brier_margin: float = 0.005
    gate_interval_margin: float = 0.02  # quantile models: a share of the interval score
    n_bootstrap: int = 200
    test_share: float = 0.25
    forward_min_projects: int = 100
    cv_folds: int = DEFAULT_CV
    cv_repeats: int = 3
    recipes: tuple[str, ...] = RECIPES
    calibration: Method | Literal["auto"] = "auto"
    max_trees: int = MAX_TREES
    num_threads: int = 2
    reference_rows: int = 5000
    plots: bool = True
    quantiles: bool = False  # also train forewarn-finish / forewarn-cost (quantile_train.py)

    def tolerance(self, target: str) -> float:
        return self.delay_tolerance if target == "delay" else self.overrun_tolerance

    def recipe(self) -> dict[str, Any]:
        """What changes the fitted model, for the training fingerprint."""
        return {
            "seed": self.seed,
            "calibration": self.calibration,
            "max_trees": self.max_trees,
            "recipes": list(self.recipes),
            "delay_tolerance": self.delay_tolerance,
            "overrun_tolerance": self.overrun_tolerance,
            "extra_attributes": list(self.extra_attributes),
        }


@dataclass(frozen=True)
class Store:
    """Where MLflow keeps runs and models."""

    tracking_uri: str
    artifact_root: str | None = None
    experiment: str = "forewarn"


@dataclass
class TargetResult:
    """One target's outcome of `train` or `evaluate`."""

    target: str
    report: dict[str, Any] | None = None
    skipped: str | None = None
    version: str | None = None
    run_id: str | None = None
    notes: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any] | None:
        if self.report is None:
            return None
        return {**self.report, "model_version": self.version, "notes": self.notes}


@dataclass
class RetrainResult:
    """One target's retraining decision with both sets of figures and the reasons."""

    target: str
    decision: str  # promoted, refused, no change, skipped
    reasons: list[str] = field(default_factory=list)
    champion: dict[str, Any] | None = None
    challenger: dict[str, Any] | None = None
    gate_rows: str = ""
    fingerprint: str = ""
    report: dict[str, Any] | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            **(self.report or {}),
            "decision": self.decision,
            "reasons": self.reasons,
            "champion": self.champion,
            "challenger": self.challenger,
            "gate_rows": self.gate_rows,
            "fingerprint": self.fingerprint,
            "model_version": (self.challenger or {}).get("version"),
        }


@dataclass
class Evaluation:
    """The recipe's out-of-sample predictions and their report."""

    rows: pd.DataFrame
    model_p: np.ndarray
    logistic_p: np.ndarray
    report: dict[str, Any]
    design: str


def _quiet(_: str) -> None:
    return None


# ------------------------------------------------------------------------- pieces


def untrainable_reason(frame: pd.DataFrame, target: str) -> str | None:
    """Why a target cannot be trained on this table, in words; None when it can."""
    label = TARGET_LABELS[target]
    labelled = frame.loc[frame[label].notna()]
    n_projects = labelled["project_id"].nunique()
    if n_projects == 0:
        if target == "overrun":
            return (
                "overrun skipped: no cost data (no closed project has both a budget and "
                "a final cost, so there is no over-budget label to learn from)"
            )
        return "delay skipped: no closed project has a delay label"
    if n_projects < MIN_PROJECTS:
        return f"{target} skipped: only {n_projects} labelled project(s), {MIN_PROJECTS} needed"
    outcomes = labelled.groupby("project_id")[label].first().value_counts()
    if len(outcomes) < 2 or outcomes.min() < MIN_CLASS_PROJECTS:
        counts = ", ".join(f"{k}: {v}" for k, v in outcomes.items())
        return (
            f"{target} skipped: too few projects of one outcome ({label} {counts}); "
            f"at least {MIN_CLASS_PROJECTS} of each are needed"
        )
    return None


def default_fit(train: pd.DataFrame, target: str, options: TrainingOptions) -> RiskModel:
    """The recipe: chosen by inner project-grouped CV among `options.recipes`, refitted on
    every row of `train` and calibrated on its out-of-fold margins."""
    features = feature_columns(train)
    return fit_champion(
        train,
        target,
        features,
        categorical_columns(train, features),
        seed=options.seed,
        threads=options.num_threads,
        recipes=options.recipes,
    )


def recipe_fit(recipes: Sequence[str]) -> FitFn:
    """`default_fit` restricted to some recipes (the rule's alone, say)."""

    def fit(train: pd.DataFrame, target: str, options: TrainingOptions) -> RiskModel:
        return default_fit(train, target, replace(options, recipes=tuple(recipes)))

    return fit


def rule_baselines(
    rows: pd.DataFrame, target: str, options: TrainingOptions
) -> dict[str, BaselineScores | None]:
    """Every rule of the target on `rows` (None where its inputs are missing)."""
    return all_rule_scores(rows, target, options.tolerance(target))


def _both_outcomes(frame: pd.DataFrame, label: str) -> bool:
    return frame[label].nunique() == 2


def _out_of_fold(
    labelled: pd.DataFrame,
    folds: list[tuple[np.ndarray, np.ndarray]],
    target: str,
    options: TrainingOptions,
    fit: FitFn,
    progress: Progress,
    what: str,
    logistic: bool = True,
) -> tuple[np.ndarray, np.ndarray]:
    """Each row's p from the recipe and the logistic regression fitted without its fold."""
    features = feature_columns(labelled)
    categorical = categorical_columns(labelled, features)
    model_p = np.full(len(labelled), np.nan)
    lr_p = np.full(len(labelled), np.nan)
    for i, (train_idx, test_idx) in enumerate(folds, start=1):
        progress(f"{what} {i}/{len(folds)}")
        train, test = labelled.iloc[train_idx], labelled.iloc[test_idx]
        model_p[test_idx] = fit(train, target, options).predict(test)
        if logistic:
            lr = fit_logistic(train, target, features, categorical)
            lr_p[test_idx] = logistic_p(lr, test)
    return model_p, lr_p


def choose_protocol(labelled: pd.DataFrame, target: str, options: TrainingOptions) -> str | None:
    """Forward in time when the later side would hold `forward_min_projects` projects with
    at least `MIN_FORWARD_CLASS` of each outcome (and enough earlier ones to fit); else
    None, and the caller uses repeated project-grouped cross-validation. Says why."""
    label = TARGET_LABELS[target]
    cutoff = forward_cutoff(labelled, options.test_share)
    train, test = forward_split(labelled, cutoff)
    outcomes = test.groupby("project_id")[label].first().value_counts()
    n_train, n_test = train["project_id"].nunique(), test["project_id"].nunique()
    fewest = int(outcomes.min()) if len(outcomes) == 2 else 0
    if (
        n_test >= options.forward_min_projects
        and fewest >= MIN_FORWARD_CLASS
        and n_train >= 2 * MIN_PROJECTS
        and _both_outcomes(train, label)
    ):
        return None
    return (
        f"a forward split would test on {n_test} projects ({fewest} of the rarer outcome); "
        f"it needs {options.forward_min_projects} with {MIN_FORWARD_CLASS} of each"
    )


def evaluate_recipe(
    labelled: pd.DataFrame,
    target: str,
    options: TrainingOptions,
    cv: int | None = None,
    fit: FitFn = default_fit,
    progress: Progress = _quiet,
) -> Evaluation:
    """Out-of-sample predictions of the recipe and of the logistic regression, evaluated.

    The protocol fits the portfolio's size: forward in time (the latest `test_share` of
    projects by close date are the test side) when that side is large enough
    (`choose_protocol`), else `cv_repeats` × `cv_folds` project-grouped cross-validation,
    every repeat's out-of-fold rows stacked with their weight shared between repeats (a
    project still counts once, and the bootstrap resamples it as one). ``cv`` forces
    cross-validation with that many folds.
    """
    label = TARGET_LABELS[target]
    features = feature_columns(labelled)
    categorical = categorical_columns(labelled, features)
    why_not_forward = "--cv asked for cross-validation" if cv is not None else None
    if cv is None:
        why_not_forward = choose_protocol(labelled, target, options)
    if why_not_forward is None:
        cutoff = forward_cutoff(labelled, options.test_share)
        train, test = forward_split(labelled, cutoff)
        n_train, n_test = train["project_id"].nunique(), test["project_id"].nunique()
        progress(f"{target}: fitting on {n_train} projects closed before {cutoff.date()}")
        model = fit(train, target, options)
        lr = fit_logistic(train, target, features, categorical)
        rows = test
        model_p = model.predict(test)
        lr_p = logistic_p(lr, test)
        design = (
            f"forward in time: fitted on {n_train} projects closed before "
            f"{cutoff.date()}, tested on the {n_test} closed on or after it"
        )
    else:
        k = cv if cv is not None else options.cv_folds
        k = min(k, labelled["project_id"].nunique())
        # Repeats steady the estimate where folds are small; from a few hundred projects
        # one pass is steady enough, and each repeat costs a full nested selection.
        n_projects = labelled["project_id"].nunique()
        repeats = max(1, options.cv_repeats) if n_projects < REPEAT_BELOW_PROJECTS else 1
        parts, model_ps, lr_ps = [], [], []
        for r in range(repeats):
            folds = grouped_folds(labelled, k, options.seed + r, label=label)
            what = f"{target}: repeat {r + 1}/{repeats}, fold"
            m, lp = _out_of_fold(labelled, folds, target, options, fit, progress, what)
            fold_of = np.empty(len(labelled), dtype=int)
            for f, (_, test_idx) in enumerate(folds):
                fold_of[test_idx] = r * len(folds) + f
            parts.append(
                labelled.assign(weight=labelled["weight"] / repeats, cv_fold=fold_of, cv_repeat=r)
            )
            model_ps.append(m)
            lr_ps.append(lp)
        rows = pd.concat(parts, ignore_index=True)
        model_p, lr_p = np.concatenate(model_ps), np.concatenate(lr_ps)
        design = (
            f"{repeats} × {k}-fold project-grouped cross-validation over "
            f"{labelled['project_id'].nunique()} projects (out-of-fold predictions; "
            f"{why_not_forward})"
        )
    progress(f"{target}: evaluating with {options.n_bootstrap} project resamples")
    baselines = {
        **rule_baselines(rows, target, options),
        "logistic_regression": logistic_from_p(lr_p, options.red_threshold),
    }
    report = evaluate_target(
        rows,
        rows[label].to_numpy(dtype=float),
        model_p,
        baselines,
        options.red_threshold,
        n_bootstrap=options.n_bootstrap,
        seed=options.seed,
    )
    report["evaluation"] = design
    report["protocol"] = "forward" if why_not_forward is None else "repeated_cv"
    return Evaluation(rows=rows, model_p=model_p, logistic_p=lr_p, report=report, design=design)


def reference_sample(
    labelled: pd.DataFrame, model: RiskModel, options: TrainingOptions
) -> pd.DataFrame:
    """Up to `reference_rows` training rows for drift monitoring, with the model's p.

    Rows are drawn in proportion to their weight, so each project is equally likely to
    appear (long projects do not dominate). ``seen_by_trees`` is True: the served model is
    fitted on every labelled row (its calibration comes from out-of-fold margins).
    """
    label = TARGET_LABELS[model.target]
    n = min(options.reference_rows, len(labelled))
    rng = np.random.default_rng(options.seed)
    latest = np.zeros(0, dtype=int)
    if "project_type" in labelled.columns:
        # Each type's most recent row is always in: the service rebuilds the portfolio
        # context (base rates by type) from the latest rows of the reference sample.
        order = pd.to_datetime(labelled["as_of"]).to_numpy().argsort(kind="stable")
        types = labelled["project_type"].to_numpy()[order]
        latest = pd.Series(order).groupby(pd.Series(types)).last().to_numpy(dtype=int)
    pool = np.setdiff1d(np.arange(len(labelled)), latest)
    w = labelled["weight"].to_numpy(dtype=float)[pool]
    k = max(0, min(n - len(latest), len(pool)))
    drawn = rng.choice(pool, size=k, replace=False, p=w / w.sum()) if k else pool[:0]
    sample = labelled.iloc[np.sort(np.concatenate([drawn, latest]))]
    out = sample[["project_id", "as_of", *model.feature_names, label]].reset_index(drop=True)
    out[PREDICTION_COLUMNS[model.target]] = model.predict(sample)
    out["seen_by_trees"] = True
    return out


def verdict_detail(report: dict[str, Any]) -> str:
    """The comparison with the best rule in one line: overall, then stage by stage."""
    comparison = report.get("comparison", {})
    parts = []
    for label, entry in [
        ("all", comparison.get("all", {})),
        *comparison.get("by_stage", {}).items(),
    ]:
        if entry.get("best_rule") is None or entry.get("auc_diff") is None:
            continue
        ci = entry.get("auc_diff_ci")
        interval = f" [{ci[0]:+.3f}, {ci[1]:+.3f}]" if ci else ""
        parts.append(
            f"{label}: {VERDICT_WORDS[entry['verdict']]} vs {entry['best_rule']} "
            f"({entry['auc_diff']:+.3f}{interval})"
        )
    return "; ".join(parts) or "no rule applicable"


def _verdict(report: dict[str, Any]) -> str:
    value = report.get("verdict")
    return "n/a" if value is None else str(value)


def _loggable(params: dict[str, Any] | None) -> dict[str, Any]:
    return {
        k: v
        for k, v in (params or {}).items()
        if not any(word in k.lower() for word in SECRET_WORDS)
    }


def _log_model(
    target: str,
    labelled: pd.DataFrame,
    model: RiskModel,
    evaluation: Evaluation,
    report: dict[str, Any],
    options: TrainingOptions,
    fingerprint: str,
    data_fp: dict[str, Any],
    data_as_of: str,
    settings_params: dict[str, Any] | None,
    extra_tags: dict[str, str],
    progress: Progress,
    run_name: str,
) -> tracking.VersionInfo:
    """Plots, reference sample, report and model into one MLflow run; registers it."""
    label = TARGET_LABELS[target]
    reference = reference_sample(labelled, model, options)
    markdown = render_markdown(
        {target: report},
        title=f"Forewarn {target} model: evaluation",
        context=[evaluation.design, f"data as of {data_as_of}", f"fingerprint {fingerprint}"],
    )
    tags = {
        "fingerprint": fingerprint,
        "data_as_of": data_as_of,
        "trained_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "verdict": _verdict(report),
        "verdict_detail": verdict_detail(report),
        "best_rule": str(report.get("comparison", {}).get("all", {}).get("best_rule")),
        "recipe": model.recipe,
        "recipe_reason": str(model.metadata.get("selection", {}).get("reason", "")),
        "rule": str(model.metadata.get("rule")),
        "protocol": str(report.get("protocol", "")),
        "evaluation": evaluation.design,
        "closed_through": str(model.metadata.get("closed_through")),
        "n_projects": str(model.metadata.get("n_projects")),
        "auc": f"{report['auc']:.4f}" if report.get("auc") is not None else "n/a",
        "brier": f"{report['brier']:.4f}" if report.get("brier") is not None else "n/a",
        "source": str(data_fp.get("source", "")),
        "tolerance": f"{options.tolerance(target):g}",
        **extra_tags,
    }
    params = {
        **_loggable(settings_params),
        **{f"options.{k}": v for k, v in asdict(options).items()},
        "target": target,
        "n_features": len(model.feature_names),
        "best_iteration": model.metadata.get("best_iteration"),
        "calibration": model.metadata.get("calibration"),
    }
    with tempfile.TemporaryDirectory() as tmp:
        plots: list[Path] = []
        if options.plots:
            progress(f"{target}: plots (calibration, SHAP summary)")
            y = evaluation.rows[label].to_numpy(dtype=float)
            w = evaluation.rows["weight"].to_numpy(dtype=float)
            plots.append(
                calibration_plot(
                    y,
                    {"model": evaluation.model_p, "logistic regression": evaluation.logistic_p},
                    w,
                    Path(tmp) / f"calibration_{target}.png",
                    f"{target}: calibration on held-out rows",
                )
            )
            plots.append(
                shap_summary_plot(
                    model,
                    model.encode(reference.head(SHAP_ROWS)),
                    Path(tmp) / f"shap_summary_{target}.png",
                    f"{target}: SHAP values (log-odds) on the reference sample",
                )
            )
        progress(f"{target}: logging to MLflow")
        return tracking.log_training(
            tracking.TrainingRecord(
                target=target,
                model=model,
                report=report,
                report_markdown=markdown,
                params=params,
                fingerprint=data_fp,
                tags=tags,
                reference=reference,
                plots=plots,
                run_name=run_name,
            )
        )


def _as_timestamp(value: date | pd.Timestamp | str | None) -> pd.Timestamp | None:
    return None if value is None else pd.Timestamp(value).normalize()


def _data_as_of(portfolio: Portfolio, as_of: pd.Timestamp | None) -> str:
    if as_of is not None:
        return str(as_of.date())
    last = portfolio.status_reports["report_date"].max()
    return "unknown" if pd.isna(last) else str(pd.Timestamp(last).date())


# ------------------------------------------------------------------------------ train


def train(
    portfolio: Portfolio,
    options: TrainingOptions,
    store: Store,
    targets: Sequence[str] = TARGETS,
    as_of: date | pd.Timestamp | str | None = None,
    cv: int | None = None,
    settings_params: dict[str, Any] | None = None,
    progress: Progress = _quiet,
    fit: FitFn = default_fit,
) -> dict[str, TargetResult]:
    """Evaluate the recipe, fit each target's model on everything, log and register it.

    The first model registered for a target becomes its champion, unless its verdict
    against the best rule is "worse": then it is registered only, and the rule's recipe
    (the best rule, calibrated) is fitted, registered and made champion instead. Later
    models only get a version (promotion is `retrain`'s job).
    """
    stamp = _as_timestamp(as_of)
    progress("building the training table" + (f" as of {stamp.date()}" if stamp else ""))
    table = training_table(
        portfolio,
        options.delay_tolerance,
        options.overrun_tolerance,
        as_of=stamp,
        extra_attributes=options.extra_attributes,
    ).frame
    data_fp = data_fingerprint(portfolio, table, stamp)
    data_as_of = _data_as_of(portfolio, stamp)
    results: dict[str, TargetResult] = {}
    configured = False
    for target in targets:
        reason = untrainable_reason(table, target)
        if reason is not None:
            results[target] = TargetResult(target, skipped=reason)
            continue
        label = TARGET_LABELS[target]
        labelled = table.loc[table[label].notna()]
        notes = label_share_warnings(labelled, target, options)
        evaluation = evaluate_recipe(labelled, target, options, cv, fit=fit, progress=progress)
        progress(f"{target}: fitting the model on all {labelled['project_id'].nunique()} projects")
        model = fit(labelled, target, options)
        _describe(evaluation.report, model)
        fingerprint = training_fingerprint(labelled, target, stamp, options.recipe())
        if not configured:
            tracking.configure(store.tracking_uri, store.artifact_root, store.experiment)
            configured = True

        def log(
            m: RiskModel,
            ev: Evaluation,
            fp: str,
            tags: dict[str, str],
            target: str = target,
            labelled: pd.DataFrame = labelled,
        ) -> tracking.VersionInfo:
            return _log_model(
                target,
                labelled,
                m,
                ev,
                ev.report,
                options,
                fp,
                data_fp,
                data_as_of,
                settings_params,
                {"trained_by": "train", **tags},
                progress,
                run_name=f"train-{target}",
            )

        info = log(model, evaluation, fingerprint, {})
        notes.append(evaluation.design)
        has_champion = tracking.alias_version(target, tracking.CHAMPION) is not None
        rule_name = evaluation.report["comparison"]["all"].get("best_rule")
        if evaluation.report.get("verdict") == "worse":
            notes.append(
                f"{info.name} v{info.version} registered but NOT champion: on held-out projects "
                f"it is worse than the rule {rule_name} "
                f"({verdict_detail(evaluation.report).split(';')[0]})"
            )
            if not has_champion and rule_name is not None:
                progress(f"{target}: the rule wins; fitting the calibrated rule as champion")
                rule_fit = recipe_fit(("rule",))
                rule_eval = evaluate_recipe(labelled, target, options, cv, fit=rule_fit)
                rule_model = rule_fit(labelled, target, options)
                _describe(rule_eval.report, rule_model)
                rule_fp = training_fingerprint(
                    labelled, target, stamp, {**options.recipe(), "recipes": ["rule"]}
                )
                rule_info = log(rule_model, rule_eval, rule_fp, {"chosen_because": "rule_better"})
                tracking.promote(target, rule_info.version)
                notes.append(
                    f"Forewarn uses the calibrated rule instead: {rule_info.name} "
                    f"v{rule_info.version} ({rule_model.metadata.get('rule')}) is now champion. "
                    "More closed projects, or another tolerance (FOREWARN_"
                    f"{'DELAY' if target == 'delay' else 'OVERRUN'}_TOLERANCE), may let a "
                    "model beat it: train again when they arrive"
                )
            elif not has_champion:
                notes.append("no champion: no rule applies to fall back on")
        elif not has_champion:
            tracking.promote(target, info.version)
            notes.append(f"{info.name} v{info.version} is the first model: now champion")
        else:
            notes.append(
                f"{info.name} v{info.version} registered; the champion is unchanged "
                "(forewarn retrain compares and promotes)"
            )
        results[target] = TargetResult(
            target,
            report=evaluation.report,
            version=info.version,
            run_id=info.run_id,
            notes=notes,
        )
    from training.quantile_train import attach_quantiles  # here: it imports this module

    attach_quantiles(results, table, portfolio, options, store, stamp, progress)
    return results


def _describe(report: dict[str, Any], model: RiskModel) -> None:
    """Put the served model's recipe, and why it was chosen, into its report."""
    selection = model.metadata.get("selection", {})
    report["recipe"] = model.recipe
    report["recipe_words"] = RECIPE_WORDS.get(model.recipe, model.recipe)
    report["recipe_rule"] = model.metadata.get("rule")
    report["recipe_reason"] = selection.get("reason")
    report["recipe_candidates"] = selection.get("candidates")


def label_share_warnings(
    labelled: pd.DataFrame, target: str, options: TrainingOptions
) -> list[str]:
    """A warning when almost every (or almost no) closed project has the outcome: the
    tolerance, not the projects, then decides what there is to learn."""
    label = TARGET_LABELS[target]
    share = float(labelled.groupby("project_id")[label].first().mean())
    low, high = LABEL_SHARE_WARNING
    if low <= share <= high:
        return []
    setting = f"FOREWARN_{'DELAY' if target == 'delay' else 'OVERRUN'}_TOLERANCE"
    word = TARGET_LABELS[target].replace("_", " ")
    return [
        f"warning: {share:.0%} of the closed projects are {word} at tolerance "
        f"{options.tolerance(target):g}; with so one-sided a label there is little to learn "
        f"— check the tolerance setting {setting}"
    ]


# --------------------------------------------------------------------------- evaluate


def evaluate(
    portfolio: Portfolio,
    options: TrainingOptions,
    store: Store,
    targets: Sequence[str] = TARGETS,
    alias: str = tracking.CHAMPION,
    cv: int | None = None,
    progress: Progress = _quiet,
) -> dict[str, TargetResult]:
    """Evaluate beside the baselines: the registered model, or the recipe with ``cv``.

    The registered model is scored on the projects that closed after its training data
    (it has not seen them); when there are none it falls back to every labelled project
    and says that the figures are in-sample.
    """
    progress("building the training table")
    table = training_table(
        portfolio,
        options.delay_tolerance,
        options.overrun_tolerance,
        extra_attributes=options.extra_attributes,
    ).frame
    if cv is None:
        tracking.configure(store.tracking_uri, store.artifact_root, store.experiment)
    results: dict[str, TargetResult] = {}
    for target in targets:
        reason = untrainable_reason(table, target)
        if reason is not None:
            results[target] = TargetResult(
                target, skipped=reason.replace("skipped", "not evaluated")
            )
            continue
        label = TARGET_LABELS[target]
        labelled = table.loc[table[label].notna()]
        if cv is not None:
            evaluation = evaluate_recipe(labelled, target, options, cv, progress=progress)
            results[target] = TargetResult(
                target, report=evaluation.report, notes=[evaluation.design]
            )
            continue
        try:
            loaded = tracking.load_model(target, alias)
        except LookupError as exc:
            results[target] = TargetResult(target, skipped=f"{target} not evaluated: {exc}")
            continue
        results[target] = _evaluate_registered(labelled, target, loaded, options, progress)
    return results


def _evaluate_registered(
    labelled: pd.DataFrame,
    target: str,
    loaded: tracking.LoadedModel,
    options: TrainingOptions,
    progress: Progress,
) -> TargetResult:
    label = TARGET_LABELS[target]
    model = loaded.model
    closed_through = pd.Timestamp(model.metadata.get("closed_through", "1900-01-01"))
    closes = pd.to_datetime(labelled["actual_finish"])
    unseen, seen = labelled.loc[closes > closed_through], labelled.loc[closes <= closed_through]
    notes = []
    if unseen["project_id"].nunique() >= MIN_PROJECTS and _both_outcomes(unseen, label):
        rows = unseen
        notes.append(
            f"{loaded.name} v{loaded.version} on the {rows['project_id'].nunique()} projects "
            f"closed after its training data ({closed_through.date()})"
        )
    else:
        rows = labelled
        notes.append(
            f"in-sample: no or too few projects closed after the model's training data "
            f"({closed_through.date()}); {loaded.name} v{loaded.version} has seen these"
        )
    baselines = rule_baselines(rows, target, options)
    lr_scores: BaselineScores | None = None
    if (
        seen["project_id"].nunique() >= MIN_PROJECTS
        and _both_outcomes(seen, label)
        and rows is unseen
    ):
        features = [f for f in model.feature_names if f in labelled.columns]
        lr = fit_logistic(seen, target, features, categorical_columns(seen, features))
        lr_scores = logistic_from_p(logistic_p(lr, rows), options.red_threshold)
    else:
        notes.append("logistic regression not applicable: no separate rows to fit it on")
    progress(f"{target}: evaluating")
    report = evaluate_target(
        rows,
        rows[label].to_numpy(dtype=float),
        model.predict(rows),
        {**baselines, "logistic_regression": lr_scores},
        options.red_threshold,
        n_bootstrap=options.n_bootstrap,
        seed=options.seed,
    )
    report["evaluation"] = notes[0]
    return TargetResult(
        target, report=report, version=loaded.version, run_id=loaded.run_id, notes=notes
    )


# ---------------------------------------------------------------------------- retrain


def retrain(
    portfolio: Portfolio,
    as_of: date | pd.Timestamp | str,
    options: TrainingOptions,
    store: Store,
    targets: Sequence[str] = TARGETS,
    settings_params: dict[str, Any] | None = None,
    progress: Progress = _quiet,
) -> dict[str, RetrainResult]:
    """Challenger from what was known at `as_of`, gated against the champion."""
    stamp = pd.Timestamp(as_of).normalize()
    progress(f"building the training table as of {stamp.date()}")
    table = training_table(
        portfolio,
        options.delay_tolerance,
        options.overrun_tolerance,
        as_of=stamp,
        extra_attributes=options.extra_attributes,
    ).frame
    data_fp = data_fingerprint(portfolio, table, stamp)
    tracking.configure(store.tracking_uri, store.artifact_root, store.experiment)
    from training.quantile_train import retrain_quantiles  # here: it imports this module

    results: dict[str, RetrainResult] = {}
    for target in targets:
        # Two retrains at once: the second waits, then finds the first's fingerprint and
        # changes nothing (one promotion, not two against a champion already replaced).
        with tracking.retrain_lock(target):
            results[target] = retrain_target(
                table,
                target,
                stamp,
                options,
                data_fp=data_fp,
                settings_params=settings_params,
                progress=progress,
            )
            # Its quantile model (forewarn-finish / -cost, quantile_train.py) inside the
            # same lock, so a second retrain waits for both.
            results.update(retrain_quantiles(table, portfolio, stamp, options, (target,), progress))
    return results


def retrain_target(
    table: pd.DataFrame,
    target: str,
    as_of: pd.Timestamp,
    options: TrainingOptions,
    data_fp: dict[str, Any] | None = None,
    settings_params: dict[str, Any] | None = None,
    fit: FitFn = default_fit,
    recipe_name: str = "default",
    progress: Progress = _quiet,
) -> RetrainResult:
    """Train a challenger on `table` (as known at `as_of`), gate it, promote or refuse.

    `tracking.configure` must have been called. `fit` and `recipe_name` let a caller swap
    the recipe (the tests train a deliberately worse one); the name enters the fingerprint.
    The champion alias moves once, after every check, and only on promotion.
    """
    as_of = pd.Timestamp(as_of).normalize()
    reason = untrainable_reason(table, target)
    if reason is not None:
        return RetrainResult(target, "skipped", [reason])
    label = TARGET_LABELS[target]
    labelled = table.loc[table[label].notna()]
    fingerprint = training_fingerprint(
        labelled, target, as_of, {**options.recipe(), "recipe": recipe_name}
    )
    champion_info = tracking.alias_version(target, tracking.CHAMPION)
    for alias, info in (
        (tracking.CHAMPION, champion_info),
        (tracking.CHALLENGER, tracking.alias_version(target, tracking.CHALLENGER)),
    ):
        if info is not None and info.tags.get("fingerprint") == fingerprint:
            what = info.tags.get("gate_decision", "trained")
            return RetrainResult(
                target,
                "no change",
                [
                    f"{info.name} v{info.version} ({alias}, {what}) was trained on the same "
                    f"inputs as of {as_of.date()} (fingerprint {fingerprint}): nothing to do"
                ],
                fingerprint=fingerprint,
            )
    champion = tracking.load_model(target, tracking.CHAMPION) if champion_info else None

    champion_recipe = None if champion is None else champion.model.recipe
    gate = _gate_predictions(labelled, target, as_of, options, fit, progress, champion_recipe)
    rows, challenger_p, lr_p, gate_rows = gate.rows, gate.challenger_p, gate.lr_p, gate.description
    y = rows[label].to_numpy(dtype=float)
    w = rows["weight"].to_numpy(dtype=float)
    strata = rows["cv_fold"].to_numpy() if "cv_fold" in rows else None
    challenger_fig = Figures(weighted_auc(y, challenger_p, w, strata), brier(y, challenger_p, w))
    champion_fig: Figures | None = None
    notes: list[str] = []
    if champion is not None:
        try:
            # Cross-validated: the champion's recipe refitted fold by fold beside the
            # challenger's; on a holdout: the champion itself.
            champion_p = (
                gate.champion_p if gate.champion_p is not None else champion.model.predict(rows)
            )
            champion_fig = Figures(weighted_auc(y, champion_p, w, strata), brier(y, champion_p, w))
            if gate.champion_p is not None:
                notes.append(
                    f"both recipes scored out of fold on the same folds (champion's recipe "
                    f"{champion_recipe}, refitted without each fold)"
                )
        except KeyError as exc:
            notes.append(f"the champion cannot score these rows ({exc}); it is replaced")
        their_tolerance = champion.tags.get("tolerance")
        if their_tolerance not in (None, f"{options.tolerance(target):g}"):
            notes.append(
                f"note: the champion learnt labels at tolerance {their_tolerance}; these rows "
                f"are labelled at {options.tolerance(target):g}"
            )
        seen = _champion_seen(rows, champion.model) if gate.champion_p is None else 0
        if seen:
            notes.append(
                f"note: the champion was trained on {seen} of the "
                f"{rows['project_id'].nunique()} gate projects, which flatters its figures"
            )
    decision = (
        GateDecision(True, notes[:1])
        if champion is not None and champion_fig is None
        else decide(
            challenger_fig, champion_fig, options.gate_auc_margin, options.gate_brier_margin
        )
    )
    if champion_fig is not None:
        decision.reasons.extend(notes)

    progress(f"{target}: evaluating the challenger beside the baselines")
    report = evaluate_target(
        rows,
        y,
        challenger_p,
        {
            **rule_baselines(rows, target, options),
            "logistic_regression": logistic_from_p(lr_p, options.red_threshold),
        },
        options.red_threshold,
        n_bootstrap=options.n_bootstrap,
        seed=options.seed,
    )
    report["evaluation"] = gate_rows

    progress(f"{target}: fitting the challenger on all {labelled['project_id'].nunique()} projects")
    model = fit(labelled, target, options)
    challenger_figures: dict[str, Any] = {
        "auc": challenger_fig.auc,
        "brier": challenger_fig.brier,
    }
    champion_figures: dict[str, Any] | None = None
    if champion is not None and champion_fig is not None:
        champion_figures = {
            "auc": champion_fig.auc,
            "brier": champion_fig.brier,
            "version": champion.version,
        }
    figures = {"challenger": challenger_figures, "champion": champion_figures}
    gate_tags = {
        "trained_by": "retrain",
        "fit_name": recipe_name,
        "gate_decision": decision.word,
        "gate_reasons": " | ".join(decision.reasons),
        "gate_rows": gate_rows,
        "gate_champion_version": champion.version if champion else "none",
        "gate_figures": _json(figures),
    }
    evaluation = Evaluation(rows, challenger_p, lr_p, report, gate_rows)
    info = _log_model(
        target,
        labelled,
        model,
        evaluation,
        report,
        options,
        fingerprint,
        data_fp or {},
        str(as_of.date()),
        settings_params,
        gate_tags,
        progress,
        run_name=f"retrain-{target}-{as_of.date()}",
    )
    decision = settle_aliases(target, info.version, decision)
    return RetrainResult(
        target,
        decision.word,
        decision.reasons,
        champion=champion_figures,
        challenger={**challenger_figures, "version": info.version, "run_id": info.run_id},
        gate_rows=gate_rows,
        fingerprint=fingerprint,
        report=report,
    )


def settle_aliases(target: str, version: str, decision: GateDecision) -> GateDecision:
    """Move the aliases once every check is done and `version` is registered: challenger,
    then champion when the gate promotes. If another writer moved the champion while this
    version was judged (`tracking.promote` says why in the version's tags), it passed the
    gate but is not promoted, and the decision says so."""
    tracking.set_alias(target, tracking.CHALLENGER, version)
    if not decision.promote:
        return decision
    previous = tracking.promote(target, version)
    if previous:
        decision.reasons.append(f"previous champion v{previous} keeps 'previous-champion'")
    now = tracking.alias_version(target, tracking.CHAMPION)
    if now is not None and now.version == version:
        return decision
    again = tracking.version_info(target, version)
    why = (again.tags if again else {}).get("promotion", "the champion moved meanwhile")
    return GateDecision(False, [*decision.reasons, f"passed the gate but {why}"])


def _json(value: Any) -> str:
    import json

    return json.dumps(value, default=str)


def _champion_seen(rows: pd.DataFrame, model: RiskModel) -> int:
    """How many of the gate's projects closed within the champion's training data."""
    through = model.metadata.get("closed_through")
    if not through:
        return 0
    closes = rows.groupby("project_id")["actual_finish"].first()
    return int((pd.to_datetime(closes) <= pd.Timestamp(through)).sum())


@dataclass
class GatePredictions:
    """The gate's rows and the out-of-sample p of each side on them."""

    rows: pd.DataFrame
    challenger_p: np.ndarray
    lr_p: np.ndarray
    description: str
    champion_p: np.ndarray | None = None  # set when cross-validated (the recipe refitted)


def _gate_predictions(
    labelled: pd.DataFrame,
    target: str,
    as_of: pd.Timestamp,
    options: TrainingOptions,
    fit: FitFn,
    progress: Progress,
    champion_recipe: str | None = None,
) -> GatePredictions:
    """The gate's rows and the challenger recipe's out-of-sample p on them.

    The holdout: projects closed in the `holdout_days` before as_of, the challenger fitted
    on those closed before; the champion is scored as it is. Fewer than
    `min_holdout_projects` (or one outcome only): grouped cross-validation over every
    labelled project instead, where the champion's recipe is refitted on the same folds as
    the challenger's — the same protocol for both, never the champion scored on projects
    it was trained on.
    """
    label = TARGET_LABELS[target]
    cutoff = holdout_cutoff(as_of, options.holdout_days)
    before, holdout = forward_split(labelled, cutoff)
    n_hold, n_before = holdout["project_id"].nunique(), before["project_id"].nunique()
    features = feature_columns(labelled)
    categorical = categorical_columns(labelled, features)
    if (
        n_hold >= options.min_holdout_projects
        and _both_outcomes(holdout, label)
        and n_before >= 2 * MIN_PROJECTS
        and _both_outcomes(before, label)
    ):
        progress(f"{target}: fitting the challenger on {n_before} projects before the holdout")
        model = fit(before, target, options)
        lr = fit_logistic(before, target, features, categorical)
        description = (
            f"holdout: {n_hold} projects closed {cutoff.date()}..{as_of.date()}; challenger "
            f"fitted on the {n_before} closed before {cutoff.date()}"
        )
        return GatePredictions(
            holdout, model.predict(holdout), logistic_p(lr, holdout), description
        )
    k = min(options.cv_folds, labelled["project_id"].nunique())
    folds = grouped_folds(labelled, k, options.seed, label=label)
    challenger_p, lr_p = _out_of_fold(
        labelled, folds, target, options, fit, progress, f"{target}: challenger fold"
    )
    champion_p = None
    if champion_recipe is not None:
        champion_p, _ = _out_of_fold(
            labelled,
            folds,
            target,
            options,
            recipe_fit((champion_recipe,)),
            progress,
            f"{target}: champion's recipe fold",
            logistic=False,
        )
    fold_of = np.empty(len(labelled), dtype=int)
    for f, (_, test_idx) in enumerate(folds):
        fold_of[test_idx] = f
    description = (
        f"{len(folds)}-fold grouped cross-validation over {labelled['project_id'].nunique()} "
        f"projects (the holdout {cutoff.date()}..{as_of.date()} had {n_hold} projects, "
        f"fewer than {options.min_holdout_projects} or one outcome only)"
    )
    return GatePredictions(
        labelled.assign(cv_fold=fold_of), challenger_p, lr_p, description, champion_p
    )
