"""The on-disk spool: a bounded FIFO that survives reopening (property-based)."""

from __future__ import annotations

import shutil
import tempfile
from collections import deque
from pathlib import Path

import hypothesis.strategies as st
from hypothesis import HealthCheck, settings
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from gridwatch.storage import Spool

LINE = st.text(st.characters(codec="utf-8", exclude_characters="\n\r",
                             exclude_categories=("Cs",)), min_size=1, max_size=40).filter(
    lambda s: s.strip() == s and s != "")
BATCH = st.lists(LINE, min_size=1, max_size=8)


class SpoolMachine(RuleBasedStateMachine):
    """Appends, takes, removes and reopens against a model: a deque of batches."""

    def __init__(self) -> None:
        super().__init__()
        self.dir = Path(tempfile.mkdtemp(prefix="spool-"))
        self.max_bytes = 600
        self.spool = Spool(self.dir, self.max_bytes, fsync=False)
        self.model: deque[list[str]] = deque()

    def _bytes(self, batch: list[str]) -> int:
        return len(("\n".join(batch) + "\n").encode())

    @rule(batch=BATCH)
    def append(self, batch: list[str]) -> None:
        used = sum(self._bytes(b) for b in self.model)
        fits = used + self._bytes(batch) <= self.max_bytes
        assert self.spool.append(batch) is fits
        if fits:
            self.model.append(batch)

    @precondition(lambda self: self.model)
    @rule(max_lines=st.integers(1, 20), commit=st.booleans())
    def take(self, max_lines: int, commit: bool) -> None:
        seqs, lines = self.spool.take(max_lines)
        expected: list[str] = []
        n = 0
        for batch in self.model:
            if n and len(expected) + len(batch) > max_lines:
                break
            expected.extend(batch)
            n += 1
        assert lines == expected
        assert len(seqs) == n
        if commit:
            self.spool.remove(seqs)
            for _ in range(n):
                self.model.popleft()

    @rule()
    def reopen(self) -> None:
        # A restart (or a crash after an append returned): everything comes back, in order.
        (self.dir / "9999999999999999.tmp").write_text("half a batch")
        self.spool = Spool(self.dir, self.max_bytes, fsync=False)

    def teardown(self) -> None:
        shutil.rmtree(self.dir, ignore_errors=True)

    @invariant()
    def sizes_agree(self) -> None:
        assert len(self.spool) == len(self.model)
        assert self.spool.points == sum(len(b) for b in self.model)
        assert self.spool.size_bytes == sum(self._bytes(b) for b in self.model)
        assert self.spool.size_bytes <= self.max_bytes
        on_disk = sum(p.stat().st_size for p in self.dir.glob("*.lp"))
        assert on_disk == self.spool.size_bytes


TestSpool = SpoolMachine.TestCase
TestSpool.settings = settings(max_examples=60, stateful_step_count=30, deadline=None,
                              suppress_health_check=[HealthCheck.too_slow])


def test_reopened_spool_continues_numbering(tmp_path):
    spool = Spool(tmp_path, 10_000)
    spool.append(["a"])
    spool.append(["b"])
    spool.remove(spool.take(1)[0])
    spool = Spool(tmp_path, 10_000)
    spool.append(["c"])
    assert spool.take(10)[1] == ["b", "c"]


def test_zero_bytes_keeps_nothing(tmp_path):
    spool = Spool(tmp_path, 0)
    assert spool.append(["x"]) is False
    assert len(spool) == 0 and spool.points == 0
