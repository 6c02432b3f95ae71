"""Airflow plugin "ML models": the pipelines' monitoring pages and their JSON API, served by the
Airflow API server under ``/ml-models/`` and linked from the UI's navigation bar.

Every route needs an authenticated Airflow user, checked by Airflow's own dependency
(``airflow.api_fastapi.core_api.security.get_user``: the UI's ``_token`` session cookie or an
``Authorization: Bearer`` JWT from ``POST /auth/token``); a user sees the pipelines whose training
DAG the auth manager lets them read. Without a valid session or token: 401 (403 for a bad token)
and no data.

Pages: ``/ml-models/`` (overview), ``/ml-models/pipelines/{name}`` (detail). JSON:
``/ml-models/api/pipelines``, ``/ml-models/api/pipelines/{name}``, schema at
``/ml-models/api/openapi.json``; ``/ml-models/api/pipelines/{name}/report.html`` is the standalone
report file (as ``python -m include.ml report``). The content comes from ``include/ml/monitoring.py``, the
HTML from the templates in ``include/ml/templates`` (autoescaped, see ``include/ml/presentation.py``).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Annotated, Any, ClassVar

# Plugins load from the plugins folder, not the DAG bundle: put the bundle (the repository, this
# folder's parent, or $ML_BUNDLE_ROOT) on sys.path so the pages use the pipeline's own library.
_BUNDLE_ROOT = str(Path(os.environ.get("ML_BUNDLE_ROOT") or Path(__file__).resolve().parents[1]))
if _BUNDLE_ROOT not in sys.path:
    sys.path.append(_BUNDLE_ROOT)

from airflow.api_fastapi.app import API_BASE_URL, API_ROOT_PATH, get_auth_manager  # noqa: E402
from airflow.api_fastapi.auth.managers.models.base_user import BaseUser  # noqa: E402
from airflow.api_fastapi.auth.managers.models.resource_details import DagDetails  # noqa: E402
from airflow.api_fastapi.common.db.common import SessionDep  # noqa: E402
from airflow.api_fastapi.core_api.security import get_user  # noqa: E402
from airflow.plugins_manager import AirflowPlugin  # noqa: E402
from fastapi import Depends, FastAPI, HTTPException, Request  # noqa: E402
from fastapi.responses import HTMLResponse, JSONResponse, Response  # noqa: E402
from sqlalchemy import select  # noqa: E402

PREFIX = "/ml-models"
ROOT = API_ROOT_PATH.rstrip("/")  # Airflow served under a sub-path keeps working
RUNS_PER_DAG = 200

User = Annotated[BaseUser, Depends(get_user)]

app = FastAPI(
    title="ML models",
    version="1",
    description="Monitoring of the ML pipelines of this DAG bundle: production model, training runs, drift, "
                "versions, audit trail, scoring and realised performance. Authenticate as for Airflow's REST API "
                "(Bearer JWT from POST /auth/token, or the UI session).",
    docs_url=None, redoc_url=None, openapi_url=None,  # the schema is served below, behind authentication
    dependencies=[Depends(get_user)],  # every route, present and future, needs an Airflow user
)


def _links():
    from include.ml.monitoring import Links

    return Links(ROOT)


def _readable_configs(user: BaseUser) -> list:
    """The pipelines whose training DAG this user may read (auth manager decides)."""
    from include.ml.config import load_each

    configs, _ = load_each()
    auth_manager = get_auth_manager()
    return [c for c in configs
            if auth_manager.is_authorized_dag(method="GET", details=DagDetails(id=c.dag_id), user=user)]


def _config(name: str, user: BaseUser):
    for config in _readable_configs(user):
        if config.name == name:
            return config
    raise HTTPException(status_code=404, detail=f"no pipeline {name!r} that you may read")


def _airflow_runs(session, dag_ids: list[str]) -> dict[str, list[dict]]:
    """Airflow's own record of the training DAG runs (a failed run writes no history line)."""
    from airflow.models.dagrun import DagRun

    out: dict[str, list[dict]] = {d: [] for d in dag_ids}
    for dag_id in dag_ids:
        rows = session.execute(
            select(DagRun.run_id, DagRun.state, DagRun.logical_date, DagRun.end_date)
            .where(DagRun.dag_id == dag_id).order_by(DagRun.id.desc()).limit(RUNS_PER_DAG)).all()
        out[dag_id] = [{"run_id": r.run_id, "state": str(r.state.value if hasattr(r.state, "value") else r.state),
                        "logical_date": r.logical_date.isoformat() if r.logical_date else None,
                        "end_date": r.end_date.isoformat(timespec="seconds") if r.end_date else None} for r in rows]
    return out


