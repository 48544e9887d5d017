"""Tax bureau sandbox (税务): taxpayer registry behind a SOAP 1.1 WebService."""
