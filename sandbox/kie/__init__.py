"""Local Kie.ai sandbox (API host + upload host) for tests, benchmarks and the demo."""

from sandbox.kie.callbacks import SIGNATURE_HEADER, TIMESTAMP_HEADER, signature
from sandbox.kie.config import KieSandboxConfig
from sandbox.kie.control import KieSandboxClient
from sandbox.kie.server import KieSandbox

__all__ = [
    "SIGNATURE_HEADER",
    "TIMESTAMP_HEADER",
    "KieSandbox",
    "KieSandboxClient",
    "KieSandboxConfig",
    "signature",
]
