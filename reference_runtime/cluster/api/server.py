"""The HTTP transport and the ``ApiServer`` object that runs the whole control plane.

``ApiServer`` owns a store, a ``Registry`` over it (``server.registry``: the in-process
API), the garbage collectors and an HTTP/1.1 server (a thread per connection, keep-alive,
``TCP_NODELAY``, each response written in one ``sendall``). Requests need
``Authorization: Bearer <token>`` except ``/version`` and the health checks; bodies are
limited to ``max_body_bytes`` (413). Watches and followed logs stream as chunked
responses and end when the server stops.

    with ApiServer.start() as server:           # SQLite in memory, random port
        server.url, server.token, server.kubeconfig
        server.registry.create("pods", {...}, namespace="default")
"""

from __future__ import annotations

import contextlib
import email.utils
import hmac
import http.server
import logging
import secrets
import shutil
import socket
import ssl
import tempfile
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from ..errors import (
    ApiError,
    BadRequestError,
    MethodNotAllowedError,
    RequestEntityTooLargeError,
    UnauthorizedError,
)
from ..kubeconfig import write_kubeconfig
from ..store import DEFAULT_HISTORY, Store, open_store
from ..tls import make_self_signed, server_context
from .handlers import OPEN_PATHS, ApiHandler, Request, Response, error_response
from .logs import LogSource
from .registry import Registry
from .watch import DEFAULT_BOOKMARK_INTERVAL

__all__ = ["MAX_BODY_BYTES", "ApiServer"]

log = logging.getLogger(__name__)

MAX_BODY_BYTES = 3 * 1024 * 1024  # kube-apiserver's default request body limit
_DRAIN_LIMIT = 64 * 1024 * 1024
_IP_FREEBIND = 15  # <linux/in.h>; not exported by the socket module
_REASONS = {code: phrase for code, phrase in ((s.value, s.phrase) for s in http.HTTPStatus)}


