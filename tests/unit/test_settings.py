"""Settings: load_settings turns the environment into typed, frozen, secret-safe Settings."""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import os
import socket
from decimal import Decimal

import pytest

from config import (
    ENV_KEYS,
    REQUIRED_ENV_KEYS,
    SECRET_ENV_KEYS,
    ConfigError,
    Secret,
    Settings,
    load_settings,
)
from config.settings import derive_webhook_secret
from tests.helpers import BOT_TOKEN, KIE_KEY, make_env

DB_PASSWORD = "db-pass-s3cr3t-value"
DATABASE_URL = f"postgresql://kiebot:{DB_PASSWORD}@db.internal:5432/kiebot"
SEED_KEYS = ("ADMIN_ID", "BOT_MODE", "DATABASE_URL", "DB_MAXCONN", "KIE_API_KEY",
             "PAYMENT_BANK", "TELEGRAM_BOT_TOKEN", "WEBHOOK_BASE_URL")


def full_env(**overrides: str) -> dict[str, str]:
    """Return a valid environment with a real listening port (not make_env's PORT=0)."""
    return make_env(DATABASE_URL, **{"PORT": "10000", **overrides})


def problems_for(**overrides: str) -> list[str]:
    """Load settings from full_env(**overrides), expect ConfigError, return its problems."""
    with pytest.raises(ConfigError) as info:
        load_settings(full_env(**overrides))
    return info.value.problems


def only_problem_about(key: str, **overrides: str) -> str:
    """Return the single problem, asserting it names key."""
    problems = problems_for(**overrides)
    assert len(problems) == 1, problems
    assert problems[0].startswith(f"{key}: "), problems
    return problems[0]


# ---- a valid environment ----


def test_full_valid_environment_gives_typed_settings() -> None:
    settings = load_settings(full_env(ADMIN_ID="1001, 2002;3003", PRICE_MARKUP="2.5",
                                      DB_MAXCONN="7"))
    assert isinstance(settings, Settings)
    assert settings.admin_ids == (1001, 2002, 3003)
    assert settings.bot_mode == "polling"
    assert settings.db_maxconn == 7 and isinstance(settings.db_maxconn, int)
    assert settings.port == 10000 and isinstance(settings.port, int)
    assert settings.price_markup == Decimal("2.5")
    assert isinstance(settings.price_markup, Decimal)
    assert settings.database_url.get() == DATABASE_URL
    assert settings.kie_api_key.get() == KIE_KEY
    assert settings.telegram_bot_token.get() == BOT_TOKEN
    assert settings.payment_bank == "Test Bank"
    assert settings.payment_card_holder == "Ivan Petrov"
    assert settings.payment_phone == "+79990001122"
    assert settings.webhook_base_url == "https://bot.example.com"
    assert settings.instance_id == "test-instance"


def test_settings_are_frozen() -> None:
    settings = load_settings(full_env())
    with pytest.raises(dataclasses.FrozenInstanceError):
        settings.db_maxconn = 50  # type: ignore[misc]


def test_optional_keys_take_their_defaults() -> None:
    env = {k: v for k, v in full_env().items() if k not in ("PORT", "INSTANCE_ID")}
    settings = load_settings(env)
    assert settings.port == 10000
    assert settings.price_markup == Decimal("2.0")
    assert settings.telegram_api_base == "https://api.telegram.org"
    assert settings.kie_base_url == "https://api.kie.ai"
    assert settings.webhook_secret_token == derive_webhook_secret(settings.telegram_bot_token)
    assert settings.log_level == "INFO"
    assert settings.leader_renew_interval_s == 1.0
    assert settings.leader_lease_ttl_s == 5.0
    assert settings.leader_stop_grace_s == 3.0
    assert settings.shutdown_grace_s == 20.0
    assert settings.db_connect_timeout_s == 5.0
    assert settings.db_statement_timeout_s == 30.0


def test_values_are_normalized() -> None:
    settings = load_settings(full_env(BOT_MODE="  Webhook ", LOG_LEVEL="debug",
                                      WEBHOOK_BASE_URL="https://bot.example.com/"))
    assert settings.bot_mode == "webhook"
    assert settings.log_level == "DEBUG"
    assert settings.webhook_base_url == "https://bot.example.com"


