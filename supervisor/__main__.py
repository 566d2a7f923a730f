"""Entry point: `python -m supervisor <command>`."""

import sys

from supervisor.cli import main

sys.exit(main())
