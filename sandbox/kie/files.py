"""Files the sandbox serves over HTTP: task results, uploads and download-url links.

Everything lives under `/files/<path>`: results at `r/<random>/<name>`, uploads at
`u/<account folder>/<uploadPath>/<fileName>` (a repeat upload overwrites), download links at
`d/<random>/<name>`. Each file has an expiry (monotonic clock) checked when it is fetched;
an expired or `missing`-faulted file answers 404 like an expired CDN link; a file with
`failing_reads` left answers 503 (and counts one down) like a lagging CDN.
"""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass
from typing import Final

from aiohttp import web

FILES_PREFIX: Final[str] = "/files/"
RESULT_FOLDER: Final[str] = "r"
UPLOAD_FOLDER: Final[str] = "u"
LINK_FOLDER: Final[str] = "d"


@dataclass(slots=True)
class StoredFile:
    """Bytes served at one path until `expires_at_s` (monotonic)."""

    data: bytes
    mime_type: str
    name: str
    expires_at_s: float
    missing: bool = False
    failing_reads: int = 0

    def live(self, now_s: float) -> bool:
        """Tell whether the file can still be fetched."""
        return not self.missing and now_s < self.expires_at_s


class FileStore:
    """Map URL paths to stored files."""

    def __init__(self) -> None:
        """Start empty."""
        self._files: dict[str, StoredFile] = {}
        self.base_url = ""
        self.downloads = 0

    def __len__(self) -> int:
        """Return how many files are stored (expired ones included until fetched)."""
        return len(self._files)

    def url(self, path: str) -> str:
        """Return the public URL of a stored path."""
        return f"{self.base_url}{FILES_PREFIX}{path}"

    def path_of(self, url: str) -> str | None:
        """Return the stored path of a URL this sandbox generated, else None."""
        prefix = self.base_url + FILES_PREFIX
        if not url.startswith(prefix):
            return None
        path = url[len(prefix) :]
        return path if path in self._files else None

    def get(self, path: str) -> StoredFile | None:
        """Return a stored file (live or not)."""
        return self._files.get(path)

    def put(self, path: str, file: StoredFile) -> str:
        """Store (or overwrite) a file and return its URL."""
        self._files[path] = file
        return self.url(path)

    def put_random(self, folder: str, file: StoredFile) -> str:
        """Store a file under a fresh random path and return its URL."""
        return self.put(f"{folder}/{secrets.token_urlsafe(12)}/{file.name}", file)

    def expire(self, url: str) -> bool:
        """Make the file behind `url` expire now; False when unknown."""
        path = self.path_of(url)
        if path is None:
            return False
        self._files[path].expires_at_s = 0.0
        return True

    def clear(self) -> None:
        """Forget every file."""
        self._files.clear()
        self.downloads = 0

    async def handle(self, request: web.Request) -> web.StreamResponse:
        """Serve `/files/<path>`: the bytes, or 404 when unknown, expired or faulted."""
        path = request.match_info["path"]
        file = self._files.get(path)
        if file is None or not file.live(time.monotonic()):
            if file is not None and not file.missing:
                del self._files[path]  # expired: free the memory
            raise web.HTTPNotFound(text="Not Found")
        if file.failing_reads > 0:
            file.failing_reads -= 1
            raise web.HTTPServiceUnavailable(text="Service Unavailable")
        self.downloads += 1
        return web.Response(body=file.data, content_type=file.mime_type)
