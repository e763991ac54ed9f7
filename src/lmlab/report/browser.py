"""Load a report page in a real headless browser (Debian's ``chromium``) and say what it saw.

:func:`load_in_browser` serves the page from a local stdlib HTTP server and starts chromium with
every host name resolved to that server (``--host-resolver-rules``), so any request the page makes
-- for a script, a font, an image, on any host -- arrives there and is counted (plain HTTP; an
``https://`` request cannot be told from chromium's own background traffic, so :func:`urls_in_dom`
also lists anything in the parsed document that could make a request). Chromium runs twice, ``--dump-dom`` (the document after
parsing) and ``--screenshot``, with its log on stderr (``--enable-logging=stderr``), whose
``CONSOLE`` lines are the page's console messages. No WebSocket/CDP client is needed.

    python -m lmlab.report.browser runs/demo/report.html --screenshot docs/img/report.png
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tempfile
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from ..errors import DataError, UsageError

HOST = "lmlab-report.test"  # resolved to the local server, like every other host
CONSOLE = re.compile(r":(INFO|WARNING|ERROR|VERBOSE\d*):CONSOLE")


def find_chromium() -> str | None:
    """The path of a chromium (or chrome) binary, or None."""
    for name in ("chromium", "chromium-browser", "google-chrome", "chrome"):
        found = shutil.which(name)
        if found:
            return found
    return None


@dataclass
class BrowserCheck:
    dom: str                                            # the document as chromium parsed it
    console: list[str] = field(default_factory=list)   # console messages (chromium's CONSOLE log lines)
    requests: list[str] = field(default_factory=list)  # every request that reached the server, both runs
    screenshot: Path | None = None

    @property
    def page_requests(self) -> list[str]:
        """The plain-HTTP requests other than the page itself and the favicon the browser asks for on its own.

        Chromium's own background traffic (TLS handshakes, a POST) also reaches the server and cannot be
        told apart from an ``https://`` request of the page's, so :func:`urls_in_dom` checks for those."""
        return [r for r in self.requests if r.startswith("GET ")
                and not r.split(" (from ")[0].endswith((f"{HOST}/report.html", f"{HOST}/favicon.ico"))]


def _server(page: bytes, seen: list[str]) -> ThreadingHTTPServer:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 (the stdlib's name)
            referer = self.headers.get("Referer")
            seen.append(f"{self.command} {self.headers.get('Host', '')}{self.path}"
                        + (f" (from {referer})" if referer else ""))
            body = page if self.path == "/report.html" else b""
            self.send_response(200 if body else 404)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_error(self, format, *args):  # noqa: A002 (the stdlib's name): a non-HTTP request (TLS) too
            seen.append("bad request: " + format % args)

        def log_message(self, format, *args):  # noqa: A002
            pass

    return ThreadingHTTPServer(("127.0.0.1", 0), Handler)


def _chromium(binary: str, port: int, extra: list[str], profile: str, timeout: float) -> tuple[str, str]:
    args = [binary, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
            "--disable-background-networking", "--disable-component-update", "--disable-sync",
            "--disable-default-apps", "--disable-extensions", "--disable-domain-reliability", "--no-pings",
            "--disable-client-side-phishing-detection", "--metrics-recording-only",
            "--disable-features=NetworkTimeServiceQuerying,OptimizationHints,MediaRouter,Translate,"
            "CertificateTransparencyComponentUpdater,AutofillServerCommunication",
            f"--user-data-dir={profile}",
            f"--host-resolver-rules=MAP * 127.0.0.1:{port}", "--enable-logging=stderr", "--v=0", *extra,
            f"http://{HOST}/report.html"]
    try:
        done = subprocess.run(args, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise DataError(f"{binary}: did not finish loading the page within {timeout:.0f} s") from None
    if done.returncode != 0:
        raise DataError(f"{binary} exited with {done.returncode}: {done.stderr.strip().splitlines()[-1:]}")
    return done.stdout, done.stderr


def load_in_browser(page: str | Path, screenshot: str | Path | None = None, width: int = 1200, height: int = 2600,
                    timeout: float = 120.0, binary: str | None = None) -> BrowserCheck:
    """Load ``page`` (an HTML file) headless; the parsed DOM, console messages, requests, screenshot."""
    binary = binary or find_chromium()
    if binary is None:
        raise UsageError("no chromium on PATH (Debian: apt-get install chromium)")
    body = Path(page).read_bytes()
    seen: list[str] = []
    server = _server(body, seen)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    port = server.server_address[1]
    console: list[str] = []
    try:
        with tempfile.TemporaryDirectory(prefix="lmlab-chromium-") as profile:
            dom, log = _chromium(binary, port, ["--dump-dom"], profile, timeout)
            console += [line for line in log.splitlines() if CONSOLE.search(line)]
            shot = None
            if screenshot is not None:
                shot = Path(screenshot).resolve()
                shot.parent.mkdir(parents=True, exist_ok=True)
                _, log = _chromium(binary, port, [f"--screenshot={shot}", f"--window-size={width},{height}",
                                                  "--hide-scrollbars"], profile, timeout)
                console += [line for line in log.splitlines() if CONSOLE.search(line)]
                if not shot.is_file():
                    raise DataError(f"{binary}: wrote no screenshot to {shot}")
    finally:
        server.shutdown()
        server.server_close()
    return BrowserCheck(dom=dom, console=console, requests=seen, screenshot=shot)


URL = re.compile(r"""\b(?:src|href|action|poster|data|srcset)\s*=\s*["']?(?!["'#])[^"'\s>]|url\((?!\s*["']?#)"""
                 r"""|@import|https?://""", re.I)  # a reference to "#id" in the same document is no request


def urls_in_dom(dom: str) -> list[str]:
    """Everything in a parsed document that could make a request: ``src``/``href``/... attributes, CSS
    ``url(``/``@import`` and absolute URLs; ``#id`` references within the document and SVG's ``xmlns``
    namespace names are not requests and are ignored."""
    text = re.sub(r"""xmlns(?::\w+)?\s*=\s*["'][^"']*["']""", "", dom)
    return [text[max(m.start() - 30, 0):m.end() + 30] for m in URL.finditer(text)]


def main(argv: list[str] | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(description="Load a report page headless: console messages, requests, "
                                                 "and (optionally) a screenshot.")
    parser.add_argument("page", type=Path)
    parser.add_argument("--screenshot", type=Path, default=None)
    parser.add_argument("--width", type=int, default=1200)
    parser.add_argument("--height", type=int, default=2600)
    args = parser.parse_args(argv)
    check = load_in_browser(args.page, args.screenshot, args.width, args.height)
    urls = urls_in_dom(check.dom)
    print(f"{len(check.page_requests)} request(s) from the page: {check.page_requests}")
    print(f"{len(urls)} URL(s) in the parsed document: {urls}")
    print(f"{len(check.console)} console message(s)" + "".join(f"\n  {c}" for c in check.console))
    if check.screenshot:
        print(f"screenshot: {check.screenshot}")
    return 0 if not check.page_requests and not urls and not check.console else 1


if __name__ == "__main__":
    sys.exit(main())
