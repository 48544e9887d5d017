"""Public-security sandbox (公安): the population registry (人口库) as SQL."""
