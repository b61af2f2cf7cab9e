"""The invalidation and fill strategies (CACHE_INVALIDATION, CACHE_FILL) on real servers:
X-Cache under each, the race each is meant to close, reproduced step by step, and the
combinations refused."""

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from urllib.parse import urlsplit

import pytest
import requests
from partition import Partition

from cachebench.servers import SERVERS
from service import create_app, fill, invalidation, videos
from service.backends import BACKENDS
from service.cache import cache
from service.settings import (
    CACHE_BACKENDS,
    FILLS,
    INVALIDATIONS,
    SettingError,
    check_together,
    defaults,
)
from service.store import get_store

SEED = {"name": "HelloWorld", "views": 147, "likes": 3}
NEW = {"name": "Cats", "views": 10, "likes": 2}
KEY = "get/videos/1"


def applies(**settings):
    try:
        check_together(defaults() | settings)
    except SettingError:
        return False
    return True


COMBINATIONS = [
    (i, f, b)
    for i in INVALIDATIONS
    for f in FILLS
    for b in CACHE_BACKENDS
    if (i, f) != ("delete", "plain")
    and applies(CACHE_INVALIDATION=i, CACHE_FILL=f, CACHE_BACKEND=b)
]


class PausedView:
    """The view's simulated work, replaced: counts the views run, and the first (or the next,
    after pause_next) pauses in it until released, as a slow GET would."""

    def __init__(self):
        self.calls = 0
        self._lock = threading.Lock()
        self.pause_next()

    def pause_next(self):
        self.entered = threading.Event()
        self.released = threading.Event()
        self._pause = True

    def __call__(self, work_ms):
        with self._lock:
            self.calls += 1
            pause, self._pause = self._pause, False
        if pause:
            self.entered.set()
            assert self.released.wait(10), "never released"

    def paused(self):
        assert self.entered.wait(10), "no view ran"


@pytest.fixture
def view(monkeypatch):
    """The GET views of the test's apps, counted; the first pauses until released."""
    paused = PausedView()
    monkeypatch.setattr(videos, "simulate_work", paused)
    yield paused
    paused.released.set()


def answer(response):
    return response.headers.get("X-Cache"), response.status_code, response.get_json(silent=True)


def test_the_strategies_are_the_settings_choices():
    assert tuple(invalidation.STRATEGIES) == INVALIDATIONS
    assert tuple(fill.STRATEGIES) == FILLS


def check_x_cache(client, view):
    """A GET's misses and hits, through a PUT and a DELETE: HIT exactly when the view did
    not run, MISS when it did."""
    not_found = {"message": "video doesn't exist"}
    steps = [
        (client.get, ("MISS", 200, SEED)),
        (client.get, ("HIT", 200, SEED)),
        (lambda path: client.put(path, json=NEW), (None, 201, NEW)),
        (client.get, ("MISS", 200, NEW)),
        (client.get, ("HIT", 200, NEW)),
        (client.delete, (None, 204, None)),
        (client.get, ("MISS", 404, not_found)),
        (client.get, ("HIT", 404, not_found)),
    ]
    for request, expected in steps:
        calls = view.calls
        assert answer(request("/videos/1")) == expected
        assert view.calls == calls + (expected[0] == "MISS")


@pytest.mark.parametrize(("invalidation_", "fill_", "backend"), COMBINATIONS)
def test_every_combination_serves_and_tells_x_cache_exactly(
    make_app, view, invalidation_, fill_, backend
):
    view.released.set()
    app = make_app(CACHE_BACKEND=backend, CACHE_INVALIDATION=invalidation_, CACHE_FILL=fill_)
    check_x_cache(app.test_client(), view)


@pytest.mark.parametrize("store", ["memory", pytest.param("postgres", marks=pytest.mark.postgres)])
@pytest.mark.parametrize("invalidation_", ["versioned", "outbox"])
def test_the_strategies_that_write_in_the_store_work_on_each(make_app, view, store, invalidation_):
    view.released.set()
    app = make_app(CACHE_BACKEND="filesystem", CACHE_INVALIDATION=invalidation_, VIDEOS_STORE=store)
    check_x_cache(app.test_client(), view)


def test_health_says_which_strategies_are_served(make_app):
    client = make_app(CACHE_INVALIDATION="versioned", CACHE_FILL="xfetch").test_client()
    body = client.get("/health").get_json()
    assert (body["cache_invalidation"], body["cache_fill"]) == ("versioned", "xfetch")


