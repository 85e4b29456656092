"""Run as ``python -m tests.ccr.sqlite_worker PATH NAME COUNT`` by the two-process test:
write COUNT entries of its own, then read until the other worker's entries are all there.

Prints one JSON line: its own keys, and how many of the other's it read back intact.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from pathlib import Path

from headroom.ccr.markers import content_key
from headroom.ccr.sqlite import SqliteStore
from headroom.ccr.store import Entry

OTHER = {"a": "b", "b": "a"}


def value(name: str, i: int) -> bytes:
    return f"{name}-{i}:".encode() * 500


async def main(path: Path, name: str, count: int) -> None:
    store = await SqliteStore.open(path, ttl=3600.0, max_bytes=1 << 30)
    try:
        for i in range(count):  # one transaction each, interleaving with the other writer
            await store.put(value(name, i))
        other = [content_key(value(OTHER[name], i)) for i in range(count)]
        seen: set[str] = set()
        deadline = time.monotonic() + 20
        while len(seen) < count and time.monotonic() < deadline:
            for i, key in enumerate(other):
                got = await store.get(key)
                if isinstance(got, Entry) and got.original == value(OTHER[name], i):
                    seen.add(key)
            await asyncio.sleep(0.01)
        print(json.dumps({"name": name, "read_other": len(seen), "stats": await store.stats()}))
    finally:
        await store.close()


if __name__ == "__main__":
    asyncio.run(main(Path(sys.argv[1]), sys.argv[2], int(sys.argv[3])))
