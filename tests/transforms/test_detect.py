"""Content detection: every corpus kind, the tricky look-alikes, Read numbering, sections."""

from __future__ import annotations

import importlib
import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from headroom.transforms.detect import (
    DIFF,
    HTML,
    JSON_ARRAY,
    JSON_OBJECT,
    LOG,
    PROSE,
    SEARCH,
    SOURCE_CODE,
    Detection,
    detect,
    sample_lines,
)
from headroom.transforms.sections import split_json_prefix, split_sections
from headroom.transforms.wrappers import restore_numbering, split_numbering
from tests.corpus import corpus

CORPUS = corpus()


@pytest.mark.parametrize("sample", [s for s in CORPUS if s.kind != "mixed"], ids=lambda s: s.name)
def test_corpus_kinds(sample):
    numbered = split_numbering(sample.text)
    assert (numbered is not None) == sample.numbered
    body = numbered.body if numbered else sample.text
    assert detect(body).kind == sample.kind


def test_json_value_is_returned_for_reuse():
    found = detect(' [{"a": 1}, {"a": 2}] \n')
    assert found.kind == JSON_ARRAY and found.confidence == 1.0
    assert found.value == [{"a": 1}, {"a": 2}]
    assert detect("[1, 2, 3]").confidence == 0.8
    assert detect('{"foo": "bar"}').kind == JSON_OBJECT


def test_broken_json_falls_through_to_line_rules():
    text = "[12:00:01] INFO started\n[12:00:02] ERROR failed to bind\n[12:00:03] INFO retry ]"
    assert detect(text).kind == LOG


@pytest.mark.parametrize(
    ("text", "kind"),
    [
        ("", PROSE),
        ("   \n\t", PROSE),
        ("src/a.py:12:def foo():\nsrc/b.py:30:    foo()\n", SEARCH),
        ("src/a.py:12:5:def foo():\nsrc/b.py:30:9:    foo()\n", SEARCH),  # rg --column
        ("C:\\src\\a.py:3:x = 1\nC:\\src\\b.py:4:y = 2\n", SEARCH),
        ("src/a.py-11-\nsrc/a.py:12:x\nsrc/a.py-13-y\n--\nsrc/b.py:4:z\n", SEARCH),
        (
            "2026-11-21T10:00:00Z INFO a\n2026-11-21T10:00:01Z INFO b\n"
            "2026-11-21T10:00:02Z ERROR c",
            LOG,
        ),
        ("10:00:00 INFO a\n10:00:01 INFO b\n10:00:02 WARN c\n", LOG),
        (
            "main.c:12:5: error: expected ';'\nmain.c:20:1: warning: unused\n"
            "make: *** [all] Error 1",
            LOG,
        ),
        ("npm WARN deprecated a@1\nnpm WARN deprecated b@2\nnpm ERR! code E404\n", LOG),
        ("<!DOCTYPE html><html><head></head><body><div>x</div></body></html>", HTML),
        (
            "import os\n\n\ndef main():\n    return os.getcwd()\n\n\nclass A:\n    pass\n",
            SOURCE_CODE,
        ),
        ('fn main() {\n    let x = 1;\n    println!("{}", x);\n}\n', SOURCE_CODE),
        ("We looked at the numbers and decided to ship on Friday. Nobody objected.", PROSE),
    ],
)
def test_small_cases(text, kind):
    assert detect(text).kind == kind


