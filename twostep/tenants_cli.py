"""``twostep tenants``: each tenant sends through a Twilio Verify service of its own."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, TypeVar

import click

from shared.errors import ProviderError, TwostepError
from shared.kit.settings import SANDBOX_SERVICE_SID, Settings
from shared.kit.startup import Misconfigured
from shared.tenants.domain import DEFAULT_TENANT
from shared.tenants.models import Tenant
from shared.tenants.passkeys import relying_party, relying_party_of
from shared.tenants.service import (
    NewTenant,
    attach_service,
    create_tenant,
    get_tenant,
    list_tenants,
    profile_of,
    provision_service,
    set_relying_party,
)
from shared.unit_of_work import UnitOfWork
from shared.verify.port import ProviderService
from twostep.common import load_settings, run_in_unit_of_work

if TYPE_CHECKING:
    from shared.verify.twilio import TwilioVerifyClient

T = TypeVar("T")


def ensure_tenant(settings: Settings, tenant: NewTenant) -> tuple[Tenant, bool]:
    """The tenant, made first (with a Verify service of its own) if it does not exist; True
    when it was made now. The default tenant sends through the deployment's service."""

    async def existing(uow: UnitOfWork) -> Tenant | None:
        if tenant.name == DEFAULT_TENANT:
            return await uow.tenants.get_or_create(DEFAULT_TENANT, uow.clock.now())
        return await uow.tenants.get_by_name(tenant.name)

    found = run_in_unit_of_work(settings, existing)
    if found is not None:
        return found, False
    service = asyncio.run(_provision(settings, tenant))
    return run_in_unit_of_work(settings, lambda uow: create_tenant(uow, tenant, service)), True


async def _provision(settings: Settings, tenant: NewTenant) -> ProviderService:
    return await _with_twilio(
        settings,
        "make the tenant's Verify service",
        lambda client: provision_service(client, tenant),
    )


async def _with_twilio(
    settings: Settings, what: str, call: Callable[[TwilioVerifyClient], Awaitable[T]]
) -> T:
    """``call`` on a Twilio client of its own, its refusals one line each."""
    # Only the tenants commands call Twilio: no other command loads its SDK.
    from shared.verify.twilio import TwilioVerifyClient

    try:
        client = TwilioVerifyClient(settings, max_connections=1)
    except Misconfigured as exc:
        raise click.ClickException(f"cannot {what}: {exc}") from exc
    try:
        return await call(client)
    except TwostepError as exc:
        raise click.ClickException(exc.detail) from exc
    except ProviderError as exc:
        raise click.ClickException(f"Twilio refused to {what}: {exc}") from exc
    finally:
        await client.close()


@click.group()
def tenants() -> None:
    """Tenants: each sends through a Twilio Verify service of its own."""


@tenants.command("create")
@click.argument("name")
@click.option(
    "--display-name",
    help="what users read in their codes' messages: the Verify service's friendly name, "
    "at most 30 characters  [default: NAME]",
)
@click.option(
    "--service-sid",
    help="attach an existing Verify service (VA…) instead of making one; its codes must have "
    "at least 6 digits",
)
@click.option(
    "--line-type-check/--no-line-type-check",
    default=None,
    help="look up a number's line type at enrolment  [default: TWOSTEP_LINE_TYPE_CHECK]",
)
@click.option(
    "--sim-swap-check/--no-sim-swap-check",
    default=None,
    help="look up SIM swaps at each SMS or voice login  [default: TWOSTEP_SIM_SWAP_CHECK]",
)
def tenants_create(
    name: str,
    display_name: str | None,
    service_sid: str | None,
    line_type_check: bool | None,
    sim_swap_check: bool | None,
) -> None:
    """Create a tenant, with a Twilio Verify service of its own (made through Twilio's API,
    or the one named)."""
    settings = load_settings("tenants")
    wanted = NewTenant(name, display_name, service_sid, line_type_check, sim_swap_check)
    tenant, made = ensure_tenant(settings, wanted)
    if not made:
        raise click.ClickException(f"a tenant named {name!r} exists already")
    click.echo(_describe(tenant, settings))


