"""Errors of the application layer (settings, command-line use)."""

from __future__ import annotations


class BotError(Exception):
    """Base class for the application's own errors; the message is shown to the user."""


class SettingsError(BotError):
    """A setting is missing or has a value that cannot work."""
