"""`make demo`: the pipeline on the embedded credit-default data, told day by day.

1. fills the landing folder with daily batches (drift switched on for the last day), and the
   scoring inbox with data to score whose labels arrive two days later,
2. starts a local SMTP server that keeps every alert email in var/mail/,
3. runs `bin/airflow dags test ml_training__credit_default <date>` for each date and prints, per
   run: version trained, metric, drift verdict, branch taken, production version,
4. scores two dates with `ml_batch_scoring__credit_default` (rows, rejects, prediction drift),
5. measures the realised AUC when their labels arrive with `ml_performance__credit_default`.

The demo pipeline's landing folder, registry and run workspaces are reset first, so the story
is the same every time.
"""

from __future__ import annotations

import datetime as dt
import mailbox
import os
import shutil
import subprocess
import sys
import time
from email.header import decode_header, make_header
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

PIPELINE = "credit_default"
START = dt.date(2026, 1, 1)
DAYS = 4
DRIFT_FROM = START + dt.timedelta(days=DAYS - 1)
SCORE_DAYS = (START + dt.timedelta(days=1), START + dt.timedelta(days=DAYS - 1))


def _subjects(maildir: Path) -> list[str]:
    box = mailbox.Maildir(maildir, create=False)
    return [str(make_header(decode_header(box[key]["subject"]))) for key in sorted(box.keys())]


def score_and_measure(config, run, logs: Path) -> int:
    """Steps 5 and 6: score two dates with the production model, then measure the realised metric
    when their labels arrive. Returns the number of failed runs."""
    import json

    from include.ml import paths, performance
    from include.ml.scoring import SUMMARY_FILE

    failed = 0
    print(f"\n== 5. batch scoring: bin/airflow dags test ml_batch_scoring__{PIPELINE} <date>")
    print(f"{'date':<13} {'version':<8} {'files':>5} {'rows':>6} {'scored':>6} {'rejected':>8}  prediction drift")
    for day in SCORE_DAYS:
        ds = day.isoformat()
        result = run(str(ROOT / "bin" / "airflow"), "dags", "test", f"ml_batch_scoring__{PIPELINE}", ds,
                     log=logs / f"scoring-{ds}.log")
        summary_file = paths.predictions_dir(config, ds) / SUMMARY_FILE
        if result.returncode or not summary_file.exists():
            failed += 1
            print(f"{ds:<13} scoring failed (exit {result.returncode}); log: {logs / f'scoring-{ds}.log'}")
            continue
        s = json.loads(summary_file.read_text())
        drift = s["prediction_drift"] or {}
        print(f"{ds:<13} {','.join(s['versions']):<8} {s['partitions']:>5} {s['rows']:>6} {s['scored']:>6} "
              f"{s['rejected']:>8}  {drift.get('verdict', '-')} ({drift.get('statistic', '')} "
              f"{drift.get('value') or 0:.3f})")
        for reason, count in s["reject_reasons"].items():
            print(f"{'':<13} rejected {count} row(s): {reason}")
    print(f"   predictions and rejects: {paths.resolve(f'predictions/{PIPELINE}')}/<date>/")

    delay = config.simulation.label_delay_days
    print(f"\n== 6. realised performance, labels {delay} days later: bin/airflow dags test "
          f"ml_performance__{PIPELINE} <date>")
    print(f"{'labels of':<13} {'scored':<11} {'version':<8} {'rows':>5} {'realised ' + config.metric:>18} "
          f"{'validation':>10}  status")
    for day in SCORE_DAYS:
        ds = (day + dt.timedelta(days=delay)).isoformat()
        result = run(str(ROOT / "bin" / "airflow"), "dags", "test", f"ml_performance__{PIPELINE}", ds,
                     log=logs / f"performance-{ds}.log")
        records = [r for r in performance.history(config) if r["labels_date"] == ds]
        if result.returncode or not records:
            failed += 1
            print(f"{ds:<13} measurement failed (exit {result.returncode}); log: {logs / f'performance-{ds}.log'}")
            continue
        for r in records:
            print(f"{ds:<13} {r['scoring_date']:<11} {r['model_version']:<8} {r['rows']:>5} {r['value']:>18.4f} "
                  f"{r['validation_score']:>10.4f}  {r['status']}")
    return failed


