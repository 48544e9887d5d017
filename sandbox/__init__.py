"""Department sandboxes (部门模拟系统): tax SOAP, population SQL, commerce ODBC, land XML.

Simulators that speak the protocols real departments speak, filled by one deterministic
generator with realistic, deliberately dirty data. For the demo and the tests only: the
hub itself never imports this package (it reaches the sandboxes through their protocols).
See ``sandbox/CONTRACT.md`` for the shapes they expose.
"""
