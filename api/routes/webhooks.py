"""Webhook endpoints and their deliveries, for an `admin` key, on its tenant."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Response

from api.deps import AdminKey, ReadingUowDep, ResourceId, UowDep, WebhooksDep, parse_id
from api.openapi import KEYED, problems
from api.webhook_schemas import (
    WebhookDeliveriesOut,
    WebhookDeliveryOut,
    WebhookEndpointCreate,
    WebhookEndpointOut,
    WebhookEndpointsOut,
    WebhookEndpointWithSecret,
)
from shared.webhooks.domain import DeliveryStatus

router = APIRouter(tags=["webhooks"], responses=KEYED)


@router.post(
    "/v1/webhook-endpoints",
    status_code=201,
    response_model=WebhookEndpointWithSecret,
    responses=problems(403, 413, 415, 422),
)
async def create_endpoint(
    body: WebhookEndpointCreate, uow: UowDep, api_key: AdminKey, webhooks: WebhooksDep
) -> WebhookEndpointWithSecret:
    """Register a receiver of the tenant's events. Its signing secret is in this answer only."""
    endpoint = await webhooks.create(uow, api_key, body.url, body.events)
    return WebhookEndpointWithSecret.with_secret(endpoint)


@router.get("/v1/webhook-endpoints", response_model=WebhookEndpointsOut, responses=problems(403))
async def list_endpoints(uow: ReadingUowDep, api_key: AdminKey) -> WebhookEndpointsOut:
    """The tenant's receivers (never their secrets)."""
    endpoints = await uow.webhook_endpoints.active(api_key.tenant_id)
    return WebhookEndpointsOut(endpoints=[WebhookEndpointOut.from_row(e) for e in endpoints])


@router.delete(
    "/v1/webhook-endpoints/{endpoint_id}",
    status_code=204,
    response_class=Response,
    responses=problems(403, 404),
)
async def delete_endpoint(
    endpoint_id: ResourceId, uow: UowDep, api_key: AdminKey, webhooks: WebhooksDep
) -> Response:
    """Stop sending to a receiver; its waiting deliveries fail."""
    await webhooks.delete(uow, api_key, parse_id(endpoint_id, "webhook endpoint"))
    return Response(status_code=204)


@router.post(
    "/v1/webhook-endpoints/{endpoint_id}/rotate-secret",
    response_model=WebhookEndpointWithSecret,
    responses=problems(403, 404),
)
async def rotate_secret(
    endpoint_id: ResourceId, uow: UowDep, api_key: AdminKey, webhooks: WebhooksDep
) -> WebhookEndpointWithSecret:
    """A new secret, in this answer only. Deliveries carry a signature with each secret until
    `previous_secret_valid_until`, so the receiver can switch without losing one."""
    endpoint = await webhooks.rotate(uow, api_key, parse_id(endpoint_id, "webhook endpoint"))
    return WebhookEndpointWithSecret.with_secret(endpoint)


@router.get(
    "/v1/webhook-deliveries",
    response_model=WebhookDeliveriesOut,
    responses=problems(403, 404, 422),
)
async def list_deliveries(
    uow: ReadingUowDep,
    api_key: AdminKey,
    endpoint_id: Annotated[
        str | None,
        Query(
            max_length=64,
            description="Only this endpoint's; a string that is not a UUID is not found (404)",
            json_schema_extra={"format": "uuid"},
        ),
    ] = None,
    status: DeliveryStatus | None = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> WebhookDeliveriesOut:
    """The tenant's deliveries, newest first: what was sent, how often, what the receiver said."""
    rows = await uow.webhook_deliveries.page(
        api_key.tenant_id,
        endpoint_id=parse_id(endpoint_id, "webhook endpoint") if endpoint_id else None,
        status=status,
        limit=limit,
    )
    return WebhookDeliveriesOut(deliveries=[WebhookDeliveryOut.from_row(row) for row in rows])


@router.post(
    "/v1/webhook-deliveries/{delivery_id}/redeliver",
    status_code=202,
    response_model=WebhookDeliveryOut,
    responses=problems(403, 404),
)
async def redeliver(
    delivery_id: ResourceId, uow: UowDep, api_key: AdminKey, webhooks: WebhooksDep
) -> WebhookDeliveryOut:
    """Send a delivery again, now, whatever became of it (with a fresh 24 h of retries)."""
    delivery = await webhooks.redeliver(uow, api_key, parse_id(delivery_id, "webhook delivery"))
    return WebhookDeliveryOut.from_row(delivery)
