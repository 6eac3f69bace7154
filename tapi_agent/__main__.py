"""`python -m tapi_agent` runs the agent."""

from __future__ import annotations

import sys

from tapi_agent.app import main

if __name__ == "__main__":
    sys.exit(main())
