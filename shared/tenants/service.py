"""Tenants: a login server's world, apart from every other tenant's down to Twilio.

Each tenant sends through a Twilio Verify service of its own — its codes, verifications, Twilio's
per-number limits and the name in its messages are its own — made through Twilio's API when the
tenant is created, or an existing one the operator attaches. The ``default`` tenant (and tenants
made before services per tenant) send through the deployment's ``TWILIO_VERIFY_SERVICE_SID``.
A service must send codes of at least six digits (NIST SP 800-63B 5.1.3.2 asks for six).
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from cachetools import TTLCache

from shared.errors import (
    Conflict,
    InvalidInput,
    NotFound,
    ProviderError,
    ProviderTransientError,
)
from shared.kit.settings import Settings
from shared.tenants.models import Tenant
from shared.unit_of_work import UnitOfWork
from shared.verify.port import ProviderService, RelyingParty, VerifyServices

MIN_CODE_LENGTH = 6
TENANT_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
# Twilio's rule for a service's friendly name: up to 30 characters, letters, digits, spaces,
# '-' and '_', and no more than four digits (more look like a code to carriers' filters).
_DISPLAY_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9 _-]{0,29}$")
_MAX_DIGITS = 4
# Tenants change rarely; a worker looks each up again after this long.
_PROFILE_SECONDS = 60.0


@dataclass(frozen=True, slots=True)
class TenantProfile:
    """What a worker needs to know of a tenant to send its codes."""

    tenant_id: uuid.UUID
    service_sid: str
    checks_line_types: bool
    checks_sim_swaps: bool


@dataclass(frozen=True, slots=True)
class NewTenant:
    name: str
    display_name: str | None = None
    # An existing Verify service to attach instead of making one.
    service_sid: str | None = None
    line_type_check: bool | None = None
    sim_swap_check: bool | None = None


def validate_display_name(display_name: str) -> str:
    if (
        not _DISPLAY_NAME.match(display_name)
        or sum(c.isdigit() for c in display_name) > _MAX_DIGITS
    ):
        raise InvalidInput(
            "a display name is what users read in their messages: 1-30 letters, digits, spaces, "
            f"'_' or '-', with at most {_MAX_DIGITS} digits (Twilio's rule)"
        )
    return display_name


def check_service(service: ProviderService) -> ProviderService:
    if service.code_length < MIN_CODE_LENGTH:
        raise InvalidInput(
            f"Verify service {service.sid} sends {service.code_length}-digit codes; twostep needs "
            f"at least {MIN_CODE_LENGTH} (set its code length in Twilio's console)"
        )
    return service


async def service_problems(services: VerifyServices, sid: str) -> list[str]:
    """What is wrong with the deployment's own Verify service, if Twilio can say right now (a
    worker asks before it starts: a wrong SID or 4-digit codes are refused, not found out)."""
    try:
        check_service(await services.fetch_service(sid))
    except InvalidInput as exc:
        return [exc.detail]
    except ProviderTransientError:
        return []  # Twilio is unreachable now: the sends will retry and say so
    except ProviderError as exc:
        return [f"TWILIO_VERIFY_SERVICE_SID {sid}: Twilio refuses it ({exc.message})"]
    return []


async def provision_service(services: VerifyServices, tenant: NewTenant) -> ProviderService:
    """The tenant's Verify service: the one named, checked, or a new one. Called before the
    tenant's row is written, outside any transaction (it is a call to Twilio)."""
    if tenant.service_sid is not None:
        if not re.fullmatch(r"VA[0-9a-fA-F]{32}", tenant.service_sid):
            raise InvalidInput("a Verify service SID is VA followed by 32 hex digits")
        return check_service(await services.fetch_service(tenant.service_sid))
    display_name = validate_display_name(tenant.display_name or _display_name_of(tenant.name))
    return check_service(await services.create_service(display_name, MIN_CODE_LENGTH))


