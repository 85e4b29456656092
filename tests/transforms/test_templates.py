"""Line templates: chatter folds, the odd line stands out, names do not split templates."""

from __future__ import annotations

from headroom.transforms.templates import describe, mine, repetitive


def _state_log() -> list[str]:
    lines = []
    for i in range(300):
        pkg = f"lib{chr(97 + i % 26)}{chr(97 + i // 26)}:amd64"
        lines.append(f"2026-12-02 03:50:{i % 60:02d} status installed {pkg} 1.{i}-2+deb12u1")
    lines.insert(120, "2026-12-02 03:51:07 remove libzz:amd64 2.1-1 <none>")
    lines.insert(200, "2026-12-02 03:51:09 status config-files libzz:amd64 2.1-1")
    return lines


def test_one_template_for_the_chatter_and_the_odd_verbs_stand_alone() -> None:
    lines = _state_log()
    t = mine(lines)
    rare = {lines[i] for i in t.rare(3)}
    assert rare == {lines[120], lines[200]}
    assert max(t.count) == 300


def test_a_verb_with_few_values_is_part_of_the_template() -> None:
    lines = [f"status {'installed' if i % 2 else 'unpacked'} pkg{i} 1.{i}" for i in range(100)]
    t = mine(lines)
    assert sorted(t.count) == [50, 50]
    assert {t.text[x] for x in set(t.of)} == {"status installed <*> <*>", "status unpacked <*> <*>"}


def test_a_leading_name_does_not_split_the_template() -> None:
    words = ("alpha", "beta", "gamma", "delta", "eps", "zeta", "eta")
    names = [f"test_{a}_{b}" for a in words for b in words]  # each test runs once
    lines = [f"{n} (pkg.tests.Case.{n}) ... ok" for n in names]
    t = mine(lines)
    assert len(set(t.of)) == 1
    assert repetitive(lines)


def test_prose_is_not_repetitive() -> None:
    prose = [
        "The quick brown fox jumps over the lazy dog.",
        "A journey of a thousand miles begins with a single step.",
        "All that glitters is not gold, and not all who wander are lost.",
        "Brevity is the soul of wit, said someone once in a play.",
    ] * 2
    assert not repetitive(prose)


def test_describe_names_the_frequent_templates_safely() -> None:
    lines = [f"[{i}] GET /a/{i} hash=abc 200" for i in range(8)] + ["[9] boot done [ok]"] * 2
    t = mine(lines)
    text = describe(t, range(len(lines)))
    assert text.startswith('8x "')
    assert "[" not in text and "]" not in text and "hash=" not in text
    assert describe(t, [0]) == ""  # a template seen once in the gap is not worth naming


def test_nothing_to_mine() -> None:
    assert mine([]).of == []


def test_blank_lines_have_no_template() -> None:
    t = mine(["", "  ", "x"])
    assert t.of[:2] == [-1, -1]
    assert t.rare(1) == [2]


def test_lines_that_differ_in_digits_share_a_template_but_rule_codes_do_not() -> None:
    lines = [f"src/m{i}.py:{i}:1: E501 Line too long ({80 + i} > 79)" for i in range(50)]
    lines += [f"src/m{i}.py:{i}:1: E302 expected 2 blank lines, found {i % 2}" for i in range(3)]
    t = mine(lines)
    assert len({t.of[i] for i in range(50)}) == 1
    assert t.of[50] == t.of[51] != t.of[0]
    assert set(t.rare(3)) == {50, 51, 52}
