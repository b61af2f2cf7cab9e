"""Seeding: before the measured period, one PUT of every id of the keyspace, recorded in the
history like any write but not in Locust's stats."""

import logging

import gevent.pool
from locust.contrib.fasthttp import FastHttpSession
from locust.event import EventHook

from locust_cachebench.client import VideosClient
from locust_cachebench.history import HistoryWriter, NoHistory, Writer
from reports.redact import redact

log = logging.getLogger("loadtests")

SEED_CONCURRENCY = 8


class SeedError(RuntimeError):
    """The keyspace could not be seeded; the message says which request failed and how."""


def seed(host: str, keys: int, history: HistoryWriter | NoHistory, process: str) -> None:
    """PUT every id 1 … `keys` at `host` once, as writer `<process>-seed` (none for 0)."""
    failures: list[str] = []
    report = EventHook()  # seeding is not part of the measured requests

    def on_request(exception: Exception | None, url: str, **_kwargs: object) -> None:
        if exception is not None:
            failures.append(f"PUT {url}: {exception}")

    report.add_listener(on_request)
    session = FastHttpSession(host, report, user=None, concurrency=SEED_CONCURRENCY)
    client = VideosClient(session, history, Writer(f"{process}-seed"))
    try:
        gevent.pool.Pool(SEED_CONCURRENCY).map(client.put, range(1, keys + 1))
    finally:
        session.client.close()
    if failures:
        raise SeedError(
            f"seeding {redact(host)} failed ({len(failures)} PUTs), first: {failures[0]}"
        )
    log.info(f"Seeded {keys} videos at {redact(host)}")
