"""Token usage and estimated cost, summed per org, user and client as turns complete."""

from __future__ import annotations

from datetime import date
from typing import Annotated, Literal

from fastapi import APIRouter, Query

from switchboard_common.conversations import UsageTotals
from switchboard_common.envelope import Id
from switchboard_gateway.deps import AccessibleClient, Conversations, Dir, Me
from switchboard_gateway.domain.access import NotFound, check_self_or_admin, require_admin
from switchboard_gateway.routes.errors import COMMON, NOT_FOUND

router = APIRouter(prefix="/v1", tags=["usage"], responses={**COMMON, **NOT_FOUND})


Days = Annotated[int, Query(ge=1, le=366, description="how many days back, today included")]


class DailyUsage(UsageTotals):
    date: date
    """A UTC day."""


class UsageReport(UsageTotals):
    scope: Literal["org", "user", "client"]
    subject_id: str
    """The org, user or client the totals are for."""


@router.get("/usage", response_model=UsageReport, summary="The org's totals (admin)")
async def org_usage(who: Me, store: Conversations) -> UsageReport:
    require_admin(who, "read the org's usage")
    totals = await store.usage(who.org)
    return UsageReport(scope="org", subject_id=who.org, **totals.model_dump())


@router.get("/usage/users/{user_id}", response_model=UsageReport,
            summary="A user's totals over all their clients (the user or an admin)")
async def user_usage(user_id: Id, who: Me, directory: Dir, store: Conversations
                     ) -> UsageReport:
    check_self_or_admin(who, user_id, "read this usage")
    if await directory.get_user(who.org, user_id) is None:
        raise NotFound(f"no user {user_id!r} in this org")
    totals = await store.usage(who.org, user=user_id)
    return UsageReport(scope="user", subject_id=user_id, **totals.model_dump())


@router.get("/clients/{client_id}/usage", response_model=UsageReport,
            summary="A client's totals over all users")
async def client_usage(client: AccessibleClient, who: Me, store: Conversations
                       ) -> UsageReport:
    totals = await store.usage(who.org, client=client.id)
    return UsageReport(scope="client", subject_id=client.id, **totals.model_dump())


@router.get("/usage/daily", response_model=list[DailyUsage],
            summary="The org's totals per UTC day, oldest first (admin)")
async def org_daily(who: Me, store: Conversations, days: Days = 30) -> list[DailyUsage]:
    require_admin(who, "read the org's usage")
    return [DailyUsage(date=d, **t.model_dump())
            for d, t in await store.daily_usage(who.org, None, days)]


@router.get("/clients/{client_id}/usage/daily", response_model=list[DailyUsage],
            summary="A client's totals per UTC day, oldest first")
async def client_daily(client: AccessibleClient, who: Me, store: Conversations,
                       days: Days = 30) -> list[DailyUsage]:
    return [DailyUsage(date=d, **t.model_dump())
            for d, t in await store.daily_usage(who.org, client.id, days)]
