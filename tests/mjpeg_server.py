"""A small MJPEG-over-HTTP camera (multipart/x-mixed-replace) that a test can freeze, stop and restart.

freeze(): keeps every connection open but sends nothing (a hung camera); thaw() resumes.
stop(): closes the listening socket and every connection (camera unplugged); start() listens again
on the same port.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import cv2
import numpy as np

BOUNDARY = "frame"


def jpeg(index: int) -> bytes:
    image = np.full((120, 160, 3), (index * 7) % 256, np.uint8)
    cv2.putText(image, str(index), (10, 70), cv2.FONT_HERSHEY_SIMPLEX, 1.5, (255, 255, 255), 2)
    ok, data = cv2.imencode(".jpg", image)
    assert ok
    return bytes(data.tobytes())


class MjpegCamera:
    def __init__(self, fps: float = 25.0) -> None:
        self.fps = fps
        self.port = 0
        self.frames_sent = 0
        self._running = threading.Event()  # cleared: frozen
        self._running.set()
        self._server: ThreadingHTTPServer | None = None
        self._connections: list[socket.socket] = []
        self._lock = threading.Lock()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/stream.mjpg"

    def start(self) -> None:
        camera = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.0"

            def do_GET(self) -> None:
                with camera._lock:
                    camera._connections.append(self.connection)
                self.send_response(200)
                self.send_header("Content-Type", f"multipart/x-mixed-replace; boundary={BOUNDARY}")
                self.send_header("Cache-Control", "no-cache")
                self.end_headers()
                with contextlib.suppress(OSError):
                    camera._stream(self.wfile)

            def log_message(self, *_: Any) -> None:
                pass

        class Server(ThreadingHTTPServer):
            allow_reuse_address = True
            daemon_threads = True

        self._server = Server(("127.0.0.1", self.port), Handler)
        self.port = self._server.server_address[1]
        threading.Thread(target=self._server.serve_forever, args=(0.05,), daemon=True).start()

    def _stream(self, out: Any) -> None:
        server = self._server
        while self._server is server:
            self._running.wait()
            if self._server is not server:
                return
            data = jpeg(self.frames_sent)
            head = f"--{BOUNDARY}\r\nContent-Type: image/jpeg\r\nContent-Length: {len(data)}\r\n\r\n"
            out.write(head.encode() + data + b"\r\n")
            out.flush()
            self.frames_sent += 1
            time.sleep(1.0 / self.fps)

    def freeze(self) -> None:
        self._running.clear()

    def thaw(self) -> None:
        self._running.set()

    def stop(self) -> None:
        server, self._server = self._server, None
        if server is None:
            return
        server.shutdown()
        server.server_close()
        with self._lock:
            connections, self._connections = self._connections, []
        for conn in connections:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
            conn.close()
        self._running.set()  # wake frozen streams so that their threads end