@pytest.mark.parametrize(
    ("settings", "says"),
    [
        (
            {"CACHE_INVALIDATION": "lease", "CACHE_BACKEND": "simple"},
            "CACHE_INVALIDATION='lease' does not apply to CACHE_BACKEND='simple': it needs an "
            "atomic compare-and-set on a server (redis, memcached)",
        ),
        (
            {"CACHE_INVALIDATION": "lease", "CACHE_BACKEND": "filesystem"},
            "CACHE_INVALIDATION='lease' does not apply to CACHE_BACKEND='filesystem'",
        ),
        (
            {"CACHE_INVALIDATION": "outbox", "CACHE_BACKEND": "simple"},
            "it needs a cache shared by the workers (filesystem, redis, memcached)",
        ),
        (
            {"CACHE_FILL": "lock", "CACHE_BACKEND": "filesystem"},
            "CACHE_FILL='lock' does not apply to CACHE_BACKEND='filesystem': it needs an "
            "atomic add (simple, memcached, redis)",
        ),
        (
            {"CACHE_FILL": "xfetch", "CACHE_BACKEND": "none"},
            "CACHE_FILL='xfetch' does not apply to CACHE_BACKEND='none': it needs a cache",
        ),
        (
            {"CACHE_INVALIDATION": "versioned", "CACHE_STRATEGY": "memoize-fixed"},
            "CACHE_INVALIDATION='versioned' applies to CACHE_STRATEGY='cached' only, not "
            "'memoize-fixed'",
        ),
    ],
)
def test_a_strategy_that_does_not_apply_is_refused_in_one_line(settings, says, tmp_path):
    with pytest.raises(SettingError) as error:
        create_app({**settings, "VIDEOS_DATABASE": str(tmp_path / "v.sqlite")})
    message = str(error.value)
    assert says in message
    assert "\n" not in message
    assert not list(tmp_path.iterdir())


def slow_get_across_a_put(app, view, get_between=False):
    """A GET that reads the seed, then pauses while a PUT writes NEW (and, if asked, another
    GET reads NEW and fills it), then fills: the cache-aside race. Returns its answer."""
    with ThreadPoolExecutor(1) as pool:
        slow = pool.submit(app.test_client().get, "/videos/1")
        view.paused()
        client = app.test_client()
        assert answer(client.put("/videos/1", json=NEW))[1:] == (201, NEW)
        if get_between:
            assert answer(client.get("/videos/1")) == ("MISS", 200, NEW)
        view.released.set()
        return answer(slow.result(timeout=10))


SERVER_BACKENDS = ["redis", "memcached"]


@pytest.mark.parametrize("backend", SERVER_BACKENDS)
@pytest.mark.parametrize("get_between", [False, True], ids=["alone", "get-between"])
@pytest.mark.parametrize(
    ("invalidation_", "stale"),
    [
        # The tutorial's race: the fill lands after the write's delete, and stays.
        ("delete", True),
        ("outbox", True),  # not the race it is for
        # The write revoked the slow GET's lease: its fill is refused.
        ("lease", False),
        # The slow GET filled the version before the write's, which no GET reads any more.
        ("versioned", False),
    ],
)
def test_a_fill_from_a_read_before_a_write(
    make_app, view, backend, get_between, invalidation_, stale
):
    app = make_app(
        CACHE_BACKEND=backend, CACHE_INVALIDATION=invalidation_, VIDEOS_WORK_PHASE="after-read"
    )
    assert slow_get_across_a_put(app, view, get_between) == ("MISS", 200, SEED)
    client = app.test_client()
    if stale:
        assert answer(client.get("/videos/1")) == ("HIT", 200, SEED)
    else:
        next_get = "HIT" if get_between else "MISS"
        assert answer(client.get("/videos/1")) == (next_get, 200, NEW)
        assert answer(client.get("/videos/1")) == ("HIT", 200, NEW)


def eventually(condition, what):
    """Wait for `condition` (a background step of the service): a generous bound that only
    decides whether it happens at all."""
    deadline = time.monotonic() + 10
    while not condition():
        assert time.monotonic() < deadline, f"never: {what}"
        time.sleep(0.05)


@pytest.mark.parametrize("backend", SERVER_BACKENDS)
def test_double_delete_removes_the_late_fill_when_its_delay_is_over(make_app, view, backend):
    app = make_app(
        CACHE_BACKEND=backend,
        CACHE_INVALIDATION="double-delete",
        # Longer than the slow GET takes to fill once released, so that the fill comes first.
        CACHE_DOUBLE_DELETE_MS=1000,
        VIDEOS_WORK_PHASE="after-read",
    )
    assert slow_get_across_a_put(app, view) == ("MISS", 200, SEED)
    client = app.test_client()
    assert answer(client.get("/videos/1")) == ("HIT", 200, SEED)
    seen = []
    eventually(lambda: seen.append(answer(client.get("/videos/1"))) or seen[-1][2] == NEW, "NEW")
    assert all(step == ("HIT", 200, SEED) for step in seen[:-1])
    assert seen[-1] == ("MISS", 200, NEW)


