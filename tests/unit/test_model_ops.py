"""``model_ops``: a manual promote or rollback is planned against the registry (refused up front when
it cannot be done) and applied as a compare-and-swap (refused when production moved meanwhile)."""

from __future__ import annotations

from pathlib import Path

import pytest

from include.ml import model_ops, steps
from include.ml.errors import ConfigError, RegistryError
from include.ml.model_ops import ProductionChange
from include.ml.registry import ModelRegistry


@pytest.fixture
def registry(credit_config, tmp_path: Path) -> ModelRegistry:
    """credit_default's registry: v0001..v0003 registered, promoted v0001 -> v0002, v0002 in production."""
    registry = steps.registry_for(credit_config)
    (tmp_path / "m.joblib").write_bytes(b"model")
    for i in range(3):
        registry.register(tmp_path / "m.joblib", {"run_id": f"run-{i}"}, {})
    registry.set_production("v0001", expected=None, actor="run-0", reason="first model")
    registry.set_production("v0002", expected="v0001", actor="run-1", reason="better")
    return registry


def plan(config, action="promote", version="v0003", reason="held for drift; drift is expected", actor="cli:alice"):
    return model_ops.plan_change(config, action, version, reason, actor)


def test_a_plan_names_the_pipeline_current_production_and_target_and_changes_nothing(credit_config, registry):
    audit_before = registry.audit()

    change = plan(credit_config, reason="  held for drift; drift is expected \n")

    assert change == ProductionChange(pipeline="credit_default", action="promote", from_version="v0002",
                                      to_version="v0003", reason="held for drift; drift is expected",
                                      actor="cli:alice")
    assert registry.production() == "v0002"
    assert registry.audit() == audit_before


def test_applying_a_plan_switches_production_and_returns_the_audit_entry(credit_config, registry):
    entry = model_ops.apply_change(credit_config, plan(credit_config))

    assert registry.production() == "v0003"
    assert entry == registry.audit()[-1]
    assert {k: entry[k] for k in ("action", "from", "to", "actor", "reason")} == {
        "action": "promote", "from": "v0002", "to": "v0003", "actor": "cli:alice",
        "reason": "held for drift; drift is expected"}


def test_a_plan_survives_its_dict_form(credit_config, registry):
    change = plan(credit_config)

    assert ProductionChange.model_validate(change.to_dict()) == change


@pytest.mark.parametrize("version", ["../v0001", " v0001", "v0001\n", "v1", "V0003", ""])
def test_a_malformed_version_id_is_refused(credit_config, registry, version: str):
    with pytest.raises(RegistryError, match="is not a version id"):
        plan(credit_config, version=version)


def test_an_unknown_version_is_refused_listing_the_known_ones(credit_config, registry):
    with pytest.raises(RegistryError, match=r"version v0009 does not exist .*\(known: v0001, v0002, v0003\)"):
        plan(credit_config, version="v0009")


@pytest.mark.parametrize("reason", ["", "   ", "\n"])
def test_an_empty_reason_is_refused(credit_config, registry, reason: str):
    with pytest.raises(RegistryError, match="a reason is required to promote a model of pipeline 'credit_default'"):
        plan(credit_config, reason=reason)


def test_a_version_already_in_production_is_refused(credit_config, registry):
    with pytest.raises(RegistryError, match="v0002 is already production of pipeline 'credit_default'"):
        plan(credit_config, version="v0002")


def test_an_unknown_action_is_refused(credit_config, registry):
    with pytest.raises(RegistryError, match=r"unknown action 'delete' .* expected one of promote, rollback"):
        plan(credit_config, action="delete")


def test_a_change_without_an_actor_is_refused(credit_config, registry):
    with pytest.raises(RegistryError, match="no actor given"):
        plan(credit_config, actor=" ")


def test_a_promote_without_a_version_is_refused_saying_how_to_list_them(credit_config, registry):
    with pytest.raises(RegistryError, match=r"needs a version.*models list --pipeline credit_default"):
        plan(credit_config, version=None)


def test_a_rollback_without_a_version_goes_to_the_version_production_replaced(credit_config, registry):
    change = plan(credit_config, action="rollback", version=None, reason="v0002 misbehaves")
    model_ops.apply_change(credit_config, change)

    assert (change.from_version, change.to_version) == ("v0002", "v0001")
    assert registry.production() == "v0001"
    assert registry.audit()[-1]["action"] == "rollback"


def test_a_rollback_to_a_named_version_goes_there(credit_config, registry):
    change = plan(credit_config, action="rollback", version="v0003", reason="pin")

    assert (change.from_version, change.to_version) == ("v0002", "v0003")


def test_a_rollback_of_the_first_model_has_nowhere_to_go(credit_config, registry):
    registry.set_production("v0001", expected="v0002", actor="ops", reason="back", action="rollback")

    with pytest.raises(RegistryError, match="production is v0001 and has no earlier version to roll back to"):
        plan(credit_config, action="rollback", version=None, reason="bad")


def test_a_stale_plan_is_refused_and_production_stays_where_it_moved(credit_config, registry):
    change = plan(credit_config, action="rollback", version=None, reason="v0002 misbehaves")
    registry.set_production("v0003", expected="v0002", actor="someone-else", reason="faster")
    audit_before = registry.audit()

    with pytest.raises(RegistryError, match=r"rollback of pipeline 'credit_default' to v0001 refused: "
                                            r"production is v0003, not v0002 as expected"):
        model_ops.apply_change(credit_config, change)

    assert registry.production() == "v0003"
    assert registry.audit() == audit_before


def test_a_plan_applied_with_another_pipelines_config_is_refused(credit_config, house_config, registry):
    with pytest.raises(ConfigError, match="is for pipeline 'credit_default', not 'house_prices'"):
        model_ops.apply_change(house_config, plan(credit_config))

    assert registry.production() == "v0002"
