"""``python -m garrison``: the ``garrison`` command."""

import sys

from garrison.cli import main

sys.exit(main())
