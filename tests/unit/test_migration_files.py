"""The migration files themselves: naming, numbering and the no-destruction rule (no DB)."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from supervisor.migrations import MIGRATIONS_DIR, MigrationError, destructive_statements, discover

NAME_RE = re.compile(r"^\d{3}_[a-z0-9]+(_[a-z0-9]+)*\.sql$")
CREATE = "CREATE TABLE t (id INT);\n"


@pytest.fixture
def migrations_dir(tmp_path: Path) -> Path:
    """A copy of the real migrations directory to break."""
    target = tmp_path / "migrations"
    shutil.copytree(MIGRATIONS_DIR, target)
    return target


def write(directory: Path, name: str, sql: str = CREATE) -> Path:
    path = directory / name
    path.write_text(sql, encoding="utf-8")
    return path


def next_number(directory: Path) -> int:
    return len(list(directory.glob("*.sql"))) + 1


def refusal(directory: Path) -> str:
    with pytest.raises(MigrationError) as info:
        discover(directory)
    return str(info.value)


def test_real_migrations_are_numbered_from_001_in_order() -> None:
    found = discover()
    assert found, "no migrations found"
    assert [m.version for m in found] == list(range(1, len(found) + 1))
    for migration in found:
        assert NAME_RE.match(migration.filename), migration.filename
        assert migration.filename == f"{migration.version:03d}_{migration.name}.sql"
        assert len(migration.checksum) == 64
        assert migration.sql == migration.path.read_text(encoding="utf-8")


def test_every_sql_file_in_the_directory_is_discovered() -> None:
    on_disk = sorted(p.name for p in MIGRATIONS_DIR.glob("*.sql"))
    assert [m.filename for m in discover()] == on_disk


def test_no_real_migration_destroys_data() -> None:
    for migration in discover():
        assert destructive_statements(migration.sql) == [], migration.filename


def test_the_copy_is_valid_before_it_is_broken(migrations_dir: Path) -> None:
    assert [m.filename for m in discover(migrations_dir)] == [m.filename for m in discover()]


@pytest.mark.parametrize("name", ["5_short.sql", "005-dash.sql", "005_CamelCase.sql",
                                  "005_trailing_.sql", "005__double.sql", "005_spa ce.sql"])
def test_badly_named_file_is_refused_by_name(migrations_dir: Path, name: str) -> None:
    write(migrations_dir, name)
    message = refusal(migrations_dir)
    assert name in message
    assert "NNN_snake_case.sql" in message


def test_gap_in_numbering_is_refused_naming_the_file(tmp_path: Path) -> None:
    write(tmp_path, "001_first.sql")
    write(tmp_path, "003_third.sql")
    message = refusal(tmp_path)
    assert "003_third.sql" in message
    assert "skips" in message and "expected 002" in message


def test_gap_after_the_real_migrations_is_refused(migrations_dir: Path) -> None:
    name = f"{next_number(migrations_dir) + 1:03d}_too_far.sql"
    write(migrations_dir, name)
    assert name in refusal(migrations_dir)


def test_repeated_number_is_refused_naming_the_file(tmp_path: Path) -> None:
    write(tmp_path, "001_first.sql")
    write(tmp_path, "002_second.sql")
    write(tmp_path, "002_third.sql")
    message = refusal(tmp_path)
    assert "002_third.sql" in message
    assert "repeats" in message


def test_numbering_must_start_at_001(tmp_path: Path) -> None:
    write(tmp_path, "002_first.sql")
    assert "002_first.sql" in refusal(tmp_path)


@pytest.mark.parametrize("statement", [
    "DROP TABLE users;",
    "drop table if exists users;",
    "ALTER TABLE users DROP COLUMN username;",
    "ALTER TABLE users\n    DROP\n    COLUMN username;",
    "CREATE TABLE x (id INT); DrOp TaBlE x;",
])
def test_destructive_migration_is_refused_naming_the_file(
        migrations_dir: Path, statement: str) -> None:
    name = f"{next_number(migrations_dir):03d}_cleanup.sql"
    write(migrations_dir, name, statement + "\n")
    message = refusal(migrations_dir)
    assert name in message
    assert "migrations never destroy data" in message


@pytest.mark.parametrize(("sql", "statement", "why"), [
    ("DROP/**/TABLE users;", "DROP/**/TABLE users", "drops a table"),
    ("SELECT '--'; DROP TABLE users;", "DROP TABLE users", "drops a table"),
    ('ALTER TABLE users DROP "username";', 'ALTER TABLE users DROP "username"', "drops a column"),
    ("DROP SCHEMA billing;", "DROP SCHEMA billing", "drops a schema"),
    ("DROP TYPE mood CASCADE;", "DROP TYPE mood CASCADE", "CASCADE"),
    ("TRUNCATE ledger;", "TRUNCATE ledger", "truncates"),
    ("DELETE FROM users;", "DELETE FROM users", "DELETE without WHERE"),
    ("UPDATE wallets SET balance_kop = 0;", "UPDATE wallets SET balance_kop = 0",
     "UPDATE without WHERE"),
])
def test_destruction_hidden_by_comments_or_quoting_is_refused_naming_file_and_statement(
        migrations_dir: Path, sql: str, statement: str, why: str) -> None:
    name = f"{next_number(migrations_dir):03d}_sneaky.sql"
    write(migrations_dir, name, "CREATE INDEX a_idx ON users (created_at);\n" + sql + "\n")
    message = refusal(migrations_dir)
    assert f"{name}: `{statement}` " in message
    assert why in message


def test_statements_that_keep_the_data_are_allowed(migrations_dir: Path) -> None:
    name = f"{next_number(migrations_dir):03d}_tidy.sql"
    write(migrations_dir, name,
          "SELECT 'DROP TABLE users; TRUNCATE ledger';\n"
          "COMMENT ON TABLE users IS '-- DROP TABLE users';\n"
          "DELETE FROM users WHERE user_id < 0;\n"
          "UPDATE users SET language_code = 'en' WHERE language_code IS NULL;\n"
          "ALTER TABLE users ADD COLUMN note TEXT, ALTER COLUMN note DROP NOT NULL;\n"
          "CREATE TYPE mood AS ENUM ('ok'); DROP TYPE mood;\n")
    assert discover(migrations_dir)[-1].filename == name


def test_a_file_that_does_not_parse_is_refused_naming_it(migrations_dir: Path) -> None:
    name = f"{next_number(migrations_dir):03d}_typo.sql"
    write(migrations_dir, name, "CREAT TABLE t (id INT);\n")
    message = refusal(migrations_dir)
    assert name in message and "does not parse" in message


def test_dropping_a_column_without_the_column_keyword_is_refused(migrations_dir: Path) -> None:
    # PostgreSQL accepts `ALTER TABLE t DROP [COLUMN] c`: the keyword is optional.
    name = f"{next_number(migrations_dir):03d}_cleanup.sql"
    write(migrations_dir, name, "ALTER TABLE users DROP username;\n")
    assert name in refusal(migrations_dir)


def test_drop_inside_a_line_comment_is_allowed(migrations_dir: Path) -> None:
    name = f"{next_number(migrations_dir):03d}_notes.sql"
    write(migrations_dir, name,
          "-- Never DROP TABLE users; and never DROP COLUMN balance_kop either.\n"
          "CREATE INDEX users_created_idx ON users (created_at);  -- not a DROP TABLE\n")
    assert discover(migrations_dir)[-1].filename == name


def test_other_drops_are_allowed(migrations_dir: Path) -> None:
    name = f"{next_number(migrations_dir):03d}_relax.sql"
    write(migrations_dir, name, "DROP INDEX IF EXISTS users_created_idx;\n"
                                "ALTER TABLE users ALTER COLUMN username DROP NOT NULL;\n")
    assert discover(migrations_dir)[-1].filename == name


def test_every_bad_file_is_named_in_one_error(migrations_dir: Path) -> None:
    write(migrations_dir, "bad-name.sql")
    nxt = f"{next_number(migrations_dir):03d}_drops.sql"
    write(migrations_dir, nxt, "DROP TABLE users;\n")
    message = refusal(migrations_dir)
    assert "bad-name.sql" in message and nxt in message


def test_checksum_changes_when_the_text_changes(migrations_dir: Path) -> None:
    before = discover(migrations_dir)[0]
    before.path.write_text(before.sql + "\n-- an edit\n", encoding="utf-8")
    after = discover(migrations_dir)[0]
    assert after.checksum != before.checksum


def test_non_sql_files_are_ignored(migrations_dir: Path) -> None:
    (migrations_dir / "README.md").write_text("notes", encoding="utf-8")
    assert len(discover(migrations_dir)) == len(discover())


def test_empty_directory_has_no_migrations(tmp_path: Path) -> None:
    assert discover(tmp_path) == []
