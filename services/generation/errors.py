"""Errors of the generation domain."""

from __future__ import annotations


class GenerationError(Exception):
    """A generation job operation was refused."""


class RequestConflict(GenerationError):
    """An idempotency key already made a different job."""


class JobNotFound(GenerationError):
    """No job has this id."""


class CallbackUnauthorized(GenerationError):
    """A callback's token matches none of its job's submission attempts."""
