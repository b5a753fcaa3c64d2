"""Query parameters shared by the paginated routes."""

from __future__ import annotations

from typing import Annotated

from fastapi import Query

MAX_OFFSET = 1_000_000_000
"""Far past any page a client can reach, and inside the signed 64-bit range Valkey takes for
list and sorted-set indexes: a larger offset is a 422, not a storage error (503)."""

Offset = Annotated[int, Query(ge=0, le=MAX_OFFSET, description="how many items to skip")]
