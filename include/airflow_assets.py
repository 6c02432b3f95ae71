"""The Airflow Assets of the pipelines' production models: one per pipeline, updated on every
change of its production pointer (a promotion by training, or a manual promote or rollback)."""

from __future__ import annotations

from airflow.sdk import Asset, AssetAlias


def production_change(pipeline: str) -> AssetAlias:
    """The alias through which a task that may change ``pipeline``'s production model emits its Asset
    event (an event only when production really changed). One alias per pipeline: a shared alias would
    resolve to every pipeline's model, and the Assets graph would wire each training DAG to all of them."""
    return AssetAlias(f"ml_production_model_change__{pipeline}")


def production_asset(pipeline: str) -> Asset:
    """The Asset of ``pipeline``'s production model (named, not tied to a path)."""
    return Asset(f"ml_production_model__{pipeline}")


def event_extra(registry, version: str, action: str, actor: str) -> dict:
    """What a production-change event carries: the version, its metrics and the action."""
    metadata = registry.metadata(version)
    return {"version": version, "action": action, "actor": actor, "metric": metadata.get("metric"),
            "metrics": metadata.get("metrics"), "logical_date": metadata.get("logical_date")}
