"""Telegram: ingress, inbox, dispatcher, bot handlers."""
