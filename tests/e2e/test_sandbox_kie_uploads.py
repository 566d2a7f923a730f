"""End-to-end tests of the Kie sandbox's upload host, download links and result expiry."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator
from typing import Any, Final

import aiohttp
import orjson
import pytest
from aiohttp import web

from sandbox.common.media import make_png
from sandbox.common.server import SandboxServer
from sandbox.kie import KieSandbox, KieSandboxClient
from tests.e2e.test_sandbox_kie import KEY, OTHER_KEY, WAIT_S, call, create, download, fast_config

STREAM: Final[str] = "/api/file-stream-upload"
BASE64: Final[str] = "/api/file-base64-upload"
URL: Final[str] = "/api/file-url-upload"
DOWNLOAD_URL: Final[str] = "/api/v1/common/download-url"
PNG: Final[bytes] = make_png(6, 4, (10, 20, 30))
UPLOAD_FIELDS: Final[set[str]] = {
    "fileName",
    "filePath",
    "downloadUrl",
    "fileSize",
    "mimeType",
    "uploadedAt",
}


@pytest.fixture
async def kie() -> AsyncIterator[KieSandbox]:
    """Run a Kie sandbox with quick tasks."""
    async with KieSandbox([KEY, OTHER_KEY], config=fast_config()) as server:
        yield server


@pytest.fixture
async def api(kie: KieSandbox) -> AsyncIterator[aiohttp.ClientSession]:
    """Return an HTTP session that sends the Bearer key to the upload host (same server)."""
    headers = {"Authorization": f"Bearer {KEY}"}
    async with aiohttp.ClientSession(kie.upload_base_url, headers=headers) as session:
        yield session


def stream_form(
    data: bytes, *, upload_path: str = "images/user", name: str | None = "a.png"
) -> aiohttp.FormData:
    """Build a stream-upload form."""
    form = aiohttp.FormData()
    form.add_field("file", data, filename="blob.bin", content_type="application/octet-stream")
    form.add_field("uploadPath", upload_path)
    if name is not None:
        form.add_field("fileName", name)
    return form


async def upload(api: aiohttp.ClientSession, path: str, **kwargs: Any) -> dict[str, Any]:
    """Upload and return the successful answer's data."""
    status, body = await call(api, "POST", path, **kwargs)
    assert status == 200 and body["success"] is True and body["code"] == 200, body
    assert body["msg"] == "File uploaded successfully" and set(body["data"]) == UPLOAD_FIELDS
    data: dict[str, Any] = body["data"]
    return data


async def test_a_stream_upload_answers_the_upload_envelope_and_serves_the_bytes(
    api: aiohttp.ClientSession, control: KieSandboxClient
) -> None:
    data = await upload(api, STREAM, data=stream_form(PNG))
    assert (data["fileName"], data["filePath"]) == ("a.png", "images/user/a.png")
    assert (data["fileSize"], data["mimeType"]) == (len(PNG), "image/png")
    assert data["uploadedAt"].endswith("Z") and "T" in data["uploadedAt"]
    assert data["downloadUrl"].endswith("/images/user/a.png")
    assert await download(data["downloadUrl"]) == (200, PNG, "image/png")
    entry = (await control.requests(path_prefix=STREAM))[0]
    assert entry["body"]["fields"]["uploadPath"] == "images/user"
    assert entry["body"]["file"]["size"] == len(PNG)
    assert (await control.stats())["uploads"] == 1


async def test_base64_uploads_accept_raw_base64_and_data_urls(api: aiohttp.ClientSession) -> None:
    encoded = base64.b64encode(PNG).decode()
    for payload in (encoded, f"data:image/png;base64,{encoded}"):
        body = {"base64Data": payload, "uploadPath": "b64", "fileName": "x.png"}
        data = await upload(api, BASE64, json=body)
        assert (await download(data["downloadUrl"]))[1] == PNG


async def test_a_url_upload_fetches_the_file_and_names_it_after_the_url(
    api: aiohttp.ClientSession,
) -> None:
    async def serve(request: web.Request) -> web.Response:
        return web.Response(body=PNG, content_type="image/png")

    app = web.Application()
    app.router.add_get("/media/photo.png", serve)
    async with SandboxServer(app) as origin:
        body = {"fileUrl": f"{origin.base_url}/media/photo.png", "uploadPath": "from-url"}
        data = await upload(api, URL, json=body)
        missing = {"fileUrl": f"{origin.base_url}/nothing.png", "uploadPath": "from-url"}
        status, failed = await call(api, "POST", URL, json=missing)
    assert data["fileName"] == "photo.png" and data["mimeType"] == "image/png"
    assert (await download(data["downloadUrl"]))[1] == PNG
    assert (status, failed["success"], failed["code"]) == (200, False, 400)