JEST = """ PASS  src/utils.test.js
 FAIL  src/api.test.js
  \u25cf fetchUser \u203a returns the user

    expect(received).toEqual(expected)

      at Object.<anonymous> (src/api.test.js:13:22)

Tests:       1 failed, 41 passed, 42 total
Time:        3.21 s
"""
GO_TEST = """=== RUN   TestServe
    server_test.go:42: expected 200, got 500
--- FAIL: TestServe (0.01s)
FAIL
FAIL\tgithub.com/acme/app\t0.123s
ok  \tgithub.com/acme/lib\t0.045s
"""
JAVA = """Exception in thread "main" java.lang.NullPointerException: boom
\tat com.acme.App.run(App.java:42)
\tat com.acme.App.main(App.java:10)
Caused by: java.io.IOException: broken pipe
\tat com.acme.Net.send(Net.java:88)
"""
BUILDKIT = """#1 [internal] load build definition from Dockerfile
#1 transferring dockerfile: 1.2kB done
#1 DONE 0.0s
#3 [2/5] RUN pip install -r requirements.txt
#3 12.3 ERROR: Could not find a version that satisfies the requirement foo==9.9
#3 ERROR: process "/bin/sh -c pip install" did not complete successfully: exit code: 1
"""
TSC = """src/app.ts(12,5): error TS2322: Type 'string' is not assignable to type 'number'.
src/app.ts(30,1): error TS2304: Cannot find name 'foo'.
Found 2 errors in the same file, starting at: src/app.ts:12
"""
TS_CODE = """import { foo } from './foo';

export function bar(x: number): number {
  const y = foo(x);
  return y * 2;
}
"""
MARKDOWN = "# Title\n\nSome intro text about the project.\n\n## Install\n\nRun the installer.\n"
NDJSON = '{"ts": 1, "level": "info", "msg": "a"}\n{"ts": 2, "level": "error", "msg": "b"}\n'
RG_HEADING = (
    "src/auth/session.py\n12:def login(user):\n13-    return check(user)\n40:    login(u)\n\n"
    "src/api/routes.py\n7:from auth.session import login\n88:    login(request.user)\n"
)
LOG_FILE_HEADING = "app.log\n10:00:01 INFO a\n10:00:02 INFO b\n10:00:03 ERROR c\n"
PATH_LIST = "README.md\nsetup.py\nsrc/a.py\nsrc/b.py\n"


@pytest.mark.parametrize(
    ("text", "kind"),
    [(RG_HEADING, SEARCH), (LOG_FILE_HEADING, LOG), (PATH_LIST, PROSE)],
    ids=["rg-heading", "times-are-not-rows", "path-list"],
)
def test_ripgrep_heading_form(text, kind):
    assert detect(text).kind == kind


@pytest.mark.parametrize(
    ("text", "kind"),
    [
        (JEST, LOG),
        (GO_TEST, LOG),
        (JAVA, LOG),
        (BUILDKIT, LOG),
        (TSC, LOG),
        (NDJSON, LOG),
        (TS_CODE, SOURCE_CODE),
        (MARKDOWN, PROSE),
    ],
    ids=["jest", "go-test", "java-trace", "buildkit", "tsc", "ndjson", "ts-code", "markdown"],
)
def test_tool_output_families(text, kind):
    assert detect(text).kind == kind


def test_unified_diff_without_git_header():
    text = "--- a/x.txt\n+++ b/x.txt\n@@ -1,2 +1,2 @@\n keep\n-old\n+new\n"
    assert detect(text).kind == DIFF


def test_sample_reads_head_and_tail_only():
    lines = [f"line {i}" for i in range(100_000)]
    sample = sample_lines("\n".join(lines))
    assert sample[0] == "line 0" and sample[-1] == "line 99999"
    assert len(sample) < 400


def test_detection_is_fast_on_large_json_error_tail():
    """The tail of a big log is sampled: the error summary at the end counts."""
    text = "\n".join(f"step {i} ok" for i in range(50_000))
    text += "\nERROR build failed\n" + "\n".join(f"ERROR  at module{i}" for i in range(80))
    assert detect(text).kind == LOG


# --- numbering ------------------------------------------------------------------------------


def test_numbering_split_and_restore_round_trip():
    text = "     1\tdef f():\n     2\t    return 1\n     3\t\n     4\tprint(f())"
    numbered = split_numbering(text)
    assert numbered is not None
    assert numbered.body == "def f():\n    return 1\n\nprint(f())"
    assert restore_numbering(numbered, numbered.body) == text


