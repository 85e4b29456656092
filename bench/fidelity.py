"""Fidelity: do the lines an engineer needs survive compression of real tool outputs?

The corpus (``tests/fidelity/corpus/``) holds real outputs of real programs run here, each
with a manifest: the command that made it, the tool call an agent would have made, what the
agent and the user said, a question, and the *needles* — the whole lines needed to answer
it, chosen by reading the artifact, never by looking at what the compressor keeps.

Each artifact goes through the proxy's own path: an Anthropic request body is built (user
turn, assistant text + ``tool_use``, ``tool_result``), the Anthropic adapter finds the tool
output and its query context, and the default ``Pipeline`` with a store compresses it.
A ``Read`` call's result is numbered as Claude Code numbers it (``     N\\t``); a manifest
``"wrapper": "codex"`` wraps the output in Codex's ``exec_command`` header.

Per artifact and in total: tokens forwarded/sent, needles kept verbatim (the needle is a
whole output line, numbering aside, or a search row regrouped under its path heading, which
gives back the same characters) and by content (its words appear, in order, in one
output line; JSON keys aside, since a table form moves them to its header), and time.
"""

from __future__ import annotations

import json
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from headroom.ccr.store import PendingWrites
from headroom.providers.apis import anthropic_outputs
from headroom.transforms.base import CompressContext
from headroom.transforms.pipeline import Pipeline
from headroom.transforms.pipeline_config import PipelineConfig
from headroom.transforms.tokens import estimate_tokens

CORPUS = Path(__file__).resolve().parent.parent / "tests" / "fidelity" / "corpus"
MODEL = "claude-sonnet-4-5"
KEYS = (
    "artifact", "kind", "KB", "tokens_in", "tokens_out", "ratio",
    "needles", "verbatim", "content", "lost", "ms",
)  # fmt: skip


@dataclass(frozen=True)
class Artifact:
    name: str
    kind: str
    manifest: dict[str, Any]
    text: str  # the program's output as stored

    @property
    def needles(self) -> list[str]:
        """Whole lines, then ``fragments``: exact parts of one line, for an artifact whose
        records share a line (compact JSON), where a whole-line needle would be all of it."""
        return [str(n).rstrip() for n in self.manifest["needles"]] + self.fragments

    @property
    def fragments(self) -> list[str]:
        return [str(n) for n in self.manifest.get("fragments", [])]


def load(corpus: Path = CORPUS) -> list[Artifact]:
    out = []
    for path in sorted(corpus.glob("*.json")):
        manifest = json.loads(path.read_text(encoding="utf-8"))
        text = (corpus / manifest["artifact"]).read_text(encoding="utf-8")
        out.append(Artifact(path.stem, manifest["kind"], manifest, text))
    return out


# --- how an agent's tool wraps the output -----------------------------------------------------


def number_like_read(text: str) -> str:
    """Claude Code's ``Read``: ``cat -n`` numbering, right-aligned in six columns, a tab."""
    return "\n".join(f"{i:>6}\t{line}" for i, line in enumerate(text.split("\n"), 1))


def wrap_like_codex(text: str, exit_code: int = 1) -> str:
    """Codex CLI's ``exec_command`` result: a header of facts, then ``Output:``."""
    return (
        "Chunk ID: 3f9a1c\nWall time: 2.4170 seconds\n"
        f"Process exited with code {exit_code}\n"
        f"Original token count: {estimate_tokens(text)}\nOutput:\n{text}"
    )


def tool_result(artifact: Artifact) -> str:
    if artifact.manifest.get("tool", {}).get("name") == "Read":
        return number_like_read(artifact.text)
    if artifact.manifest.get("wrapper") == "codex":
        return wrap_like_codex(artifact.text)
    return artifact.text


def request_body(artifact: Artifact, result: str) -> dict[str, Any]:
    """The Anthropic request an agent would send with this output as the last turn."""
    tool = artifact.manifest.get("tool") or {"name": "Bash", "arguments": {}}
    return {
        "model": MODEL,
        "max_tokens": 1024,
        "messages": [
            {"role": "user", "content": artifact.manifest.get("user", "")},
            {
                "role": "assistant",
                "content": [
                    {"type": "text", "text": artifact.manifest.get("assistant", "")},
                    {
                        "type": "tool_use",
                        "id": "toolu_01",
                        "name": tool["name"],
                        "input": tool.get("arguments", {}),
                    },
                ],
            },
            {
                "role": "user",
                "content": [{"type": "tool_result", "tool_use_id": "toolu_01", "content": result}],
            },
        ],
    }


# --- scoring ----------------------------------------------------------------------------------

_NUMBERING = re.compile(r"^ *\d+\t", re.M)
_JSON_KEY = re.compile(r'"[^"\\]*"\s*:')
_WORD = re.compile(r"[A-Za-z0-9_]+")


def _words(line: str) -> list[str]:
    return _WORD.findall(_JSON_KEY.sub(" ", line))


def _in_order(words: list[str], line: str) -> bool:
    pos = 0
    for w in words:
        pos = line.find(w, pos)
        if pos < 0:
            return False
        pos += len(w)
    return True


@dataclass(frozen=True)
class Score:
    verbatim: list[bool]
    content: list[bool]

    @property
    def lost(self) -> list[int]:
        return [i for i, ok in enumerate(self.content) if not ok]


_HEADED_ROW = re.compile(r"\d+[:-]")


def _with_headings(lines: list[str]) -> list[str]:
    """Search output regrouped under a path heading (``a.py`` then ``12:hit``) read back
    as ``a.py:12:hit`` too: the regrouping is lossless, so its rows keep their content."""
    out: list[str] = []
    heading = ""
    for line in lines:
        if _HEADED_ROW.match(line) and heading:
            out.append(f"{heading}:{line}")
        elif line and " " not in line and not line.startswith("["):
            heading = line
    return out


