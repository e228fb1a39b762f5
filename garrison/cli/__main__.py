"""``python -m garrison.cli``: the ``garrison`` command."""

import sys

from garrison.cli import main

sys.exit(main())
