#!/bin/bash
# First start of the compose PostgreSQL: the hub's state database and the population sandbox.
set -euo pipefail
psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" <<SQL
CREATE USER hub WITH PASSWORD '${HUB_DB_PASSWORD}';
CREATE DATABASE hub OWNER hub;
CREATE USER sandbox WITH PASSWORD '${HUB_SANDBOX_DB_PASSWORD}';
CREATE DATABASE population OWNER sandbox;
SQL
