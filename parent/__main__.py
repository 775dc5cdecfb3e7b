"""``python -m parent`` — see :mod:`parent.main`."""

import sys

from parent.main import main

sys.exit(main())
