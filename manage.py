#!/usr/bin/env python
"""Django's command-line utility for ragapp."""

import os
import sys


def main() -> None:
    """Run a management command, showing configuration errors without a traceback."""
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "ragapp.settings")
    from django.core.exceptions import ImproperlyConfigured
    from django.core.management import execute_from_command_line

    from ragapp.runtime.exceptions import RuntimeSetupError

    try:
        execute_from_command_line(sys.argv)
    except (ImproperlyConfigured, RuntimeSetupError) as exc:
        sys.stderr.write(f"ragapp: {exc}\n")
        sys.exit(2)


if __name__ == "__main__":
    main()
