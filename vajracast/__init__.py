# The Celery app is loaded with Django so that @shared_task binds to it.
from vajracast.celery import app as celery_app

__version__ = "0.1.0"  # as in pyproject.toml

__all__ = ["__version__", "celery_app"]
