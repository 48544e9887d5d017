"""Commerce sandbox (工商/市场监管): the enterprise registry over ODBC."""
