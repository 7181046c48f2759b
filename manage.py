#!/usr/bin/env python
"""Django's command-line utility for the shop."""

import os
import sys


def main() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "core.settings")
    from django.core.exceptions import ImproperlyConfigured
    from django.core.management import execute_from_command_line

    try:
        execute_from_command_line(sys.argv)
    except ImproperlyConfigured as exc:  # a setting the shop cannot start without: say which, no traceback
        sys.exit(f"The shop is not configured: {exc}")


if __name__ == "__main__":
    main()
