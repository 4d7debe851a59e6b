"""/docs and /redoc work without internet: every asset they load comes from the server itself."""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator

import httpx
import pytest
import uvicorn
from fastapi import FastAPI

from api.docs_ui import install
from cli.processes import free_port
from tests.waiting import wait_for

# Attributes and Swagger UI settings that make the browser fetch something.
REFERENCE = re.compile(
    r"""(?:src|href|spec-url|url|oauth2RedirectUrl)\s*[=:]\s*[^"']*["']([^"']+)["']"""
)
CONTENT_TYPES = {
    ".js": "text/javascript",
    ".css": "text/css",
    ".png": "image/png",
    ".json": "application/json",
    "oauth2-redirect": "text/html",
}


@pytest.fixture(scope="module")
def client() -> Iterator[httpx.Client]:
    """The pages served over HTTP by uvicorn, as ``syncbus api`` serves them."""
    app = FastAPI(title="syncbus", docs_url=None, redoc_url=None)

    @app.get("/v1/ping")
    def ping() -> dict[str, str]:
        return {"pong": "yes"}

    install(app)
    server = uvicorn.Server(uvicorn.Config(app, port=free_port(), log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    wait_for(lambda: server.started, what="uvicorn to listen")
    with httpx.Client(base_url=f"http://127.0.0.1:{server.config.port}") as client:
        yield client
    server.should_exit = True
    thread.join(10)


def expected_type(path: str) -> str:
    return next(kind for suffix, kind in CONTENT_TYPES.items() if path.endswith(suffix))


@pytest.mark.parametrize(
    ("page", "needed"),
    [
        ("/docs", {"swagger-ui-bundle.js", "swagger-ui.css", "openapi.json", "oauth2-redirect"}),
        ("/redoc", {"redoc.standalone.js", "openapi.json"}),
    ],
)
def test_page_loads_only_assets_the_server_serves(
    client: httpx.Client, page: str, needed: set[str]
) -> None:
    response = client.get(page)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    html = response.text

    assert re.findall(r"https?://[^\s\"'<>]+", html) == []
    assert "//" not in "".join(REFERENCE.findall(html))  # no protocol-relative URL either
    referenced = set(REFERENCE.findall(html))
    assert {path.rsplit("/", 1)[-1] for path in referenced} >= needed
    for path in referenced:
        asset = client.get(path)
        assert asset.status_code == 200, path
        assert asset.headers["content-type"].startswith(expected_type(path)), path
        assert asset.content, path


def test_the_spec_behind_the_pages_is_the_apps_and_leaves_the_pages_out(
    client: httpx.Client,
) -> None:
    paths = client.get("/openapi.json").json()["paths"]
    assert "/v1/ping" in paths
    assert not any(path.startswith(("/docs", "/redoc")) for path in paths)
