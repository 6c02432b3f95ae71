# The pipeline's Airflow image: the official Airflow 3.3.2 image, this project's pinned lock, and
# the DAG bundle (dags/, include/, plugins/) at /opt/airflow/bundle. Runs as the image's
# non-root `airflow` user. Used by every Airflow service of docker-compose.yaml.
FROM apache/airflow:3.3.2-python3.11

# The exact versions the tests ran with, every file checked against its hash. The lock pins
# apache-airflow==3.3.2 too, so this cannot move Airflow away from the base image's version.
COPY --chown=airflow:root requirements.lock /opt/airflow/requirements.lock
RUN pip install --no-cache-dir --require-hashes -r /opt/airflow/requirements.lock

# The whole bundle in one place: the bundle path goes on sys.path, so DAGs import include.ml;
# .airflowignore keeps the parser in dags/. Plugins load from the same copy at start-up.
ENV ML_BUNDLE_PATH=/opt/airflow/bundle \
    ML_HOME=/opt/airflow/ml-home \
    OMP_NUM_THREADS=1
COPY --chown=airflow:root .airflowignore ${ML_BUNDLE_PATH}/.airflowignore
COPY --chown=airflow:root dags/ ${ML_BUNDLE_PATH}/dags/
COPY --chown=airflow:root include/ ${ML_BUNDLE_PATH}/include/
COPY --chown=airflow:root plugins/ ${ML_BUNDLE_PATH}/plugins/
WORKDIR /opt/airflow
RUN mkdir -p "${ML_HOME}" "${AIRFLOW_HOME}/auth"

# the image's airflow user (UID 50000), never root
USER 50000
