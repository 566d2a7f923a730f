"""Delivery of generation results to Telegram: result files, status messages, the sender."""
