"""Model code of the shipped pipelines: functions a config names in ``model.factory`` and
``model.feature_code`` (see docs/notebook-to-pipeline.md). Reviewed code of the bundle, like the DAGs."""
