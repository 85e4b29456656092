"""``headroom-proxy compress FILE|-``: what the model would see for one tool output.

A dry run of the engine the proxy uses, with its defaults: it prints the compressed output
(or, with ``--diff``, every line of the input marked kept or dropped, and the lines the
compressor wrote itself), and a summary on stderr: the kind detected, the strategy, the
token ratio and the markers. ``--json`` prints all of it as one object instead. Nothing is
stored, so the hashes in a dry run's markers name originals no store holds.

Exit codes: 0 done (compressed or not), 1 the input cannot be read, 2 bad arguments.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, TextIO

import orjson

from headroom.ccr.store import PendingWrites
from headroom.transforms.base import CompressContext, CompressResult
from headroom.transforms.pipeline import PASSTHROUGH, Pipeline, PipelineStats
from headroom.transforms.pipeline_config import STRATEGIES, PipelineConfig
from headroom.transforms.tokens import estimate_tokens
from headroom.transforms.wrappers import kept_lines

_COLOURS = {"kept": "", "dropped": "\x1b[31m", "written": "\x1b[36m"}
_RESET = "\x1b[0m"
_SIGN = {"kept": " ", "dropped": "-", "written": "+"}


def main(argv: Sequence[str]) -> int:
    args = _parser().parse_args(list(argv))
    try:
        text = _read(args.file)
    except (OSError, UnicodeDecodeError) as exc:
        print(f"headroom-proxy compress: error: cannot read {args.file}: {exc}", file=sys.stderr)
        return 1
    result, stats = _compress(text, args.query, args.kind, args.model)
    try:
        _print(text, result, stats, args.json, args.diff)
    except BrokenPipeError:  # the reader stopped (``| head``): not an error of ours
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    return 0


def _print(
    text: str, result: CompressResult, stats: PipelineStats, as_json: bool, diff: bool
) -> None:
    if as_json:
        sys.stdout.write(
            orjson.dumps(_report(text, result, stats), option=orjson.OPT_INDENT_2).decode()
        )
        sys.stdout.write("\n")
        return
    if diff:
        colour = sys.stdout.isatty()
        for status, line in line_marks(text, result.output):
            _write_mark(sys.stdout, status, line, colour)
    else:
        sys.stdout.write(result.output if result.output.endswith("\n") else result.output + "\n")
    sys.stdout.flush()
    print(_summary(result, stats), file=sys.stderr)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="headroom-proxy compress",
        description="Show what the model would see for one tool output (nothing is stored).",
    )
    parser.add_argument("file", help="the tool output, or - for standard input")
    parser.add_argument(
        "--query",
        default="",
        help="the relevance context: the tool call's "
        "arguments, what the agent said, the user's question",
    )
    parser.add_argument(
        "--kind",
        choices=STRATEGIES,
        help="use this compressor instead of the one the detector picks",
    )
    parser.add_argument("--model", default="", help="model name, for its token estimate")
    parser.add_argument("--json", action="store_true", help="one JSON object on stdout")
    parser.add_argument("--diff", action="store_true", help="every input line, kept or dropped")
    return parser


def _read(name: str) -> str:
    if name == "-":
        return sys.stdin.read()
    return Path(name).read_text(encoding="utf-8")


def _compress(
    text: str, query: str, kind: str | None, model: str
) -> tuple[CompressResult, PipelineStats]:
    ctx = CompressContext(query=query, store=PendingWrites(), model=model)
    pipeline = Pipeline(PipelineConfig())
    if kind is None:
        return pipeline.compress_with_stats(text, ctx)
    stats = PipelineStats(kind=f"forced:{kind}")
    result = pipeline.compressor(kind).compress(text, ctx)
    tokens = estimate_tokens(text, model)
    if result.output == text or estimate_tokens(result.output, model) >= tokens:
        stats.reason = "no_saving"
        return CompressResult(text, PASSTHROUGH, tokens, tokens), stats
    stats.strategy = result.strategy
    return result, stats


def line_marks(original: str, output: str) -> Iterator[tuple[str, str]]:
    """Each input line as ``kept`` or ``dropped``, and each line the compressor wrote
    (``written``: markers, summaries), in output order. A kept line is matched to the next
    unused input line with the same text, the way line numbers are put back."""
    source, lines = original.split("\n"), output.split("\n")
    cursor = 0
    for line, match in zip(lines, kept_lines(source, lines), strict=True):
        if match is None:
            yield "written", line
            continue
        for skipped in source[cursor:match]:
            yield "dropped", skipped
        yield "kept", line
        cursor = match + 1
    for skipped in source[cursor:]:
        yield "dropped", skipped


def _write_mark(out: TextIO, status: str, line: str, colour: bool) -> None:
    text = f"{_SIGN[status]} {line}"
    code = _COLOURS[status] if colour else ""
    out.write(f"{code}{text}{_RESET if code else ''}\n")


def _report(text: str, result: CompressResult, stats: PipelineStats) -> dict[str, Any]:
    counts = {"kept": 0, "dropped": 0, "written": 0}
    for status, _ in line_marks(text, result.output):
        counts[status] += 1
    return {
        "kind": stats.kind,
        "strategy": result.strategy,
        "reason": stats.reason or None,
        "tokens_before": result.tokens_before,
        "tokens_after": result.tokens_after,
        "ratio": round(result.tokens_after / result.tokens_before, 4)
        if result.tokens_before
        else 1.0,
        "lines": counts,
        "markers": list(result.keys),
        "output": result.output,
    }


def _summary(result: CompressResult, stats: PipelineStats) -> str:
    before, after = result.tokens_before, result.tokens_after
    ratio = after / before if before else 1.0
    head = f"kind {stats.kind or '-'}, strategy {result.strategy}"
    if result.strategy == PASSTHROUGH:
        return f"{head}: unchanged ({stats.reason or 'nothing to gain'}), {before:,} tokens"
    markers = (
        f", {len(result.keys)} marker(s) (a dry run stores no originals)" if result.keys else ""
    )
    return f"{head}: {before:,} -> {after:,} tokens ({ratio:.3f}){markers}"
