"""Served retrieval rounds across a conversation (target: none repeated): a scripted 10-turn
agent conversation with three retrievals, sent directly, through this proxy (the retrieval
tool declared when needed, and always) and, when ``HEADROOM_BENCH_BASELINE`` names a
checkout of an earlier commit, through that one.

The model reads its prompt (``tests.support.marker_model``): it retrieves each marker whose
original its conversation does not hold yet, then runs the agent's next command. Of the
ten commands, three print real program output big enough to be compressed (from the
fidelity corpus); the others are small commands run here (their output is not compressed).
The fake upstream emulates the providers' prefix cache (``tests.support.prefix_cache``).

Per run: retrievals, and those repeated for a hash already retrieved; requests the upstream
got; ``prefix_kept``: of each request, the share of the previous request's prompt it reads
from the cache (1.0: the whole of it, what a direct conversation gets every turn), as the
minimum and the count of requests below 1.0; and the prompt and cached tokens in all.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from tests.e2e.conftest import FLAGS
from tests.support.llm_upstream import LLMUpstream
from tests.support.marker_model import Agent, MarkerModel, tools_of
from tests.support.prefix_cache import PrefixCache
from tests.support.proxy_process import REPO, ProxyGroup

CORPUS = REPO / "tests" / "fidelity" / "corpus"
BIG = {2: "b_git_log_stat_main", 5: "a_pylint_requests", 8: "a_pytest_v_more_itertools"}
SMALL = [
    ["git", "log", "--oneline", "-n", "5"],
    [sys.executable, "--version"],
    ["git", "status", "--short", "--branch"],
    ["ls", "bench"],
    ["git", "rev-parse", "HEAD"],
    ["uname", "-sr"],
    ["git", "diff", "--stat", "HEAD~1", "--", "README.md"],
]
TASK = "The build is red. Find out why and what changed, then say how to fix it."


def _outputs() -> tuple[list[str], list[str]]:
    commands: list[str] = []
    outputs: list[str] = []
    small = iter(SMALL)
    for turn in range(10):
        if turn in BIG:
            commands.append(f"cat {BIG[turn]}")
            outputs.append((CORPUS / f"{BIG[turn]}.txt").read_text())
            continue
        argv = next(small)
        done = subprocess.run(argv, cwd=REPO, capture_output=True, text=True, timeout=30)
        commands.append(" ".join(argv[1:] if argv[0] == sys.executable else argv))
        outputs.append((done.stdout + done.stderr)[:900] or "(no output)")
    return commands, outputs


def _conversation(label: str, upstream: LLMUpstream, url: str) -> dict[str, Any]:
    commands, outputs = _outputs()
    upstream.clear()
    upstream.prefix_cache = PrefixCache()
    model = MarkerModel(commands)
    upstream.responder = model
    Agent([url], outputs, False, tools_of()).run(TASK)
    reads = [json.loads(bytes(a.sent))["usage"] for a in upstream.answers]
    prompts = [u["input_tokens"] + u["cache_read_input_tokens"] for u in reads]
    cached = [u["cache_read_input_tokens"] for u in reads]
    kept = [cached[n] / prompts[n - 1] for n in range(1, len(reads))]
    return {
        "run": label,
        "retrievals": sum(model.retrievals.values()),
        "hashes": len(model.retrievals),
        "repeated": model.repeated,
        "requests": len(reads),
        "prefix_kept_min": round(min(kept), 3),
        "requests_below_1": sum(k < 1.0 for k in kept),
        "prompt_tokens": sum(prompts),
        "cached_tokens": sum(cached),
    }


def _proxy(
    group: ProxyGroup, upstream: LLMUpstream, tree: Path | None, home: Path, *flags: str
) -> str:
    args = ["--upstream", upstream.url, "--listen", "127.0.0.1:0", *FLAGS, *flags]
    if tree is None:
        return group.start(args, home).url
    code = (
        f"import sys; sys.path.insert(0, {str(tree)!r}); "
        "from headroom.cli import main; sys.exit(main())"
    )
    return group.start(args, home, command=[sys.executable, "-c", code]).url


def run(quick: bool = False) -> list[dict[str, Any]]:
    baseline = os.environ.get("HEADROOM_BENCH_BASELINE")
    upstream = LLMUpstream()
    upstream.start()
    rows: list[dict[str, Any]] = []
    try:
        with ProxyGroup() as group, tempfile.TemporaryDirectory() as tmp:
            home = Path(tmp)
            rows.append(_conversation("direct", upstream, upstream.url))
            rows.append(_conversation("headroom", upstream, _proxy(group, upstream, None, home)))
            always = _proxy(group, upstream, None, home, "--retrieve-tool", "always")
            rows.append(_conversation("headroom, tool always", upstream, always))
            if baseline:
                url = _proxy(group, upstream, Path(baseline), home / "baseline")
                rows.append(_conversation(f"baseline {Path(baseline).name}", upstream, url))
    finally:
        upstream.stop()
    return rows
