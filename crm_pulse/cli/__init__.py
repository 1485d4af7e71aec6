"""The ``crm-pulse`` command.

Every failure a user can cause (a bad file, a bad option, bad data in strict mode) ends with a
one-paragraph message on stderr and a non-zero exit code, never a traceback:
0 success, 1 bad data in ``--strict`` mode, 2 bad usage or configuration.
"""

from .main import main

__all__ = ["main"]
