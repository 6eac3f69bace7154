"""Entry point of the frozen agent: PyInstaller runs this file as `__main__`."""

from __future__ import annotations

import sys

from tapi_agent.app import main

if __name__ == "__main__":
    sys.exit(main())
