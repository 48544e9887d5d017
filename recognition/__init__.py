"""Mutual recognition of results across departments (跨部门结果互认): the API, push and audit.

Portals and departments read licences and approval results through a scoped API; departments
subscribed to licence events receive them by signed webhook or SOAP; every read, verification
and delivery is written to a hash-chained audit log before the answer leaves the hub.
"""
