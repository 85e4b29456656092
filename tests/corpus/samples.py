"""Generators: one function per kind of tool output, ``(rng, n) -> Sample``.

``n`` is the size knob (rows, lines, files or hits). Everything derives from ``rng`` so a
seed gives the same bytes on every machine. Must-keep items are exact substrings of the
text: error lines, anomalous records, changed diff lines, the searched-for hit.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from dataclasses import dataclass

_WORDS = [
    "cache",
    "request",
    "worker",
    "queue",
    "session",
    "token",
    "index",
    "buffer",
    "stream",
    "socket",
    "handler",
    "service",
    "payload",
    "record",
    "schema",
    "client",
    "server",
    "config",
    "metric",
    "budget",
    "window",
    "replica",
    "shard",
    "batch",
    "commit",
    "deploy",
    "rollout",
    "region",
    "tenant",
    "account",
    "invoice",
    "order",
    "refund",
    "ledger",
    "report",
    "job",
]
_PROSE_WORDS = [
    "the",
    "a",
    "system",
    "team",
    "we",
    "it",
    "this",
    "that",
    "design",
    "change",
    "users",
    "often",
    "when",
    "because",
    "which",
    "data",
    "should",
    "would",
    "review",
    "careful",
    "each",
    "more",
    "less",
    "across",
    "clear",
    "simple",
    "first",
    "later",
    "every",
    "process",
    "plan",
    "goal",
    "result",
    "approach",
    "trade-off",
    "cost",
    "latency",
    "scale",
    "reliable",
    "measure",
]
_REGIONS = ("us-east-1", "us-west-2", "eu-west-1", "eu-central-1")
_STATUSES = ("active", "active", "active", "active", "pending", "suspended")


@dataclass(frozen=True)
class Sample:
    name: str
    kind: str  # the detector's expected kind for ``text`` (after Read numbering is removed)
    text: str
    must_keep: tuple[str, ...]
    query: str = ""
    numbered: bool = False  # a Read-tool output with cat -n style line numbers


def _ts(rng: random.Random, i: int) -> str:
    seconds = 36_000 + i * 3 + rng.randrange(3)
    clock = f"{seconds // 3600:02d}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"
    return f"2026-11-21T{clock}.{rng.randrange(1000):03d}Z"


def _sentence(rng: random.Random, words: tuple[str, ...] | list[str], n: int) -> str:
    return " ".join(rng.choice(words) for _ in range(n))


# --- JSON -----------------------------------------------------------------------------------


def json_api_rows(rng: random.Random, n: int = 300) -> Sample:
    """An API listing of customer records with three error rows and a latency outlier."""
    rows = []
    middle = range(n // 10, n - n // 10)
    errors = sorted(rng.sample(middle, 3))
    outlier = rng.choice([i for i in middle if i not in errors])
    target = rng.choice([i for i in middle if i not in errors and i != outlier])
    must: list[str] = []
    query = ""
    for i in range(n):
        row = {
            "id": 10_000 + i,
            "customer": f"cust-{2000 + i}",
            "email": f"user{2000 + i}@example.com",
            "status": rng.choice(_STATUSES),
            "region": rng.choice(_REGIONS),
            "latency_ms": rng.randrange(20, 90),
            "created_at": _ts(rng, i),
        }
        if i in errors:
            error = f"upstream timeout contacting billing-{i}"
            row["status"] = "error"
            row["error"] = error
            must.append(error)
        if i == outlier:
            row["latency_ms"] = 98_234
            must.append("98234")
        if i == target:
            must.append(f"cust-{2000 + i}")
            query = f"show the account of cust-{2000 + i}"
        rows.append(row)
    return Sample("json_api_rows", "json_array", json.dumps(rows, indent=2), tuple(must), query)


def json_db_rows(rng: random.Random, n: int = 400) -> Sample:
    """A SQL result set as compact JSON rows; one row failed a constraint check."""
    bad = rng.randrange(n // 8, n - n // 8)
    rows = []
    for i in range(n):
        rows.append(
            {
                "order_id": 500_000 + i,
                "sku": f"SKU-{rng.randrange(100, 140)}",
                "qty": rng.randrange(1, 5),
                "price": round(rng.uniform(3, 60), 2),
                "state": "shipped" if i != bad else "failed",
                "note": "" if i != bad else "constraint violation: qty exceeds stock for SKU-999",
            }
        )
    must = ("constraint violation: qty exceeds stock for SKU-999",)
    return Sample("json_db_rows", "json_array", json.dumps(rows), must)


def json_nested(rng: random.Random, n: int = 150) -> Sample:
    """A paginated API object: metadata around a nested array of events, one critical."""
    critical = rng.randrange(n // 8, n - n // 8)
    events = []
    for i in range(n):
        level = "info" if i != critical else "critical"
        msg = f"{rng.choice(_WORDS)} {rng.choice(_WORDS)} synced"
        if i == critical:
            msg = "disk quota exceeded on volume vol-7f3a, writes rejected"
        events.append({"seq": i, "level": level, "message": msg, "at": _ts(rng, i)})
    doc = {
        "page": 1,
        "per_page": n,
        "total": n * 7,
        "next_cursor": "eyJwYWdlIjoyfQ",
        "data": {"cluster": "prod-eu-3", "events": events},
    }
    must = ("disk quota exceeded on volume vol-7f3a, writes rejected", "prod-eu-3")
    return Sample("json_nested", "json_object", json.dumps(doc, indent=2), must)


# --- logs -----------------------------------------------------------------------------------


def log_pytest(rng: random.Random, n: int = 400) -> Sample:
    """A verbose pytest run with one failure, its traceback and the summary."""
    lines = [
        "============================= test session starts ==============================",
        "platform linux -- Python 3.11.7, pytest-8.3.2, pluggy-1.5.0",
        "rootdir: /home/dev/shop",
        f"collected {n} items",
        "",
    ]
    fail = rng.randrange(n // 3, n - 5)
    for i in range(n):
        module = f"tests/test_{rng.choice(_WORDS)}.py"
        outcome = "FAILED" if i == fail else "PASSED"
        pct = (i + 1) * 100 // n
        lines.append(f"{module}::test_case_{i} {outcome}{' ' * 20}[{pct:3d}%]")
    lines += [
        "",
        "=================================== FAILURES ===================================",
        f"_______________________________ test_case_{fail} ________________________________",
        "",
        "    def test_create_order(client):",
        "        resp = client.post('/orders', json={'sku': 'SKU-9'})",
        ">       assert resp.status_code == 200",
        "E       AssertionError: expected 200, got 500",
        "",
        "tests/test_orders.py:42: AssertionError",
        "=========================== short test summary info ============================",
        f"FAILED tests/test_orders.py::test_case_{fail} - AssertionError: expected 200, got 500",
        f"======================== 1 failed, {n - 1} passed in 12.34s =========================",
    ]
    must = (
        "E       AssertionError: expected 200, got 500",
        f"FAILED tests/test_orders.py::test_case_{fail} - AssertionError: expected 200, got 500",
        f"1 failed, {n - 1} passed in 12.34s",
    )
    return Sample("log_pytest", "log", "\n".join(lines) + "\n", must)


def log_npm(rng: random.Random, n: int = 300) -> Sample:
    """``npm install`` with deprecation warnings, progress chatter and a resolution error."""
    lines = ["> shop-web@2.3.0 preinstall", "> node scripts/check-node.js", ""]
    for i in range(n):
        pkg = f"{rng.choice(_WORDS)}-{rng.choice(_WORDS)}"
        if i % 7 == 0:
            lines.append(f"npm WARN deprecated {pkg}@1.{i % 9}.0: this package is unmaintained")
        else:
            lines.append(
                f"npm http fetch GET 200 https://registry.example/{pkg} "
                f"{rng.randrange(5, 90)}ms (cache hit)"
            )
    lines += [
        "npm ERR! code ERESOLVE",
        "npm ERR! ERESOLVE unable to resolve dependency tree",
        "npm ERR! Found: react@18.3.1",
        'npm ERR! Could not resolve dependency: peer react@"^17.0.0" from legacy-widget@4.1.0',
        "npm ERR! A complete log of this run can be found in: /root/.npm/_logs/debug-0.log",
    ]
    must = (
        "npm ERR! code ERESOLVE",
        'npm ERR! Could not resolve dependency: peer react@"^17.0.0" from legacy-widget@4.1.0',
    )
    return Sample("log_npm", "log", "\n".join(lines) + "\n", must)


def log_cargo(rng: random.Random, n: int = 300) -> Sample:
    """``cargo build`` compiling many crates, then a type error with its location."""
    lines = ["    Updating crates.io index"]
    for i in range(n):
        crate = f"{rng.choice(_WORDS)}-{rng.choice(_WORDS)}"
        verb = "Compiling" if i % 5 else "Downloaded"
        lines.append(f"   {verb} {crate} v0.{i % 12}.{rng.randrange(10)}")
    lines += [
        "error[E0308]: mismatched types",
        "  --> src/ledger.rs:88:21",
        "   |",
        "88 |     let total: u64 = entries.iter().map(|e| e.amount).sum::<i64>();",
        "   |                ---   " + "^" * 43 + " expected `u64`, found `i64`",
        "",
        'error: could not compile `ledger` (bin "ledger") due to 1 previous error',
    ]
    must = (
        "error[E0308]: mismatched types",
        "  --> src/ledger.rs:88:21",
        'error: could not compile `ledger` (bin "ledger") due to 1 previous error',
    )
    return Sample("log_cargo", "log", "\n".join(lines) + "\n", must)


def log_make(rng: random.Random, n: int = 300) -> Sample:
    """A C build through make: compile lines, warnings, one undeclared identifier."""
    lines = ["make -C src all", "make[1]: Entering directory '/build/src'"]
    for i in range(n):
        name = f"{rng.choice(_WORDS)}_{i}"
        lines.append(f"gcc -O2 -Wall -Iinclude -c {name}.c -o build/{name}.o")
        if i % 40 == 17:
            lines.append(
                f"{name}.c:{rng.randrange(10, 300)}:5: warning: unused variable 'tmp' "
                "[-Wunused-variable]"
            )
    lines += [
        "net.c:88:12: error: 'sock' undeclared (first use in this function)",
        "make[1]: *** [Makefile:23: build/net.o] Error 1",
        "make[1]: Leaving directory '/build/src'",
        "make: *** [Makefile:9: all] Error 2",
    ]
    must = (
        "net.c:88:12: error: 'sock' undeclared (first use in this function)",
        "make: *** [Makefile:9: all] Error 2",
    )
    return Sample("log_make", "log", "\n".join(lines) + "\n", must)


def log_service(rng: random.Random, n: int = 1500) -> Sample:
    """A service log: timestamped INFO chatter, two ERRORs, one Python traceback."""
    errs = sorted(rng.sample(range(n // 10, n - n // 10), 2))
    lines = []
    must: list[str] = []
    for i in range(n):
        ts = _ts(rng, i)
        if i == errs[0]:
            line = f"{ts} ERROR [worker-{i % 8}] payment gateway returned 502 for order 77{i}"
            lines.append(line)
            must.append(line)
            continue
        if i == errs[1]:
            line = f"{ts} ERROR [worker-{i % 8}] unhandled exception in refund job"
            lines += [
                line,
                "Traceback (most recent call last):",
                '  File "/srv/app/jobs/refund.py", line 57, in run',
                "    amount = ledger.balance(account_id)",
                "KeyError: 'acct-5531'",
            ]
            must += [line, "KeyError: 'acct-5531'"]
            continue
        lines.append(
            f"{ts} INFO [worker-{i % 8}] processed {rng.choice(_WORDS)} batch "
            f"id={rng.randrange(10**6)} in {rng.randrange(3, 80)}ms"
        )
    return Sample("log_service", "log", "\n".join(lines) + "\n", tuple(must))


def log_ndjson(rng: random.Random, n: int = 800) -> Sample:
    """Structured JSON-lines logs (``kubectl logs`` of a JSON logger); two error records."""
    errs = sorted(rng.sample(range(n // 10, n - n // 10), 2))
    lines = []
    must: list[str] = []
    for i in range(n):
        record = {
            "ts": _ts(rng, i),
            "level": "info",
            "logger": f"api.{rng.choice(_WORDS)}",
            "msg": f"handled {rng.choice(_WORDS)}",
            "duration_ms": rng.randrange(2, 90),
        }
        if i in errs:
            record.update(level="error", msg=f"lost connection to redis-{i} (ECONNRESET)")
        line = json.dumps(record)
        lines.append(line)
        if i in errs:
            must.append(line)
    return Sample("log_ndjson", "log", "\n".join(lines) + "\n", tuple(must))


# --- diffs ----------------------------------------------------------------------------------


def _code_line(rng: random.Random, indent: int = 4) -> str:
    a, b = rng.choice(_WORDS), rng.choice(_WORDS)
    return " " * indent + f"{a}_{b} = compute_{b}({a}, limit={rng.randrange(100)})"


def git_diff(rng: random.Random, n: int = 12) -> Sample:
    """``git diff`` over ``n`` files with wide context, a rename and a binary change."""
    out: list[str] = []
    must: list[str] = []
    for f in range(n):
        path = f"src/{rng.choice(_WORDS)}/{rng.choice(_WORDS)}_{f}.py"
        out += [
            f"diff --git a/{path} b/{path}",
            f"index {rng.randrange(16**7):07x}..{rng.randrange(16**7):07x} 100644",
            f"--- a/{path}",
            f"+++ b/{path}",
        ]
        start = rng.randrange(10, 400)
        for h in range(rng.randrange(1, 4)):
            ctx_before = [_code_line(rng) for _ in range(10)]
            ctx_after = [_code_line(rng) for _ in range(10)]
            removed = [f"-{_code_line(rng)}  # old {f}.{h}.{k}" for k in range(rng.randrange(1, 4))]
            added = [f"+{_code_line(rng)}  # new {f}.{h}.{k}" for k in range(rng.randrange(1, 5))]
            old_len, new_len = 20 + len(removed), 20 + len(added)
            out.append(f"@@ -{start},{old_len} +{start},{new_len} @@ def handler_{f}_{h}(request):")
            out += [" " + c for c in ctx_before] + removed + added + [" " + c for c in ctx_after]
            must += removed + added
            start += 60
    out += [
        "diff --git a/src/billing/old_name.py b/src/billing/new_name.py",
        "similarity index 92%",
        "rename from src/billing/old_name.py",
        "rename to src/billing/new_name.py",
        "index 3b18e51..a9c0b2f 100644",
        "--- a/src/billing/old_name.py",
        "+++ b/src/billing/new_name.py",
        "@@ -1,4 +1,4 @@",
        " import decimal",
        "-from billing.old_name import charge",
        "+from billing.new_name import charge",
        " ",
        " RATE = decimal.Decimal('0.2')",
        "diff --git a/assets/logo.png b/assets/logo.png",
        "index 1f2e3d4..5a6b7c8 100644",
        "Binary files a/assets/logo.png and b/assets/logo.png differ",
    ]
    must += [
        "rename from src/billing/old_name.py",
        "rename to src/billing/new_name.py",
        "-from billing.old_name import charge",
        "+from billing.new_name import charge",
        "Binary files a/assets/logo.png and b/assets/logo.png differ",
    ]
    return Sample("git_diff", "diff", "\n".join(out) + "\n", tuple(must))


# --- search results -------------------------------------------------------------------------


def _hits(*hits: str) -> tuple[str, ...]:
    """A hit must keep its path and its ``line:content``: a compressor may group hits under
    a path header (``path`` then ``line:content``) instead of repeating the path."""
    out: list[str] = []
    for hit in hits:
        path, rest = hit.split(":", 1)
        out += [path, rest]
    return tuple(out)


def grep_results(rng: random.Random, n: int = 400) -> Sample:
    """``grep -rn refund src/``: many hits over many files; the definition is the one sought."""
    files = [f"src/{rng.choice(_WORDS)}/{rng.choice(_WORDS)}_{i}.py" for i in range(40)]
    lines = []
    target_at = rng.randrange(n // 4, n - n // 4)
    target = "src/billing/refunds.py:88:def handle_refund_timeout(order_id, deadline):"
    error_hit = "src/billing/worker.py:141:    log.error('refund failed for %s', order_id)"
    for i in range(n):
        if i == target_at:
            lines.append(target)
            continue
        if i == target_at + 7:
            lines.append(error_hit)
            continue
        path = files[min(len(files) - 1, i * len(files) // n)]
        line_no = 10 + (i * 7) % 900
        lines.append(
            f"{path}:{line_no}:    refund_{rng.choice(_WORDS)} = refund_total({rng.choice(_WORDS)})"
        )
    query = 'Grep {"pattern": "refund", "path": "src"} — where is handle_refund_timeout defined?'
    return Sample(
        "grep_results", "search", "\n".join(lines) + "\n", _hits(target, error_hit), query
    )


def ripgrep_context(rng: random.Random, n: int = 120) -> Sample:
    """``rg -n -C1 session_token``: hits with ``path-line-`` context lines and ``--`` gaps."""
    lines = []
    target_at = rng.randrange(n // 4, n - n // 4)
    target = "src/auth/session.py:214:def rotate_session_token(user, *, grace_seconds=30):"
    for i in range(n):
        path = f"src/{rng.choice(('auth', 'api', 'web'))}/{rng.choice(_WORDS)}.py"
        line_no = 20 + i * 11
        if i == target_at:
            lines += [
                "src/auth/session.py-213-",
                target,
                'src/auth/session.py-215-    """Rotate."""',
                "--",
            ]
            continue
        lines += [
            f"{path}-{line_no - 1}-    # {_sentence(rng, _WORDS, 4)}",
            f"{path}:{line_no}:    token = session_token(request.{rng.choice(_WORDS)})",
            f"{path}-{line_no + 1}-    return token",
            "--",
        ]
    query = "where is rotate_session_token defined"
    return Sample("ripgrep_context", "search", "\n".join(lines[:-1]) + "\n", _hits(target), query)


def ripgrep_heading(rng: random.Random, n: int = 30) -> Sample:
    """``rg -n --heading cache_ttl``: a path line, its ``line:content`` rows, a blank line."""
    blocks = []
    target_file = rng.randrange(n // 4, n - n // 4)
    target = (
        "src/config/settings.py",
        "57:CACHE_TTL_SECONDS = int(os.environ.get('CACHE_TTL', 300))",
    )
    for f in range(n):
        if f == target_file:
            blocks.append("\n".join([target[0], "12:    cache_ttl = CACHE_TTL_SECONDS", target[1]]))
            continue
        path = f"src/{rng.choice(_WORDS)}/{rng.choice(_WORDS)}_{f}.py"
        rows = [
            f"{10 + k * 13}:    ttl = options.cache_ttl or {rng.choice(_WORDS)}.cache_ttl"
            for k in range(rng.randrange(5, 15))
        ]
        blocks.append("\n".join([path, *rows]))
    query = "where does CACHE_TTL_SECONDS come from"
    return Sample("ripgrep_heading", "search", "\n\n".join(blocks) + "\n", target, query)


# --- prose, html, code, Read output, mixed --------------------------------------------------


def _paragraph(rng: random.Random) -> str:
    return (
        ". ".join(_sentence(rng, _PROSE_WORDS, rng.randrange(8, 16)).capitalize() for _ in range(4))
        + "."
    )


def prose(rng: random.Random, n: int = 30) -> Sample:
    """Design-notes prose with one line that records an error."""
    paras = [_paragraph(rng) for _ in range(n)]
    at = rng.randrange(n // 10, n - n // 10)
    error_line = "The migration failed with error 1213 (deadlock) on the orders table."
    paras[at] = paras[at] + "\n" + error_line
    return Sample("prose", "prose", "\n\n".join(paras) + "\n", (error_line,))


def html_page(rng: random.Random, n: int = 60) -> Sample:
    """A rendered documentation page."""
    items = "\n".join(
        f'    <li><a href="/docs/{i}">{_sentence(rng, _WORDS, 3)}</a></li>' for i in range(n)
    )
    text = (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n  <meta charset="utf-8">\n'
        '  <title>Refund API reference</title>\n</head>\n<body>\n  <div class="nav">\n  <ul>\n'
        f"{items}\n  </ul>\n  </div>\n  <p>{_paragraph(rng)}</p>\n</body>\n</html>\n"
    )
    return Sample("html_page", "html", text, ("<title>Refund API reference</title>",))


def _python_module(rng: random.Random, n: int) -> list[str]:
    lines = [
        "import logging",
        "from decimal import Decimal",
        "",
        "log = logging.getLogger(__name__)",
        "",
    ]
    for i in range(n):
        a, b = rng.choice(_WORDS), rng.choice(_WORDS)
        lines += [
            "",
            f"def {a}_{b}_{i}(request, limit=10):",
            f'    """Return the {a} for {b}."""',
            f"    items = request.{a}.filter(kind='{b}')[:limit]",
            "    if not items:",
            f"        raise ValueError('no {a} found')",
            "    return [item.to_dict() for item in items]",
        ]
    return lines


def source_code(rng: random.Random, n: int = 60) -> Sample:
    """A Python module: must come back byte for byte."""
    lines = _python_module(rng, n)
    must = (lines[6], lines[-1])
    return Sample("source_code", "source_code", "\n".join(lines) + "\n", must)


def _number(lines: list[str], arrow: bool) -> str:
    sep = "\u2192" if arrow else "\t"
    return "\n".join(f"{i + 1:6d}{sep}{line}" for i, line in enumerate(lines))


def read_source(rng: random.Random, n: int = 60) -> Sample:
    """Claude Code's Read of a source file (``cat -n`` numbering): never lossy."""
    lines = _python_module(rng, n)
    text = _number(lines, arrow=True) + "\n"
    return Sample("read_source", "source_code", text, (text.split("\n")[6],), numbered=True)


