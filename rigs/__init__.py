"""The top floor (rigs): the ``hub`` command's assembly and the rigs that run the hub for real.

The demo (``hub demo``), Airflow standalone with the API and sandboxes (``hub up``), the
Airflow runner and the main job, the sandboxes' CLI and Airflow Connections, and the test
databases on shared servers. Only this room (and ``bench``, ``tests``) may import ``sandbox``.
"""