def test_instance_id_defaults_to_render_instance_id() -> None:
    env = full_env(RENDER_INSTANCE_ID="srv-abc123-xyz")
    del env["INSTANCE_ID"]
    assert load_settings(env).instance_id == "srv-abc123-xyz"


def test_instance_id_defaults_to_host_and_pid_without_render() -> None:
    env = full_env()
    del env["INSTANCE_ID"]
    expected = f"{socket.gethostname()[:40]}-{os.getpid()}"
    assert load_settings(env).instance_id == expected


def test_explicit_instance_id_wins_over_render_instance_id() -> None:
    settings = load_settings(full_env(RENDER_INSTANCE_ID="srv-render", INSTANCE_ID="mine-1"))
    assert settings.instance_id == "mine-1"


# ---- every bad input gets a clear reason ----


def test_missing_keys_are_all_listed_in_one_error() -> None:
    with pytest.raises(ConfigError) as info:
        load_settings({})
    problems = info.value.problems
    assert len(problems) == len(REQUIRED_ENV_KEYS)
    message = str(info.value)
    for key in REQUIRED_ENV_KEYS:
        assert any(p.startswith(f"{key}: missing") for p in problems), key
        assert f"{key}: missing" in message


def test_blank_value_counts_as_missing() -> None:
    assert "missing" in only_problem_about("PAYMENT_BANK", PAYMENT_BANK="   ")


def test_every_problem_is_reported_together() -> None:
    problems = problems_for(DB_MAXCONN="1", BOT_MODE="pull", PORT="70000")
    assert {p.split(":")[0] for p in problems} == {"DB_MAXCONN", "BOT_MODE", "PORT"}


@pytest.mark.parametrize("raw", ["ten", "2.5", ""])
def test_db_maxconn_that_is_not_an_integer_is_refused(raw: str) -> None:
    env = full_env(DB_MAXCONN=raw)
    with pytest.raises(ConfigError) as info:
        load_settings(env)
    (problem,) = info.value.problems
    assert problem.startswith("DB_MAXCONN: ")
    assert "integer" in problem or "missing" in problem


@pytest.mark.parametrize("raw", ["1", "0", "-3"])
def test_db_maxconn_below_two_is_refused(raw: str) -> None:
    assert "between 2 and 100" in only_problem_about("DB_MAXCONN", DB_MAXCONN=raw)


def test_db_maxconn_of_two_is_accepted() -> None:
    assert load_settings(full_env(DB_MAXCONN="2")).db_maxconn == 2


def test_bot_mode_outside_polling_and_webhook_is_refused() -> None:
    problem = only_problem_about("BOT_MODE", BOT_MODE="longpoll")
    assert "polling" in problem and "webhook" in problem


def test_webhook_base_url_over_http_on_a_public_host_is_refused() -> None:
    problem = only_problem_about("WEBHOOK_BASE_URL", WEBHOOK_BASE_URL="http://bot.example.com")
    assert "https" in problem


@pytest.mark.parametrize("url", ["http://127.0.0.1:8080", "http://localhost:9000"])
def test_webhook_base_url_over_http_on_loopback_is_accepted(url: str) -> None:
    assert load_settings(full_env(WEBHOOK_BASE_URL=url)).webhook_base_url == url


@pytest.mark.parametrize("url", ["bot.example.com", "ftp://bot.example.com",
                                 "https://bot.example.com/?x=1"])
def test_webhook_base_url_that_is_not_a_plain_https_url_is_refused(url: str) -> None:
    only_problem_about("WEBHOOK_BASE_URL", WEBHOOK_BASE_URL=url)