def score(needles: list[str], output: str, fragments: int = 0) -> Score:
    """The last ``fragments`` needles are parts of a line, kept verbatim where an output
    line contains them."""
    plain = _NUMBERING.sub("", output)
    lines = [x.rstrip() for x in plain.split("\n")]
    lines += _with_headings(lines)
    whole = set(lines)
    first_fragment = len(needles) - fragments
    verbatim = [
        n in whole or (k >= first_fragment and any(n in x for x in lines))
        for k, n in enumerate(needles)
    ]
    content = []
    for needle, exact in zip(needles, verbatim, strict=True):
        words = _words(needle)
        content.append(exact or (bool(words) and any(_in_order(words, x) for x in lines)))
    return Score(verbatim, content)


@dataclass(frozen=True)
class Outcome:
    artifact: Artifact
    sent: str
    output: str
    tokens_in: int
    tokens_out: int
    score: Score
    ms: float


def run_one(artifact: Artifact, pipeline: Pipeline) -> Outcome:
    sent = tool_result(artifact)
    outputs = anthropic_outputs(request_body(artifact, sent))
    query = outputs[0].query if outputs else ""
    t0 = time.perf_counter()
    result = pipeline.compress(sent, CompressContext(query, PendingWrites(), MODEL))
    ms = (time.perf_counter() - t0) * 1000
    return Outcome(
        artifact,
        sent,
        result.output,
        estimate_tokens(sent, MODEL),
        estimate_tokens(result.output, MODEL),
        score(artifact.needles, result.output, len(artifact.fragments)),
        ms,
    )


def run_all(corpus: Path = CORPUS) -> list[Outcome]:
    pipeline = Pipeline(PipelineConfig())
    return [run_one(a, pipeline) for a in load(corpus)]


def _row(o: Outcome) -> dict[str, Any]:
    n = len(o.score.content)
    return {
        "artifact": o.artifact.name,
        "kind": o.artifact.kind,
        "KB": round(len(o.sent.encode()) / 1024, 1),
        "tokens_in": o.tokens_in,
        "tokens_out": o.tokens_out,
        "ratio": round(o.tokens_out / o.tokens_in, 3) if o.tokens_in else 1.0,
        "needles": n,
        "verbatim": sum(o.score.verbatim),
        "content": sum(o.score.content),
        "lost": ",".join(str(i) for i in o.score.lost),
        "ms": round(o.ms, 2),
    }


def total_row(outcomes: list[Outcome], name: str = "TOTAL") -> dict[str, Any]:
    return {
        "artifact": name,
        "kind": f"{len(outcomes)} artifacts",
        "KB": round(sum(len(o.sent.encode()) for o in outcomes) / 1024, 1),
        **score_columns(
            sum(o.tokens_in for o in outcomes),
            sum(o.tokens_out for o in outcomes),
            [o.score for o in outcomes],
        ),
        "ms": round(sum(o.ms for o in outcomes), 1),
    }


def score_columns(tokens_in: int, tokens_out: int, scores: list[Score]) -> dict[str, Any]:
    """The ratio and the needles kept over many artifacts, as every total row shows them."""
    needles = sum(len(s.content) for s in scores)
    verbatim = sum(sum(s.verbatim) for s in scores)
    content = sum(sum(s.content) for s in scores)
    return {
        "tokens_in": tokens_in,
        "tokens_out": tokens_out,
        "ratio": round(tokens_out / tokens_in, 3) if tokens_in else 1.0,
        "needles": needles,
        "verbatim": f"{100 * verbatim / needles:.1f}%" if needles else "",
        "content": f"{100 * content / needles:.1f}%" if needles else "",
        "lost": needles - content,
    }


def run(quick: bool = False) -> list[dict[str, Any]]:
    """Every artifact (``--quick`` changes nothing: the corpus is the workload), then the
    totals over all, over the diffs, and per MB of input."""
    outcomes = run_all()
    rows = [_row(o) for o in outcomes]
    rows.append(total_row(outcomes))
    diffs = [o for o in outcomes if o.artifact.kind in ("git_diff", "git_show")]
    if diffs:
        rows.append(total_row(diffs, "TOTAL diffs"))
    mb = sum(len(o.sent.encode()) for o in outcomes) / 1e6
    if mb:
        per_mb = total_row(outcomes, "ms per MB")
        per_mb["ms"] = round(sum(o.ms for o in outcomes) / mb, 1)
        rows.append(per_mb)
    return rows


def sources_md(artifacts: list[Artifact]) -> str:
    """``SOURCES.md``: every artifact with the command that made it and what it ran on."""
    out = [
        "# Fidelity corpus: where each artifact comes from",
        "",
        "Real output of real programs run on this project's machines. Regenerate this file",
        "with `python -m bench.fidelity --sources` after adding an artifact and its manifest.",
        "",
    ]
    for a in artifacts:
        m = a.manifest
        out += [
            f"## `{m['artifact']}` ({a.kind})",
            "",
            f"- command: `{m['command']}`",
            f"- source: {m['source']}",
            f"- question: {m['question']}",
            "",
        ]
    return "\n".join(out)


if __name__ == "__main__":
    import sys

    if sys.argv[1:] == ["--sources"]:
        (CORPUS / "SOURCES.md").write_text(sources_md(load()), encoding="utf-8")
    else:
        print("usage: python -m bench.fidelity --sources  (the bench: python -m bench fidelity)")
        raise SystemExit(2)