def test_restore_marks_only_copied_lines():
    text = "".join(f"{i:6d}\u2192{'ERROR x' if i == 5 else f'INFO {i}'}\n" for i in range(1, 9))
    numbered = split_numbering(text)
    assert numbered is not None and numbered.tail == "\n"
    out = restore_numbering(numbered, "INFO 1\n[6 lines omitted]\nERROR x\nINFO 8")
    assert out == "     1\u2192INFO 1\n[6 lines omitted]\n     5\u2192ERROR x\n     8\u2192INFO 8\n"


def test_restore_maps_duplicate_lines_in_order():
    text = "     1\tsame\n     2\tother\n     3\tsame"
    numbered = split_numbering(text)
    assert restore_numbering(numbered, "same\nsame") == "     1\tsame\n     3\tsame"


@pytest.mark.parametrize(
    "text",
    [
        "1. first item\n2. second item",  # a numbered list in prose
        "     1\ta\n     3\tb",  # numbers skip: not a file read
        "     1\tonly one line",
        "src/a.py:1:x\nsrc/a.py:2:y",
    ],
)
def test_not_numbered(text):
    assert split_numbering(text) is None


def test_unnumbered_tail_is_kept_apart():
    text = "     1\ta\n     2\tb\n<system-reminder>x</system-reminder>"
    numbered = split_numbering(text)
    assert numbered.body == "a\nb"
    assert restore_numbering(numbered, "a\nb") == text


# --- sections -------------------------------------------------------------------------------


def test_sections_concatenate_to_the_input():
    sample = next(s for s in CORPUS if s.name == "mixed")
    sections = split_sections(sample.text)
    assert "".join(s.text for s in sections) == sample.text
    kinds = [s.detection.kind for s in sections if not s.protected]
    assert SOURCE_CODE in kinds and LOG in kinds and JSON_ARRAY in kinds and PROSE in kinds
    fences = [s.text for s in sections if s.protected]
    assert fences == ["```python\n", "```\n"]


def test_fence_language_decides_for_code_but_not_for_json():
    rows = json.dumps([{"a": i} for i in range(30)])
    text = f"Intro text.\n\n```json\n{rows}\n```\n\n```yaml\nkey: value\nother: 2\n```\n"
    kinds = [s.detection.kind for s in split_sections(text) if not s.protected]
    assert kinds == [PROSE, JSON_ARRAY, PROSE, SOURCE_CODE]


def test_json_followed_by_a_trailer_is_split_off():
    rows = json.dumps([{"id": i, "ok": True} for i in range(40)], indent=2)
    text = f"{rows}\n(showing 40 of 512 rows)\n"
    sections = split_sections(text)
    assert [s.detection.kind for s in sections] == [JSON_ARRAY, PROSE]
    assert sections[0].text == rows + "\n" and json.loads(sections[0].text)
    assert split_json_prefix("[1, 2] tail") == (("[1, 2]", Detection(JSON_ARRAY, 0.9)), " tail")
    assert split_json_prefix("[1, 2]\n") is None  # all JSON: the detector's case
    assert split_json_prefix("[1, 2") is None and split_json_prefix("text [1]") is None


# The C-speed guards in front of the path rules only ever skip lines the rules would not
# match: a path holds no whitespace, so none may come before its delimiter.
_PATHY = st.text(alphabet="ab/._-:\\ \t12C", max_size=24)


@settings(max_examples=3000, deadline=None)
@given(_PATHY)
def test_the_path_guards_skip_only_lines_their_rules_would_not_match(line: str) -> None:
    d = importlib.import_module("headroom.transforms.detect")  # the package exports detect()
    if not d._may_start_path(line, ":"):
        assert d._SEARCH_HIT.match(line) is None
    if not d._may_start_path(line, "-"):
        assert d._SEARCH_CONTEXT.match(line) is None
    if " " in line or "\t" in line:
        assert d._PATH_LINE.match(line) is None
