"""Identifiers (代码标识), one small module each, shaped like python-stdnum; nothing of the hub is imported here."""
