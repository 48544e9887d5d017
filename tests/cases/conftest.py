"""Fixtures of the case tests: the case world on SQLite and PostgreSQL, and an API client over it."""

from tests.cases.world import api, city  # noqa: F401  (fixtures, registered by being named here)
