"""SQLite writers take turns across threads and forked processes (service/store/write_turns.py)."""
from __future__ import annotations

import multiprocessing
import os
import threading
import time
from pathlib import Path

from service.store.write_turns import WriteTurns

HOLD_S = 0.02


def _take_turns(turns: WriteTurns, log: Path, rounds: int) -> None:
    for _ in range(rounds):
        with turns.turn():
            started = time.monotonic()
            time.sleep(HOLD_S)
            with open(log, "a") as file:  # one short line per turn, appended under the turn itself
                file.write(f"{os.getpid()} {started:.6f} {time.monotonic():.6f}\n")


def _threads(turns: WriteTurns, log: Path, threads: int, rounds: int) -> None:
    workers = [threading.Thread(target=_take_turns, args=(turns, log, rounds)) for _ in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()


def test_turns_never_overlap_across_threads_and_forked_processes(tmp_path):
    turns = WriteTurns(tmp_path / "cards.sqlite3")
    log = tmp_path / "turns.log"
    _take_turns(turns, log, 1)  # the parent opens its lock file before forking, as gunicorn's master may
    context = multiprocessing.get_context("fork")
    children = [context.Process(target=_threads, args=(turns, log, 3, 4)) for _ in range(2)]
    for child in children:
        child.start()
    _threads(turns, log, 3, 4)
    for child in children:
        child.join(timeout=60)
        assert child.exitcode == 0
    spans = sorted((float(start), float(end), pid) for pid, start, end in
                   (line.split() for line in log.read_text().splitlines()))
    assert len(spans) == 1 + 3 * 3 * 4
    assert len({pid for _, _, pid in spans}) == 3
    for (_, end, _), (start, _, _) in zip(spans, spans[1:]):
        assert start >= end, "two writers held the turn at once"
    turns.close()


def test_an_in_memory_or_server_database_takes_no_lock():
    turns = WriteTurns(None)
    inside = threading.Event()
    leave = threading.Event()
    entered: list[str] = []

    def hold_a_turn() -> None:
        with turns.turn():
            inside.set()
            leave.wait(10)

    def nested_turns() -> None:
        with turns.turn(), turns.turn():  # a lock taken here would wait for ever (or for `holder`)
            entered.append("nested")

    holder = threading.Thread(target=hold_a_turn, daemon=True)
    holder.start()
    assert inside.wait(10)
    other = threading.Thread(target=nested_turns, daemon=True)  # while another thread is in its turn
    other.start()
    other.join(timeout=10)
    leave.set()
    holder.join(timeout=10)
    assert entered == ["nested"] and not other.is_alive(), "a turn without a database file waited"
    turns.close()
