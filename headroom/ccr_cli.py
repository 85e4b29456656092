"""``headroom-proxy ccr get HASH | stats | learned [--reset]``: the CCR store the proxy is
configured with, and what its learner learned from retrievals.

The store is chosen by the proxy's own flags and ``HEADROOM_PROXY_*`` variables
(``--ccr-backend``, ``--ccr-path``, ``--ccr-redis-url``, ...), so on a host whose unit file
sets them the command needs no arguments. ``--upstream`` is not needed and, if given, not
used. ``get`` writes the original's exact bytes to stdout (a read counts as a use: it
extends the entry's TTL, as a retrieval does); ``stats`` prints the store's figures as JSON;
``learned`` prints every (tool, kind) the learner has evidence for, with the decision now
applied to new outputs and why, as JSON; ``learned --reset`` forgets all of it (counters and
decisions: outputs compressed before are compressed afresh the next time they are seen).
A SQLite file that does not exist is reported, never created.

Exit codes: 0 found / shown, 1 not stored (not found, expired) or the store cannot be
opened, 2 bad arguments (including a hash that is not 24 hex characters).
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import sys
from collections.abc import Sequence

import orjson

from headroom.ccr.factory import from_config
from headroom.ccr.markers import normalize_key
from headroom.ccr.store import Entry, StoreError
from headroom.config import Config, UsageError, load
from headroom.config_flags import ENV_PREFIX
from headroom.learning.factory import learner_for

USAGE = (
    "usage: headroom-proxy ccr get HASH | ccr stats | ccr learned [--reset]  "
    "[the proxy's --ccr-* flags]"
)
_UNUSED_UPSTREAM = "http://127.0.0.1:9"  # load() needs one; the store does not


def main(argv: Sequence[str]) -> int:
    args = list(argv)
    command = args[0] if args else ""
    if command not in ("get", "stats", "learned") or (command == "get" and len(args) < 2):
        print(f"headroom-proxy ccr: error: {USAGE}", file=sys.stderr)
        return 2
    key = None
    if command == "get":
        key = normalize_key(args[1])
        if key is None:
            print(f"headroom-proxy ccr: error: {args[1]!r} is not a 24-hex hash", file=sys.stderr)
            return 2
    flags = args[2:] if command == "get" else args[1:]
    reset = command == "learned" and "--reset" in flags
    flags = [f for f in flags if f != "--reset"] if command == "learned" else flags
    try:
        config = _config(flags)
    except UsageError as exc:
        print(f"headroom-proxy ccr: error: {exc}", file=sys.stderr)
        return 2
    if config.ccr_backend == "sqlite" and not config.ccr_path.exists():
        print(f"headroom-proxy ccr: error: no store at {config.ccr_path}", file=sys.stderr)
        return 1
    try:
        if command == "learned":
            return asyncio.run(_learned(config, reset))
        return asyncio.run(_get(config, key) if key is not None else _stats(config))
    except StoreError as exc:
        print(f"headroom-proxy ccr: error: {exc}", file=sys.stderr)
        return 1


def _config(flags: list[str]) -> Config:
    environ = dict(os.environ)
    if "--upstream" not in flags and not any(f.startswith("--upstream=") for f in flags):
        environ.setdefault(ENV_PREFIX + "UPSTREAM", _UNUSED_UPSTREAM)
    return load(flags, environ)


async def _get(config: Config, key: str) -> int:
    store = await from_config(config)
    try:
        found = await store.get(key)
    finally:
        await store.close()
    if not isinstance(found, Entry):
        print(f"headroom-proxy ccr: {key}: {found.status.replace('_', ' ')}", file=sys.stderr)
        return 1
    sys.stdout.buffer.write(found.original)
    sys.stdout.buffer.flush()
    return 0


async def _stats(config: Config) -> int:
    store = await from_config(config)
    try:
        figures = await store.stats()
    finally:
        await store.close()
    sys.stdout.write(orjson.dumps(figures, option=orjson.OPT_INDENT_2).decode() + "\n")
    return 0


async def _learned(config: Config, reset: bool) -> int:
    store = await from_config(config)
    try:
        learner = await learner_for(dataclasses.replace(config, learning="on"), store)
        assert learner is not None
        try:
            if reset:
                await learner.reset()
                print("headroom-proxy ccr: learned state cleared", file=sys.stderr)
                return 0
            figures = await learner.stats()
        finally:
            await learner.close()
    finally:
        await store.close()
    sys.stdout.write(orjson.dumps(figures["by_tool"], option=orjson.OPT_INDENT_2).decode() + "\n")
    return 0
