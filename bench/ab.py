"""Two checkouts of the engine timed in lockstep on one saved book, and their notices compared.

    python -m bench.ab --base HEAD~1 --size 100000 --book-file /tmp/book-100k.pkl

On this shared machine two runs of ``bench.engine`` one after the other differ by 15% and more, in
either direction: the machine's speed drifts over minutes, so a 5% change cannot be seen that way.
Here each side (``--base`` and ``--head``: a commit, made a temporary worktree, or a directory) loads
the same book saved by ``bench.engine --book-file`` (built by the head side if the file is missing) in
its own process (with ``--base-book-file``, the base side loads the same book saved by its own code,
for a head that stores the engine otherwise), and both apply the same triggers, one round at a time
(an offer, a buyer demand, a financing request, a financier), taking turns, the first side
alternating from round to round: both meet the machine as it is at that moment. What remains is the
process: the one started first often ran ~5% slower than its twin throughout, once 25%, and the same
commit run from two directories differed by 2% until both were reached through links of the same
length. So the rounds are shared among passes (four by default), each with fresh processes and each
side started first in every other one, and the ratio reported is the median of the passes' ratios
of summed CPU time. With the same commit on both sides that median stayed within 2% of 1
(0.982–1.015 over every kind, two runs at the 100k book); a change of a few percent of a trigger's
work is below what this can tell.

``--base-python`` and ``--head-python`` run a side under another interpreter (a virtualenv's
``python`` with the project's packages installed), so that the same checkout on two versions of
CPython is compared the same way:

    python -m bench.ab --base . --head-python /tmp/venv-3.13/bin/python --book-file /tmp/book-100k.pkl

Each side also hashes the match and revoke events of every trigger, as they go out on
``patent.matches``: ``same_notices`` tells whether the two checkouts matched alike, so that a change
meant to be faster and nothing else can be shown to be so. Prints one JSON object: per trigger kind,
each side's CPU time (summed, p50, p99) and the head's ratio to the base, over all triggers
(``sum_ratio``) and over each pass's slowest 5%, trigger by trigger (``tail_ratio``): the p99 floors
are about those, and a change that speeds up the heavy triggers alone hardly moves the sum.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from itertools import chain
from pathlib import Path
from typing import Any

import numpy as np

from bench.engine import TRIGGER_KINDS as KINDS
from bench.engine import saved_build
from matcher.market import to_event

EMITTED_AT = datetime(2000, 1, 1, tzinfo=UTC)
"""Stamped on every hashed event, so that only what the engine decided is compared."""
Rounds = list[list[list[Any]]]
"""Per round, per trigger: [CPU seconds, notices, digest of their events]."""


def serve(book_file: Path, size: int, seed: int) -> None:
    """One side: load the book with this checkout's code, say ``ready``, then for each line read apply one
    round of triggers and answer with [CPU seconds, notices, digest of their events] per trigger. Run as
    ``--serve`` with the checkout first on the path, it imports that checkout's engine."""
    engine, market, _ = saved_build(book_file, size, seed, True)
    by_kind = {
        "offer": market.offer,
        "demand": market.buyer,
        "financing": market.request,
        "financier": market.financier,
    }
    makers = [by_kind[kind] for kind in KINDS]  # in the order the figures are read back
    print("ready", platform.python_version(), flush=True)
    for _ in sys.stdin:
        row = []
        for make in makers:
            event = to_event(make())
            began = time.thread_time()
            notices = engine.apply(event).notices
            cpu_s = time.thread_time() - began
            digest = hashlib.blake2b(digest_size=16)
            for notice in notices:
                digest.update(notice.to_event(EMITTED_AT).model_dump_json().encode())
            row.append([cpu_s, len(notices), digest.hexdigest()])
        print(json.dumps(row), flush=True)


@contextlib.contextmanager
def checkout(ref: str) -> Iterator[Path]:
    """A directory holding ``ref``: the directory itself, or a temporary worktree of that commit."""
    if Path(ref).is_dir():
        yield Path(ref).resolve()
        return
    with tempfile.TemporaryDirectory(prefix="patentmatch-ab-") as parent:
        tree = Path(parent) / "tree"
        subprocess.run(["git", "worktree", "add", "--detach", "--quiet", str(tree), ref], check=True)
        try:
            yield tree
        finally:
            subprocess.run(["git", "worktree", "remove", "--force", str(tree)], check=True)


