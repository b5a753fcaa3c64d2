"""The org's consumption limits and monthly token budget: read by every member, set by admins
(defaults come from the gateway's settings; see docs/security.md)."""

from __future__ import annotations

from fastapi import APIRouter
from pydantic import BaseModel

from switchboard_common.conversations import ConversationStore, budget_tokens, month_usage_key
from switchboard_common.envelope import utcnow
from switchboard_gateway.deps import Conversations, Limits, Me
from switchboard_gateway.domain.access import require_admin
from switchboard_gateway.domain.limits import LimitsUpdate, OrgLimits
from switchboard_gateway.routes.errors import COMMON

router = APIRouter(prefix="/v1", tags=["limits"], responses=COMMON)


class LimitsReport(BaseModel):
    org: str
    limits: OrgLimits
    month: str
    """The budget's month (UTC, YYYY-MM)."""
    used_tokens: int
    """Tokens counted against this month's budget so far."""


async def _report(org: str, limits: OrgLimits, store: ConversationStore) -> LimitsReport:
    now = utcnow()
    usage = await store.month_usage(month_usage_key(org, now))
    return LimitsReport(org=org, limits=limits, month=f"{now:%Y-%m}",
                        used_tokens=budget_tokens(usage))


@router.get("/limits", response_model=LimitsReport, summary="The org's limits and budget")
async def get_limits(who: Me, limiter: Limits, store: Conversations) -> LimitsReport:
    return await _report(who.org, await limiter.org_limits(who.org), store)


@router.put("/limits", response_model=LimitsReport,
            summary="Override the org's limits or budget (admin)")
async def put_limits(change: LimitsUpdate, who: Me, limiter: Limits, store: Conversations
                     ) -> LimitsReport:
    require_admin(who, "set the org's limits")
    return await _report(who.org, await limiter.update(who.org, change), store)
