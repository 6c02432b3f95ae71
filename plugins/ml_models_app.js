// The "ML models" page as an Airflow react_apps plugin: rendered inside the Airflow UI with the host's
// React (globalThis.React), so links are in-app navigations and the page takes the UI's theme (Chakra's
// CSS variables) and fonts. The HTML itself comes from the plugin's server-rendered pages (?embed=1),
// the same templates as the standalone report file. CONFIG is prepended by the server
// (plugins/ml_models_plugin.py): {route: "/plugin/ml-models", pages: "/ml-models", dags: "/dags"}.
/* global CONFIG */
(() => {
  const React = globalThis.React;
  const h = React.createElement;

  // In-app navigation: the UI's router (react-router's browser router) follows history entries it is
  // told about through popstate, as when the person presses Back; a full page load would work too but
  // reloads the whole UI.
  function navigate(path) {
    const state = window.history.state;
    const idx = state && typeof state.idx === "number" ? state.idx + 1 : 0;
    window.history.pushState({ usr: null, key: Math.random().toString(36).slice(2, 10), idx }, "", path);
    window.dispatchEvent(new PopStateEvent("popstate", { state: window.history.state }));
    window.scrollTo(0, 0);
  }

  function subPath() {
    const at = window.location.pathname.indexOf(CONFIG.route);
    return at < 0 ? "/" : window.location.pathname.slice(at + CONFIG.route.length) || "/";
  }

  function onClick(event) {
    const link = event.target.closest ? event.target.closest("a[href]") : null;
    if (!link || event.defaultPrevented || event.button !== 0 || event.metaKey || event.ctrlKey ||
        event.shiftKey || event.altKey || link.target === "_blank" || link.hasAttribute("download")) {
      return; // a new tab, a download: the browser's own handling with the link's real address
    }
    const url = new URL(link.href, window.location.href);
    if (url.origin !== window.location.origin || url.pathname.startsWith(CONFIG.pages + "/api/")) {
      return; // JSON and the report file are documents of their own
    }
    event.preventDefault();
    navigate(url.pathname + url.search + url.hash);
  }

  // A held version's "promote" form: trigger ml_model_ops through Airflow's REST API as the person
  // logged in (the UI's session cookie), then open the new run.
  async function onSubmit(event) {
    const form = event.target;
    if (!form.matches || !form.matches("form.ops")) return;
    event.preventDefault();
    const data = new FormData(form);
    const conf = Object.fromEntries(data.entries());
    const status = form.querySelector(".ops-status");
    status.textContent = "triggering ml_model_ops…";
    const dag = `${CONFIG.api}/dags/${encodeURIComponent(form.dataset.dag)}`;
    // as Airflow's own trigger form does (its "unpause" box is ticked): a paused DAG's run would never start
    await fetch(dag, {
      method: "PATCH", credentials: "same-origin", headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ is_paused: false }),
    });
    const response = await fetch(`${dag}/dagRuns`, {
      method: "POST", credentials: "same-origin", headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ logical_date: null, conf }),
    });
    const body = await response.json().catch(() => ({}));
    if (!response.ok) {
      const detail = typeof body.detail === "string" ? body.detail : JSON.stringify(body.detail ?? body);
      status.textContent = `not triggered (${response.status}): ${detail}`;
      return;
    }
    navigate(`${CONFIG.dags}/${encodeURIComponent(form.dataset.dag)}/runs/${encodeURIComponent(body.dag_run_id)}`);
  }

  function MLModels() {
    const path = subPath();
    const [page, setPage] = React.useState({ html: "", state: "loading" });
    React.useEffect(() => {
      let live = true;
      fetch(`${CONFIG.pages}${path}?embed=1`, { credentials: "same-origin" })
        .then(async (response) => ({ ok: response.ok, status: response.status, html: await response.text() }))
        .then((result) => live && setPage({ html: result.html, state: result.ok ? "ready" : `error ${result.status}` }))
        .catch((error) => live && setPage({ html: "", state: `error: ${error}` }));
      return () => { live = false; };
    }, [path]);
    if (page.state === "loading") return h("div", { className: "ml-models", "aria-busy": "true" }, "Loading…");
    return h("div", {
      className: "ml-models", "data-state": page.state, onClick, onSubmit,
      dangerouslySetInnerHTML: { __html: page.html },
    });
  }

  globalThis.AirflowPlugin = MLModels;
})();
