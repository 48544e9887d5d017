"""The API's routers outside ``/v1``: the public pages and the API's own documentation."""
