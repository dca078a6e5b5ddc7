"""bench.ab, the lockstep comparison of two checkouts: it must report a change of behaviour, and must
not report one where there is none."""

from __future__ import annotations

import platform
import sys
from pathlib import Path

import pytest

from bench.ab import KINDS, compare, run

REPO = Path(__file__).resolve().parents[1]


def _interpreter_that_leaves_a_mark(folder: Path) -> tuple[Path, Path]:
    """This interpreter behind a script that writes a file each time it is started."""
    mark = folder / "started"
    script = folder / "python"
    script.write_text(f'#!/bin/sh\necho started >> "{mark}"\nexec "{sys.executable}" "$@"\n')
    script.chmod(0o755)
    return script, mark


def test_one_checkout_on_both_sides_sends_the_same_notices(tmp_path: Path) -> None:
    """Both sides load the book the first one saved and apply the same triggers in separate processes
    (each with its own string hashing): the events they send are the same, byte for byte. The head side
    runs under the interpreter it is given (here this one, behind a script that says it was started)."""
    head_python, mark = _interpreter_that_leaves_a_mark(tmp_path)
    result = run(
        str(REPO), str(REPO), size=1500, seed=3, rounds=6, book_file=tmp_path / "book.pkl", passes=2,
        head_python=str(head_python),
    )  # fmt: skip
    assert mark.read_text().count("started") == 3  # the book's build, then one process per pass
    assert result["base_python"] == result["head_python"] == platform.python_version()
    assert result["same_notices"] is True and result["first_difference"] is None
    assert result["notices"] > 0
    for kind in KINDS:
        figures = result[kind]
        assert figures["base_cpu_sum_ms"] > 0 and figures["head_cpu_sum_ms"] > 0
        assert len(figures["sum_ratio_by_pass"]) == 2 and figures["sum_ratio"] > 0


def test_each_side_can_load_the_book_its_own_code_saved(tmp_path: Path) -> None:
    """A head that stores the engine otherwise cannot read the base's book: each side then builds and
    loads its own (the same market, saved by its own code), and the notices still compare."""
    (tmp_path / "base").mkdir()
    (tmp_path / "head").mkdir()
    base_python, base_mark = _interpreter_that_leaves_a_mark(tmp_path / "base")
    head_python, head_mark = _interpreter_that_leaves_a_mark(tmp_path / "head")
    result = run(
        str(REPO), str(REPO), size=1500, seed=3, rounds=4, book_file=tmp_path / "head.pkl", passes=2,
        base_python=str(base_python), head_python=str(head_python), base_book_file=tmp_path / "base.pkl",
    )  # fmt: skip
    assert (tmp_path / "base.pkl").exists() and (tmp_path / "head.pkl").exists()
    assert base_mark.read_text().count("started") == head_mark.read_text().count("started") == 3
    assert result["same_notices"] is True and result["notices"] > 0


def test_an_interpreter_that_cannot_start_is_named(tmp_path: Path) -> None:
    missing = tmp_path / "no-such-python"
    with pytest.raises(SystemExit, match=r"cannot start .*no-such-python"):
        run(str(REPO), str(REPO), size=1500, seed=3, rounds=2, book_file=tmp_path / "book.pkl", passes=2,
            head_python=str(missing))  # fmt: skip


def test_a_trigger_whose_notices_differ_is_reported() -> None:
    def rounds(digest_of_round_2: str) -> list[list[list[object]]]:
        return [[[0.001, 3, "a"]] * 4, [[0.001, 3, "a"]] * 4, [[0.001, 3, "a"]] * 3 + [[0.001, 3, digest_of_round_2]]]

    assert compare([rounds("a")] * 2, [rounds("a")] * 2)["same_notices"] is True
    differing = compare([rounds("a")] * 2, [rounds("a"), rounds("b")])
    assert differing["same_notices"] is False and differing["first_difference"] == {"pass": 1, "round": 2}


def test_the_tail_ratio_compares_each_slowest_trigger_with_itself() -> None:
    """Of 40 offers, the two slowest (5%) are 10 times heavier; the head halves those two alone. The sum
    hardly moves, the tail ratio halves. A trigger the base alone ran slowly is not picked for it."""

    def rounds(offer_ms: list[float]) -> list[list[list[object]]]:
        return [[[ms / 1000, 1, "a"]] + [[0.001, 1, "a"]] * 3 for ms in offer_ms]

    base = [1.0] * 38 + [10.0, 10.0]
    head = [1.0] * 38 + [5.0, 5.0]
    figures = compare([rounds(base)], [rounds(head)])["offer"]
    assert figures["tail_ratio"] == 0.5 and figures["sum_ratio"] == round(48 / 58, 3)

    noisy_base = [1.0] * 37 + [12.0, 10.0, 10.0]  # one light trigger the base side ran slowly
    noisy = compare([rounds(noisy_base)], [rounds([1.0] * 37 + [1.0, 5.0, 5.0])])["offer"]
    assert noisy["tail_ratio"] == 0.5
