"""The hub's main job as Airflow task bodies (主作业流水线): the thin DAG files in ``dags/`` call these.

extract → stage → map → validate → resolve → publish → push, plus housekeeping; every step
works on whole batches and passes references to staged Parquet, never the data itself.
"""
