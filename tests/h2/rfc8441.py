"""A small RFC 8441 WebSocket client for tests: h2 carries the stream, wsproto the frames."""

from __future__ import annotations

import socket
import time
from typing import Any

import h2.config
import h2.connection
import h2.events
from wsproto.connection import Connection, ConnectionType
from wsproto.extensions import PerMessageDeflate


class H2WebSocket:
    def __init__(
        self,
        port: int,
        path: str = "/ws",
        *,
        extensions: str | None = None,
        protocols: str | None = None,
    ) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=5)
        self.h2 = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
        self.h2.initiate_connection()
        self._flush()
        self.settings_seen = False
        self.ended = False
        while not self.settings_seen:
            self._read()
        headers = [
            (":method", "CONNECT"),
            (":protocol", "websocket"),
            (":scheme", "http"),
            (":path", path),
            (":authority", "x"),
            ("sec-websocket-version", "13"),
        ]
        if extensions:
            headers.append(("sec-websocket-extensions", extensions))
        if protocols:
            headers.append(("sec-websocket-protocol", protocols))
        self.h2.send_headers(1, headers)
        self._flush()
        self.response: dict[bytes, bytes] | None = None
        self.reset_code: int | None = None
        while self.response is None and self.reset_code is None:
            self._read()
        offered = extensions and self.response and b"sec-websocket-extensions" in self.response
        exts: list[Any] = []
        if offered:
            deflate = PerMessageDeflate()
            deflate.finalize(self.response[b"sec-websocket-extensions"].decode())  # type: ignore[index]
            exts.append(deflate)
        self.ws = Connection(ConnectionType.CLIENT, extensions=exts)

    def _flush(self) -> None:
        data = self.h2.data_to_send()
        if data:
            self.sock.sendall(data)

    def _read(self) -> None:
        data = self.sock.recv(1 << 20)
        if not data:
            raise EOFError("proxy closed the connection")
        for event in self.h2.receive_data(data):
            if isinstance(event, h2.events.RemoteSettingsChanged):
                self.settings_seen = True
            elif isinstance(event, h2.events.ResponseReceived):
                self.response = dict(event.headers)
            elif isinstance(event, h2.events.StreamReset):
                self.reset_code = int(event.error_code)
            elif isinstance(event, h2.events.DataReceived):
                self.h2.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
                self.ws.receive_data(event.data)
            elif isinstance(event, h2.events.StreamEnded):
                self.ended = True
        self._flush()

    def send(self, event: Any) -> None:
        self.h2.send_data(1, self.ws.send(event))
        self._flush()

    def recv(self, timeout: float = 5.0) -> Any:
        """The next WebSocket event (frames first; end of stream only once they are read)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for event in self.ws.events():
                return event
            if self.ended:
                self.ws.receive_data(None)
                continue
            self._read()
        raise TimeoutError("no WebSocket event in time")

    def close(self) -> None:
        self.sock.close()
