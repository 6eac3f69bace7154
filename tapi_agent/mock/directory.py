"""`GET /negotiators`, `GET /negotiators/{id}` and `GET /contacts` over the seed data."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter(tags=["directory"])
