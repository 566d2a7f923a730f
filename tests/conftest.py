"""Fixtures: one PostgreSQL server per session, a fresh database per test."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator

import pytest
from psycopg_pool import AsyncConnectionPool

from config import Settings, load_settings
from supervisor import migrations
from tests.helpers import make_env
from tests.pg import Server


@pytest.fixture(scope="session")
def pg_server() -> Iterator[Server]:
    server = Server().start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def template_db(pg_server: Server) -> Iterator[str]:
    """A database migrated once per session, used as the template of every test database."""
    url = pg_server.create_database(prefix="kiebot_tmpl")
    asyncio.run(migrations.apply_pending(url))
    try:
        yield pg_server.template_from(url)
    finally:
        pg_server.drop_database(url)


@pytest.fixture
def database_url(pg_server: Server, template_db: str) -> Iterator[str]:
    """A fresh, fully migrated database for this test."""
    url = pg_server.create_database(template=template_db)
    try:
        yield url
    finally:
        pg_server.drop_database(url)


@pytest.fixture
def empty_database_url(pg_server: Server) -> Iterator[str]:
    """A fresh database with no schema at all."""
    url = pg_server.create_database()
    try:
        yield url
    finally:
        pg_server.drop_database(url)


@pytest.fixture
def settings(database_url: str) -> Settings:
    return load_settings(make_env(database_url))


@pytest.fixture
async def pool(database_url: str) -> AsyncIterator[AsyncConnectionPool]:
    async with AsyncConnectionPool(database_url, min_size=1, max_size=5, open=False) as p:
        yield p