class Side:
    """A serving process running one checkout's code (this file's :func:`serve`, the checkout's modules)
    under the interpreter ``python``."""

    def __init__(self, tree: Path, book_file: Path, size: int, seed: int, python: str = sys.executable) -> None:
        # -P: not this file's directory first on the path, where bench's modules would shadow others.
        command = [python, "-P", str(Path(__file__).resolve()), "--serve", str(book_file), str(size), str(seed)]
        env = {**os.environ, "PYTHONPATH": str(tree)}
        try:
            self.process = subprocess.Popen(
                command, cwd=tree, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
            )
        except OSError as error:
            raise SystemExit(f"cannot start {python}: {error}") from error
        ready, _, self.python_version = self._line().partition(" ")
        if ready != "ready":
            self.process.kill()
            self.close()
            raise SystemExit(f"the side in {tree} did not load {book_file} under {python} (its error is above)")
        self.rounds: Rounds = []

    def _line(self) -> str:
        assert self.process.stdout is not None
        return self.process.stdout.readline().strip()

    def play_round(self) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write("go\n")
        self.process.stdin.flush()
        self.rounds.append(json.loads(self._line()))

    def close(self) -> None:
        assert self.process.stdin is not None and self.process.stdout is not None
        self.process.stdin.close()
        self.process.stdout.close()
        self.process.wait()


def _figures(rounds: Rounds, kind: int) -> dict[str, float]:
    ms = np.array([row[kind][0] for row in rounds]) * 1000
    return {
        "cpu_sum_ms": round(float(ms.sum()), 1),
        "cpu_p50_ms": round(float(np.percentile(ms, 50)), 3),
        "cpu_p99_ms": round(float(np.percentile(ms, 99)), 3),
    }


def _outputs(rounds: Rounds) -> list[list[tuple[int, str]]]:
    """Per round, the count and digest of each trigger's notices."""
    return [[(count, digest) for _, count, digest in row] for row in rounds]


TAIL_SHARE = 0.05
"""The share of a pass's triggers of a kind that :func:`_tail_ratio` compares: its slowest."""


def _tail_ratio(base: Rounds, head: Rounds, kind: int) -> float:
    """The head's summed CPU time over the base's on the slowest triggers of one pass (``TAIL_SHARE`` of
    them, at least one), which a p99 is made of. Both sides apply the same triggers in the same order,
    so each trigger is compared with itself; the slowest are picked by the two sides' mean, so that a
    trigger one side ran slowly for reasons of the machine's does not pick itself on that side alone."""
    b = np.array([row[kind][0] for row in base])
    h = np.array([row[kind][0] for row in head])
    slowest = np.argsort(-(b + h), kind="stable")[: max(1, round(TAIL_SHARE * len(b)))]
    return float(h[slowest].sum() / b[slowest].sum())


def compare(base: list[Rounds], head: list[Rounds]) -> dict[str, Any]:
    """Both sides' figures over all passes (each pass a list of rounds), and the median of the passes'
    ratios of summed CPU time: a pass whose process was slow for reasons of its own moves it little.
    The same for the slowest triggers alone (``tail_ratio``): a change can move the p99 that the
    summed time, held by the many light triggers, hardly shows."""
    result: dict[str, Any] = {}
    for k, kind in enumerate(KINDS):
        b, h = _figures(list(chain(*base)), k), _figures(list(chain(*head)), k)
        passes = list(zip(base, head, strict=True))
        by_pass = [_figures(h_pass, k)["cpu_sum_ms"] / _figures(b_pass, k)["cpu_sum_ms"] for b_pass, h_pass in passes]
        tail_by_pass = [_tail_ratio(b_pass, h_pass, k) for b_pass, h_pass in passes]
        result[kind] = {
            **{f"base_{name}": value for name, value in b.items()},
            **{f"head_{name}": value for name, value in h.items()},
            "sum_ratio": round(statistics.median(by_pass), 3),
            "sum_ratio_by_pass": [round(ratio, 3) for ratio in by_pass],
            "tail_ratio": round(statistics.median(tail_by_pass), 3),
            "tail_ratio_by_pass": [round(ratio, 3) for ratio in tail_by_pass],
            "p99_ratio": round(h["cpu_p99_ms"] / b["cpu_p99_ms"], 3),
        }
    differing = [
        (p, r)
        for p, (b_pass, h_pass) in enumerate(zip(base, head, strict=True))
        for r, (b_round, h_round) in enumerate(zip(_outputs(b_pass), _outputs(h_pass), strict=True))
        if b_round != h_round
    ]
    result["same_notices"] = not differing
    result["first_difference"] = {"pass": differing[0][0], "round": differing[0][1]} if differing else None
    result["notices"] = sum(t[1] for rounds in head for row in rounds for t in row)
    return result


