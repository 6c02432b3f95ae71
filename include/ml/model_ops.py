"""Manual changes of a pipeline's production model: plan a promote or a rollback against the registry,
then apply the plan as a compare-and-swap.

The ``ml_model_ops`` DAG and ``python -m include.ml models promote|rollback`` both decide through
:func:`plan_change` and change through :func:`apply_change`, and nothing else:

    plan = plan_change(config, "rollback", None, "v0003 scores badly", actor="cli:alice")
    entry = apply_change(config, plan)   # the audit entry

Cheap to import (pydantic only).
"""

from __future__ import annotations

from typing import Any, Literal, get_args

from pydantic import BaseModel, ConfigDict

from include.ml.config import PipelineConfig
from include.ml.errors import ConfigError, RegistryError
from include.ml.steps import registry_for

Action = Literal["promote", "rollback"]
ACTIONS: tuple[str, ...] = get_args(Action)


class ProductionChange(BaseModel):
    """A checked request to point a pipeline's production at ``to_version``.

    ``from_version`` is production when the plan was made (None before the first model): applying
    the plan switches only if production still points there.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")
    pipeline: str
    action: Action
    from_version: str | None
    to_version: str
    reason: str
    actor: str

    def to_dict(self) -> dict[str, Any]:
        """The JSON-able form (what XCom carries); :meth:`model_validate` reads it back."""
        return self.model_dump(mode="json")


def plan_change(config: PipelineConfig, action: str, version: str | None, reason: str,
                actor: str) -> ProductionChange:
    """Check a promote or rollback request against the pipeline's registry; change nothing.

    ``version`` is the target id, exactly as given (no trimming: ``" v0001"`` is not a version id);
    ``None`` means "not given": refused for ``promote``, and for ``rollback`` the version production
    replaced (:meth:`ModelRegistry.rollback_target`). ``reason`` is stripped and must not be empty.

    Raises :class:`RegistryError` for an unknown action, an empty reason or actor, a malformed or
    unknown version, nothing to roll back to, or a target that already is production.
    """
    where = f"pipeline {config.name!r}"
    if action not in ACTIONS:
        raise RegistryError(f"unknown action {action!r} for {where}; expected one of {', '.join(ACTIONS)}")
    reason = (reason or "").strip()
    if not reason:
        raise RegistryError(f"a reason is required to {action} a model of {where}: it goes into the audit log")
    if not (actor or "").strip():
        raise RegistryError(f"{action} of {where}: no actor given; the audit log must say who changed production")
    registry = registry_for(config)
    if version is not None:
        registry.check_version_id(version)
        target = version
    elif action == "promote":
        raise RegistryError(f"promote of {where} needs a version, e.g. v0003; list them with "
                            f"`python -m include.ml models list --pipeline {config.name}`")
    else:
        target = registry.rollback_target()
    current = registry.production()
    if target == current:
        raise RegistryError(f"{target} is already production of {where}; nothing to {action}")
    return ProductionChange(pipeline=config.name, action=action, from_version=current, to_version=target,
                            reason=reason, actor=actor)


def apply_change(config: PipelineConfig, plan: ProductionChange) -> dict:
    """Point production at ``plan.to_version`` if it still is ``plan.from_version``; return the audit
    entry (time, action, from, to, actor, reason).

    Raises :class:`ConfigError` when the plan is for another pipeline, :class:`RegistryError` when
    production moved since the plan was made (production is then unchanged: plan again).
    """
    if plan.pipeline != config.name:
        raise ConfigError(f"the plan to {plan.action} {plan.to_version} is for pipeline {plan.pipeline!r}, "
                          f"not {config.name!r}; plan it with that pipeline's config")
    try:
        return registry_for(config).set_production(plan.to_version, expected=plan.from_version, actor=plan.actor,
                                                   reason=plan.reason, action=plan.action)
    except RegistryError as error:
        raise RegistryError(f"{plan.action} of pipeline {plan.pipeline!r} to {plan.to_version} refused: "
                            f"{error}") from error
