"""What every provider adapter tells the proxy about a request body.

An adapter knows where one API keeps tool outputs, which tool call produced each output (so
the relevance context is that call's own arguments plus the user turn that led to it —
never a later turn, so a turn compresses the same way forever), and how the retrieval tool
is spelled in that API. It reads the parsed payload only; byte surgery is ``JsonDoc``'s.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import orjson

from headroom.jsondoc import Path

RETRIEVE_TOOL = "headroom_retrieve"
# Cap on the relevance context: a Write call's arguments can be a whole file, and the
# compressors only need the words that say what was looked for. Each of the four parts is
# capped on its own first, so a long argument cannot crowd out what the user asked.
MAX_QUERY_CHARS = 4000
MAX_PART_CHARS = 1500

RETRIEVE_DESCRIPTION = (
    "Fetch the full original of content that headroom shortened to save tokens. Shortened "
    "tool outputs end with a marker that names a hash, such as "
    "[120 lines compressed to 12. Retrieve more: hash=<24 hex chars>] or "
    "<<ccr:<24 hex chars> 40_rows_offloaded>>. Call this with that hash when the omitted "
    "part matters for the task."
)
HASH_DESCRIPTION = "The 24-character hex hash shown in the marker."
RETRIEVE_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {"hash": {"type": "string", "description": HASH_DESCRIPTION}},
    "required": ["hash"],
}


@dataclass(frozen=True)
class ToolOutput:
    path: Path  # where the string value lives in the body
    text: str
    tool_name: str  # "" when the producing call is not in the history
    query: str
    program: str = ""  # what a shell tool ran (``program_of``), "" for other tools


# Words in front of a command that are not the program it runs.
_PREFIXES = frozenset({"sudo", "env", "time", "nice", "nohup", "exec", "command", "timeout"})
_RUNNERS = frozenset({"python", "python3", "uv", "poetry", "npx", "pnpm", "yarn", "bunx"})
# Programs whose first argument names what they do (``git diff`` and ``git blame`` print
# different things): the program is named with it.
_SUBCOMMANDS = frozenset(
    {"git", "npm", "pnpm", "yarn", "cargo", "go", "docker", "kubectl", "pip", "pip3",
     "apt", "apt-get", "dnf", "brew", "gh", "terraform", "dotnet", "mvn", "gradle"}
)  # fmt: skip
_SEGMENT_SPLIT = re.compile(r"&&|\|\||;|\|")


def _subcommand(words: list[str]) -> str:
    """The first word that is not an option, nor the value of ``-C``/``-c`` (``git -C repo
    log``: ``log``)."""
    skip = False
    for word in words:
        if skip:
            skip = False
        elif word in ("-C", "-c"):
            skip = True
        elif not word.startswith("-"):
            return word
    return ""


def program_of(arguments: Any) -> str:
    """The program a shell tool call runs, from its ``command``/``cmd`` argument: agents run
    nearly everything through one shell tool (Claude Code's ``Bash``, Codex's
    ``exec_command``), so the tool name alone cannot tell a ``grep`` from a ``pytest``.

    The first pipeline segment that is not a ``cd``; leading ``VAR=value`` words and
    wrappers (``sudo``, ``env``, ``timeout 60``) skipped; a path's basename; a runner's
    module or script (``python -m pytest`` → ``pytest``, ``npx tsc`` → ``tsc``). "" when
    the call has no command."""
    if not isinstance(arguments, dict):
        return ""
    command = arguments.get("command", arguments.get("cmd"))
    if isinstance(command, list):
        command = " ".join(str(c) for c in command)
    if not isinstance(command, str):
        return ""
    for segment in _SEGMENT_SPLIT.split(command[:2000]):
        words = [w.strip("'\"") for w in segment.split()]
        while words and (
            "=" in words[0]
            or words[0] in _PREFIXES
            or words[0].isdigit()
            or words[0].startswith("-")  # a wrapper's option: a program never starts so
        ):
            words.pop(0)
        if not words or words[0] == "cd":
            continue
        program = words[0].rsplit("/", 1)[-1]
        if program in _SUBCOMMANDS:
            sub = _subcommand(words[1:])
            return f"{program} {sub}".strip()[:40] if sub.isidentifier() or "-" in sub else program
        if program in ("bash", "sh", "zsh") and words[1:2] == ["-lc"]:
            return program_of({"command": " ".join(words[2:])})
        if program in _RUNNERS and len(words) > 1:
            rest = words[1:]
            if rest[0] in ("-m", "run", "exec", "x") and len(rest) > 1:
                rest = rest[1:]
            if not rest[0].startswith("-"):
                return rest[0].rsplit("/", 1)[-1][:40]
        return program[:40]
    return ""


Json = dict[str, Any]
Results = list[tuple[str, str]]  # (call id, the text the tool answered)
Call = tuple[str, Any, Any]  # (tool name, call id, arguments)
# A restore plan: (path into the request, "before" | "after" | "append", JSON text).
Plan = list[tuple[tuple[str | int, ...], str, str]]


class Shape(Protocol):
    """Where one API keeps a conversation's tool calls and results (``shapes.py``)."""

    history_key: str  # the request's list of turns ("messages", "input" or "contents")
    usage_key: str  # where an answer keeps its token counts ("usage", "usageMetadata")
    # Bytes at least one of which a request body holds if it carries any tool output: a
    # scan for them costs microseconds, a parse of a body without outputs milliseconds.
    output_hints: tuple[bytes, ...]

    def tool_calls(self, response: Json) -> list[Call]: ...

    def call_items(self, response: Json) -> list[Any]:
        """The elements of an answer that hold its tool calls, in order."""
        ...

    def call_name(self, item: Json) -> str: ...

    def answer_text(self, response: Json) -> str:
        """The text an answer says besides its tool calls (what the model said it looks
        for, or what it found)."""
        ...

    def follow_up(self, response: Json, results: Results) -> list[Json]:
        """The history elements that continue a request after this answer."""
        ...

    def strip_calls(self, response: Json) -> Json:
        """The answer without our calls (and with a stop reason that says so)."""
        ...

    def merge_rounds(self, earlier: list[Json], final: Json) -> Json:
        """The final answer with what earlier retrieval rounds showed (their answers with our
        calls stripped) in front of its own content, in order: a non-streaming client gets
        the same content a streaming one saw arrive round by round."""
        ...

    # The field of a user turn whose first elements answer the calls of the model's turn
    # before it (None: the answers are elements of their own, right after the calls).
    results_field: str | None

    def answer_elements(self, response: Json) -> list[Json]:
        """The history elements that hold an answer, as a follow-up request carries them."""
        ...

    def is_answer(self, item: Json) -> bool:
        """Whether a history element is one the model wrote."""
        ...


