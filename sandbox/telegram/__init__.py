"""Local Telegram Bot API sandbox for tests, benchmarks and demos."""

from sandbox.telegram.config import SandboxConfig
from sandbox.telegram.control import SandboxClient, SandboxError, SandboxTimeout
from sandbox.telegram.server import TelegramSandbox

__all__ = ["SandboxClient", "SandboxConfig", "SandboxError", "SandboxTimeout", "TelegramSandbox"]
