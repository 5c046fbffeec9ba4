"""``python -m svconv``: the ``svconv`` command."""

import sys

from svconv_cli.main import main

sys.exit(main())
