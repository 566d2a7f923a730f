"""Pieces shared by the sandbox stand-ins (Telegram, Kie.ai): server, control client, faults."""
