"""Land sandbox (国土/不动产): XML exchange packages with an XSD in an outbox directory."""
