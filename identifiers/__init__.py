"""Identifiers (代码标识), one small module each, shaped like python-stdnum; nothing of the hub is imported here
but its light clock (:mod:`hub.clock`, "today" for birth dates) and the invisible-character table."""
