"""A fake HTTP/2 origin on real sockets (h2c or TLS with ALPN h2), in a background thread.

It answers ``/echo`` with what it received (method, path, headers, body digest), ``/sse``
with spaced events, and ``/slow`` after a delay; it records every connection and the most
streams each one had open at once, and can be told to send GOAWAY after N streams, so
tests can see multiplexing, stream limits and retirement from the outside.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import ssl
import threading
from dataclasses import dataclass, field
from urllib.parse import parse_qs, urlsplit

import h2.config
import h2.connection
import h2.events
import h2.settings
from hyperframe.frame import GoAwayFrame


@dataclass
class ConnStats:
    streams: int = 0
    open_now: int = 0
    max_open: int = 0


@dataclass
class H2Upstream:
    tls: ssl.SSLContext | None = None
    max_streams: int = 100
    goaway_after: int | None = None  # streams per connection before a GOAWAY
    connections: list[ConnStats] = field(default_factory=list)
    trailers: dict[bytes, list[tuple[bytes, bytes]]] = field(default_factory=dict)  # by :path
    port: int = 0

    def start(self) -> H2Upstream:
        ready = threading.Event()
        self._loop = asyncio.new_event_loop()

        async def main() -> None:
            server = await asyncio.start_server(self._serve, "127.0.0.1", 0, ssl=self.tls)
            self.port = server.sockets[0].getsockname()[1]
            self._server = server
            ready.set()
            async with server:
                await server.serve_forever()

        self._thread = threading.Thread(target=lambda: self._run(main()), daemon=True)
        self._thread.start()
        assert ready.wait(10)
        return self

    def _run(self, coro) -> None:  # type: ignore[no-untyped-def]
        try:
            self._loop.run_until_complete(coro)
        except asyncio.CancelledError:
            pass

    def stop(self) -> None:
        self._loop.call_soon_threadsafe(self._server.close)

    @property
    def url(self) -> str:
        return f"{'https' if self.tls else 'http'}://127.0.0.1:{self.port}"

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        stats = ConnStats()
        self.connections.append(stats)
        conn = h2.connection.H2Connection(
            h2.config.H2Configuration(client_side=False, header_encoding=None)
        )
        conn.local_settings = h2.settings.Settings(
            client=False,
            initial_values={h2.settings.SettingCodes.MAX_CONCURRENT_STREAMS: self.max_streams},
        )
        conn.initiate_connection()
        writer.write(conn.data_to_send())
        bodies: dict[int, bytearray] = {}
        heads: dict[int, dict[bytes, bytes]] = {}
        tasks: set[asyncio.Task[None]] = set()
        goaway_last: int | None = None
        try:
            while True:
                data = await reader.read(65536)
                if not data:
                    break
                for event in conn.receive_data(data):
                    if isinstance(event, h2.events.RequestReceived):
                        if goaway_last is not None and event.stream_id > goaway_last:
                            continue  # after our GOAWAY: ignored, the client must retry
                        heads[event.stream_id] = dict(event.headers)
                        bodies[event.stream_id] = bytearray()
                        stats.streams += 1
                        stats.open_now += 1
                        stats.max_open = max(stats.max_open, stats.open_now)
                        if self.goaway_after and stats.streams == self.goaway_after:
                            # Raw GOAWAY: h2's own would forbid answering the streams it
                            # keeps (those up to this one), which is the point of the test.
                            goaway_last = event.stream_id
                            writer.write(GoAwayFrame(0, last_stream_id=goaway_last).serialize())
                    elif isinstance(event, h2.events.DataReceived):
                        conn.acknowledge_received_data(
                            event.flow_controlled_length, event.stream_id
                        )
                        if event.stream_id not in bodies:
                            continue
                        bodies[event.stream_id] += event.data
                        conn.acknowledge_received_data(
                            event.flow_controlled_length, event.stream_id
                        )
                    elif isinstance(event, h2.events.TrailersReceived):
                        if event.stream_id in heads:
                            path = heads[event.stream_id][b":path"]
                            self.trailers[path] = list(event.headers)
                    elif isinstance(event, h2.events.StreamEnded):
                        sid = event.stream_id
                        if sid not in heads:
                            continue
                        task = asyncio.ensure_future(
                            self._answer(conn, writer, sid, heads[sid], bytes(bodies[sid]), stats)
                        )
                        tasks.add(task)
                        task.add_done_callback(tasks.discard)

                writer.write(conn.data_to_send())
                await writer.drain()
            await asyncio.gather(*tasks, return_exceptions=True)
        except (ConnectionError, h2.exceptions.ProtocolError):
            pass
        finally:
            writer.close()

    async def _answer(
        self,
        conn: h2.connection.H2Connection,
        writer: asyncio.StreamWriter,
        sid: int,
        head: dict[bytes, bytes],
        body: bytes,
        stats: ConnStats,
    ) -> None:
        url = urlsplit(head[b":path"].decode())
        query = {k: v[0] for k, v in parse_qs(url.query).items()}
        try:
            if url.path.endswith("/slow"):
                await asyncio.sleep(int(query.get("delay_ms", "200")) / 1000)
            if url.path.endswith("/sse"):
                conn.send_headers(
                    sid, [(b":status", b"200"), (b"content-type", b"text/event-stream")]
                )
                for i in range(int(query.get("n", "3"))):
                    conn.send_data(sid, f"data: event-{i}\n\n".encode())
                    writer.write(conn.data_to_send())
                    await asyncio.sleep(int(query.get("gap_ms", "50")) / 1000)
                conn.end_stream(sid)
            else:
                answer = json.dumps(
                    {
                        "method": head[b":method"].decode(),
                        "path": head[b":path"].decode(),
                        "authority": head.get(b":authority", b"").decode(),
                        "headers": {
                            k.decode(): v.decode()
                            for k, v in head.items()
                            if not k.startswith(b":")
                        },
                        "length": len(body),
                        "sha256": hashlib.sha256(body).hexdigest(),
                    }
                ).encode()
                conn.send_headers(
                    sid,
                    [
                        (b":status", b"200"),
                        (b"content-type", b"application/json"),
                        (b"content-length", str(len(answer)).encode()),
                    ],
                )
                for i in range(0, len(answer), 16384):
                    conn.send_data(sid, answer[i : i + 16384], end_stream=i + 16384 >= len(answer))
            writer.write(conn.data_to_send())
        except Exception:  # the proxy reset the stream or left: nothing to answer
            pass
        finally:
            stats.open_now -= 1