def _display_name_of(name: str) -> str:
    """A tenant's name as Twilio takes a friendly name: other characters become spaces, and
    digits past the fourth are left out."""
    kept, digits = [], 0
    for char in re.sub(r"[^A-Za-z0-9 _-]", " ", name):
        digits += char.isdigit()
        if not (char.isdigit() and digits > _MAX_DIGITS):
            kept.append(char)
    return "".join(kept)[:30].strip(" _-") or "twostep"


async def create_tenant(uow: UnitOfWork, tenant: NewTenant, service: ProviderService) -> Tenant:
    if not TENANT_NAME.match(tenant.name):
        raise InvalidInput("a tenant name is 1-64 letters, digits, '.', '_' or '-'")
    if await uow.tenants.get_by_name(tenant.name) is not None:
        raise Conflict(f"a tenant named {tenant.name!r} exists already")
    row = Tenant(
        id=uuid.uuid4(),
        name=tenant.name,
        display_name=service.friendly_name[:30],
        verify_service_sid=service.sid,
        line_type_check=tenant.line_type_check,
        sim_swap_check=tenant.sim_swap_check,
        created_at=uow.clock.now(),
    )
    await uow.tenants.add(row)
    return row


async def attach_service(uow: UnitOfWork, name: str, service: ProviderService) -> Tenant:
    """Give a tenant (one made before services per tenant, say) a Verify service of its own.
    Verifications already sent stay with the service they were sent through."""
    tenant = await get_tenant(uow, name)
    await uow.tenants.set_service(tenant.id, service.sid, service.friendly_name[:30])
    tenant.verify_service_sid, tenant.display_name = service.sid, service.friendly_name[:30]
    return tenant


async def set_relying_party(uow: UnitOfWork, tenant: Tenant, site: RelyingParty) -> Tenant:
    """Remember the tenant's relying party, once its Verify service took it."""
    await uow.tenants.set_relying_party(tenant.id, site.id, list(site.origins))
    tenant.passkey_rp_id, tenant.passkey_origins = site.id, list(site.origins)
    return tenant


async def get_tenant(uow: UnitOfWork, name: str) -> Tenant:
    tenant = await uow.tenants.get_by_name(name)
    if tenant is None:
        raise NotFound(f"no tenant named {name!r} (twostep tenants create {name})")
    return tenant


async def list_tenants(uow: UnitOfWork) -> Sequence[Tenant]:
    return await uow.tenants.list_all()


def profile_of(tenant: Tenant, settings: Settings, default_service: str) -> TenantProfile:
    return TenantProfile(
        tenant_id=tenant.id,
        service_sid=tenant.verify_service_sid or default_service,
        checks_line_types=settings.checks_line_types
        if tenant.line_type_check is None
        else tenant.line_type_check,
        checks_sim_swaps=settings.checks_sim_swaps
        if tenant.sim_swap_check is None
        else tenant.sim_swap_check,
    )


class TenantDirectory:
    """The worker's view of tenants, each read at most once a minute per process."""

    def __init__(
        self,
        reading: Callable[[], UnitOfWork],
        settings: Settings,
        default_service: str,
        ttl_seconds: float = _PROFILE_SECONDS,
    ) -> None:
        self._reading = reading
        self._settings = settings
        self._default_service = default_service
        self._known: TTLCache[uuid.UUID, TenantProfile] = TTLCache(10_000, ttl=ttl_seconds)

    async def profile(self, tenant_id: uuid.UUID) -> TenantProfile:
        known = self._known.get(tenant_id)
        if known is not None:
            return known
        async with self._reading() as uow:
            tenant = await uow.tenants.get(tenant_id)
        if tenant is None:  # rows always name an existing tenant (a foreign key)
            raise NotFound(f"no tenant {tenant_id}")
        profile = self._known[tenant_id] = profile_of(tenant, self._settings, self._default_service)
        return profile
