"""Configuration from the environment: the single source of truth for env keys."""

from config.settings import (
    ENV_KEYS,
    REQUIRED_ENV_KEYS,
    SECRET_ENV_KEYS,
    ConfigError,
    EnvKey,
    Secret,
    Settings,
    load_settings,
)

__all__ = [
    "ENV_KEYS",
    "REQUIRED_ENV_KEYS",
    "SECRET_ENV_KEYS",
    "ConfigError",
    "EnvKey",
    "Secret",
    "Settings",
    "load_settings",
]
