"""Seeding: before the measured period, one PUT of every id of the keyspace, then (warm) one GET
of every id, recorded in the history like any operation but not in Locust's stats."""

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


def seed(
    host: str, keys: int, history: HistoryWriter | NoHistory, process: str, warm: bool = False
) -> None:
    """PUT every id 1 … `keys` at `host` once, as writer `<process>-seed` (none for 0); with
    `warm`, then GET each of them once, so that a cache in front of the store holds them."""
    failures: list[str] = []
    report = EventHook()  # seeding is not part of the measured requests

    def on_request(
        request_type: str, exception: Exception | None, url: str, **_kwargs: object
    ) -> None:
        if exception is not None:
            failures.append(f"{request_type} {url}: {exception}")

    report.add_listener(on_request)
    session = FastHttpSession(host, report, user=None, concurrency=SEED_CONCURRENCY)
    client = VideosClient(session, history, Writer(f"{process}-seed"))
    try:
        pool = gevent.pool.Pool(SEED_CONCURRENCY)
        pool.map(client.put, range(1, keys + 1))
        if warm and not failures:
            pool.map(client.get, range(1, keys + 1))
    finally:
        session.client.close()
    if failures:
        raise SeedError(
            f"seeding {redact(host)} failed ({len(failures)} requests), first: {failures[0]}"
        )
    log.info(f"Seeded {keys} videos at {redact(host)}" + (", and read each once" if warm else ""))
