"""The API's resources, one ``APIRouter`` per module; :func:`recognition.app.create_app` includes them."""
