"""What the card-log write costs a call, alone and with the other writers of a server.

    .venv/bin/python -m bench.store                       # SQLite, synchronous=FULL then NORMAL
    .venv/bin/python -m bench.store --database-url postgresql://...   # PostgreSQL (a fresh schema)

Each write is one call's worth: `Store.record_issued_cards` with 4 cards, as the typical chart of the
benchmark gets. Alone: CPU (thread time) and wall time of one write. Contended: PROCESSES x THREADS
writers (a pod's gunicorn workers and threads), each writing in a loop, for the total rate and each
write's wall time: the figure that says whether batching concurrent writers into one commit would pay.
"""
from __future__ import annotations

import argparse
import multiprocessing
import shutil
import statistics
import tempfile
import threading
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

CARDS_PER_CALL = 4


def _rows() -> list[Any]:
    from service.store import IssuedCardRow
    hook_instance, now = str(uuid.uuid4()), datetime.now(UTC)
    return [IssuedCardRow(card_uuid=str(uuid.uuid4()), service_id="bench", topic_code=f"topic-{n}", topic_display=None,
                          knowledge_version="bench", hook_instance=hook_instance, issued_at=now,
                          patient_key=uuid.uuid4().hex) for n in range(CARDS_PER_CALL)]


def _open(data_dir: Path, database_url: str | None, synchronous: str) -> Any:
    from service.config import Settings
    from service.store import engine, open_store
    engine.SQLITE_SYNCHRONOUS = synchronous
    values = {"CDS_DATA_DIR": str(data_dir), "CDS_PATIENT_KEY_SECRET": "b" * 64}
    if database_url:
        values["DATABASE_URL"] = database_url
    return open_store(Settings.from_env(values))


def alone(data_dir: Path, database_url: str | None, synchronous: str, writes: int) -> dict[str, float]:
    store = _open(data_dir, database_url, synchronous)
    try:
        for _ in range(30):
            store.record_issued_cards(_rows())
        cpu, wall = [], []
        for _ in range(writes):
            rows = _rows()
            c0, w0 = time.thread_time(), time.perf_counter()
            store.record_issued_cards(rows)
            cpu.append((time.thread_time() - c0) * 1000)
            wall.append((time.perf_counter() - w0) * 1000)
    finally:
        store.close()
    wall.sort()
    return {"cpu_ms_median": round(statistics.median(cpu), 3), "wall_ms_p50": round(wall[len(wall) // 2], 3),
            "wall_ms_p99": round(wall[len(wall) * 99 // 100], 3)}


def _writer_process(data_dir: Path, database_url: str | None, synchronous: str, threads: int, seconds: float,
                    out: Any) -> None:
    store = _open(data_dir, database_url, synchronous)
    times: list[float] = []
    lock = threading.Lock()
    deadline = time.monotonic() + seconds

    def loop() -> None:
        mine = []
        while time.monotonic() < deadline:
            rows = _rows()
            started = time.perf_counter()
            store.record_issued_cards(rows)
            mine.append((time.perf_counter() - started) * 1000)
        with lock:
            times.extend(mine)

    workers = [threading.Thread(target=loop) for _ in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    store.close()
    out.put(times)


def contended(data_dir: Path, database_url: str | None, synchronous: str, processes: int, threads: int,
              seconds: float) -> dict[str, float]:
    _open(data_dir, database_url, synchronous).close()  # schema in place before the writers race
    context = multiprocessing.get_context("fork")
    queue = context.Queue()
    children = [context.Process(target=_writer_process, args=(data_dir, database_url, synchronous, threads,
                                                                seconds, queue)) for _ in range(processes)]
    for child in children:
        child.start()
    times = sorted(t for _ in children for t in queue.get(timeout=seconds + 120))
    for child in children:
        child.join(timeout=60)
    return {"writes_per_s": round(len(times) / seconds, 1), "wall_ms_p50": round(times[len(times) // 2], 3),
            "wall_ms_p99": round(times[len(times) * 99 // 100], 3)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.store", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--database-url", help="PostgreSQL URL (a fresh schema is made and dropped)")
    parser.add_argument("--synchronous", default="FULL,NORMAL", help="SQLite modes to compare")
    parser.add_argument("--writes", type=int, default=500, help="writes measured alone")
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=5.0, help="length of the contended run")
    args = parser.parse_args(argv)
    if args.database_url:
        from bench.run import fresh_postgres_schema
        with fresh_postgres_schema(args.database_url) as url:
            subprocess_upgrade(url)
            _report("postgresql", url, "-", args)
        return 0
    for mode in args.synchronous.split(","):
        _report("sqlite", None, mode.strip().upper(), args)
    return 0


def subprocess_upgrade(url: str) -> None:
    from service.config import Settings
    from service.store import upgrade_schema
    upgrade_schema(Settings.from_env({"DATABASE_URL": url, "CDS_DATA_DIR": tempfile.gettempdir()}))


def _report(database: str, url: str | None, mode: str, args: argparse.Namespace) -> None:
    data_dir = Path(tempfile.mkdtemp(prefix="fasciculation-store-"))
    try:
        one = alone(data_dir, url, mode, args.writes)
        many = contended(data_dir, url, mode, args.processes, args.threads, args.seconds)
    finally:
        shutil.rmtree(data_dir, ignore_errors=True)
    label = database if database != "sqlite" else f"sqlite synchronous={mode}"
    print(f"{label}: alone CPU {one['cpu_ms_median']} ms, wall p50 {one['wall_ms_p50']} / p99 {one['wall_ms_p99']} ms; "
          f"{args.processes}x{args.threads} writers: {many['writes_per_s']} writes/s, wall p50 "
          f"{many['wall_ms_p50']} / p99 {many['wall_ms_p99']} ms", flush=True)


if __name__ == "__main__":
    raise SystemExit(main())
