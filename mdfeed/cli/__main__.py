"""``python -m mdfeed.cli``: the ``mdfeed`` command."""

import sys

from mdfeed.cli.main import main

sys.exit(main())
