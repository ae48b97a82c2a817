"""Start/stop for the tests' threaded HTTP servers on 127.0.0.1 (an ephemeral port)."""

from __future__ import annotations

import threading
from http.server import ThreadingHTTPServer
from typing import Any, Self


class ServerLifecycle:
    """Mixin: ``start()``, ``stop()``, ``with``, ``port``. Subclasses provide
    ``_make_server()`` and the fields ``_server``, ``_thread`` and ``_stopping`` (an Event
    that hanging handlers watch, so ``stop()`` returns promptly)."""

    _server: ThreadingHTTPServer | None
    _thread: threading.Thread | None
    _stopping: threading.Event

    def _make_server(self) -> ThreadingHTTPServer:
        raise NotImplementedError

    def start(self) -> Self:
        """Listen on an ephemeral port of 127.0.0.1 (idempotent)."""
        if self._server is not None:
            return self
        self._stopping.clear()
        self._server = self._make_server()
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},
            daemon=True,
            name=type(self).__name__,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop promptly: wakes hanging handlers, does not wait for them."""
        if self._server is None:
            return
        self._stopping.set()
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._server = self._thread = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc_info: Any) -> None:
        self.stop()

    @property
    def port(self) -> int:
        """The bound port (while running)."""
        if self._server is None:
            raise RuntimeError(f"{type(self).__name__} is not running")
        return int(self._server.server_address[1])
