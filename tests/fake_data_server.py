"""A local stand-in for the Hugging Face Hub's file URLs and raw.githubusercontent.com, on 127.0.0.1.

Serves the offline mirror's files under the URL layouts `workbench.data.fetch` downloads from:
``/datasets/<repo>/resolve/<revision>/<path>`` (HEAD + GET with Range, ``ETag`` = the content's sha256
as the Hub sends for LFS files, ``X-Repo-Commit``) and ``/<owner>/<repo>/<commit>/<path>`` (GitHub raw).
`huggingface_hub` talks to it through ``HF_ENDPOINT`` (no mock of the library). Knobs: ``corrupt`` (paths
served with flipped bytes but the true ETag), ``slow`` (a path whose body stalls after some bytes, to kill
a download half-way), and a request log with the Range headers received.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pandas as pd

from workbench.data import fetch

COMMIT = "1234567890abcdef1234567890abcdef12345678"


def mirror_files(mirror: Path) -> dict[str, bytes]:
    """URL path -> bytes, for every file of `workbench.data.fetch.MANIFEST`, built from the offline mirror."""
    out = {}
    for f in fetch.MANIFEST:
        local = mirror / f.local
        if f.transform == "gzip":
            data = gzip.decompress(local.read_bytes())
        elif f.transform == "rewardbench_jsonl":  # the Hub holds a parquet with the upstream columns
            frame = pd.read_json(io.BytesIO(gzip.decompress(local.read_bytes())), lines=True, dtype=False)
            buf = io.BytesIO()
            frame.to_parquet(buf, index=False)
            data = buf.getvalue()
        else:
            data = local.read_bytes()
        url = (f"/datasets/{f.repo}/resolve/{f.revision}/{f.path}" if f.source == "hub"
               else f"/{f.repo}/{f.revision}/{f.path}")
        out[url] = data
    return out


class FakeDataServer:
    def __init__(self, files: dict[str, bytes]):
        self.files = files
        self.corrupt: set[str] = set()
        self.slow: dict[str, int] = {}  # path -> bytes sent before the body stalls
        self.log: list[tuple[str, str, str]] = []  # (method, path, Range header)
        self.sent: dict[str, int] = {}
        self._stop = threading.Event()
        self._lock = threading.Lock()

    def __enter__(self) -> FakeDataServer:
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # noqa: D401 - silence stderr
                pass

            def do_HEAD(self):  # noqa: N802
                self._serve(body=False)

            def do_GET(self):  # noqa: N802
                self._serve(body=True)

            def _serve(self, body: bool):
                path = self.path.split("?")[0]
                with server._lock:
                    server.log.append((self.command, path, self.headers.get("Range", "")))
                data = server.files.get(path)
                if data is None:
                    self.send_response(404)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                etag = hashlib.sha256(data).hexdigest()
                if path in server.corrupt:
                    data = bytes(b ^ 0xFF for b in data[:64]) + data[64:]
                start = 0
                rng = self.headers.get("Range", "")
                if rng.startswith("bytes=") and rng[6:].split("-")[0]:
                    start = int(rng[6:].split("-")[0])
                part = data[start:]
                self.send_response(206 if start else 200)
                self.send_header("Content-Length", str(len(part)))
                self.send_header("ETag", f'"{etag}"')
                self.send_header("X-Repo-Commit", COMMIT)
                self.send_header("Accept-Ranges", "bytes")
                if start:
                    self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
                self.end_headers()
                if not body:
                    return
                stall = server.slow.get(path)
                try:
                    if stall is None:
                        self.wfile.write(part)
                    else:
                        self.wfile.write(part[:stall])
                        self.wfile.flush()
                        with server._lock:
                            server.sent[path] = server.sent.get(path, 0) + stall
                        server._stop.wait(600)  # stalls until the client is killed or the server stops
                except (BrokenPipeError, ConnectionResetError):
                    pass

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        threading.Thread(target=self._httpd.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._httpd.shutdown()
        self._httpd.server_close()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._httpd.server_address[1]}"


if __name__ == "__main__":  # a stand-alone server for a fresh-clone check: HF_ENDPOINT / WORKBENCH_GITHUB_RAW = its URL
    import argparse
    import time

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--mirror", required=True, help="the offline mirror folder (shared/data)")
    args = ap.parse_args()
    with FakeDataServer(mirror_files(Path(args.mirror))) as srv:
        print(srv.url, flush=True)
        while True:
            time.sleep(3600)