@pytest.mark.parametrize("token", [
    "SECRETTOKENWITHOUTCOLON0123456789abcdef",
    "12:short",
    "abc:SECRETtail0123456789abcdefghijkl",
    "123456789:has spaces SECRET 0123456789abc",
])
def test_malformed_bot_token_is_refused_without_echoing_it(token: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_settings(full_env(TELEGRAM_BOT_TOKEN=token))
    (problem,) = info.value.problems
    assert problem.startswith("TELEGRAM_BOT_TOKEN: ")
    assert "BotFather" in problem
    message = str(info.value)
    assert token not in message
    assert "SECRET" not in message


@pytest.mark.parametrize("raw", ["65536", "70000", "-1", "http"])
def test_port_out_of_range_is_refused(raw: str) -> None:
    problem = only_problem_about("PORT", PORT=raw)
    assert "between" in problem or "integer" in problem


def test_port_zero_is_accepted_to_bind_an_ephemeral_port() -> None:
    # make_env (tests/helpers.py) uses PORT=0 and HttpServer reports the bound port, so an
    # ephemeral port must be a valid configuration (tests and the demo run many instances).
    assert load_settings(make_env(DATABASE_URL)).port == 0


@pytest.mark.parametrize("raw", ["two", "1,5", "2.0x", "NaN", "sNaN"])
def test_price_markup_that_is_not_a_decimal_is_refused(raw: str) -> None:
    problem = only_problem_about("PRICE_MARKUP", PRICE_MARKUP=raw)
    assert "decimal" in problem or "between" in problem


def test_blank_price_markup_takes_the_default() -> None:
    assert load_settings(full_env(PRICE_MARKUP="")).price_markup == Decimal("2.0")


@pytest.mark.parametrize("raw", ["0.5", "101", "Infinity"])
def test_price_markup_outside_one_to_hundred_is_refused(raw: str) -> None:
    assert "between 1 and 100" in only_problem_about("PRICE_MARKUP", PRICE_MARKUP=raw)


def test_lease_ttl_below_three_renew_intervals_is_refused() -> None:
    problem = only_problem_about("LEADER_LEASE_TTL", LEADER_RENEW_INTERVAL="2",
                                 LEADER_LEASE_TTL="5")
    assert "3 x LEADER_RENEW_INTERVAL" in problem


def test_lease_ttl_of_exactly_three_renew_intervals_is_accepted() -> None:
    settings = load_settings(full_env(LEADER_RENEW_INTERVAL="2", LEADER_LEASE_TTL="6"))
    assert (settings.leader_renew_interval_s, settings.leader_lease_ttl_s) == (2.0, 6.0)


@pytest.mark.parametrize("ids", ["abc", "0", "-5", " , "])
def test_admin_ids_that_are_not_positive_integers_are_refused(ids: str) -> None:
    only_problem_about("ADMIN_ID", ADMIN_ID=ids)


@pytest.mark.parametrize("url", ["mysql://u:p@h/db", "postgresql:///nohost", "not a url"])
def test_database_url_that_is_not_postgresql_is_refused_without_echoing_it(url: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_settings(full_env(DATABASE_URL=url))
    (problem,) = info.value.problems
    assert problem.startswith("DATABASE_URL: ")
    assert url not in str(info.value)


def test_webhook_secret_token_with_bad_characters_is_refused_without_echoing_it() -> None:
    with pytest.raises(ConfigError) as info:
        load_settings(full_env(WEBHOOK_SECRET_TOKEN="has space/and+slash"))
    assert info.value.problems[0].startswith("WEBHOOK_SECRET_TOKEN: ")
    assert "has space/and+slash" not in str(info.value)


@pytest.mark.parametrize("secret", ["1", "a", "short_secret-15"])
def test_a_webhook_secret_token_shorter_than_sixteen_characters_is_refused(secret: str) -> None:
    problem = only_problem_about("WEBHOOK_SECRET_TOKEN", WEBHOOK_SECRET_TOKEN=secret)
    assert problem == "WEBHOOK_SECRET_TOKEN: must be 16-256 characters of A-Z a-z 0-9 _ -"


def test_a_webhook_secret_token_of_sixteen_to_256_characters_is_accepted() -> None:
    for secret in ("A" * 16, "z_-9" * 64):
        assert load_settings(full_env(WEBHOOK_SECRET_TOKEN=secret)).webhook_secret_token == (
            Secret(secret))
    only_problem_about("WEBHOOK_SECRET_TOKEN", WEBHOOK_SECRET_TOKEN="A" * 257)


def test_the_derived_webhook_secret_is_a_masked_secret_of_telegrams_alphabet() -> None:
    settings = load_settings(full_env())
    derived = settings.webhook_secret_token.get()
    assert derived in settings.secret_values()
    assert derived not in repr(settings)
    # The same value the webhook was always registered with: deployed webhooks keep working.
    assert derived == hmac.new(BOT_TOKEN.encode(), b"kiebot-webhook-secret-v1",
                               hashlib.sha256).hexdigest()


@pytest.mark.parametrize("key", ["TELEGRAM_API_BASE", "KIE_BASE_URL"])
def test_api_bases_must_be_https_except_on_loopback(key: str) -> None:
    problem = only_problem_about(key, **{key: "http://api.example.com"})
    assert "https" in problem and "loopback" in problem
    for url in ("http://127.0.0.1:8081", "http://localhost:9000", "http://[::1]:80",
                "https://api.example.com"):
        load_settings(full_env(**{key: url}))


def test_a_malformed_bot_token_error_states_the_rule() -> None:
    problem = only_problem_about("TELEGRAM_BOT_TOKEN", TELEGRAM_BOT_TOKEN="12:short")
    assert "3 or more digits" in problem and "20 or more of A-Z a-z 0-9 _ -" in problem
    assert "short" not in problem.partition(":")[2].replace("'<bot id>:<secret>'", "")


# ---- secrets ----


def test_secrets_are_masked_in_repr_and_str_of_settings() -> None:
    settings = load_settings(full_env(WEBHOOK_SECRET_TOKEN="whsec_0123456789"))
    for text in (repr(settings), str(settings)):
        for secret in (BOT_TOKEN, KIE_KEY, DATABASE_URL, DB_PASSWORD, "whsec_0123456789"):
            assert secret not in text
        assert "Secret('***')" in text


def test_secret_get_returns_the_value_and_masks_itself() -> None:
    secret = Secret("hunter2")
    assert secret.get() == "hunter2"
    assert repr(secret) == str(secret) == "Secret('***')"
    assert "hunter2" not in f"{secret} {secret!r} {[secret]}"
    assert secret == Secret("hunter2") and secret != Secret("other")


def test_secret_values_lists_every_secret_for_log_scrubbing() -> None:
    settings = load_settings(full_env(WEBHOOK_SECRET_TOKEN="whsec_0123456789"))
    assert set(settings.secret_values()) == {BOT_TOKEN, KIE_KEY, DATABASE_URL,
                                            "whsec_0123456789"}
    derived = load_settings(full_env()).secret_values()
    assert derive_webhook_secret(Secret(BOT_TOKEN)).get() in derived


def test_secret_keys_are_the_tokens_keys_and_database_url() -> None:
    assert set(SECRET_ENV_KEYS) == {"DATABASE_URL", "KIE_API_KEY", "TELEGRAM_BOT_TOKEN",
                                    "WEBHOOK_SECRET_TOKEN", "KIE_WEBHOOK_HMAC_KEY"}


# ---- the key table ----


def test_required_keys_include_the_seed_keys_and_payment_details() -> None:
    assert set(SEED_KEYS) | {"PAYMENT_CARD_HOLDER", "PAYMENT_PHONE"} <= set(REQUIRED_ENV_KEYS)


def test_every_env_key_has_a_one_line_description() -> None:
    for key in ENV_KEYS:
        assert key.description.strip(), key.name
        assert "\n" not in key.description, key.name


def test_every_env_key_maps_to_a_settings_field_once() -> None:
    names = [k.name for k in ENV_KEYS]
    assert len(names) == len(set(names))
    assert sorted(k.field for k in ENV_KEYS) == sorted(f.name for f in dataclasses.fields(Settings))


def test_a_kie_api_key_shorter_than_sixteen_characters_is_refused() -> None:
    env = make_env("postgresql://u@localhost/db", KIE_API_KEY="demo")
    with pytest.raises(ConfigError) as caught:
        load_settings(env)
    assert any(p.startswith("KIE_API_KEY: must be at least 16") for p in caught.value.problems)
    assert "demo" not in str(caught.value)
