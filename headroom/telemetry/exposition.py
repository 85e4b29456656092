"""The Prometheus text exposition format, written out: ``# HELP`` / ``# TYPE`` lines, label
escaping and cumulative histogram buckets, for every module that renders ``/metrics``."""

from __future__ import annotations

from typing import Protocol


class Buckets(Protocol):
    """A histogram as ``Exposition.histogram`` reads it."""

    buckets: tuple[float, ...]
    counts: list[int]
    total: float
    n: int


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


class Exposition:
    def __init__(self) -> None:
        self.lines: list[str] = []

    def metric(
        self, name: str, kind: str, help_text: str, samples: list[tuple[dict[str, str], float]]
    ) -> None:
        self.lines.append(f"# HELP {name} {help_text}")
        self.lines.append(f"# TYPE {name} {kind}")
        for labels, value in samples:
            self.lines.append(f"{name}{_labels(labels)} {_num(value)}")

    def histogram(self, name: str, help_text: str, hist: Buckets) -> None:
        self.lines.append(f"# HELP {name} {help_text}")
        self.lines.append(f"# TYPE {name} histogram")
        running = 0
        for bound, count in zip(hist.buckets, hist.counts, strict=True):
            running += count
            self.lines.append(f'{name}_bucket{{le="{_num(bound)}"}} {running}')
        self.lines.append(f'{name}_bucket{{le="+Inf"}} {hist.n}')
        self.lines.append(f"{name}_sum {_num(hist.total)}")
        self.lines.append(f"{name}_count {hist.n}")


def _labels(labels: dict[str, str]) -> str:
    if not labels:
        return ""
    return "{" + ",".join(f'{k}="{_escape(v)}"' for k, v in sorted(labels.items())) + "}"


def _num(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(float(value))
