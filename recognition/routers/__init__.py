"""The API's routers, one ``APIRouter`` per resource: operations, holders (with the hot route's fast
path in ``holders_fast_path``), licences, verification, subscriptions, deliveries, cases and
supervision, the API's documentation, the public pages and the operator console. What they share
comes from :mod:`recognition.dependencies`; :func:`recognition.app.create_app` includes them."""
