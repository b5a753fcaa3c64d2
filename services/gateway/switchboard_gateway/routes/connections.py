"""A client's own servers for the calendar and mail tools (CalDAV, SMTP). Members with access
read them with passwords masked; only admins change them. Without them the deployment's
default servers are used. Destinations that resolve to non-public or the platform's own
addresses are refused (422, error type `unsafe_destination`) unless OUTBOUND_ALLOW permits
them (`switchboard_common.egress`); passwords are stored encrypted."""

from __future__ import annotations

from fastapi import APIRouter, HTTPException, Response, status

from switchboard_common.connections import ClientConnections
from switchboard_common.egress import EgressPolicy, UnsafeDestination
from switchboard_common.secretbox import UndecryptableSecret
from switchboard_gateway.deps import AccessibleClient, Config, Connections, Me
from switchboard_gateway.domain.access import require_admin
from switchboard_gateway.routes.errors import COMMON, NOT_FOUND, field_error

router = APIRouter(prefix="/v1/clients/{client_id}/connections", tags=["connections"],
                   responses={**COMMON, **NOT_FOUND})


@router.get("", response_model=ClientConnections,
            summary="The client's CalDAV and SMTP servers (passwords masked)")
async def get_connections(client: AccessibleClient, who: Me, store: Connections
                          ) -> ClientConnections:
    try:
        return await store.get(who.org, client.id) or ClientConnections()
    except UndecryptableSecret as exc:
        # The operator's to fix (a key dropped from SECRETS_KEYS too early); PUT replaces it.
        raise HTTPException(status.HTTP_500_INTERNAL_SERVER_ERROR, str(exc)) from None


@router.put("", response_model=ClientConnections,
            summary="Set the client's CalDAV and/or SMTP servers (admin)")
async def put_connections(body: ClientConnections, client: AccessibleClient, who: Me,
                          store: Connections, config: Config) -> ClientConnections:
    require_admin(who, "change a client's servers")
    await _check_destinations(body, config.egress_policy())
    await store.put(who.org, client.id, body)
    return body


@router.delete("", status_code=204, response_class=Response,
               summary="Go back to the deployment's default servers (admin)")
async def delete_connections(client: AccessibleClient, who: Me, store: Connections
                             ) -> Response:
    require_admin(who, "change a client's servers")
    await store.delete(who.org, client.id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


async def _check_destinations(body: ClientConnections, policy: EgressPolicy) -> None:
    try:
        if body.caldav is not None:
            await policy.check_url(body.caldav.url)
    except UnsafeDestination as exc:
        raise field_error(("body", "caldav", "url"), str(exc), UnsafeDestination.kind) from None
    try:
        if body.smtp is not None:
            await policy.check(body.smtp.host, body.smtp.port)
    except UnsafeDestination as exc:
        raise field_error(("body", "smtp", "host"), str(exc), UnsafeDestination.kind) from None
