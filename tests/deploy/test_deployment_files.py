"""Static checks of the deployment files: the Compose and GitHub workflow schemas, the Dockerfile
linter, and the rule that compose and the production-shape test take their Airflow settings from one
file (deploy/airflow.env), so the shape CI proves is the shape `docker compose up` runs."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.deploy.settings import ROOT, SETTINGS_FILE, SettingsFileError, read_settings, referenced_variables
from tests.production.cluster import Location, airflow_environment

BIN = Path(sys.executable).parent
COMPOSE = ROOT / "docker-compose.yaml"
WORKFLOWS = sorted((ROOT / ".github" / "workflows").glob("*.yml"))
AIRFLOW_SERVICES = {"airflow-init", "airflow-apiserver", "airflow-scheduler", "airflow-dag-processor",
                    "airflow-triggerer", "airflow-worker"}
#: set in the official image itself, not by compose
IMAGE_ENVIRONMENT = {"AIRFLOW_HOME"}


def _check_jsonschema(schema: str, *files: Path) -> subprocess.CompletedProcess:
    return subprocess.run([str(BIN / "check-jsonschema"), "--builtin-schema", schema, *map(str, files)],
                          capture_output=True, text=True)


def _compose() -> dict:
    return yaml.safe_load(COMPOSE.read_text())


def _airflow_services() -> dict[str, dict]:
    return {name: service for name, service in _compose()["services"].items() if name.startswith("airflow-")}


def _locked_airflow_version() -> str:
    return re.search(r"^apache-airflow==(\S+)", (ROOT / "requirements.lock").read_text(), re.MULTILINE)[1]


# -- schemas and linters -------------------------------------------------------------------------


def test_compose_file_is_valid_against_the_compose_specification(tmp_path):
    result = _check_jsonschema("vendor.compose-spec", COMPOSE)
    assert result.returncode == 0, result.stdout + result.stderr
    # the check can fail: a port list given as a mapping is refused
    broken = tmp_path / "docker-compose.yaml"
    broken.write_text("services:\n  web:\n    image: nginx\n    ports: {http: 80}\n")
    assert _check_jsonschema("vendor.compose-spec", broken).returncode != 0


def test_github_workflows_are_valid_against_the_workflow_schema(tmp_path):
    assert {p.name for p in WORKFLOWS} >= {"ci.yml", "nightly.yml"}
    result = _check_jsonschema("vendor.github-workflows", *WORKFLOWS)
    assert result.returncode == 0, result.stdout + result.stderr
    broken = tmp_path / "broken.yml"
    broken.write_text("on: push\njobs:\n  build:\n    steps: []\n")  # no runs-on
    assert _check_jsonschema("vendor.github-workflows", broken).returncode != 0


def test_dockerfile_lints_clean_with_hadolint():
    result = subprocess.run([str(BIN / "hadolint"), "--failure-threshold", "info", str(ROOT / "Dockerfile")],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_image_is_the_locked_airflow_with_the_bundle_and_a_non_root_user():
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert re.search(rf"^FROM apache/airflow:{re.escape(_locked_airflow_version())}-python3\.11$", dockerfile,
                     re.MULTILINE)
    assert "--require-hashes -r /opt/airflow/requirements.lock" in dockerfile
    for folder in ("dags/", "include/", "plugins/"):
        assert re.search(rf"^COPY --chown=airflow:root {folder} \$\{{ML_BUNDLE_PATH\}}/{folder}$", dockerfile,
                         re.MULTILINE), folder
    last_user = re.findall(r"^USER (\S+)$", dockerfile, re.MULTILINE)[-1]
    assert last_user not in ("root", "0") and not last_user.startswith("0:")


# -- one source for the Airflow settings ---------------------------------------------------------


def test_shared_settings_define_executor_database_broker_auth_and_bundle():
    settings = read_settings()
    assert settings["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor"
    assert settings["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"].startswith("postgresql+psycopg2://")
    assert settings["AIRFLOW__CELERY__BROKER_URL"].startswith("redis://")
    assert settings["AIRFLOW__CELERY__RESULT_BACKEND"].startswith("db+postgresql+psycopg2://")
    assert settings["AIRFLOW__CORE__AUTH_MANAGER"].endswith("SimpleAuthManager")
    (bundle,) = json.loads(settings["AIRFLOW__DAG_PROCESSOR__DAG_BUNDLE_CONFIG_LIST"])
    assert bundle["name"] == "ml_pipeline" and bundle["kwargs"]["path"] == "${ML_BUNDLE_PATH}"


def test_shared_settings_file_is_read_literally_and_refuses_other_syntax(tmp_path):
    assert read_settings()["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"] == "${AIRFLOW_API_URL}/execution/"
    for bad in ('AIRFLOW__CORE__EXECUTOR="CeleryExecutor"', "AIRFLOW__CORE__EXECUTOR=CeleryExecutor",
                "export AIRFLOW__CORE__EXECUTOR='CeleryExecutor'"):
        path = tmp_path / "airflow.env"
        path.write_text(f"# comment\n{bad}\n")
        with pytest.raises(SettingsFileError, match=r"airflow\.env:2"):
            read_settings(path)


def test_every_airflow_service_of_compose_reads_the_shared_settings_and_overrides_none():
    services = _airflow_services()
    assert set(services) == AIRFLOW_SERVICES
    shared = set(read_settings())
    for name, service in services.items():
        env_files = [entry["path"] if isinstance(entry, dict) else entry for entry in service["env_file"]]
        assert env_files == ["deploy/airflow.env"], name
        overridden = shared & set(service.get("environment", {}))
        assert not overridden, f"{name} overrides {sorted(overridden)} of deploy/airflow.env"


def test_compose_and_the_production_test_give_every_variable_the_settings_use():
    needed = referenced_variables(read_settings())
    assert {"POSTGRES_HOST", "REDIS_HOST", "ML_BUNDLE_PATH", "AIRFLOW_API_URL"} <= needed
    for name, service in _airflow_services().items():
        missing = needed - set(service["environment"]) - IMAGE_ENVIRONMENT
        assert not missing, f"compose service {name} leaves {sorted(missing)} unset"
    location = Location(airflow_home=Path("/tmp/home"), ml_home=Path("/tmp/ml"), database="ml_prod_x",
                        redis_db=7, smtp_port=2525, queue="q")
    assert not needed - set(location.variables())


def test_the_production_shape_test_runs_airflow_with_the_shared_settings_value_for_value():
    location = Location(airflow_home=Path("/tmp/home"), ml_home=Path("/tmp/ml"), database="ml_prod_x",
                        redis_db=7, smtp_port=2525, queue="q")
    leaked = {"AIRFLOW__CORE__EXECUTOR": "LocalExecutor", "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": "sqlite://",
              "AIRFLOW__CORE__DAGS_FOLDER": "/elsewhere", "PATH": "/usr/bin"}
    env = airflow_environment(location, base=leaked)
    for key, value in read_settings().items():
        assert env[key] == value, key
    assert "AIRFLOW__CORE__DAGS_FOLDER" not in env  # the session's own settings do not leak in


# -- compose: services, volumes, secrets ---------------------------------------------------------


def test_compose_runs_the_official_services_plus_mailpit_with_its_inbox():
    compose = _compose()
    assert set(compose["services"]) == AIRFLOW_SERVICES | {"postgres", "redis", "mailpit"}
    assert any(port.endswith(":8025") for port in compose["services"]["mailpit"]["ports"])
    smtp = json.loads(compose["x-airflow-common"]["environment"]["AIRFLOW_CONN_SMTP_DEFAULT"])
    assert (smtp["host"], smtp["port"]) == ("mailpit", 1025)
    assert compose["services"]["airflow-worker"]["command"] == "celery worker"


def test_mailpit_and_every_other_auxiliary_port_binds_to_localhost_by_default():
    compose = _compose()
    for name, service in compose["services"].items():
        if name == "airflow-apiserver":  # the UI is the one port meant to be reached
            continue
        for port in service.get("ports", []):
            assert re.fullmatch(r"\$\{\w+:-127\.0\.0\.1\}:.+", str(port)), f"{name} publishes {port} on every interface"
    (mailpit,) = compose["services"]["mailpit"]["ports"]
    assert mailpit == "${MAILPIT_BIND_ADDRESS:-127.0.0.1}:${MAILPIT_UI_PORT:-8025}:8025"
    assert re.search(r"^MAILPIT_BIND_ADDRESS=127\.0\.0\.1$", (ROOT / ".env.example").read_text(), re.MULTILINE)


def test_airflow_init_checks_for_placeholder_secrets_before_anything_else():
    init = _compose()["services"]["airflow-init"]
    script = [line.strip() for line in init["command"][1].splitlines() if line.strip()]
    assert script[:2] == ["set -euo pipefail", "bash /opt/airflow/check-secrets.sh"]
    assert "./deploy/check-secrets.sh:/opt/airflow/check-secrets.sh:ro" in init["volumes"]
    common = _compose()["x-airflow-common"]["volumes"]
    assert set(common) <= set(init["volumes"])  # its own list replaces the common one: nothing is lost
    for name, service in _airflow_services().items():
        if name != "airflow-init":
            assert service["depends_on"]["airflow-init"] == {"condition": "service_completed_successfully"}, name


def test_workers_scale_and_every_airflow_service_shares_the_data_root():
    services = _airflow_services()
    worker = services["airflow-worker"]
    assert "container_name" not in worker and "ports" not in worker  # `--scale airflow-worker=3` works
    for name, service in services.items():
        ml_home = service["environment"]["ML_HOME"]
        assert any(volume.endswith(f":{ml_home}") for volume in service["volumes"]), name


def test_compose_hard_codes_no_secret_and_env_example_lists_every_required_variable():
    text = COMPOSE.read_text()
    compose = _compose()
    environments = [compose["x-airflow-common"]["environment"],
                    *(s.get("environment", {}) for s in compose["services"].values())]
    for environment in environments:
        for key, value in environment.items():
            if re.search(r"PASSWORD|SECRET|FERNET|TOKEN|REDISCLI_AUTH", key):
                assert re.fullmatch(r"\$\{\w+:\?[^}]*\}", str(value)), f"{key} must come from .env"
    required = set(re.findall(r"\$\{(\w+):\?", text))
    assert required >= {"POSTGRES_PASSWORD", "REDIS_PASSWORD", "AIRFLOW_FERNET_KEY", "AIRFLOW_JWT_SECRET",
                        "AIRFLOW_ADMIN_PASSWORD"}
    example = set(re.findall(r"^(\w+)=", (ROOT / ".env.example").read_text(), re.MULTILINE))
    assert required <= example
    ignored = subprocess.run(["git", "check-ignore", "-q", ".env"], cwd=ROOT)
    assert ignored.returncode == 0, ".env must be git-ignored"


def test_a_commented_git_dag_bundle_setting_shows_how_to_run_from_git():
    commented = [line.removeprefix("# ") for line in SETTINGS_FILE.read_text().splitlines()
                 if line.startswith("# AIRFLOW__DAG_PROCESSOR__DAG_BUNDLE_CONFIG_LIST=")]
    assert len(commented) == 1
    (git_bundle,) = json.loads(commented[0].split("=", 1)[1].strip("'"))
    assert git_bundle["classpath"] == "airflow.providers.git.bundles.git.GitDagBundle"
    assert git_bundle["name"] == "ml_pipeline"
    assert "# AIRFLOW_CONN_ML_PIPELINE_GIT:" in COMPOSE.read_text()


def test_readme_and_runbook_document_running_it_in_production():
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## Run it in production", 1)[1].split("\n## ", 1)[0]
    for needle in ("docker compose up", "http://localhost:8080", "http://localhost:8025",
                   "--scale airflow-worker=", "GitDagBundle", ".env.example"):
        assert needle in section, needle
    runbook = (ROOT / "RUNBOOK.md").read_text()
    deployment = runbook.split("## Deployment", 1)[1].split("\n## ", 1)[0]
    for needle in ("docker compose", "--scale airflow-worker=", "airflow-init", "mailpit"):
        assert needle in deployment, needle
