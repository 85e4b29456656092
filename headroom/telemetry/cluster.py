"""Cluster-wide ``/stats``: every worker's numbers in a small file of its own.

Any worker may be asked for ``/stats``, so each needs every other worker's counters. Files in
a runtime directory the supervisor creates do that with nothing to coordinate: each worker
rewrites ``w-<pid>.json`` every ``PUBLISH_INTERVAL`` (and once more after its drain) by
writing a temporary file and renaming it, which readers see whole or not at all. No lock, no
channel protocol, nothing a crashed worker can leave half-held; the cost is a few KB written
twice a second per worker. A channel to the supervisor would have put the supervisor on the
request path of every ``/stats`` call, which it is meant never to be.

Counters must keep adding up when workers come and go (crash restarts, SIGHUP rollouts), so
the supervisor folds an exited worker's last file into ``retired.json`` and then deletes it.
``retired.json`` lists the pids it holds and has a sequence number; a reader skips worker
files whose pid is already retired and re-reads when the sequence moved under it, so no
worker is counted twice or missed. A worker that is killed outright loses at most its last
interval of counts; a drained one loses nothing.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

from headroom.telemetry.stats import GAUGES, Stats

PUBLISH_INTERVAL = 0.5
STALE_AFTER = 5.0  # a live worker whose file is older than this is flagged in /stats
RETIRED_PIDS_KEPT = 256  # only recently retired pids can still have a file lying around
READ_ATTEMPTS = 3

Record = dict[str, Any]


def write_json_atomic(path: Path, data: Any) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_bytes(json.dumps(data, separators=(",", ":")).encode())
    os.replace(tmp, path)


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_bytes())
    except (OSError, ValueError):
        return None  # vanished between listing and reading, or not ours


class StatsDir:
    """The directory's layout, shared by the workers (publish) and the supervisor (retire)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def worker_file(self, pid: int) -> Path:
        return self.path / f"w-{pid}.json"

    @property
    def retired_file(self) -> Path:
        return self.path / "retired.json"

    def publish(self, record: Record) -> None:
        write_json_atomic(self.worker_file(int(record["pid"])), record)

    def retired(self) -> Record:
        data = _read_json(self.retired_file)
        if not isinstance(data, dict):
            return {"seq": 0, "pids": [], "workers": 0, "stats": None, "ccr_endpoints": {}}
        return data

    def retire(self, pid: int) -> Record | None:
        """Supervisor only (one writer): fold a gone worker's last numbers into the retired
        totals, then drop its file. Returns the worker's last record, if it left one."""
        path = self.worker_file(pid)
        record = _read_json(path)
        if isinstance(record, dict):
            old = self.retired()
            total = Stats.merged([old["stats"]] if old["stats"] else [])
            # A gauge, not a count: a gone worker holds no connections (a killed one's last
            # snapshot may still show some).
            total.add_data({**record["stats"], **dict.fromkeys(GAUGES, 0)})
            endpoints: Counter[str] = Counter(old.get("ccr_endpoints", {}))
            endpoints.update(record.get("ccr_endpoints", {}))
            write_json_atomic(
                self.retired_file,
                {
                    "seq": int(old["seq"]) + 1,
                    "pids": [*old["pids"], pid][-RETIRED_PIDS_KEPT:],
                    "workers": int(old["workers"]) + 1,
                    "stats": total.to_data(),
                    "ccr_endpoints": dict(endpoints),
                },
            )
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
        return record if isinstance(record, dict) else None

    def live_records(self, skip: set[int]) -> list[Record]:
        out = []
        for path in sorted(self.path.glob("w-*.json")):
            record = _read_json(path)
            if isinstance(record, dict) and int(record.get("pid", 0)) not in skip:
                out.append(record)
        return out

    def consistent_read(self, own_pid: int) -> tuple[Record, list[Record]]:
        """Retired totals plus the other live workers' records, as of one moment."""
        retired: Record = self.retired()
        records: list[Record] = []
        for _ in range(READ_ATTEMPTS):
            records = self.live_records({own_pid, *retired["pids"]})
            again = self.retired()
            if again["seq"] == retired["seq"]:
                break
            retired = again
        return retired, records


class ClusterView:
    """What a worker's ``/stats`` and ``/metrics`` show: its own live numbers plus every
    other worker's last published ones plus the retired totals."""

    def __init__(self, stats_dir: StatsDir, own: Callable[[], Record]) -> None:
        self.dir = stats_dir
        self.own = own

    def gather(self) -> tuple[Stats, dict[str, int], dict[str, Any]]:
        mine = self.own()
        retired, others = self.dir.consistent_read(int(mine["pid"]))
        records = [mine, *others]
        parts = [r["stats"] for r in records]
        if retired["stats"]:
            parts.append(retired["stats"])
        total = Stats.merged(parts)
        endpoints: Counter[str] = Counter(retired.get("ccr_endpoints", {}))
        for record in records:
            endpoints.update(record.get("ccr_endpoints", {}))
        now = time.time()
        per_worker = [_worker_row(r, now, r is mine) for r in records]
        per_worker.sort(key=lambda row: (row["worker"], row["generation"]))
        retired_stats = retired["stats"] or {}
        block = {
            "count": len(records),
            "answered_by": mine["pid"],
            "per_worker": per_worker,
            "retired": {
                "workers": retired["workers"],
                "requests": int(retired_stats.get("requests", 0)),
            },
        }
        return total, dict(endpoints), block


def _worker_row(record: Record, now: float, mine: bool) -> dict[str, Any]:
    stats = record["stats"]
    age = 0.0 if mine else max(0.0, now - float(record["published"]))
    return {
        "pid": record["pid"],
        "worker": record["worker"],
        "generation": record["generation"],
        "requests": stats["requests"],
        "active_connections": stats["active_connections"],
        "in_flight": record.get("in_flight", 0),
        "draining": record.get("draining", False),
        "snapshot_age_s": round(age, 3),
        "stale": age > STALE_AFTER,
    }