@pytest.mark.parametrize(
    ("backend", "invalidation_"),
    [
        ("simple", "delete"),
        ("redis", "delete"),
        ("memcached", "delete"),
        ("redis", "lease"),
        ("memcached", "lease"),
    ],
)
def test_lock_lets_one_miss_fill_and_the_others_wait_for_its_value(
    make_app, view, backend, invalidation_
):
    # Waiters wait up to the work's time (the paused view ignores it) and 100 ms.
    app = make_app(
        CACHE_BACKEND=backend,
        CACHE_INVALIDATION=invalidation_,
        CACHE_FILL="lock",
        VIDEOS_WORK_MS=5000,
    )
    with ThreadPoolExecutor(2) as pool:
        filler = pool.submit(app.test_client().get, "/videos/1")
        view.paused()
        waiter = pool.submit(app.test_client().get, "/videos/1")
        # Time for the waiter to find the key locked; the outcome holds either way.
        time.sleep(0.2)
        assert not waiter.done()
        view.released.set()
        assert answer(filler.result(timeout=10)) == ("MISS", 200, SEED)
        assert answer(waiter.result(timeout=10)) == ("HIT", 200, SEED)
    assert view.calls == 1


@pytest.mark.parametrize("backend", ["simple", "redis", "memcached"])
def test_a_lock_waiter_gives_up_runs_the_view_and_leaves_the_fill_to_the_holder(
    make_app, view, backend
):
    app = make_app(CACHE_BACKEND=backend, CACHE_FILL="lock")  # no work: it waits 100 ms
    with ThreadPoolExecutor(1) as pool:
        filler = pool.submit(app.test_client().get, "/videos/1")
        view.paused()
        assert answer(app.test_client().get("/videos/1")) == ("MISS", 200, SEED)
        assert view.calls == 2
        with app.app_context():
            assert cache.get(KEY) is None
        view.released.set()
        assert answer(filler.result(timeout=10)) == ("MISS", 200, SEED)
    assert answer(app.test_client().get("/videos/1")) == ("HIT", 200, SEED)


def set_expiry(app, expiry):
    with app.app_context():
        entry = cache.get(KEY)
        cache.set(KEY, {**entry, "expiry": expiry})


@pytest.mark.parametrize("backend", ["simple", "redis", "memcached"])
def test_xfetch_recomputes_an_entry_near_its_expiry_and_not_long_before(make_app, backend):
    app = make_app(CACHE_BACKEND=backend, CACHE_FILL="xfetch")
    client = app.test_client()
    assert answer(client.get("/videos/1"))[0] == "MISS"
    with app.app_context():
        entry = cache.get(KEY)
    assert entry["answer"] == (SEED, 200)
    assert time.time() < entry["expiry"] <= time.time() + 300
    assert 0 <= entry["delta"] < 10
    # A view of a millisecond or so, 300 s before the expiry: never recomputed early.
    assert {answer(client.get("/videos/1"))[0] for _ in range(20)} == {"HIT"}
    # At the expiry, still in the cache: always.
    set_expiry(app, time.time())
    assert answer(client.get("/videos/1")) == ("MISS", 200, SEED)
    with app.app_context():
        assert cache.get(KEY)["expiry"] > time.time() + 200
    assert answer(client.get("/videos/1"))[0] == "HIT"


@pytest.mark.parametrize("backend", SERVER_BACKENDS)
def test_under_lease_an_early_recompute_across_a_write_is_not_stored(make_app, view, backend):
    app = make_app(
        CACHE_BACKEND=backend,
        CACHE_INVALIDATION="lease",
        CACHE_FILL="xfetch",
        VIDEOS_WORK_PHASE="after-read",
    )
    client = app.test_client()
    view.released.set()
    client.get("/videos/1")
    view.pause_next()
    set_expiry(app, time.time())
    assert slow_get_across_a_put(app, view) == ("MISS", 200, SEED)
    assert answer(client.get("/videos/1")) == ("MISS", 200, NEW)
    assert answer(client.get("/videos/1")) == ("HIT", 200, NEW)


def port_of(address):
    return urlsplit(address if "://" in address else f"//{address}").port


