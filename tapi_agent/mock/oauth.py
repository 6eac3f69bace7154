"""Reapit Connect (OAuth 2 / OIDC) for the mock: authorize, token, JWKS, logout."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter(tags=["reapit connect"])
