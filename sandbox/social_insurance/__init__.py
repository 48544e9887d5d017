"""The social-insurance bureau (人社局): insured persons in a PostgreSQL table read over ODBC."""
