"""Sample, once a second while a run goes, what its processes and stores hold: the resident
memory of gunicorn's workers and of Locust, the cache server's memory and keys, the
FileSystemCache's entries and bytes, and the store's size, into the run's resources.csv
(read by reports/resources.py).

A sample that cannot be read is left empty: sampling never fails a run.
"""

import csv
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager, suppress
from pathlib import Path

import psutil
import redis
from pymemcache.client.base import Client as MemcacheClient

from reports.resources import RESOURCE_COLUMNS, RESOURCES_FILE

INTERVAL_S = 1.0
# How long one probe of a cache server may take: a server that is slow to answer a sample
# leaves it empty rather than delaying the next one.
PROBE_TIMEOUT_S = 0.5

Probe = Callable[[], dict[str, float]]


def process_memory() -> dict[str, float]:
    """The resident memory of the run's gunicorn workers (summed, and the largest: one
    worker's leak is all of the largest's growth, a share of the sum's) and of Locust with
    its workers, found among this process's children by their command line."""
    worker_rss: list[int] = []
    locust_rss = 0
    for child in psutil.Process().children():
        with suppress(psutil.Error):
            command = " ".join(child.cmdline())
            if "gunicorn" in command:
                # The master only forks and watches; the workers hold the app and its data.
                for worker in child.children():
                    with suppress(psutil.Error):
                        worker_rss.append(worker.memory_info().rss)
            elif "locust" in command:
                for process in [child, *child.children(recursive=True)]:
                    with suppress(psutil.Error):
                        locust_rss += process.memory_info().rss
    row: dict[str, float] = {}
    if worker_rss:
        row.update(
            gunicorn_rss_bytes=sum(worker_rss),
            gunicorn_worker_rss_max_bytes=max(worker_rss),
            gunicorn_workers=len(worker_rss),
        )
    if locust_rss:
        row["locust_rss_bytes"] = locust_rss
    return row


def redis_probe(url: str) -> Probe:
    """Redis's used_memory and its key count (DBSIZE: the whole database, which a private
    instance gives to this run alone; counting one prefix would need a SCAN of every key)."""
    client = redis.Redis.from_url(
        url, socket_timeout=PROBE_TIMEOUT_S, socket_connect_timeout=PROBE_TIMEOUT_S
    )

    def probe() -> dict[str, float]:
        return {
            "cache_used_bytes": client.info("memory")["used_memory"],
            "cache_keys": client.dbsize(),
        }

    return probe


def memcached_probe(servers: str) -> Probe:
    """memcached's `bytes` and `curr_items` (the first server of the list)."""
    host, _, port = servers.split(",")[0].rpartition(":")
    client = MemcacheClient(
        (host, int(port)), connect_timeout=PROBE_TIMEOUT_S, timeout=PROBE_TIMEOUT_S
    )

    def probe() -> dict[str, float]:
        stats = client.stats()
        return {"cache_used_bytes": stats[b"bytes"], "cache_keys": stats[b"curr_items"]}

    return probe


def directory_probe(directory: Path) -> Probe:
    """The FileSystemCache's entries and bytes under `directory` (every deployment's)."""

    def probe() -> dict[str, float]:
        entries, size = 0, 0
        for path in directory.rglob("*"):
            with suppress(OSError):
                if path.is_file():
                    entries += 1
                    size += path.stat().st_size
        return {"fs_entries": entries, "fs_bytes": size}

    return probe


def sqlite_probe(database: Path) -> Probe:
    """The SQLite store's file with its write-ahead log."""

    def probe() -> dict[str, float]:
        files = [database, database.with_name(database.name + "-wal")]
        return {"store_bytes": sum(p.stat().st_size for p in files if p.exists())}

    return probe


def probes(settings: Mapping[str, object]) -> list[Probe]:
    """What to sample for a service run with `settings` (as one_run.service_settings makes
    them): its processes always; its cache server, cache directory and SQLite store if it has
    them. A postgres store is not sampled."""
    found: list[Probe] = [process_memory]
    backend = settings.get("CACHE_BACKEND")
    if backend == "redis" and settings.get("CACHE_REDIS_URL"):
        found.append(redis_probe(str(settings["CACHE_REDIS_URL"])))
    if backend == "memcached" and settings.get("CACHE_MEMCACHED_SERVERS"):
        found.append(memcached_probe(str(settings["CACHE_MEMCACHED_SERVERS"])))
    if backend == "filesystem" and settings.get("CACHE_DIR"):
        found.append(directory_probe(Path(str(settings["CACHE_DIR"]))))
    if settings.get("VIDEOS_STORE", "sqlite") == "sqlite" and settings.get("VIDEOS_DATABASE"):
        found.append(sqlite_probe(Path(str(settings["VIDEOS_DATABASE"]))))
    return found


def sample(found: list[Probe]) -> dict[str, float]:
    """One row: t_ns and what each probe read; a probe that fails leaves its columns empty."""
    row: dict[str, float] = {"t_ns": time.time_ns()}
    for probe in found:
        # Anything may go wrong reading another process or server mid-run; the row says
        # so by its empty columns, and the run goes on.
        with suppress(Exception):
            row.update(probe())
    return row


@contextmanager
def sampling(run_dir: Path, found: list[Probe], interval_s: float = INTERVAL_S) -> Iterator[None]:
    """Write a row of `found`'s samples to run_dir/resources.csv every `interval_s` while the
    block runs, and a last one as it ends; each row is flushed as it is written."""
    stopped = threading.Event()
    with (run_dir / RESOURCES_FILE).open("w", newline="") as out:
        writer = csv.DictWriter(out, RESOURCE_COLUMNS, extrasaction="ignore")
        writer.writeheader()

        def loop() -> None:
            while True:
                writer.writerow(sample(found))
                out.flush()
                if stopped.wait(interval_s):
                    return

        thread = threading.Thread(target=loop, name="cachebench-resources", daemon=True)
        thread.start()
        try:
            yield
        finally:
            stopped.set()
            thread.join()
