"""ASGI entry point: `uvicorn main:app` from the backend folder."""

from app.factory import create_app

app = create_app()
