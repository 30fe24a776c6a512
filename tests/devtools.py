"""Headless Chromium driven over the DevTools protocol with aiohttp: no driver binary, no
download. Debian's ``chromium`` is found on PATH, or installed with apt-get where root may.

    async with Browser.launch(chromium_path(), tmp_path) as page:
        await page.navigate(url)
        await page.wait_for("window.done === true")
        png = await page.screenshot()

The browser listens on a port of its choosing (``--remote-debugging-port=0``, read back from
``DevToolsActivePort``); its process group is ended on exit.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import itertools
import os
import shutil
import signal
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
from apt_packages import apt_install

#: Debian's packages: the browser and a font to draw text with.
APT_PACKAGES = ("chromium", "fonts-dejavu-core")
BINARIES = ("chromium", "chromium-browser")
#: Bounds: apt-get's install, the browser's start, one protocol command.
INSTALL_TIMEOUT_S = 900.0
START_TIMEOUT_S = 30.0
COMMAND_TIMEOUT_S = 30.0


class ChromiumUnavailable(RuntimeError):
    """No headless Chromium here; the message says why and what to install."""


def _which() -> str | None:
    return next((p for p in map(shutil.which, BINARIES) if p is not None), None)


def chromium_path(*, install: bool = True) -> str:
    """The ``chromium`` binary; installed with apt-get first when missing, ``install`` is set
    and we are root with apt. Raises :class:`ChromiumUnavailable` saying why not."""
    found = _which()
    if found is not None or not install:
        if found is None:
            raise ChromiumUnavailable("chromium is not installed (apt-get install chromium)")
        return found
    why = apt_install(APT_PACKAGES, INSTALL_TIMEOUT_S)
    if why is not None:
        raise ChromiumUnavailable(why)
    found = _which()
    if found is None:
        raise ChromiumUnavailable("apt-get installed chromium but it is not on PATH")
    return found


class ChromiumStartError(RuntimeError):
    """Chromium is installed but did not start: a failure, not a reason to skip."""


class JavaScriptError(AssertionError):
    pass


class Page:
    """One page target of the browser: commands by id, console errors and exceptions kept."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ws = ws
        self.errors: list[str] = []
        self._ids = itertools.count(1)
        self._waiting: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self._reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        async for msg in self.ws:
            if msg.type != aiohttp.WSMsgType.TEXT:
                continue
            data = msg.json()
            if "id" in data:
                future = self._waiting.pop(data["id"], None)
                if future is not None and not future.done():
                    future.set_result(data)
            elif data.get("method") == "Runtime.exceptionThrown":
                details = data["params"]["exceptionDetails"]
                exception = details.get("exception", {}).get("description")
                self.errors.append(exception or details.get("text", "exception"))
            elif data.get("method") == "Runtime.consoleAPICalled":
                params = data["params"]
                if params["type"] in ("error", "assert"):
                    args = params.get("args", [])
                    self.errors.append(" ".join(str(a.get("value", a.get("description")))
                                                for a in args))  # fmt: skip
        for future in self._waiting.values():
            if not future.done():
                future.set_exception(ConnectionError("the browser closed the connection"))

    async def send(self, method: str, **params: Any) -> dict[str, Any]:
        n = next(self._ids)
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._waiting[n] = future
        await self.ws.send_json({"id": n, "method": method, "params": params})
        reply = await asyncio.wait_for(future, COMMAND_TIMEOUT_S)
        if "error" in reply:
            raise RuntimeError(f"{method}: {reply['error']}")
        result: dict[str, Any] = reply.get("result", {})
        return result

    async def navigate(self, url: str) -> None:
        reply = await self.send("Page.navigate", url=url)
        if reply.get("errorText"):
            raise RuntimeError(f"navigating to {url}: {reply['errorText']}")

    async def evaluate(self, expression: str) -> Any:
        """The value of ``expression`` (awaited if a promise), as JSON."""
        reply = await self.send("Runtime.evaluate", expression=expression, returnByValue=True,
                                awaitPromise=True)  # fmt: skip
        if "exceptionDetails" in reply:
            raise JavaScriptError(f"{expression}: {reply['exceptionDetails']}")
        return reply["result"].get("value")

    async def wait_for(self, expression: str, timeout: float = 15.0) -> Any:
        """Polls ``expression`` until it is truthy; its value. On time-out, the page's errors
        are in the message."""
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            value = await self.evaluate(expression)
            if value:
                return value
            if asyncio.get_running_loop().time() > deadline:
                raise TimeoutError(f"{expression} still {value!r} after {timeout} s; "
                                   f"page errors: {self.errors}")  # fmt: skip
            await asyncio.sleep(0.1)

    async def screenshot(self) -> bytes:
        reply = await self.send("Page.captureScreenshot", format="png")
        return base64.b64decode(reply["data"])


class Browser:
    @staticmethod
    @contextlib.asynccontextmanager
    async def launch(
        binary: str, profile: Path, *, width: int = 1280, height: int = 800
    ) -> AsyncIterator[Page]:
        """A headless Chromium with a fresh profile in ``profile``; its first page."""
        profile.mkdir(parents=True, exist_ok=True)
        log = (profile / "chromium.log").open("wb")
        args = [
            binary, "--headless=new", "--remote-debugging-port=0", f"--user-data-dir={profile}",
            "--no-sandbox",  # root has no sandbox in Chromium; the page is our own
            "--disable-gpu", "--no-first-run", "--no-default-browser-check",
            "--disable-extensions", "--disable-background-networking", "--disable-sync",
            "--disable-dev-shm-usage", "--hide-scrollbars", "--mute-audio",
            f"--window-size={width},{height}", "about:blank",
        ]  # fmt: skip
        process = subprocess.Popen(args, stdout=log, stderr=log, start_new_session=True)
        try:
            port = await _devtools_port(profile, process)
            async with aiohttp.ClientSession() as http:
                async with http.get(f"http://127.0.0.1:{port}/json/list") as r:
                    targets = await r.json()
                url = next(t["webSocketDebuggerUrl"] for t in targets if t["type"] == "page")
                async with http.ws_connect(url, max_msg_size=0) as ws:
                    page = Page(ws)
                    await page.send("Page.enable")
                    await page.send("Runtime.enable")
                    try:
                        yield page
                    finally:
                        await ws.close()
                        page._reader.cancel()
                        with contextlib.suppress(asyncio.CancelledError):
                            await page._reader
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGTERM)
            try:
                await asyncio.to_thread(process.wait, 10)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                await asyncio.to_thread(process.wait, 10)
            log.close()


async def _devtools_port(profile: Path, process: subprocess.Popen[bytes]) -> int:
    """The port Chromium chose, from the ``DevToolsActivePort`` file it writes on start."""
    path = profile / "DevToolsActivePort"
    deadline = asyncio.get_running_loop().time() + START_TIMEOUT_S
    while asyncio.get_running_loop().time() < deadline:
        if process.poll() is not None:
            tail = (profile / "chromium.log").read_text(errors="replace")[-1000:]
            raise ChromiumStartError(f"chromium exited with {process.returncode}: {tail}")
        with contextlib.suppress(FileNotFoundError):
            lines = path.read_text().splitlines()
            if len(lines) >= 2 and lines[0].isdigit():  # both lines: the file is complete
                return int(lines[0])
        await asyncio.sleep(0.05)
    raise ChromiumStartError(f"chromium wrote no {path.name} within {START_TIMEOUT_S} s")
