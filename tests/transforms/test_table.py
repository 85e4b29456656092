"""Tables as text: extremes, rare categories and the asked-for rows stay; the rest fold."""

from __future__ import annotations

from headroom.ccr.store import PendingWrites
from headroom.transforms.base import CompressContext
from headroom.transforms.table import TableCompressor, is_table, parse


def _csv() -> str:
    rows = ["date,precipitation,temp_max,weather"]
    for i in range(300):
        rows.append(
            f"2015/{i // 28 + 1:02d}/{i % 28 + 1:02d},{(i * 7) % 13}.{i % 10},{10 + i % 9}.5,rain"
        )
    rows[150] = "2015/06/11,55.9,12.0,fog"  # wettest day, only fog
    rows[200] = "2015/08/04,0.1,35.6,rain"  # hottest day
    return "\n".join(rows)


def test_extremes_and_the_rare_category_stay() -> None:
    text = _csv()
    res = TableCompressor().compress(text, CompressContext("", PendingWrites()))
    out = res.output.split("\n")
    for row in (
        "date,precipitation,temp_max,weather",
        "2015/06/11,55.9,12.0,fog",
        "2015/08/04,0.1,35.6,rain",
    ):
        assert row in out
    assert res.tokens_after < res.tokens_before / 5
    assert any(line.startswith("[... ") and "rows omitted" in line for line in out)
    assert "Retrieve more: hash=" in out[-1]


def test_sql_column_output_and_the_row_the_query_names() -> None:
    head = "name     id      mass_g\n-------  ------  ------"
    rows = [
        f"bird{i:<4} N{i}A1{' ' * (4 - len(str(i)))}  {3000 + (i * 37) % 900}" for i in range(100)
    ]
    rows[40] = "bird40   N77Q2   3100"
    text = head + "\n" + "\n".join(rows)
    table = parse(text.split("\n"))
    assert table is not None and len(table.cells) == 100
    res = TableCompressor().compress(text, CompressContext("which bird is N77Q2?", PendingWrites()))
    assert "bird40   N77Q2   3100" in res.output.split("\n")


def test_prose_with_commas_is_not_a_table() -> None:
    prose = "\n".join(["Well, this is a sentence, with commas, as prose has, of course."] * 10)
    assert not is_table(prose)


def test_without_a_store_the_notes_say_what_went() -> None:
    res = TableCompressor().compress(_csv(), CompressContext())
    assert "hash=" not in res.output
    assert "rows omitted]" in res.output


def test_rows_with_an_error_keyword_stay_even_when_many() -> None:
    rows = ["ts,level,msg"] + [
        f"2026-12-02T03:{i // 60:02d}:{i % 60:02d},INFO,tick {i}" for i in range(200)
    ]
    for k in range(10):
        rows[20 + k * 15] = f"2026-12-02T03:00:{k:02d},ERROR,disk full on node-{k}"
    res = TableCompressor().compress("\n".join(rows), CompressContext("", PendingWrites()))
    out = res.output.split("\n")
    assert all(f"2026-12-02T03:00:{k:02d},ERROR,disk full on node-{k}" in out for k in range(10))


def _column(*values: str) -> set[int]:
    """The signal rows of a one-column table whose rows are lines 1, 2, ..."""
    from headroom.transforms.table import Table, TableConfig, signal_rows

    cells = {i + 1: [v] for i, v in enumerate(values)}
    return signal_rows(Table(0, 1, cells), TableConfig(few_values=0))


def test_the_first_row_holding_an_extreme_is_the_one_kept() -> None:
    # Plain numbers (the one-pass path) and numbers that need care ("1,000", "5%", "NA")
    # pick the same rows: the first of tied maxima and the first of tied minima.
    assert _column("3", "9", "1", "9", "1") == {2, 3}
    assert _column("3", "9", "1", "9", "1,000", "NA", "1") == {5, 3}
    assert _column("5%", "2%", "5%") == {1, 2}
    assert _column("-0.0", "0", "0.0") == {1}


def test_a_column_is_numeric_from_four_in_five_of_its_cells() -> None:
    four_in_five = ("1", "2", "x", "3", "4")
    assert _column(*four_in_five) == {5, 1}
    # One text cell more and the column is text: no extremes (and, of many values, no
    # rare value either), however late the text cells come.
    assert _column("1", "2", "3", "x", "y", "4") == set()
    assert _column("2", "inf", "-Infinity") == {2, 3}  # float() words count as numbers
