"""Airflow plugin "ML models": the pipelines' monitoring pages and their JSON API, served by the
Airflow API server under ``/ml-models/``, and shown inside the Airflow UI at ``/plugin/ml-models``
(navigation bar "ML models").

Inside the UI the page is a ``react_apps`` plugin (``plugins/ml_models_app.js``), not an external view:
Airflow 3.3.2 frames external views with ``sandbox="allow-scripts allow-same-origin allow-forms
allow-downloads"``, which forbids every navigation of the UI from the page (no link into Airflow can
work) and writes the frame's own path after ``/plugin/<route>`` in the address bar (the doubled
``/plugin/ml-models/ml-models/...``). The react app runs in the UI's own document with the host's React:
it fetches this app's server-rendered page (``?embed=1``: the same templates as the report file, so
there is one home for the presentation), injects it, and turns clicks on links into in-app navigations;
the page's styles read the UI's Chakra theme variables, so light and dark themes and fonts follow the UI.

Every route needs an authenticated Airflow user, checked by Airflow's own dependency
(``airflow.api_fastapi.core_api.security.get_user``: the UI's ``_token`` session cookie or an
``Authorization: Bearer`` JWT from ``POST /auth/token``); a user sees the pipelines whose training
DAG the auth manager lets them read. Without a valid session or token: 401 (403 for a bad token)
and no data.

Pages: ``/ml-models/`` (overview), ``/ml-models/pipelines/{name}`` (detail), each with ``?embed=1``
for the react app; ``/ml-models/static/app.js`` is the react app's bundle; ``/ml-models/runbook`` is
RUNBOOK.md as a page (the DAG docs link to it). JSON:
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

from include.ml.monitoring import DASHBOARD_PREFIX, RUNBOOK_PAGE, UI_ROUTE  # noqa: E402

PREFIX = DASHBOARD_PREFIX
ROOT = API_ROOT_PATH.rstrip("/")  # Airflow served under a sub-path keeps working
RUNS_PER_DAG = 200
APP_SCRIPT = Path(__file__).with_name("ml_models_app.js")
WAITING_STATES = ("up_for_retry", "up_for_reschedule", "deferred")  # a task waiting, not failing

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
    """Airflow's own record of the training DAG runs (a failed run writes no history line): run id,
    state, logical date, end date, and ``waiting_for_batch`` for a running run whose wait for its
    delivery is deferred, or whose extract task waits to retry."""
    from airflow.models.dagrun import DagRun
    from airflow.models.taskinstance import TaskInstance

    from include.airflow_batch_wait import WAIT_TASK
    from include.ml.steps import STEPS

    batch_tasks = (WAIT_TASK, STEPS[0])  # the deferred wait for the delivery, and extract retrying for it

    def text(state) -> str:
        return str(state.value if hasattr(state, "value") else state)

    out: dict[str, list[dict]] = {d: [] for d in dag_ids}
    for dag_id in dag_ids:
        rows = session.execute(
            select(DagRun.run_id, DagRun.state, DagRun.logical_date, DagRun.end_date)
            .where(DagRun.dag_id == dag_id).order_by(DagRun.id.desc()).limit(RUNS_PER_DAG)).all()
        running = [r.run_id for r in rows if text(r.state) in ("running", "queued")]
        waiting = set(session.scalars(
            select(TaskInstance.run_id).where(TaskInstance.dag_id == dag_id, TaskInstance.run_id.in_(running),
                                              TaskInstance.task_id.in_(batch_tasks),
                                              TaskInstance.state.in_(WAITING_STATES)))) if running else set()
        out[dag_id] = [{"run_id": r.run_id, "state": text(r.state),
                        "logical_date": r.logical_date.isoformat() if r.logical_date else None,
                        "end_date": r.end_date.isoformat(timespec="seconds") if r.end_date else None,
                        "waiting_for_batch": r.run_id in waiting} for r in rows]
    return out


def _pending_decisions(session, pipeline: str) -> list[dict]:
    """The decisions on ``pipeline``'s held candidates still waiting for a person: Airflow's Required
    Actions of its decision DAG with no answer (what ``GET /api/v2/dags/~/dagRuns/~/hitlDetails
    ?response_received=false`` lists), as :func:`include.ml.approval.pending_decisions` rows."""
    from airflow.models.hitl import HITLDetail
    from airflow.models.taskinstance import TaskInstance

    from include.ml import approval

    rows = session.execute(
        select(TaskInstance.dag_id, TaskInstance.run_id, TaskInstance.task_id, HITLDetail.subject,
               HITLDetail.created_at)
        .join(HITLDetail, HITLDetail.ti_id == TaskInstance.id)
        .where(TaskInstance.dag_id == approval.decision_dag_id(pipeline), HITLDetail.responded_at.is_(None))).all()
    details = [{"task_instance": {"dag_id": r.dag_id, "dag_run_id": r.run_id, "task_id": r.task_id},
                "subject": r.subject, "created_at": r.created_at.isoformat(timespec="seconds"),
                "response_received": False} for r in rows]
    return approval.pending_decisions(details, _links())


def _overview(user: BaseUser, session) -> list[dict]:
    from include.ml import monitoring

    configs = _readable_configs(user)
    return monitoring.overview(configs, _airflow_runs(session, [c.dag_id for c in configs]), _links())


def _detail(name: str, user: BaseUser, session) -> dict:
    from include.ml import monitoring

    config = _config(name, user)
    detail = monitoring.pipeline_detail(config, _airflow_runs(session, [config.dag_id])[config.dag_id], _links())
    detail["pending_decisions"] = _pending_decisions(session, config.name)
    return detail


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
def overview_page(user: User, session: SessionDep, embed: bool = False) -> HTMLResponse:
    """The overview; ``embed``: the part the react app shows inside the Airflow UI."""
    from include.ml import monitoring

    return HTMLResponse(monitoring.render_overview(_overview(user, session), _links(), embed=embed))


@app.get("/pipelines/{name}", response_class=HTMLResponse, include_in_schema=False)
def pipeline_page(name: str, user: User, session: SessionDep, embed: bool = False) -> HTMLResponse:
    """A pipeline's page; ``embed``: the part the react app shows inside the Airflow UI."""
    from include.ml import monitoring

    return HTMLResponse(monitoring.render_pipeline(_detail(name, user, session), _links(), embed=embed))