def main() -> int:
    from aiosmtpd.controller import Controller
    from aiosmtpd.handlers import Mailbox
    from local_airflow import free_port  # bin/, beside this file

    env = dict(os.environ)
    env.setdefault("ML_HOME", str(ROOT / "var"))
    env.setdefault("AIRFLOW_HOME", str(ROOT / ".airflow"))
    data_root = Path(env["ML_HOME"])
    port = free_port(int(env.get("ML_SMTP_PORT", "8025")))
    env["ML_SMTP_PORT"] = str(port)
    env.pop("AIRFLOW_CONN_SMTP_DEFAULT", None)  # bin/airflow-env points smtp_default at ML_SMTP_PORT
    if not env.get("ML_SIGNING_KEY"):  # the model signing key, outside the data root, made on first use
        env.setdefault("ML_SIGNING_KEY_FILE", str(ROOT / ".airflow" / "signing.key"))
    os.environ.update(env)
    if os.environ.get("ML_SIGNING_KEY_FILE") and not os.environ.get("ML_SIGNING_KEY") \
            and not Path(os.environ["ML_SIGNING_KEY_FILE"]).exists():
        from include.ml.signing import create_key_file

        key = create_key_file(Path(os.environ["ML_SIGNING_KEY_FILE"]))
        print(f"created the model signing key {key.key_id} in {os.environ['ML_SIGNING_KEY_FILE']}")

    from include.ml import steps
    from include.ml.config import get_pipeline

    config = get_pipeline(PIPELINE)
    for folder in (data_root / "landing" / PIPELINE, config.registry_path, data_root / "runs" / PIPELINE,
                   data_root / "quarantine" / PIPELINE, data_root / "scoring" / PIPELINE,
                   data_root / "predictions" / PIPELINE, data_root / "labels" / PIPELINE, data_root / "mail"):
        shutil.rmtree(folder, ignore_errors=True)
    logs = data_root / "demo-logs"
    logs.mkdir(parents=True, exist_ok=True)

    def run(*command: str, log: Path | None = None) -> subprocess.CompletedProcess:
        out = open(log, "w") if log else None  # noqa: SIM115
        try:
            return subprocess.run(command, cwd=ROOT, env=env, check=False, text=True,
                                  stdout=out or subprocess.PIPE, stderr=subprocess.STDOUT)
        finally:
            if out:
                out.close()

    print(f"== 1. landing folder: {DAYS} daily batches of {PIPELINE}, drift from {DRIFT_FROM}")
    sim = run(sys.executable, "-m", "include.ml", "simulate", "--pipeline", PIPELINE, "--start", START.isoformat(),
              "--days", str(DAYS), "--drift-from", DRIFT_FROM.isoformat(), "--scoring", "--bad-rows", "3")
    print(sim.stdout.strip())
    if sim.returncode:
        return sim.returncode

    print("== 2. Airflow metadata database (SQLite) in", env["AIRFLOW_HOME"])
    migrate = run(str(ROOT / "bin" / "airflow"), "db", "migrate", log=logs / "db-migrate.log")
    if migrate.returncode:
        print(f"airflow db migrate failed; see {logs / 'db-migrate.log'}")
        return migrate.returncode

    maildir = data_root / "mail"
    smtp = Controller(Mailbox(maildir), hostname="127.0.0.1", port=port)
    smtp.start()
    print(f"== 3. SMTP server for alerts on 127.0.0.1:{port}, mailbox {maildir}")
    header = f"{'logical date':<13} {'trained':<8} {config.metric:<8} {'drift':<13} {'branch':<8} production"
    print(f"== 4. training runs: bin/airflow dags test {config.dag_id} <date>\n{header}")
    failed = 0
    try:
        for offset in range(DAYS):
            ds = (START + dt.timedelta(days=offset)).isoformat()
            before = len(steps.run_history(config))
            started = time.monotonic()
            result = run(str(ROOT / "bin" / "airflow"), "dags", "test", config.dag_id, ds, log=logs / f"{ds}.log")
            history = steps.run_history(config)
            if result.returncode or len(history) == before:
                failed += 1
                print(f"{ds:<13} run failed (exit {result.returncode}); log: {logs / f'{ds}.log'}")
                continue
            last = history[-1]
            print(f"{ds:<13} {last['version']:<8} {last['score']:<8.4f} {last['drift_verdict']:<13} "
                  f"{last['branch']:<8} {last['production_after']}   ({time.monotonic() - started:.0f}s)")
            if last["branch"] != "promote":
                print(f"{'':<13} why: {'; '.join(last['reasons'])}")
        failed += score_and_measure(config, run, logs)
        time.sleep(0.5)
    finally:
        smtp.stop()

    subjects = _subjects(maildir)
    print(f"\n== 7. {len(subjects)} alert email(s) delivered:")
    for subject in subjects:
        print("   ", subject)
    print(f"""
Where things are:
  landing folder   {data_root / 'landing' / PIPELINE}
  registry         {config.registry_path}  (versions/, production.json, audit.jsonl, history.jsonl)
  run workspaces   {data_root / 'runs' / PIPELINE}
  scoring          {data_root / 'scoring' / PIPELINE} -> {data_root / 'predictions' / PIPELINE}
  labels           {data_root / 'labels' / PIPELINE}
  Airflow logs     {Path(env['AIRFLOW_HOME']) / 'logs'}   (demo output: {logs})
Next: `make airflow` for the UI,
  `.venv/bin/python -m include.ml models list --pipeline {PIPELINE}` for the registry.""")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
