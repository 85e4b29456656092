"""Byte-exact JSON splicing, in memory."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from headroom.jsondoc import JsonDoc, JsonDocError, dump_string, root_span

BODY = (
    '{ "model":"m" , "tools" : [ ] ,\n "messages":[{"role":"user","content":"h\\u00e9llo é"},'
    '{"role":"user","content":[{"type":"tool_result","tool_use_id":"t","content":"old\\n"}]}],'
    '"n": 1.50e3 }'
).encode()


def test_untouched_document_renders_to_the_same_bytes() -> None:
    doc = JsonDoc(BODY)
    doc.spans([("messages", 1, "content", 0, "content")])
    assert doc.render() == BODY


def test_replace_changes_only_that_value() -> None:
    doc = JsonDoc(BODY)
    path = ("messages", 1, "content", 0, "content")
    span = doc.spans([path])[path]
    assert doc.value(span) == "old\n"
    doc.replace(span, dump_string("new ü"))
    out = doc.render()
    assert out == BODY.replace(b'"old\\n"', '"new ü"'.encode())
    assert json.loads(out)["n"] == 1500.0


def test_append_to_empty_and_nonempty_arrays_and_add_member() -> None:
    doc = JsonDoc(BODY)
    spans = doc.spans([("tools",), ("messages",)])
    doc.append_to_array(spans[("tools",)], '{"name":"x"}')
    doc.append_to_array(spans[("messages",)], '{"role":"assistant","content":"a"}')
    doc.add_member(root_span(doc), "extra", "true")
    out = json.loads(doc.render())
    assert out["tools"] == [{"name": "x"}]
    assert out["messages"][-1]["content"] == "a"
    assert out["extra"] is True


def test_missing_paths_are_left_out_and_bad_json_raises() -> None:
    assert JsonDoc(BODY).spans([("nope", 1), ("messages", 9)]) == {}
    with pytest.raises(JsonDocError):
        JsonDoc(b'{"a": [1, 2').spans([("a", 5)])
    with pytest.raises(JsonDocError):
        JsonDoc(b"\xff\xfe")


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=5), children, max_size=4)
    ),
    max_leaves=20,
)


@settings(max_examples=150, deadline=None)
@given(json_values, st.sampled_from([None, 1, 2]), st.text(max_size=30))
def test_splice_equals_reserialising_that_one_value(value, indent, replacement) -> None:
    doc_obj = {"messages": [{"content": "target"}, value], "other": value}
    body = json.dumps(doc_obj, indent=indent, ensure_ascii=bool(indent == 2)).encode()
    doc = JsonDoc(body)
    path = ("messages", 0, "content")
    span = doc.spans([path])[path]
    doc.replace(span, dump_string(replacement))
    out = doc.render()
    expected = dict(doc_obj)
    expected["messages"] = [{"content": replacement}, value]
    assert json.loads(out) == expected
    untouched = JsonDoc(body)
    untouched.spans([path, ("other",)])
    assert untouched.render() == body


def test_a_wanted_value_is_scanned_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """``spans`` decodes the value it finds; ``value`` hands that back instead of scanning a
    large tool output a second time."""
    import headroom.jsondoc as jsondoc

    big = "log line\\n" * 20_000
    body = json.dumps({"messages": [{"content": big}], "other": [1, 2]}).encode()
    doc = jsondoc.JsonDoc(body)
    scanned: list[int] = []
    real = jsondoc._scan_once

    def counting(text: str, pos: int) -> object:
        value, end = real(text, pos)
        if isinstance(value, str) and len(value) > 1000:
            scanned.append(pos)
        return value, end

    monkeypatch.setattr(jsondoc, "_scan_once", counting)
    span = doc.spans([("messages", 0, "content")])[("messages", 0, "content")]
    assert doc.value(span) == big
    assert len(scanned) == 1
