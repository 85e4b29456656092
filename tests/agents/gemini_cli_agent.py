"""The real Gemini CLI (``@google/gemini-cli``), run headless against a base URL of ours.

``run_gemini`` starts ``gemini -p PROMPT --yolo -o json`` with a HOME of its own, an
environment built from nothing (so no real Google credentials, proxy variables or settings
of the machine reach it), and settings that keep it on 127.0.0.1: no usage statistics, no
telemetry, no auto-update check, no IDE. The CLI re-launches itself as a child node process
and its shell tool spawns more, so it runs in a session of its own and the whole process
group is killed when it ends or times out: no test leaves a CLI behind.

Pinned facts of 0.61.0 a test relies on (each found by recording what it sends):

* With ``GOOGLE_GEMINI_BASE_URL`` set the CLI picks the "gateway" auth type from the
  environment, which this version's headless auth check then rejects ("Invalid auth method
  selected.", exit 41); ``security.auth.selectedType: gemini-api-key`` avoids it, and that
  type still honours ``GOOGLE_GEMINI_BASE_URL`` and sends ``GEMINI_API_KEY`` as
  ``x-goog-api-key``.
* It cuts shell output above ``tools.truncateToolOutputThreshold`` (40,000 characters by
  default) to its head and tail itself; 0 turns that off, so the model, and the proxy, see
  the whole output.
* Without ``-m`` a router asks a small model (non-streaming ``:generateContent`` with a
  ``responseJsonSchema`` of ``complexity_reasoning``/``complexity_score``) which model to
  use, then streams the conversation with ``:streamGenerateContent?alt=sse``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from tests.agents.npm import cli
from tests.agents.process import CLI_TIMEOUT, Agent, Run

PACKAGE = "@google/gemini-cli"
VERSION = "0.61.0"
BINARY = "gemini"
SHELL_TOOL = "run_shell_command"  # its shell tool; the one argument it needs is "command"
READ_FILE_TOOL = "read_file"  # args: file_path (start_line, end_line optional)
ROUTER_NEEDLE = "complexity_score"  # only the router's side request carries this

SETTINGS: dict[str, Any] = {
    "general": {"enableAutoUpdate": False, "enableAutoUpdateNotification": False},
    "privacy": {"usageStatisticsEnabled": False},
    "telemetry": {"enabled": False},
    "ide": {"enabled": False},
    "security": {"auth": {"selectedType": "gemini-api-key"}, "folderTrust": {"enabled": False}},
    "tools": {"truncateToolOutputThreshold": 0, "shell": {"enableInteractiveShell": False}},
}


def gemini_binary() -> Path:
    """The pinned CLI, installed into the npm cache on first use."""
    return cli(PACKAGE, VERSION, BINARY)


def write_settings(home: Path) -> None:
    """``~/.gemini/settings.json`` in the CLI's own HOME."""
    folder = home / ".gemini"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "settings.json").write_text(json.dumps(SETTINGS, indent=2))


def run_gemini(
    binary: Path,
    prompt: str,
    *,
    base_url: str,
    api_key: str,
    home: Path,
    cwd: Path,
    model: str | None = None,
    timeout: float = CLI_TIMEOUT,
) -> Run:
    """Run the CLI headless to its end, bounded by ``timeout``; its process group is gone
    when this returns."""
    write_settings(home)
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(home),
        "LANG": "C.UTF-8",
        "TERM": "dumb",
        "NO_COLOR": "1",
        "GEMINI_API_KEY": api_key,
        "GOOGLE_GEMINI_BASE_URL": base_url,
    }
    args = [str(binary), "-p", prompt, "--yolo", "-o", "json"]
    if model:
        args += ["-m", model]
    return Agent(args, env, cwd).wait(timeout)
