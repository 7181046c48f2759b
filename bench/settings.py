"""Settings of the benchmark's gunicorn: the production settings plus a urlconf with a trivial floor view.

Nothing here is used by the shop itself; `bench/run.py` points DJANGO_SETTINGS_MODULE here.
"""

import os
from pathlib import Path

from core.settings import *  # noqa: F403

ROOT_URLCONF = "bench.urls"
# collectstatic of the benchmark goes to a throw-away folder, not the checkout's staticfiles/.
STATIC_ROOT = Path(os.environ.get("BENCH_STATIC_ROOT", str(STATIC_ROOT)))  # noqa: F405
