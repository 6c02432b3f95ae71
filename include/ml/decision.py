"""What a pipeline's drift policy (``decision.drift_policy``) makes of a candidate that passed the quality
gates but was held for input drift: keep the hold, hold and ask a person, or promote it when it is
measurably better than production on this run's holdout. Pure: the drift check calls it.

Cheap to import (no pandas, no scikit-learn).
"""

from __future__ import annotations

from dataclasses import dataclass

from include.ml.config import PipelineConfig


@dataclass(frozen=True)
class PolicyVerdict:
    """The branch a drift hold takes under the policy, why, whether a person is asked, and whether the
    candidate was compared with production (``promote_if_better``: its reason joins the decision's)."""

    branch: str  # "hold" or "promote"
    reason: str
    ask: bool
    compared: bool = False


def improvement_bound(interval: dict | None, greater_is_better: bool) -> float | None:
    """The pessimistic end of the bootstrap interval of (candidate - production) as an improvement
    (positive: the candidate is better even there), or None without a finite interval."""
    if not interval:
        return None
    bound = interval.get("lower") if greater_is_better else interval.get("upper")
    if not isinstance(bound, int | float) or bound != bound or abs(bound) == float("inf"):
        return None
    return float(bound) if greater_is_better else -float(bound)


def drift_hold_verdict(config: PipelineConfig, interval: dict | None) -> PolicyVerdict:
    """The verdict of ``config.decision.drift_policy`` for a candidate held for drift whose gates passed;
    ``interval`` is the evaluation's bootstrap interval of (candidate - production) on this run's holdout."""
    policy = config.decision.drift_policy
    if policy == "hold":
        return PolicyVerdict("hold", "drift_policy hold: production is kept until a person promotes the "
                                     "candidate by hand", ask=False)
    if policy == "approve":
        hours = config.decision.response_timeout_hours
        return PolicyVerdict("hold", f"drift_policy approve: a person is asked in Airflow's Required Actions "
                                     f"(no answer within {hours:g} h keeps production)", ask=True)
    bound = improvement_bound(interval, config.greater_is_better)
    if bound is None:
        return PolicyVerdict("hold", "drift_policy promote_if_better: held, there is no interval of the difference "
                                     "with production to tell whether the candidate is better",
                             ask=False, compared=True)
    confidence = f"{interval['confidence']:.0%}" if isinstance(interval.get("confidence"), float) else "the"
    if bound > 0:
        return PolicyVerdict("promote", f"PROMOTED DESPITE DRIFT by drift_policy promote_if_better: on this run's "
                                        f"holdout the candidate beats production by at least {bound:+.4g} "
                                        f"{config.metric} ({confidence} interval)", ask=False, compared=True)
    return PolicyVerdict("hold", f"drift_policy promote_if_better: held, the candidate is not measurably better "
                                 f"than production on this run's holdout ({confidence} interval's pessimistic "
                                 f"end {bound:+.4g} {config.metric})", ask=False, compared=True)
