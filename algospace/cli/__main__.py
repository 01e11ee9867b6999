"""``python -m algospace.cli``: the ``algospace`` command."""

import sys

from algospace.cli.main import main

sys.exit(main())
