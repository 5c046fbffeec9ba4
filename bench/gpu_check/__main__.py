"""``python -m bench.gpu_check``: see :mod:`bench.gpu_check.runner`."""

import sys

from bench.gpu_check.runner import main

sys.exit(main())
