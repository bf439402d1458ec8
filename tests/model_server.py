"""A local HTTP server for the model-store tests: 127.0.0.1 only, started and stopped by the test.

It serves `files` ({path: bytes}); a path in `cut` ({path: n}) sends its full Content-Length but
closes the connection after n bytes on its first `cut_times` plain requests; Range requests
(`bytes=N-`) are answered 206 unless `ignore_range`. Every request is logged as (path, range).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class _Handler(BaseHTTPRequestHandler):
    def log_message(self, *args) -> None:  # quiet
        pass

    def do_GET(self) -> None:
        state = self.server.state
        path = self.path.lstrip("/")
        requested = self.headers.get("Range")
        state["log"].append((path, requested))
        data = state["files"].get(path)
        if data is None:
            self.send_error(404, "Not Found")
            return
        start = 0
        if requested and not state.get("ignore_range"):
            start = int(requested.removeprefix("bytes=").split("-")[0])
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        else:
            self.send_response(200)
        body = data[start:]
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        cut = state["cut"].get(path)
        if cut is not None and not requested and state["cut_done"].get(path, 0) < state.get("cut_times", 1):
            state["cut_done"][path] = state["cut_done"].get(path, 0) + 1
            self.wfile.write(body[:cut])
            self.wfile.flush()
            self.close_connection = True
            return
        self.wfile.write(body)


@contextmanager
def model_server(files: dict[str, bytes], cut: dict[str, int] | None = None, cut_times: int = 1,
                 ignore_range: bool = False) -> Iterator[tuple[str, dict]]:
    """(base URL, state) of a server on 127.0.0.1 for the block; stopped afterwards."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    server.daemon_threads = True
    server.state = {"files": files, "cut": cut or {}, "cut_times": cut_times, "cut_done": {}, "log": [],
                    "ignore_range": ignore_range}
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", server.state
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)