@pytest.fixture
def partitioned(stoppable_server):
    """partitioned(backend): the settings of a private server of `backend`'s, reached through
    a Partition (returned too) that the test can cut."""
    with ExitStack() as stack:

        def start(backend):
            server = SERVERS[BACKENDS[backend].server]
            address, _ = stoppable_server(server.name)
            partition = stack.enter_context(Partition(port_of(address)))
            relayed = server.address.format(host="127.0.0.1", port=partition.port)
            return {"CACHE_BACKEND": backend, server.setting: relayed}, partition

        yield start


@pytest.mark.parametrize("backend", SERVER_BACKENDS)
@pytest.mark.parametrize(
    ("invalidation_", "once_back"),
    [("delete", ("HIT", 200, SEED)), ("outbox", ("MISS", 200, NEW))],
)
def test_a_write_while_the_cache_is_cut_off(
    make_app, partitioned, backend, invalidation_, once_back
):
    """With `delete` the cache serves the old value, once back, until the TTL; `outbox`
    delivers the pending invalidation before the GET reads the cache (its background retry
    is set too far off to do it)."""
    settings, partition = partitioned(backend)
    app = make_app(**settings, CACHE_INVALIDATION=invalidation_, CACHE_OUTBOX_RETRY_MS=3_600_000)
    client = app.test_client()
    client.get("/videos/1")
    assert answer(client.get("/videos/1")) == ("HIT", 200, SEED)
    partition.cut()
    assert answer(client.put("/videos/1", json=NEW)) == ("BYPASS", 201, NEW)
    assert answer(client.get("/videos/1")) == ("BYPASS", 200, NEW)
    partition.heal()
    assert answer(client.get("/videos/1")) == once_back
    with app.app_context():
        assert app.extensions["videos_store"].pending_invalidations() == {}


@pytest.mark.parametrize("backend", SERVER_BACKENDS)
def test_the_outbox_corrects_the_cache_in_the_background_when_it_is_back(
    make_app, partitioned, backend
):
    settings, partition = partitioned(backend)
    app = make_app(**settings, CACHE_INVALIDATION="outbox", CACHE_OUTBOX_RETRY_MS=50)
    client = app.test_client()
    client.get("/videos/1")
    partition.cut()
    assert answer(client.put("/videos/1", json=NEW)) == ("BYPASS", 201, NEW)
    store = app.extensions["videos_store"]
    assert list(store.pending_invalidations()) == [1]
    partition.heal()
    eventually(lambda: store.pending_invalidations() == {}, "the outbox delivered")
    with app.app_context():
        assert cache.get(KEY) is None
    assert answer(client.get("/videos/1")) == ("MISS", 200, NEW)


def test_versioned_keeps_each_workers_simplecache_right_after_a_write(serve):
    """The version is in the store, shared: a worker whose SimpleCache holds the old value
    reads another key after a write through the other worker (compare
    test_gunicorn.py::test_simple_cache_per_worker_serves_the_old_value)."""
    url = serve(CACHE_BACKEND="simple", CACHE_INVALIDATION="versioned", VIDEOS_WORK_MS=300)
    url += "/videos/1"

    def get_pair():
        with ThreadPoolExecutor(2) as pool:
            return [r.json() for r in pool.map(lambda _: requests.get(url, timeout=10), "ab")]

    assert get_pair() == [SEED, SEED]
    assert requests.put(url, json=NEW, timeout=10).status_code == 201
    assert get_pair() + get_pair() == [NEW] * 4


@pytest.mark.parametrize(
    ("name", "backend"),
    [
        pytest.param(name, "redis", marks=pytest.mark.redis)
        if name == "lease"
        else (name, "filesystem")
        for name in INVALIDATIONS
    ],
)
def test_each_invalidation_reads_the_store_as_often_as_the_comparison_says(make_app, name, backend):
    """The comparison's `extra_store_reads` are the service's own declaration: here they are
    counted, as the statements SQLite runs for a GET that misses and one that hits."""
    app = make_app(CACHE_BACKEND=backend, CACHE_INVALIDATION=name, CACHE_OUTBOX_RETRY_MS=60_000)
    client = app.test_client()
    statements = []
    with app.app_context():
        # The store's connection of this process, which the test client's requests use.
        get_store()._connect().set_trace_callback(statements.append)
    reads = []
    for expected_cache in ("MISS", "HIT"):
        statements.clear()
        response = client.get("/videos/1")
        assert response.headers["X-Cache"] == expected_cache
        reads.append(sum(s.lstrip().upper().startswith("SELECT") for s in statements))
    extra = invalidation.STRATEGIES[name].extra_store_reads
    assert reads == [1 + extra, extra]
