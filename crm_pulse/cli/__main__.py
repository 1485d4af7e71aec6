"""``python -m crm_pulse.cli``: the ``crm-pulse`` command."""

import sys

from .main import main

sys.exit(main())
