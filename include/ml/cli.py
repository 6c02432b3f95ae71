"""Command line: ``python -m include.ml <command>``, the same functions the DAGs call.

Commands: simulate, config check|schema|docs, validate, drift, train, score,
models list|show|promote|rollback|history|verify|sign, keys create, runs, performance.
Exit status: 0 done, 1 the input or the registry refused (message on stderr), 2 bad usage.
``--pipeline`` is required whenever more than one pipeline is configured, and always for
``models promote`` and ``models rollback``: the pipeline is never guessed.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from include.ml import paths
from include.ml.config import config_paths, get_pipeline, load_all
from include.ml.errors import PipelineError


def _known_pipelines() -> list[str]:
    return [p.stem for p in config_paths()]


class _Parser(argparse.ArgumentParser):
    """An argument parser whose "--pipeline is required" error lists the pipelines there are."""

    def error(self, message: str):
        if "required" in message and "--pipeline" in message:
            known = ", ".join(_known_pipelines()) or "none (no config in include/pipelines)"
            message += f"; known pipelines: {known}"
        super().error(message)


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number of at least 1")
    return value


def _date(text: str) -> dt.date:
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a date in YYYY-MM-DD form") from None


def _emit(args: argparse.Namespace, data, text: str) -> None:
    print(json.dumps(data, indent=2, default=str) if args.json else text)


def _table(rows: list[list[object]], header: list[str]) -> str:
    from include.ml.registry import one_line  # a reason or name with CR/LF must not forge a row

    cells = [header, *[["" if v is None else one_line(str(v)) for v in row] for row in rows]]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    return "\n".join("  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)).rstrip() for r in cells)


def _fmt(value) -> str:
    from include.ml.presentation import number

    return number(value)


# -- commands ------------------------------------------------------------------------------


def cmd_simulate(args: argparse.Namespace) -> int:
    from include.ml.simulate import write_batches

    configs = [get_pipeline(n) for n in args.pipeline] if args.pipeline else [
        c for c in load_all() if c.simulation is not None]
    written, lines = {}, []
    for config in configs:
        files = write_batches(config, args.start, args.days, drift_from=args.drift_from, rows=args.rows)
        written[config.name] = [str(f) for f in files]
        lines.append(f"{config.name}: {len(files)} batch(es) in {files[0].parent}")
        if args.scoring:
            from include.ml.simulate import write_scoring_batches

            delivered = write_scoring_batches(config, args.start, args.days, drift_from=args.drift_from,
                                              bad_rows=args.bad_rows)
            written[f"{config.name}:scoring"] = [str(f) for f in delivered["scoring"]]
            written[f"{config.name}:labels"] = [str(f) for f in delivered["labels"]]
            lines.append(f"{config.name}: {len(delivered['scoring'])} scoring partition(s) under "
                         f"{delivered['scoring'][0].parent.parent}, their labels (delivered "
                         f"{config.simulation.label_delay_days} day(s) later) in {delivered['labels'][0].parent}")
    if args.drift_from:
        lines.append(f"drift switched on from {args.drift_from}")
    _emit(args, written, "\n".join(lines))
    return 0


def cmd_config_check(args: argparse.Namespace) -> int:
    from include.ml import config as config_module
    from include.ml.user_code import check_model

    if args.pipeline:
        configs = [get_pipeline(n) for n in args.pipeline]
    else:  # every problem of every file at once, shared registries and landing paths too
        configs, errors = config_module.load_each()
        if errors:
            raise config_module.ConfigError("\n".join(str(error) for error in errors))
    for config in configs:
        check_model(config)  # the model code imported and called, model.params checked against it
    data = {c.name: {"task": c.task, "target": c.target, "estimator": c.model.described, "metric": c.metric,
                     "dag_id": c.dag_id, "registry": str(c.registry_path),
                     "warnings": config_module.setting_warnings(c)} for c in configs}
    _emit(args, data, "\n".join(
        f"{n}: ok ({d['task']}, {d['estimator']}, {d['metric']})"
        + "".join(f"\n  warning: {config_module.PIPELINES_DIR / n}.yaml: {w}" for w in d["warnings"])
        for n, d in data.items()))
    return 0


def _write_or_print(text: str, out: str | None) -> None:
    if out is None:
        sys.stdout.write(text)
    else:
        Path(out).write_text(text)
        print(f"wrote {out}", file=sys.stderr)


def cmd_config_schema(args: argparse.Namespace) -> int:
    from include.ml.config_reference import schema_text

    _write_or_print(schema_text(), args.out)
    return 0


def cmd_config_docs(args: argparse.Namespace) -> int:
    from include.ml.config_reference import markdown_reference

    _write_or_print(markdown_reference(), args.out)
    return 0


def cmd_validate(args: argparse.Namespace) -> int:
    from include.ml.errors import BatchValidationError
    from include.ml.extract import read_batch
    from include.ml.steps import check_with_production

    config = get_pipeline(args.pipeline)
    try:
        result, features, origin, production = check_with_production(config, read_batch(Path(args.file)))
    except BatchValidationError as error:
        if args.json:
            print(json.dumps({"passed": False, "failures": error.failures}, indent=2, default=str))
        else:
            print(error, file=sys.stderr)
        return 1
    data = {"passed": True, "rows": len(result.frame), "features": len(features), "feature_origin": origin,
            "reference_version": production, "warnings": result.warnings}
    text = (f"{args.file}: passed ({len(result.frame)} rows, {len(features)} features from {origin}"
            f"{', training ranges of ' + production if production else ''}); {len(result.warnings)} warning(s)"
            + "".join(f"\n  - {w['message']}" for w in result.warnings))
    _emit(args, data, text)
    return 0


def _reference_profile(config, reference: str | None):
    """A stored profile (a version id, default production) or one fitted on a reference file."""
    from include.ml.drift import ReferenceProfile
    from include.ml.registry import VERSION_PATTERN
    from include.ml.steps import registry_for, resolve_features

    if reference and not VERSION_PATTERN.fullmatch(reference):
        from include.ml.extract import read_batch

        frame = read_batch(Path(reference))
        features, _ = resolve_features(config, frame)
        if missing := sorted({f.name for f in features} - set(frame.columns)):
            raise PipelineError(f"reference file {reference} lacks feature column(s) {missing} of pipeline "
                                f"{config.name!r}; leave out --pipeline to compare two files on their common columns")
        return ReferenceProfile(bins=config.drift.bins).fit(frame, features), reference
    registry = registry_for(config)
    version = reference or registry.production()
    if version is None:
        raise PipelineError(f"pipeline {config.name!r} has no production model yet; "
                            "pass --reference VERSION or --reference FILE")
    return ReferenceProfile.from_dict(registry.reference_profile(version)), version


def _file_features(reference, current) -> tuple[list, dict[str, str]]:
    """The features two files are compared on: their common columns, numeric or categorical by the
    reference's types; and the common columns left out, with why (an ID-like text column, one value
    per row, would only ever look drifted; a timestamp has no levels to compare)."""
    import pandas as pd

    from include.ml.config import FeatureSpec

    common = [c for c in reference.columns if c in set(current.columns)]
    if not common:
        raise PipelineError(f"the two files have no column in common (reference: {list(reference.columns)[:20]}; "
                            f"current: {list(current.columns)[:20]}): there is nothing to compare")
    features, skipped = [], {}
    for name in common:
        column = reference[name]
        if pd.api.types.is_datetime64_any_dtype(column):
            skipped[name] = "a timestamp"
        elif pd.api.types.is_numeric_dtype(column) and not pd.api.types.is_bool_dtype(column):
            features.append(FeatureSpec(name=name, type="numeric"))
        elif len(column) > 1 and column.nunique(dropna=True) == len(column):
            skipped[name] = "one value per row (an id)"
        else:
            features.append(FeatureSpec(name=name, type="categorical"))
    if not features:
        raise PipelineError(f"the files' common column(s) {common} cannot be compared: "
                            + "; ".join(f"{n} is {why}" for n, why in skipped.items()))
    return features, skipped


def cmd_drift(args: argparse.Namespace) -> int:
    from include.ml.config import DriftConfig
    from include.ml.drift import ReferenceProfile, drift_report
    from include.ml.extract import read_batch
    from include.ml.registry import VERSION_PATTERN

    skipped: dict[str, str] = {}
    reference_is_file = args.reference is not None and not VERSION_PATTERN.fullmatch(args.reference)
    if args.pipeline is None and reference_is_file:  # two files, no pipeline: their common columns
        settings = DriftConfig()
        reference_frame, frame = read_batch(Path(args.reference)), read_batch(Path(args.current))
        features, skipped = _file_features(reference_frame, frame)
        profile = ReferenceProfile(bins=settings.bins).fit(reference_frame, features)
        reference = args.reference
    else:
        known = _known_pipelines()
        if args.pipeline is None and len(known) != 1:
            raise PipelineError("drift needs --pipeline (known pipelines: " + (", ".join(known) or "none")
                                + ") unless --reference is a file: then two files are compared on their common "
                                  "columns")
        config = get_pipeline(args.pipeline or known[0])
        settings = config.drift
        profile, reference = _reference_profile(config, args.reference)
        frame = read_batch(Path(args.current))
    if missing := profile.missing_features(frame):
        raise PipelineError(f"{args.current} lacks feature column(s) {missing} that the reference {reference} has")
    report = drift_report(profile, frame, settings)
    report.reference_version = reference
    rows = []
    for name, stats in report.ordered_features():
        gating = ", ".join(f"{g}={_fmt(stats['statistics'][g])}" for g in stats["gating"])
        rows.append([name, stats["type"], stats["level"], gating])
    text = (f"drift verdict: {report.verdict} (against {reference}; {len(report.drifted_features)} of "
            f"{len(rows)} features drifted, {len(report.severe_features)} severely)\n"
            + "".join(f"  {r}\n" for r in report.reasons)
            + _table(rows, ["feature", "type", "level", "gating statistics"])
            + "".join(f"\n  not compared: {name} ({why})" for name, why in skipped.items()))
    _emit(args, {**report.to_dict(), "not_compared": skipped} if skipped else report.to_dict(), text)
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    from include.ml import steps

    config = get_pipeline(args.pipeline)
    workspace = Path(args.out) if args.out else paths.workspace_dir(
        config.name, f"cli_{dt.datetime.now(dt.UTC):%Y%m%dT%H%M%S}")
    steps.extract(config, workspace, ds=args.ds or dt.date.today().isoformat(),
                  source=Path(args.input) if args.input else None, source_url=args.source_url)
    steps.validate(config, workspace, run_id=workspace.name, save_features=False)
    trained = steps.train(config, workspace)
    evaluation = steps.evaluate(config, workspace)
    data = {"workspace": str(workspace), "training": trained, "evaluation": evaluation}
    text = (f"candidate trained in {workspace} ({trained['train_rows']} rows, {trained['fit_seconds']}s)\n"
            f"{config.metric}: {_fmt(evaluation['score'])} (production {evaluation['champion_version'] or '-'}: "
            f"{_fmt(evaluation['champion_score'])}); gates "
            + ("passed" if evaluation["gates"]["passed"] else "failed: " + "; ".join(evaluation["gates"]["reasons"])))
    _emit(args, data, text)
    return 0


def cmd_score(args: argparse.Namespace) -> int:
    from include.ml.config import FeatureSpec
    from include.ml.scoring import score_file
    from include.ml.steps import registry_for

    config = get_pipeline(args.pipeline)
    registry = registry_for(config)
    version = args.version or registry.production()
    if version is None:
        raise PipelineError(f"pipeline {config.name!r} has no production model yet; pass --version")
    model = registry.load(version)  # sha256 checked
    from include.ml.user_code import code_changes

    for change in code_changes(registry.metadata(version)):
        print(f"warning: {version}: {change}", file=sys.stderr)
    features = [FeatureSpec.model_validate(f) for f in registry.metadata(version)["features"]]
    summary = score_file(model, version, config, features, Path(args.input), Path(args.output),
                         chunk_rows=args.chunk_rows or config.scoring.chunk_rows,
                         max_reject_share=config.scoring.max_reject_share)
    text = (f"scored {summary.scored} of {summary.rows} rows with {version} in {summary.chunks} chunk(s) -> "
            f"{summary.output}" + (f"; {summary.rejected} rejected -> {summary.rejects} ({summary.reject_reasons})"
                                   if summary.rejected else "; no rejects"))
    _emit(args, summary.to_dict(), text)
    return 0


def cmd_models_list(args: argparse.Namespace) -> int:
    from include.ml.steps import registry_for

    config = get_pipeline(args.pipeline)
    registry = registry_for(config)
    production = registry.production()
    rows = []
    for version in registry.versions():
        meta = registry.metadata(version)
        rows.append({"version": version, "production": version == production, "decision": meta["decision"],
                     "logical_date": meta["logical_date"], config.metric: meta["metrics"].get(config.metric),
                     "registered_at": meta["registered_at"], "run_id": meta["run_id"]})
    text = _table([["*" if r["production"] else "", r["version"], r["decision"], r["logical_date"],
                    _fmt(r[config.metric]), r["registered_at"]] for r in rows],
                  ["", "version", "decision", "logical date", config.metric, "registered at"])
    _emit(args, rows, text if rows else f"no versions registered yet in {registry.root}")
    return 0


def _promotion_line(record: dict | None) -> str:
    if not record:
        return "  promotion record: none"
    interval = record.get("interval")
    evidence = (f"candidate - production {interval['difference']:+.4f}, {interval['confidence']:.0%} interval "
                f"[{interval['lower']:+.4f}, {interval['upper']:+.4f}] over {interval['resamples']} resamples"
                if interval else "no production model to compare with")
    return (f"  promotion record: {record['decision']} ({record['metric']} {_fmt(record['candidate_score'])} vs "
            f"{record['champion_version'] or '-'} {_fmt(record['champion_score'])}; {evidence}; "
            f"drift {record['drift_verdict']})")


def _estimation_lines(meta: dict) -> list[str]:
    """What ``models show`` says of a version's calibration (for estimated performance) and its
    permutation importance, most important feature first."""
    lines = []
    if calibration := meta.get("calibration"):
        lines.append(f"  calibration: {calibration['method']} on {calibration['holdout_rows']} holdout rows; "
                     f"calibration error (ECE) {_fmt(calibration['ece'])} raw, "
                     f"{_fmt(calibration['ece_calibrated'])} calibrated (cross-fitted)")
    if importance := meta.get("importance"):
        ranked = ", ".join(f"{item['feature']} {item['importance']:+.4f}" for item in importance["features"])
        lines.append(f"  permutation importance ({importance['metric']} drop, {importance['rows']} holdout rows, "
                     f"{importance['repeats']} repeats): {ranked or 'none measured'}"
                     + (f"; not measured in time: {', '.join(importance['unmeasured'])}"
                        if importance.get("unmeasured") else ""))
    return lines


def cmd_models_show(args: argparse.Namespace) -> int:
    from include.ml.steps import registry_for

    config = get_pipeline(args.pipeline)
    registry = registry_for(config)
    meta = registry.metadata(args.version)
    meta["is_production"] = registry.production() == args.version
    from include.ml.user_code import code_changes

    meta["code_changes"] = code_changes(meta)
    text = "\n".join([
        f"{args.version} of {config.name} ({'production' if meta['is_production'] else meta['decision']})",
        f"  logical date: {meta['logical_date']}   run: {meta['run_id']}",
        "  metrics: " + ", ".join(f"{k}={_fmt(v)}" for k, v in meta["metrics"].items()),
        *([f"  classes: {', '.join(map(str, meta['classes']))}"
           + (f"   positive label: {meta['positive_label']}" if meta.get("positive_label") is not None else "")]
          if meta.get("classes") else []),
        f"  champion: {meta['champion']['version'] or '-'}   reasons: {'; '.join(meta['reasons'])}",
        _promotion_line(meta.get("promotion_record")),
        *_estimation_lines(meta),
        f"  data: {meta['data']['path']} ({meta['data']['rows']} rows, sha256 {meta['data']['sha256'][:12]})",
        f"  artifact sha256: {meta['artifact']['sha256']}",
        f"  code: {meta['code_version'] or 'unknown'}   python {meta['python']}   "
        + ", ".join(f"{k} {v}" for k, v in meta["libraries"].items()),
        *_model_code_lines(meta),
    ])
    _emit(args, meta, text)
    return 0


def _model_code_lines(meta: dict) -> list[str]:
    """The model code a version records, and a warning per module changed since."""
    code = meta.get("model_code") or {}
    lines = [f"  {key}: {code[key]['path']}:{code[key]['function']} (sha256 {code[key]['sha256'][:12]})"
             for key in ("factory", "feature_code") if code.get(key)]
    return lines + [f"  warning: {change}" for change in meta["code_changes"]]


def cmd_models_verify(args: argparse.Namespace) -> int:
    from include.ml.steps import registry_for

    config = get_pipeline(args.pipeline)
    registry = registry_for(config)
    production = registry.production()
    versions = [args.version] if args.version else registry.versions()
    results = []
    for version in versions:
        check = registry.check(version)
        results.append({"version": version, "intact": check.intact, "recorded_sha256": check.recorded_sha256,
                        "actual_sha256": check.actual_sha256, "signature": check.signature, "problem": check.problem,
                        "production": version == production})
    history_problems = registry.audit_problems()
    rows = [[("* " if r["production"] else "  ") + r["version"], "ok" if r["intact"] else
             "UNSIGNED" if r["signature"] == "unsigned" and r["recorded_sha256"] == r["actual_sha256"] else "CHANGED",
             r["signature"], r["recorded_sha256"][:16], r["actual_sha256"][:16]] for r in results]
    text = (_table(rows, ["version", "artifact", "signature", "recorded sha256", "actual sha256"])
            if rows else f"no versions registered for {config.name}")
    text += "\naudit log: " + ("; ".join(history_problems) if history_problems else "chain intact")
    _emit(args, {"versions": results, "audit_problems": history_problems}, text)
    unsigned = [r["version"] for r in results
                if r["signature"] == "unsigned" and r["recorded_sha256"] == r["actual_sha256"]]
    changed = [r["version"] for r in results if not r["intact"] and r["version"] not in unsigned]
    for r in results:
        if r["problem"]:
            print(f"error: {r['problem']}", file=sys.stderr)
    if changed:
        print(f"error: artifact(s) changed after registration: {', '.join(changed)}; do not load them, keep the "
              f"files for investigation, roll back if production is among them", file=sys.stderr)
    if history_problems:
        print(f"error: the audit log {registry.audit_path} was rewritten: {'; '.join(history_problems)}",
              file=sys.stderr)
    return 1 if changed or unsigned or history_problems else 0


def cmd_models_sign(args: argparse.Namespace) -> int:
    from include.ml.steps import registry_for

    config = get_pipeline(args.pipeline)
    registry = registry_for(config)
    results = {version: registry.sign_legacy(version) for version in ([args.version] if args.version
                                                                     else registry.versions())}
    pointer = registry.sign_legacy_pointer()
    lines = [f"{version}: {state}" for version, state in results.items()]
    lines.append(f"production pointer: {pointer or 'none yet'}")
    _emit(args, {"versions": results, "pointer": pointer}, "\n".join(lines))
    return 0


def cmd_keys_create(args: argparse.Namespace) -> int:
    from include.ml import signing

    key = signing.create_key_file(Path(args.out))
    _emit(args, {"file": args.out, "key_id": key.key_id},
          f"wrote a new signing key (id {key.key_id}, mode 0600) to {args.out}; use it with "
          f"{signing.ENV_KEY_FILE}={args.out}")
    return 0


def _actor() -> str:
    import getpass

    try:
        return f"cli:{getpass.getuser()}"
    except (KeyError, OSError):  # a uid without a passwd entry, common in containers
        return f"cli:uid-{os.getuid()}"


def _change_production(args: argparse.Namespace, action: str, version: str | None, done: str) -> int:
    """Plan and apply a manual promote or rollback through :mod:`include.ml.model_ops`."""
    from include.ml import model_ops

    config = get_pipeline(args.pipeline)
    entry = model_ops.apply_change(config, model_ops.plan_change(config, action, version, args.reason, _actor()))
    _emit(args, entry, f"{done} {entry['from'] or '-'} -> {entry['to']} ({entry['reason']})")
    return 0


def cmd_models_promote(args: argparse.Namespace) -> int:
    return _change_production(args, "promote", args.version, "production:")


def cmd_models_rollback(args: argparse.Namespace) -> int:
    return _change_production(args, "rollback", args.to, "rolled back: production")


def cmd_models_history(args: argparse.Namespace) -> int:
    from include.ml.steps import registry_for

    entries = registry_for(get_pipeline(args.pipeline)).audit()
    rows = [[e["time"], e["action"], e["from"], e["to"], e["actor"], e["reason"]] for e in entries]
    _emit(args, entries, _table(rows, ["time", "action", "from", "to", "actor", "reason"]) if rows
          else "production has never been switched")
    return 0


def cmd_runs(args: argparse.Namespace) -> int:
    from include.ml.steps import is_failed, run_history

    config = get_pipeline(args.pipeline)
    runs = run_history(config)[-args.last:] if args.last > 0 else []
    rows = [[r.get("logical_date"), r.get("version"), _fmt(r.get("score")), r.get("drift_verdict"), r.get("branch"),
             r.get("production_after"), "; ".join(r.get("reasons") or []) if is_failed(r) else ""] for r in runs]
    text = _table(rows, ["logical date", "trained", config.metric, "drift", "branch", "production", "error"])
    _emit(args, runs, text if runs else f"no runs recorded yet for {config.name}")
    return 0


def cmd_performance(args: argparse.Namespace) -> int:
    from include.ml import performance

    config = get_pipeline(args.pipeline)
    if args.labels_date:
        result = performance.measure(config, args.labels_date.isoformat(), run_id="cli")
        records = result["records"]
        head = (f"labels delivered {result['labels_date']}: {result['labelled_rows']} row(s) in "
                f"{len(result['label_files'])} file(s), {result['matched_rows']} matched to predictions, "
                f"{result['unmatched_rows']} not")
    else:
        result = records = performance.history(config)[-args.last:]
        head = f"realised performance of {config.name} (last {args.last} records)"
    rows = [[r["labels_date"], r["scoring_date"], r["model_version"], r["rows"], _fmt(r["value"]),
             _fmt(r["validation_score"]), r["status"], _fmt(r.get("estimated_value")),
             _fmt(r.get("estimation_error"))] for r in records]
    text = head + "\n" + (_table(rows, ["labels date", "scored", "version", "rows", config.metric, "validation",
                                         "status", "estimated", "realised - estimated"])
                           if rows else "no realised performance recorded")
    _emit(args, result, text)
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from include.ml import monitoring, storage

    config = get_pipeline(args.pipeline)
    links = monitoring.Links(args.airflow_url.rstrip("/")) if args.airflow_url else monitoring.Links.from_env()
    detail = monitoring.pipeline_detail(config, links=links)
    out = Path(args.out)
    storage.write_text(out, monitoring.render_pipeline(detail, links), durable=False)
    _emit(args, detail, f"report of {config.name} ({len(detail['runs'])} run(s), {len(detail['versions'])} "
                        f"version(s)) -> {out}")
    return 0


# -- parser --------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="python -m include.ml", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)

    def add(name: str, func, help_text: str, parent=sub, pipeline: bool = True, json_flag: bool = True,
            changes_registry: bool = False):
        p = parent.add_parser(name, help=help_text, description=help_text)
        if pipeline:
            # which pipeline is never guessed when there is a choice, and never for a registry change
            known = _known_pipelines()
            sole = known[0] if len(known) == 1 and not changes_registry else None
            p.add_argument("--pipeline", required=sole is None, default=sole,
                           help=f"pipeline config name in include/pipelines: {', '.join(known) or 'none yet'}"
                                + (f" (default {sole}, the only one)" if sole else " (required)"))
        if json_flag:
            p.add_argument("--json", action="store_true", help="print JSON instead of text")
        p.set_defaults(func=func)
        return p

    p = add("simulate", cmd_simulate, "write daily batches of the embedded data into the landing folder",
            pipeline=False)
    p.add_argument("--pipeline", action="append", help="only this pipeline (repeatable; default: all)")
    p.add_argument("--start", type=_date, required=True, help="first logical date, YYYY-MM-DD")
    p.add_argument("--days", type=_positive, default=1, help="number of daily batches (default 1)")
    p.add_argument("--drift-from", type=_date, help="switch drift on from this date (default: config)")
    p.add_argument("--rows", type=_positive, help="rows per batch (default: config)")
    p.add_argument("--scoring", action="store_true",
                   help="also deliver data to score for the same dates, and its labels days later")
    p.add_argument("--bad-rows", type=int, default=0, help="with --scoring: unscoreable rows per day (default 0)")

    config = sub.add_parser("config", help="pipeline configs").add_subparsers(dest="config_command", required=True)
    p = add("check", cmd_config_check, "load and validate pipeline configs", parent=config, pipeline=False)
    p.add_argument("--pipeline", action="append", help="only this pipeline (default: all)")
    p = add("schema", cmd_config_schema, "the JSON Schema of a pipeline config "
                                         "(include/pipelines/pipeline.schema.json)",
            parent=config, pipeline=False, json_flag=False)
    p.add_argument("--out", help="file to write (default: stdout)")
    p = add("docs", cmd_config_docs, "the reference of every config key in Markdown (docs/config.md)",
            parent=config, pipeline=False, json_flag=False)
    p.add_argument("--out", help="file to write (default: stdout)")

    p = add("validate", cmd_validate, "validate a batch file against a pipeline's schema and the production "
                                      "model's training data (exit 1 on errors; warnings are listed)")
    p.add_argument("file", help="CSV or Parquet file")

    p = add("drift", cmd_drift, "drift of a batch file against a model version's training data or a file "
                                "(two files without --pipeline: their common columns, typed by the reference)",
            pipeline=False)
    p.add_argument("--pipeline", help="pipeline config name in include/pipelines: "
                                      f"{', '.join(_known_pipelines()) or 'none yet'} (required when there are "
                                      "several, unless --reference is a file)")
    p.add_argument("--current", required=True, help="the batch: CSV or Parquet file")
    p.add_argument("--reference", help="a model version (its stored profile) or a CSV/Parquet file "
                                       "(default: the production version)")

    p = add("train", cmd_train, "train and evaluate a candidate from a file, or the config's source for --ds "
                                "(nothing is registered)")
    p.add_argument("--input", help="CSV or Parquet file (default: the config's source for --ds: its landing file, "
                                   "or its query's rows)")
    p.add_argument("--source-url", help="with a sql source: the SQLAlchemy URL to read through (default: the "
                                        "environment variable the config's source.url_env names)")
    p.add_argument("--out", help="workspace folder (default: a new one under $ML_HOME/runs)")
    p.add_argument("--ds", help="logical date recorded with the data (default: today)")

    models = sub.add_parser("models", help="the model registry").add_subparsers(dest="models_command",
                                                                               required=True)
    add("list", cmd_models_list, "list registered versions (* marks production)", parent=models)
    p = add("show", cmd_models_show, "show one version's metadata", parent=models)
    p.add_argument("version", help="version id, e.g. v0001")
    p = add("promote", cmd_models_promote, "point production at a registered version", parent=models,
            changes_registry=True)
    p.add_argument("version", help="version id, e.g. v0004")
    p.add_argument("--reason", required=True, help="why (kept in the audit log)")
    p = add("rollback", cmd_models_rollback, "point production back at the version before it", parent=models,
            changes_registry=True)
    p.add_argument("--to", help="version to roll back to (default: the one production replaced)")
    p.add_argument("--reason", required=True, help="why (kept in the audit log)")
    add("history", cmd_models_history, "every production switch: time, from, to, actor, reason", parent=models)
    p = add("verify", cmd_models_verify, "check artifacts against the sha256 and signature recorded at "
                                         "registration, and the audit log's chain (exit 1 if one changed)",
            parent=models)
    p.add_argument("version", nargs="?", help="one version (default: all)")
    p = add("sign", cmd_models_sign, "sign versions registered before models were signed (only those whose sha256 "
                                     "still checks out) and the production pointer", parent=models,
            changes_registry=True)
    p.add_argument("--version", help="one version (default: all unsigned ones)")

    keys = sub.add_parser("keys", help="the model signing key").add_subparsers(dest="keys_command", required=True)
    p = add("create", cmd_keys_create, "write a new random signing key (mode 0600) to a file outside the data root",
            parent=keys, pipeline=False)
    p.add_argument("--out", required=True, help="key file to create (must not exist, outside $ML_HOME)")

    p = add("score", cmd_score, "score a CSV or Parquet file in chunks with the production model (or --version)")
    p.add_argument("--input", required=True, help="CSV or Parquet file to score")
    p.add_argument("--output", required=True, help="predictions Parquet file (rejects go beside it)")
    p.add_argument("--version", help="model version (default: production)")
    p.add_argument("--chunk-rows", type=_positive, help="rows per chunk (default: config scoring.chunk_rows)")

    p = add("runs", cmd_runs, "recent training runs: version, metric, drift, branch, production")
    p.add_argument("--last", type=int, default=30, help="how many runs (default 30)")

    p = add("report", cmd_report, "write the pipeline's monitoring report (the dashboard page) as one HTML file")
    p.add_argument("--out", required=True, help="HTML file to write, e.g. report.html")
    p.add_argument("--airflow-url", help="Airflow base URL for the run links (default $AIRFLOW__API__BASE_URL)")

    p = add("performance", cmd_performance, "realised performance: measure the labels delivered on a date "
                                            "(--labels-date), or list what was measured")
    p.add_argument("--labels-date", type=_date, help="measure the label files delivered on this date")
    p.add_argument("--last", type=int, default=30, help="how many records to list (default 30)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except PipelineError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
