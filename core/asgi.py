"""ASGI entry point (not used by the default deployment, which runs gunicorn with WSGI threads)."""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "core.settings")

application = get_asgi_application()