def run(
    base: str,
    head: str,
    size: int,
    seed: int,
    rounds: int,
    book_file: Path,
    passes: int = 4,
    *,
    base_python: str = sys.executable,
    head_python: str = sys.executable,
    base_book_file: Path | None = None,
) -> dict[str, Any]:
    """``rounds`` rounds on each side, over ``passes`` passes that start fresh processes, each side
    started first in every other pass, and each apply the same triggers (the saved book's market).
    ``base_book_file``, if given, is the base side's book: the same book saved by the base's code, for
    a head that stores the engine otherwise."""
    pythons = {"base": base_python, "head": head_python}
    book_files = {"base": base_book_file or book_file, "head": book_file}
    versions: dict[str, str] = {}
    with checkout(base) as base_tree, checkout(head) as head_tree, tempfile.TemporaryDirectory() as links:
        # Each side sees its checkout through a link of the same length, so that the two processes'
        # paths and environments are the same size: a process's memory layout, and with it its speed,
        # can shift with them (the same commit from two directories differed by 2%).
        trees = {"base": Path(links) / "base", "head": Path(links) / "head"}
        trees["base"].symlink_to(base_tree)
        trees["head"].symlink_to(head_tree)
        for name in ("head", "base"):
            if not book_files[name].exists():
                Side(trees[name], book_files[name], size, seed, pythons[name]).close()  # builds and saves it
        played: dict[str, list[Rounds]] = {"base": [], "head": []}
        for p in range(passes):
            first, second = ("head", "base") if p % 2 == 0 else ("base", "head")
            sides: dict[str, Side] = {}
            try:
                for name in (first, second):
                    sides[name] = Side(trees[name], book_files[name], size, seed, pythons[name])
                    versions[name] = sides[name].python_version
                for r in range(rounds // passes):
                    for name in (first, second) if r % 2 == 0 else (second, first):
                        sides[name].play_round()
            finally:
                for side in sides.values():
                    side.close()
            for name, side in sides.items():
                played[name].append(side.rounds)
        figures = compare(played["base"], played["head"])
        return {
            "base": base,
            "head": head,
            "base_python": versions["base"],
            "head_python": versions["head"],
            "size": size,
            "rounds": rounds,
            "passes": passes,
            **figures,
        }


def main() -> None:
    if sys.argv[1:2] == ["--serve"]:
        serve(Path(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]))
        return
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--base", required=True, help="a commit (checked out in a temporary worktree) or a directory")
    parser.add_argument("--head", default=".", help="the same (default: this directory, as it is)")
    parser.add_argument("--size", type=int, default=100_000, help="open entries in the book")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=600, help="rounds of the four trigger kinds, on each side")
    parser.add_argument("--passes", type=int, default=4, help="pairs of processes the rounds are shared among")
    parser.add_argument("--book-file", type=Path, required=True, help="the saved book (bench.engine --book-file)")
    parser.add_argument(
        "--base-book-file",
        type=Path,
        help="the base side's saved book, when the head stores the engine otherwise (default: --book-file)",
    )
    for side in ("base", "head"):
        parser.add_argument(
            f"--{side}-python",
            default=sys.executable,
            help=f"the interpreter of the {side} side, with the project's packages (default: this one)",
        )
    args = parser.parse_args()
    if args.rounds < args.passes:
        parser.error("--rounds must be at least --passes")
    result = run(
        args.base,
        args.head,
        args.size,
        args.seed,
        args.rounds,
        args.book_file.resolve(),
        args.passes,
        base_python=args.base_python,
        head_python=args.head_python,
        base_book_file=args.base_book_file.resolve() if args.base_book_file else None,
    )
    print(json.dumps(result))


if __name__ == "__main__":
    main()
