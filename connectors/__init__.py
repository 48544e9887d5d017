"""Department connectors (部门数据接入): one small protocol, one module per wire protocol.

A connector knows a protocol (SOAP, SQL, XML packages), never a department: departments
are configuration — a mapping file's ``source:`` block plus an Airflow Connection.
See :mod:`connectors.base` for the protocol and :mod:`connectors.sync` for how batches
are staged and state advanced.
"""
