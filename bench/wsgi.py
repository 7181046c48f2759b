"""WSGI entry point of the benchmark: `core.wsgi` with `bench.settings` (adds `/bench/floor`)."""

import os

os.environ["DJANGO_SETTINGS_MODULE"] = "bench.settings"

from core.wsgi import application

__all__ = ["application"]
