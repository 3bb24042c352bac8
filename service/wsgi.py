"""WSGI entry point for gunicorn: the app with its settings from the environment."""
from service import create_app

app = create_app()
