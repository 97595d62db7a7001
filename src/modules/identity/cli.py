"""The identity module's own commands: `tessera users ...`."""

from __future__ import annotations

from typing import TYPE_CHECKING

import rich_click as click

from contracts import ContractError
from modules.identity.container import IdentityContainer

if TYPE_CHECKING:
    from app.kernel.module import ModuleCommands

__all__ = ("users",)


@click.group()
def users() -> None:
    """Administer user accounts."""


@users.command("make-admin")
@click.argument("email")
@click.pass_obj
def make_admin(commands: ModuleCommands, email: str) -> None:
    """Grant EMAIL's user the administrator role (how the first administrator comes to be)."""
    try:
        user = commands.run(IdentityContainer.service, lambda service: service.make_admin(email))
    except ContractError as exc:
        raise click.ClickException(exc.detail) from None
    click.echo(f"{user.email} ({user.id}) is now an administrator")