def _overview(user: BaseUser, session) -> list[dict]:
    from include.ml import monitoring

    configs = _readable_configs(user)
    return monitoring.overview(configs, _airflow_runs(session, [c.dag_id for c in configs]), _links())


def _detail(name: str, user: BaseUser, session) -> dict:
    from include.ml import monitoring

    config = _config(name, user)
    return monitoring.pipeline_detail(config, _airflow_runs(session, [config.dag_id])[config.dag_id], _links())


# -- JSON API -------------------------------------------------------------------------------


@app.get("/api/pipelines", summary="Overview: one row per pipeline", tags=["api"])
def api_pipelines(user: User, session: SessionDep) -> list[dict[str, Any]]:
    """Per pipeline: ``production`` {version, since, actor, reason, metric_value}, ``promoted_at``,
    ``last_run`` {run_id, logical_date, outcome (promote|hold|reject|failed|running), version, score,
    links}, ``primary_metric`` (validation score of the last trained run), ``drift_verdict``,
    ``drifted_features``, ``realised`` (latest realised-performance record or null), ``metric_series``,
    ``links`` {dashboard, api, dag}."""
    return _overview(user, session)


@app.get("/api/pipelines/{name}", summary="Everything the pipeline page shows", tags=["api"])
def api_pipeline(name: str, user: User, session: SessionDep) -> dict[str, Any]:
    """The overview fields plus ``runs`` (each with links to its Airflow run page and logs),
    ``metric_over_time`` {validation, realised}, ``drift_heatmap`` {features, runs, statistics, cells},
    ``versions`` (metrics, champion, gate decision), ``audit`` (promotions and rollbacks), ``latest``
    {validation, comparison, drift}, ``scoring`` (volumes and rejects per date), ``performance``."""
    return _detail(name, user, session)


@app.get("/api/pipelines/{name}/report.html", summary="The standalone HTML report file", tags=["api"],
         response_class=HTMLResponse)
def api_report_file(name: str, user: User, session: SessionDep) -> Response:
    from include.ml import monitoring

    config = _config(name, user)
    links = monitoring.Links(API_BASE_URL.rstrip("/"))  # a file opened elsewhere needs absolute links
    detail = monitoring.pipeline_detail(config, _airflow_runs(session, [config.dag_id])[config.dag_id], links)
    return HTMLResponse(monitoring.render_pipeline(detail, links), headers={
        "Content-Disposition": f"attachment; filename=ml-report-{config.name}.html"})


@app.get("/api/openapi.json", summary="This API's OpenAPI schema", tags=["api"])
def api_schema(user: User) -> dict[str, Any]:
    return app.openapi()


# -- pages ----------------------------------------------------------------------------------


@app.get("/", response_class=HTMLResponse, include_in_schema=False)
def overview_page(user: User, session: SessionDep) -> HTMLResponse:
    from include.ml import monitoring

    return HTMLResponse(monitoring.render_overview(_overview(user, session), _links()))


@app.get("/pipelines/{name}", response_class=HTMLResponse, include_in_schema=False)
def pipeline_page(name: str, user: User, session: SessionDep) -> HTMLResponse:
    from include.ml import monitoring

    return HTMLResponse(monitoring.render_pipeline(_detail(name, user, session), _links()))


@app.exception_handler(HTTPException)
async def _refused(request: Request, exc: HTTPException) -> Response:
    """The API answers in JSON; a page refused for want of a login says where to log in (no data)."""
    if exc.status_code in (401, 403) and "/api/" not in request.url.path:
        from include.ml.presentation import render

        login = get_auth_manager().get_url_login(next_url=str(request.url))
        return HTMLResponse(str(render("login.html.j2", login=login, expired=exc.status_code != 401)),
                            status_code=exc.status_code)
    return JSONResponse({"detail": exc.detail}, status_code=exc.status_code, headers=exc.headers)


class MLModelsPlugin(AirflowPlugin):
    name = "ml_models"
    fastapi_apps: ClassVar[list] = [{"app": app, "url_prefix": PREFIX, "name": "ML models"}]
    external_views: ClassVar[list] = [{
        "name": "ML models",
        "href": f"{ROOT}{PREFIX}/",
        "url_route": "ml-models",  # the UI shows the page inside Airflow at /plugin/ml-models
        "destination": "nav",
        "nav_top_level": True,
    }]