@tenants.command("set-service")
@click.argument("name")
@click.option(
    "--service-sid",
    help="attach this existing Verify service (VA…) instead of making a new one",
)
@click.option("--display-name", help="the new service's friendly name  [default: NAME]")
def tenants_set_service(name: str, service_sid: str | None, display_name: str | None) -> None:
    """Give an existing tenant a Verify service of its own (one made before services per
    tenant shares the deployment's until then). Codes already sent stay with their service."""
    settings = load_settings("tenants")
    wanted = NewTenant(name, display_name, service_sid)
    run_in_unit_of_work(settings, lambda uow: get_tenant(uow, name))  # refuse an unknown name
    service = asyncio.run(_provision(settings, wanted))
    tenant = run_in_unit_of_work(settings, lambda uow: attach_service(uow, name, service))
    click.echo(_describe(tenant, settings))


@tenants.command("passkeys")
@click.argument("name")
@click.option(
    "--rp-id", required=True, help="the login site's domain, the passkeys' scope: example.com"
)
@click.option(
    "--origin",
    "origins",
    multiple=True,
    required=True,
    help="an origin the login pages are served from, on the RP id or below it: "
    "https://login.example.com (repeatable; http only for localhost)",
)
def tenants_passkeys(name: str, rp_id: str, origins: tuple[str, ...]) -> None:
    """Let the tenant's users register passkeys for its login site: the relying party is
    checked, set on the tenant's Verify service, then remembered."""
    tenant = set_passkeys(load_settings("tenants"), name, rp_id, origins)
    click.echo(_describe(tenant, load_settings("tenants")))


def set_passkeys(settings: Settings, name: str, rp_id: str, origins: Sequence[str]) -> Tenant:
    """The tenant, its relying party checked, set at Twilio, then remembered; refusals as
    ``click.ClickException``."""
    tenant = run_in_unit_of_work(settings, lambda uow: get_tenant(uow, name))
    if tenant.verify_service_sid is None and tenant.name != DEFAULT_TENANT:
        # It shares the deployment's service: its relying party would be the default tenant's.
        raise click.ClickException(
            f"{name} sends through the default tenant's Verify service; give it its own first: "
            f"twostep tenants set-service {name}"
        )
    try:
        site = relying_party(rp_id, origins, tenant.display_name)
    except TwostepError as exc:
        raise click.ClickException(exc.detail) from exc
    service = profile_of(tenant, settings, _default_service(settings)).service_sid
    asyncio.run(
        _with_twilio(
            settings,
            "set the relying party",
            lambda client: client.configure_passkeys(service, site),
        )
    )
    return run_in_unit_of_work(settings, lambda uow: set_relying_party(uow, tenant, site))


@tenants.command("list")
def tenants_list() -> None:
    """Every tenant and the Verify service it sends through."""
    settings = load_settings("tenants")
    for tenant in run_in_unit_of_work(settings, list_tenants):
        click.echo(_describe(tenant, settings))


@tenants.command("show")
@click.argument("name")
def tenants_show(name: str) -> None:
    """One tenant: its Verify service and number checks."""
    settings = load_settings("tenants")
    click.echo(
        _describe(run_in_unit_of_work(settings, lambda uow: get_tenant(uow, name)), settings)
    )


def _default_service(settings: Settings) -> str:
    return settings.twilio_verify_service_sid or (
        SANDBOX_SERVICE_SID if settings.uses_sandbox else "TWILIO_VERIFY_SERVICE_SID"
    )


def _describe(tenant: Tenant, settings: Settings) -> str:
    profile = profile_of(tenant, settings, _default_service(settings))
    if tenant.verify_service_sid is not None:
        service = tenant.verify_service_sid
    elif tenant.name == DEFAULT_TENANT:
        service = f"{profile.service_sid} (the deployment's)"
    else:
        service = (
            f"{profile.service_sid} (SHARED with the default tenant: "
            f"twostep tenants set-service {tenant.name})"
        )
    asked = (("line type", profile.checks_line_types), ("SIM swap", profile.checks_sim_swaps))
    checks = [name for name, on in asked if on]
    site = relying_party_of(tenant)
    passkeys = f"{site.id} ({', '.join(site.origins)})" if site else "off"
    return (
        f"{tenant.name:<24} {tenant.display_name!r:<32} service {service}; "
        f"number checks: {', '.join(checks) or 'none'}; passkeys: {passkeys}"
    )
