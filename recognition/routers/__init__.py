"""The API's routers, one ``APIRouter`` per module (the public pages, the API's own documentation,
the case resources); :func:`recognition.app.create_app` includes them."""