@app.get(RUNBOOK_PAGE.removeprefix(PREFIX), response_class=HTMLResponse, include_in_schema=False)
def runbook_page(user: User) -> HTMLResponse:
    """RUNBOOK.md of the bundle as a page (the DAG docs link here: the UI cannot open a repository file)."""
    from markdown_it import MarkdownIt

    from include.ml.presentation import Markup, render

    text = (Path(_BUNDLE_ROOT) / "RUNBOOK.md").read_text()
    body = Markup(MarkdownIt("commonmark", {"html": False}).enable("table").render(text))  # raw HTML stays text
    return HTMLResponse(str(render("runbook.html.j2", title="Runbook", body=body)))


@app.get("/static/app.js", include_in_schema=False)
def app_script(user: User) -> Response:
    """The react app's bundle, with where things are on this server (the UI route, the pages, the API)."""
    import json

    config = {"route": f"{ROOT}{UI_ROUTE}", "pages": f"{ROOT}{PREFIX}", "dags": f"{ROOT}/dags",
              "api": f"{ROOT}/api/v2"}
    return Response(f"const CONFIG = {json.dumps(config)};\n{APP_SCRIPT.read_text()}",
                    media_type="text/javascript", headers={"Cache-Control": "no-cache"})


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
    react_apps: ClassVar[list] = [{
        "name": "ML models",
        "bundle_url": f"{ROOT}{PREFIX}/static/app.js",
        "url_route": UI_ROUTE.rsplit("/", 1)[-1],  # the UI shows the page at /plugin/ml-models
        "destination": "nav",
        "nav_top_level": True,
    }]
