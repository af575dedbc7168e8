"""The retraining gate: promote a challenger only when it is not worse than the champion.

Both are scored on the same rows (the recent holdout, or grouped CV when the holdout is too
small). The challenger may lose at most `auc_margin` of AUC and gain at most `brier_margin`
of Brier score; anything else keeps the champion. Every check leaves a reason in words.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Figures:
    """One model's figures on the gate's rows."""

    auc: float | None
    brier: float | None


@dataclass
class GateDecision:
    promote: bool
    reasons: list[str] = field(default_factory=list)

    @property
    def word(self) -> str:
        return "promoted" if self.promote else "refused"


def decide(
    challenger: Figures,
    champion: Figures | None,
    auc_margin: float,
    brier_margin: float,
) -> GateDecision:
    """Compare challenger with champion on AUC and Brier; None champion means promote."""
    if champion is None:
        return GateDecision(True, ["no champion yet: the first model becomes champion"])
    reasons: list[str] = []
    ok = True
    if challenger.auc is None or champion.auc is None:
        reasons.append("AUC not comparable (the gate's rows hold one outcome only)")
    else:
        floor = champion.auc - auc_margin
        passed = challenger.auc >= floor
        ok &= passed
        reasons.append(
            f"AUC: challenger {challenger.auc:.3f} vs champion {champion.auc:.3f} "
            f"(may be at most {auc_margin:.3f} lower): "
            + ("ok" if passed else f"worse by {champion.auc - challenger.auc:.3f}")
        )
    if challenger.brier is None or champion.brier is None:
        reasons.append("Brier not comparable (no rows)")
        ok = False
    else:
        ceiling = champion.brier + brier_margin
        passed = challenger.brier <= ceiling
        ok &= passed
        reasons.append(
            f"Brier: challenger {challenger.brier:.4f} vs champion {champion.brier:.4f} "
            f"(may be at most {brier_margin:.4f} higher): "
            + ("ok" if passed else f"worse by {challenger.brier - champion.brier:.4f}")
        )
    return GateDecision(bool(ok), reasons)


@dataclass(frozen=True)
class IntervalFigures:
    """One quantile model's figures on the gate's rows."""

    interval_score: float | None  # of the P10–P90 interval; lower is better
    coverage_error: float | None = None  # mean |coverage − level| from 20 % elapsed on


def decide_intervals(
    challenger: IntervalFigures, champion: IntervalFigures | None, margin: float
) -> GateDecision:
    """Compare two quantile models on the interval score; None champion means promote.

    The challenger's interval score may be at most `margin` (a share: 0.02 is 2 %) higher
    than the champion's. The coverage error is reported beside it, not gated on: the
    interval score already charges a range for every outcome that falls outside it.
    """
    if champion is None:
        return GateDecision(True, ["no champion yet: the first model becomes champion"])
    if challenger.interval_score is None or champion.interval_score is None:
        return GateDecision(False, ["interval score not comparable (no rows)"])
    ceiling = champion.interval_score * (1 + margin)
    passed = challenger.interval_score <= ceiling
    worse = challenger.interval_score - champion.interval_score
    reasons = [
        f"interval score (P10–P90, lower is better): challenger "
        f"{challenger.interval_score:.4f} vs champion {champion.interval_score:.4f} "
        f"(may be at most {margin:.0%} higher): "
        + ("ok" if passed else f"worse by {worse:.4f} ({worse / champion.interval_score:.0%})")
    ]
    if challenger.coverage_error is not None and champion.coverage_error is not None:
        reasons.append(
            f"coverage error from 20 % elapsed on (not gated): challenger "
            f"{challenger.coverage_error:.3f} vs champion {champion.coverage_error:.3f}"
        )
    return GateDecision(bool(passed), reasons)