def top_tools(payload: dict[str, Any]) -> Path | None:
    """Where a request declares its tools: ``tools`` at the top (every API but Gemini's
    ``countTokens``)."""
    return ("tools",)


def stream_field(payload: dict[str, Any]) -> bool:
    """Whether the body asks for a streamed answer: a top-level ``"stream": true`` (never a
    nested tool input's)."""
    return payload.get("stream") is True


@dataclass(frozen=True)
class Provider:
    name: str  # "anthropic" | "openai_chat" | "openai_responses" | "gemini" | ...
    find_outputs: Callable[[dict[str, Any]], list[ToolOutput]]
    retrieve_tool_json: str  # constant bytes so provider prompt caches stay warm
    # The tool names an entry of the tools list declares (one, or Gemini's several).
    tool_names_of: Callable[[dict[str, Any]], tuple[str, ...]]
    shape: Shape  # where answers keep tool calls and requests keep turns
    # Bytes that only the last event of a streamed answer carries. A client may close as
    # soon as it has read that event (Codex does), before the stream's own end arrives: a
    # normal end, not a client that left early. An event line is matched with the newline
    # before it: a JSON string in a data line cannot hold one, so no text can fake it.
    stream_ends: tuple[bytes, ...] = ()
    streams: Callable[[dict[str, Any]], bool] = stream_field
    # The tools list to declare the retrieval tool in; None: this request has none (a
    # token count of bare ``contents``), and markers go out without it, since no model
    # answers such a request.
    tools_path: Callable[[dict[str, Any]], Path | None] = top_tools
    # The answer is SSE only with ``alt=sse`` in the query (Gemini's streamed methods);
    # without it, a JSON array the retrieval loop cannot follow.
    sse_by_query: bool = False


def is_retrieve_tool(name: str) -> bool:
    """Our tool, also under an MCP-style namespace prefix (``server__headroom_retrieve``)."""
    return name == RETRIEVE_TOOL or name.endswith("__" + RETRIEVE_TOOL)


def make_query(arguments: Any, said_before: str, user_turn: str, beside: str = "") -> str:
    """The relevance context of one tool output, bounded.

    Four parts, all fixed once the output exists (so the same output compresses the same
    way in every later request and prompt caches keep hitting): the tool call's arguments
    (the command, the pattern, the path); what the assistant said in the message that made
    the call (agents say what they look for); the user turn that led to it; and the user's
    text in the same message as the result. Never a later turn.
    """
    if isinstance(arguments, str):
        args = arguments
    elif arguments is None:
        args = ""
    else:
        args = orjson.dumps(arguments, option=orjson.OPT_SORT_KEYS).decode()
    parts = (args, said_before, user_turn, beside)
    query = "\n".join(p[:MAX_PART_CHARS] for p in parts if p).strip()
    return query[:MAX_QUERY_CHARS]


def text_of(content: Any, text_types: tuple[str, ...] = ("text",)) -> str:
    """The typed text of a message's content (a string, or text parts), joined."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n".join(
            part["text"]
            for part in content
            if isinstance(part, dict)
            and part.get("type") in text_types
            and isinstance(part.get("text"), str)
        )
    return ""


def first_member(response: Json, items: str, member: str) -> Json:
    """``response[items][0][member]`` when each step is the list or object it should be,
    else {}: an answer's first choice's message (Chat), its first candidate's content
    (Gemini)."""
    listed = response.get(items)
    if isinstance(listed, list) and listed and isinstance(listed[0], dict):
        found = listed[0].get(member)
        if isinstance(found, dict):
            return found
    return {}


def value_at(doc: Any, path: tuple[str | int, ...]) -> Any:
    """The value at ``path`` of nested objects, None when a step is missing or not an
    object."""
    for step in path:
        doc = doc.get(step) if isinstance(doc, dict) else None
    return doc


def has_tool(tools: Any, provider: Provider, name: str) -> bool:
    """Whether a tools list already declares ``name``."""
    if not isinstance(tools, list):
        return False
    return any(isinstance(t, dict) and name in provider.tool_names_of(t) for t in tools)