async def test_a_repeat_upload_to_the_same_path_overwrites_and_no_name_gives_a_random_one(
    api: aiohttp.ClientSession,
) -> None:
    first = await upload(api, STREAM, data=stream_form(b"one"))
    second = await upload(api, STREAM, data=stream_form(PNG))
    assert first["downloadUrl"] == second["downloadUrl"]
    assert (await download(first["downloadUrl"]))[1] == PNG
    unnamed = await upload(api, STREAM, data=stream_form(PNG, name=None))
    assert unnamed["fileName"] != "blob.bin" and unnamed["fileName"].endswith(".png")
    assert unnamed["filePath"] == f"images/user/{unnamed['fileName']}"


@pytest.mark.parametrize(
    ("path", "kwargs", "msg"),
    [
        (BASE64, {"json": {"base64Data": "aGk="}}, "Missing required parameter: uploadPath"),
        (
            BASE64,
            {"json": {"base64Data": "%%%not base64", "uploadPath": "p"}},
            "Base64 decoding failed: Invalid Base64 format",
        ),
        (BASE64, {"json": {"base64Data": "aGk=", "uploadPath": "/lead"}}, None),
        (URL, {"json": {"fileUrl": "ftp://x/y", "uploadPath": "p"}}, None),
        (STREAM, {"data": b"plain", "headers": {"Content-Type": "text/plain"}}, None),
    ],
)
async def test_bad_uploads_get_the_upload_error_body(
    api: aiohttp.ClientSession, path: str, kwargs: dict[str, Any], msg: str | None
) -> None:
    status, body = await call(api, "POST", path, **kwargs)
    assert status == 200 and body["success"] is False and body["code"] == 400
    assert set(body) == {"success", "code", "msg"}
    if msg is not None:
        assert body["msg"] == msg


async def test_uploads_need_the_bearer_key(kie: KieSandbox) -> None:
    async with aiohttp.ClientSession(kie.base_url) as anonymous:
        status, body = await call(
            anonymous, "POST", BASE64, json={"base64Data": "aGk=", "uploadPath": "p"}
        )
    assert (status, body) == (
        200,
        {"success": False, "code": 401, "msg": "Authentication failed: Invalid API Key"},
    )


async def test_uploads_expire_after_the_upload_ttl(
    api: aiohttp.ClientSession, control: KieSandboxClient
) -> None:
    await control.configure(upload_ttl_s=0)
    data = await upload(api, STREAM, data=stream_form(PNG))
    assert (await download(data["downloadUrl"]))[0] == 404


async def test_download_url_links_kie_files_and_refuses_foreign_urls(
    api: aiohttp.ClientSession, control: KieSandboxClient
) -> None:
    task_id = await create(api)
    await control.wait(tasks_succeeded_at_least=1, timeout_s=WAIT_S)
    result_url = (await control.task(task_id))["task"]["result_urls"][0]
    status, body = await call(api, "POST", DOWNLOAD_URL, json={"url": result_url})
    assert (status, body["code"], body["msg"]) == (200, 200, "success")
    link = body["data"]
    assert isinstance(link, str) and link != result_url
    assert (await download(link))[1] == (await download(result_url))[1]
    foreign = await call(api, "POST", DOWNLOAD_URL, json={"url": "https://example.com/a.png"})
    assert foreign[1]["code"] == 422 and foreign[1]["data"] is None
    await control.configure(download_url_ttl_s=0)
    status, body = await call(api, "POST", DOWNLOAD_URL, json={"url": result_url})
    assert (await download(body["data"]))[0] == 404


async def test_expired_results_answer_404(
    api: aiohttp.ClientSession, control: KieSandboxClient
) -> None:
    task_id = await create(api)
    await control.wait(tasks_succeeded_at_least=1, timeout_s=WAIT_S)
    url = orjson.loads((await control.task(task_id))["status"]["resultJson"])["resultUrls"][0]
    assert (await download(url))[0] == 200
    assert await control.expire(task_id) == 1
    assert (await download(url))[0] == 404
    await control.configure(result_ttl_s=0)
    other = await create(api)
    await control.wait(tasks_succeeded_at_least=2, timeout_s=WAIT_S)
    assert (await download((await control.task(other))["task"]["result_urls"][0]))[0] == 404