def read_log(rng: random.Random, n: int = 1200) -> Sample:
    """A Read of a service log file: compressible, kept lines keep their numbers."""
    base = log_service(rng, n)
    text = _number(base.text.rstrip("\n").split("\n"), arrow=False) + "\n"
    numbered_lines = text.split("\n")
    must = tuple(next(nl for nl in numbered_lines if nl.endswith(m)) for m in base.must_keep)
    return Sample("read_log", "log", text, must, numbered=True)


def mixed(rng: random.Random, n: int = 200) -> Sample:
    """An assistant-style answer: prose, a fenced code block, a log excerpt and a JSON blob."""
    code = ["def settle(batch):", "    total = sum(x.amount for x in batch)", "    return total"]
    log = log_service(rng, n)
    rows = [{"id": i, "state": "ok", "shard": f"s{i % 4}"} for i in range(n)]
    rows[n // 2] = {"id": n // 2, "state": "error", "shard": "s9", "reason": "replica lag 93s"}
    text = (
        f"{_paragraph(rng)}\n\n```python\n" + "\n".join(code) + "\n```\n\n"
        f"{_paragraph(rng)}\n\n"
        + log.text
        + "\n"
        + json.dumps(rows)
        + "\n\n"
        + _paragraph(rng)
        + "\n"
    )
    must = (*code, *log.must_keep, "replica lag 93s")
    return Sample("mixed", "mixed", text, must)


GENERATORS: dict[str, Callable[..., Sample]] = {
    "json_api_rows": json_api_rows,
    "json_db_rows": json_db_rows,
    "json_nested": json_nested,
    "log_pytest": log_pytest,
    "log_npm": log_npm,
    "log_cargo": log_cargo,
    "log_make": log_make,
    "log_service": log_service,
    "log_ndjson": log_ndjson,
    "git_diff": git_diff,
    "grep_results": grep_results,
    "ripgrep_context": ripgrep_context,
    "ripgrep_heading": ripgrep_heading,
    "prose": prose,
    "html_page": html_page,
    "source_code": source_code,
    "read_source": read_source,
    "read_log": read_log,
    "mixed": mixed,
}


def corpus(seed: int = 20261121) -> list[Sample]:
    """The standard corpus: every generator at its default size, seeded per name."""
    return [gen(random.Random(f"{seed}:{name}")) for name, gen in GENERATORS.items()]


def scaled(name: str, target_bytes: int, seed: int = 7) -> Sample:
    """One generator grown (by doubling ``n``) until its text reaches ``target_bytes``."""
    gen = GENERATORS[name]
    n = 1 if name == "git_diff" else 32  # n counts files there, rows or lines elsewhere
    for _ in range(40):
        sample = gen(random.Random(f"{seed}:{name}:{n}"), n)
        if len(sample.text) >= target_bytes:
            return sample
        n = max(n + 1, int(n * target_bytes / max(1, len(sample.text)) * 1.05))
    raise ValueError(f"{name} did not reach {target_bytes} bytes")
