# The hub image: Airflow 3.3 (official image: Celery provider, Redis client, psycopg2) plus the
# hub's packages, DAGs, ODBC drivers and airflow.cfg. Every service in docker-compose.yml runs it.
FROM apache/airflow:3.3.2-python3.11

USER root
# unixODBC with Debian's open drivers (PostgreSQL, MariaDB, SQLite, FreeTDS for SQL Server),
# a CJK font for licence PDFs, curl for health checks.
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      unixodbc odbc-postgresql odbc-mariadb libsqliteodbc tdsodbc fonts-wqy-zenhei curl \
 && apt-get clean && rm -rf /var/lib/apt/lists/* \
 && mkdir -p /opt/hub/var /opt/hub/keys && chown -R airflow:root /opt/hub

USER airflow
WORKDIR /opt/hub
COPY --chown=airflow:root requirements.lock pyproject.toml README.md ./
# The hub's own lock file (the Celery provider, Celery and its Redis client included, as `make venv` installs
# them), with Airflow itself held at the image's version.
RUN pip install --no-cache-dir "apache-airflow==${AIRFLOW_VERSION}" -r requirements.lock
COPY --chown=airflow:root . /opt/hub
RUN pip install --no-cache-dir --no-deps -e /opt/hub

# AIRFLOW_HOME is the repository, as on a developer machine: airflow.cfg and dags/ live here.
ENV AIRFLOW_HOME=/opt/hub \
    HUB_HOME=/opt/hub/var \
    ODBCSYSINI=/opt/hub/etc/odbc \
    ODBCINI=/opt/hub/etc/odbc/odbc.ini
