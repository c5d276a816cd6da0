"""``python -m gradtx``: see :mod:`gradtx.cli`."""

import sys

from gradtx.cli import main

sys.exit(main())
