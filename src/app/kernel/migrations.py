"""Alembic per module: each module's history under ``migrations/<module>/``, its own version table.

Every module's ``env.py`` is two lines that call :func:`run_env`; the engine, schema and
version table come from here, so a module's schema moves with it when it is extracted.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy.schema import CreateSchema

from app.kernel.paths import MIGRATIONS_DIR

if TYPE_CHECKING:
    from alembic.config import Config
    from sqlalchemy import Connection, MetaData

    from app.kernel.db import Database

__all__ = ("MigrationState", "Migrations", "run_env")


@dataclass(frozen=True, slots=True)
class MigrationState:
    module: str
    current: str | None
    head: str | None

    @property
    def is_current(self) -> bool:
        return self.current == self.head


class Migrations:
    """The migration history of one module, applied to that module's database."""

    __slots__ = ("database", "location")

    def __init__(self, database: Database, location: str | Path | None = None) -> None:
        self.database = database
        self.location = Path(location) if location else MIGRATIONS_DIR / database.module

    @property
    def version_table(self) -> str:
        return f"alembic_version_{self.database.module}"

    def config(self) -> Config:
        from alembic.config import Config  # alembic, here and below: a serving worker never loads it

        config = Config()
        config.set_main_option("script_location", str(self.location))
        config.attributes["version_table"] = self.version_table
        config.attributes["schema"] = self.database.schema
        return config

    def head(self) -> str | None:
        from alembic.script import ScriptDirectory

        return ScriptDirectory.from_config(self.config()).get_current_head()

    async def prepare(self) -> None:
        """What must exist before the module's own connections can open: on PostgreSQL with
        ``database.module_roles``, its role, owning its schema. Nothing otherwise."""
        if self.database.role is not None:
            await _give_schema_to_role(self.database)

    async def upgrade(self, revision: str = "head") -> None:
        """Bring the database up to ``revision``; running it again changes nothing."""
        await self.prepare()
        async with self.database.engine.begin() as connection:
            if self.database.schema is not None and self.database.role is None:  # (a role's: made above)
                await connection.execute(CreateSchema(self.database.schema, if_not_exists=True))
            await connection.run_sync(self._run, "upgrade", revision)

    async def downgrade(self, revision: str = "base") -> None:
        async with self.database.engine.begin() as connection:
            await connection.run_sync(self._run, "downgrade", revision)

    async def current(self) -> str | None:
        if not self.database.exists():
            return None  # nothing to look at, and looking would make an empty file
        async with self.database.engine.connect() as connection:
            return await connection.run_sync(self._current_revision)

    async def state(self) -> MigrationState:
        return MigrationState(module=self.database.module, current=await self.current(), head=self.head())

    def _run(self, connection: Connection, action: str, revision: str) -> None:
        from alembic import command

        config = self.config()
        config.attributes["connection"] = connection
        getattr(command, action)(config, revision)

    def _current_revision(self, connection: Connection) -> str | None:
        from alembic.runtime.migration import MigrationContext

        context = MigrationContext.configure(
            connection,
            opts={
                "version_table": self.version_table,
                "version_table_schema": self.database.schema,
            },
        )
        return context.get_current_revision()


def run_env(context: Any, target_metadata: MetaData) -> None:
    """The body of every module's ``env.py``: migrate over the connection Tessera hands in."""
    config = context.config
    connection = config.attributes.get("connection")
    if connection is None:
        raise RuntimeError("run migrations through `tessera db upgrade`, not the alembic command")
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        version_table=config.attributes["version_table"],
        version_table_schema=config.attributes["schema"],
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


async def _give_schema_to_role(database: Database) -> None:
    """Make the module's role if it is missing, and give it the module's schema and all in it.

    As the URL's user, who must be allowed to: the role owns the schema (migrations run as
    it), may use no other schema, and cannot log in; the URL's user is made a member so
    that its connections may act as it. Tables made before the module had a role change hands.
    """
    from sqlalchemy import text
    from sqlalchemy.ext.asyncio import create_async_engine
    from sqlalchemy.pool import NullPool

    role, schema = database.role, database.schema
    assert role is not None
    assert schema is not None
    administrator = create_async_engine(database.url, poolclass=NullPool)
    try:
        async with administrator.begin() as connection:
            found = await connection.execute(
                text("SELECT 1 FROM pg_roles WHERE rolname = :role"), {"role": role}
            )
            if found.scalar() is None:
                await connection.exec_driver_sql(f'CREATE ROLE "{role}" NOLOGIN')
            user = (await connection.execute(text("SELECT current_user"))).scalar_one()
            if user != role:
                await connection.exec_driver_sql(f'GRANT "{role}" TO "{user}"')
            await connection.exec_driver_sql(f'CREATE SCHEMA IF NOT EXISTS "{schema}" AUTHORIZATION "{role}"')
            await connection.exec_driver_sql(f'ALTER SCHEMA "{schema}" OWNER TO "{role}"')
            others = await connection.execute(text(_NOT_THE_ROLES), {"schema": schema, "role": role})
            for (name,) in others:
                await connection.exec_driver_sql(f'ALTER TABLE "{schema}"."{name}" OWNER TO "{role}"')
    finally:
        await administrator.dispose()


# The schema's tables, views and free-standing sequences another role owns (a table's own
# sequences and indexes change hands with it).
_NOT_THE_ROLES = """
SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = :schema AND pg_get_userbyid(c.relowner) <> :role
  AND (c.relkind IN ('r', 'p', 'v', 'm', 'f')
       OR (c.relkind = 'S' AND NOT EXISTS (
             SELECT 1 FROM pg_depend d WHERE d.objid = c.oid AND d.deptype IN ('a', 'i'))))
"""
