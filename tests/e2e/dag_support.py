"""Helpers for dag.test() of a training DAG built in the test from a changed config."""

from __future__ import annotations


def serialized(dag):
    """``dag`` written to the metadata database as the DAG processor would: dag.test() runs only a
    serialized DAG, and one built from a config outside include/pipelines has not been parsed. The
    bundle's row is committed first: the DAG's row refers to it."""
    from airflow.dag_processing.bundles.manager import DagBundlesManager
    from airflow.dag_processing.collection import update_dag_parsing_results_in_db
    from airflow.serialization.serialized_objects import LazyDeserializedDAG
    from airflow.utils.session import create_session

    with create_session() as session:
        DagBundlesManager().sync_bundles_to_db(session=session)
    with create_session() as session:
        update_dag_parsing_results_in_db("ml_pipeline", None, [LazyDeserializedDAG.from_dag(dag)], {}, None, set(),
                                         session=session)
    return dag