class _HttpServer(http.server.ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    request_queue_size = 128
    allow_reuse_address = True

    def __init__(
        self, address: tuple[str, int], api: ApiServer, tls: ssl.SSLContext | None
    ) -> None:
        self.api = api
        self.tls = tls
        self.stopping = threading.Event()
        self._connections: set[socket.socket] = set()
        self._conn_lock = threading.Lock()
        self.streams = 0  # open streaming answers (watches, followed logs)
        self.streams_done = threading.Condition(self._conn_lock)
        family = socket.AF_INET6 if ":" in address[0] else socket.AF_INET
        self.address_family = family
        super().__init__(address, _Handler)

    def server_bind(self) -> None:
        # A node link's host address may be down (a partitioned node): bind to it anyway.
        if self.address_family == socket.AF_INET:
            self.socket.setsockopt(socket.IPPROTO_IP, _IP_FREEBIND, 1)
        super().server_bind()

    def get_request(self) -> tuple[Any, Any]:
        sock, addr = super().get_request()
        if self.tls is not None:
            # The handshake happens in the connection's own thread (see _Handler.setup).
            sock = self.tls.wrap_socket(sock, server_side=True, do_handshake_on_connect=False)
        return sock, addr

    def handle_error(self, request: Any, client_address: Any) -> None:
        log.debug("connection from %s failed", client_address, exc_info=True)

    def track(self, conn: socket.socket, add: bool) -> None:
        with self._conn_lock:
            (self._connections.add if add else self._connections.discard)(conn)

    def stream_started(self) -> None:
        with self._conn_lock:
            self.streams += 1

    def stream_ended(self) -> None:
        with self._conn_lock:
            self.streams -= 1
            self.streams_done.notify_all()

    def wait_streams(self, timeout: float) -> None:
        """Give open streams ``timeout`` seconds to notice ``stopping`` and end cleanly."""
        with self._conn_lock:
            self.streams_done.wait_for(lambda: self.streams == 0, timeout)

    def close_connections(self) -> None:
        with self._conn_lock:
            conns = list(self._connections)
        for conn in conns:
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass  # already closed by the client: nothing to do


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _HttpServer
    server_version = "reference-cluster"
    sys_version = ""

    def setup(self) -> None:
        if isinstance(self.request, ssl.SSLSocket):
            self.request.settimeout(10)
            self.request.do_handshake()
            self.request.settimeout(None)
        super().setup()
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.server.track(self.connection, True)

    def finish(self) -> None:
        self.server.track(self.connection, False)
        with contextlib.suppress(OSError):  # the client may be gone already
            super().finish()

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("%s %s", self.address_string(), format % args)

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        """Errors found by http.server itself (bad request line, unknown method): a Status."""
        error: ApiError
        if code == 501:
            error = MethodNotAllowedError(f"the server does not allow the method {self.command!r}")
        else:
            error = ApiError(message or _REASONS.get(code, "error"), code=code, reason="BadRequest")
        self.close_connection = True
        with contextlib.suppress(OSError):
            self._send(error_response(error), close=True)

    def do_GET(self) -> None:
        self._serve()

    do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = do_GET

    def _serve(self) -> None:
        api = self.server.api
        path, _, query = self.path.partition("?")
        try:
            if self.command in ("HEAD", "OPTIONS"):
                raise MethodNotAllowedError(f"the server does not allow the method {self.command}")
            if path not in OPEN_PATHS:
                self._authenticate(api.token)
            body = self._read_body(api.max_body_bytes)
            headers = {k.lower(): v for k, v in self.headers.items()}
            response = api.handler.handle(Request(self.command, path, query, headers, body))
        except ApiError as exc:
            response = error_response(exc)
        except Exception:  # a bug, not bad input: log it, answer 500, keep serving
            log.exception("internal error serving %s %s", self.command, self.path)
            response = error_response(ApiError("an internal error occurred; see the server log"))
        try:
            if response.stream is not None:
                self._stream(response)
            else:
                self._send(response)
        except OSError:
            self.close_connection = True  # the client went away mid-answer

    def _authenticate(self, token: str) -> None:
        if not token:
            return
        header = self.headers.get("Authorization", "")
        scheme, _, presented = header.partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(
            presented.strip().encode(), token.encode()
        ):
            raise UnauthorizedError("Unauthorized")

    def _read_body(self, limit: int) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            return self._read_chunked(limit)
        length_text = self.headers.get("Content-Length")
        if not length_text:
            return b""
        try:
            length = int(length_text)
        except ValueError:
            self.close_connection = True
            raise BadRequestError(f"invalid Content-Length {length_text!r}") from None
        if length < 0:
            self.close_connection = True
            raise BadRequestError(f"invalid Content-Length {length_text!r}")
        if length > limit:
            self.close_connection = True  # the connection ends after this answer
            if length <= _DRAIN_LIMIT:
                # Read and drop the body, so a client that writes it all before reading
                # (Python's http.client does) gets the 413 rather than a broken pipe.
                self._drain(length)
            raise RequestEntityTooLargeError(f"the request is too large: limit is {limit} bytes")
        return self.rfile.read(length)

    def _drain(self, length: int) -> None:
        self.connection.settimeout(5)
        try:
            while length > 0:
                chunk = self.rfile.read(min(length, 1 << 16))
                if not chunk:
                    return
                length -= len(chunk)
        except OSError:
            pass  # the client gave up sending: the connection closes anyway

    def _read_chunked(self, limit: int) -> bytes:
        chunks: list[bytes] = []
        total = 0
        while True:
            line = self.rfile.readline(1024)
            try:
                size = int(line.split(b";")[0].strip(), 16)
            except ValueError:
                self.close_connection = True
                raise BadRequestError("malformed chunked request body") from None
            if size == 0:
                while self.rfile.readline(1024).strip():
                    pass  # trailers: ignored
                return b"".join(chunks)
            total += size
            if total > limit:
                self.close_connection = True
                raise RequestEntityTooLargeError(
                    f"the request is too large: limit is {limit} bytes"
                )
            chunks.append(self.rfile.read(size))
            self.rfile.readline(1024)

    def _head(self, code: int, content_type: str, extra: str) -> bytes:
        reason = _REASONS.get(code, "Unknown")
        return (
            f"HTTP/1.1 {code} {reason}\r\n"
            f"Content-Type: {content_type}\r\n"
            f"Date: {email.utils.formatdate(usegmt=True)}\r\n"
            "Cache-Control: no-cache, private\r\n"
            f"{extra}\r\n"
        ).encode()

    def _send(self, response: Response, *, close: bool = False) -> None:
        close = close or self.close_connection
        extra = f"Content-Length: {len(response.body)}\r\n"
        if close:
            extra += "Connection: close\r\n"
            self.close_connection = True
        body = b"" if self.command == "HEAD" else response.body
        self.wfile.write(self._head(response.code, response.content_type, extra) + body)

    def _stream(self, response: Response) -> None:
        assert response.stream is not None
        stopping = self.server.stopping
        self.server.stream_started()
        try:
            self.wfile.write(
                self._head(response.code, response.content_type, "Transfer-Encoding: chunked\r\n")
            )
            for chunk in response.stream:
                if stopping.is_set():
                    break
                if chunk:
                    self.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
            self.wfile.write(b"0\r\n\r\n")
        finally:
            self.server.stream_ended()
            self.close_connection = True  # a stream is the last answer on its connection
            if response.on_close is not None:
                response.on_close()


class ApiServer:
    """The reference cluster's control plane in this process (see the module docstring).

    ``store`` is a ``Store`` (the caller closes it) or a URL (the server opens and closes
    it). ``token=None`` makes a random token; ``""`` turns authentication off. The
    kubeconfig goes to ``kubeconfig`` or, by default, a temporary file removed on stop.
    ``tls_files`` (certificate, key) serves a certificate made beforehand; ``extra_hosts``
    are more addresses to listen on, with the same port.
    """

    def __init__(
        self,
        store: Store | str = "sqlite::memory:",
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        token: str | None = None,
        kubeconfig: str | Path | None = None,
        name: str = "reference",
        log_source: LogSource | None = None,
        bookmark_interval: float = DEFAULT_BOOKMARK_INTERVAL,
        max_body_bytes: int = MAX_BODY_BYTES,
        history: int = DEFAULT_HISTORY,
        collectors: bool = True,
        tls: bool = True,
        tls_files: tuple[Path, Path] | None = None,
        extra_hosts: Sequence[str] = (),
    ) -> None:
        from ..gc import Collectors

        self._owns_store = isinstance(store, str)
        self.store: Store = open_store(store, history=history) if isinstance(store, str) else store
        self.registry = Registry(self.store, bookmark_interval=bookmark_interval)
        self.registry.bootstrap()
        self.token = secrets.token_urlsafe(32) if token is None else token
        self.max_body_bytes = max_body_bytes
        self.name = name
        self._tmp = tempfile.mkdtemp(prefix="reference-cluster-")
        context: ssl.SSLContext | None = None
        self.ca_cert: bytes | None = None
        if tls:
            cert, key = tls_files or make_self_signed(Path(self._tmp))
            context, self.ca_cert = server_context(cert, key), cert.read_bytes()
        self._http = _HttpServer((host, port), self, context)
        bound, bound_port = self._http.server_address[:2]
        bound_host = bound.decode() if isinstance(bound, bytes) else str(bound)
        url_host = f"[{bound_host}]" if ":" in bound_host else bound_host
        self.url = f"{'https' if tls else 'http'}://{url_host}:{bound_port}"
        self.port = int(bound_port)
        # More listening addresses on the same port (e.g. node links' host ends).
        self._extra = [_HttpServer((h, self.port), self, context) for h in extra_hosts]
        self._extra_threads: list[threading.Thread] = []
        self.handler = ApiHandler(
            self.registry, server_address=f"{url_host}:{bound_port}", log_source=log_source
        )
        self.collectors = Collectors(self.registry) if collectors else None
        if kubeconfig is None:
            kubeconfig = Path(self._tmp) / "kubeconfig"
        self.kubeconfig = write_kubeconfig(
            kubeconfig, self.url, self.token, name, ca_cert=self.ca_cert
        )
        self._thread: threading.Thread | None = None
        self._stopped = False

    @classmethod
    @contextlib.contextmanager
    def start(cls, store: Store | str = "sqlite::memory:", **kwargs: Any) -> Iterator[ApiServer]:
        """Run a server for the ``with`` block; everything it made is gone afterwards."""
        server = cls(store, **kwargs)
        try:
            server.serve()
            yield server
        finally:
            server.stop()

    def _serve_extra(self) -> None:
        for extra in self._extra:
            thread = threading.Thread(
                target=extra.serve_forever, args=(0.2,), name="api-http-extra", daemon=True
            )
            thread.start()
            self._extra_threads.append(thread)

    def serve(self) -> None:
        """Start serving HTTP and the collectors in background threads; returns at once."""
        if self.collectors is not None:
            self.collectors.start()
        self._serve_extra()
        self._thread = threading.Thread(
            target=self._http.serve_forever, args=(0.2,), name="api-http", daemon=True
        )
        self._thread.start()

    def serve_forever(self) -> None:
        """Serve in this thread until ``stop()`` is called from another (or a signal)."""
        if self.collectors is not None:
            self.collectors.start()
        self._serve_extra()
        self._http.serve_forever(0.2)

    def stop(self) -> None:
        """Stop serving, end open watches and connections, close what the server opened."""
        if self._stopped:
            return
        self._stopped = True
        servers = [self._http, *self._extra]
        for http_server in servers:
            http_server.stopping.set()
        if self._thread is not None:
            self._http.shutdown()
            self._thread.join(5)
        for extra, thread in zip(self._extra, self._extra_threads, strict=False):
            extra.shutdown()
            thread.join(5)
        for http_server in servers:
            http_server.server_close()
        for http_server in servers:
            http_server.wait_streams(2.0)
            http_server.close_connections()
        if self.collectors is not None:
            self.collectors.stop()
        if self._owns_store:
            self.store.close()
        shutil.rmtree(self._tmp, ignore_errors=True)

    def request_stop(self) -> None:
        """Ask ``serve_forever`` to return (safe from a signal handler's thread)."""
        threading.Thread(target=self._http.shutdown, daemon=True).start()
