"""TAPI Agent: a desktop screen-pop agent for Reapit's Notifications API."""

from __future__ import annotations

__version__ = "0.1.0"
