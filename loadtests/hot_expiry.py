"""A stampede at expiry: every user but two reads one hot video (id 1) whose cached entry
lives about a second, while two writers PUT it every two seconds. At each expiry or write,
every GET that arrives before the entry is filled again misses and runs the view, unless the
fill is protected (CACHE_FILL=lock: one filler, the others wait; xfetch: one GET refreshes
the entry before it expires).

    cachebench run --scenarios hot_expiry --ttl 1 --caches redis --fills plain,lock,xfetch
    locust -f loadtests/hot_expiry.py --headless -u 20 -r 20 -t 30s --host http://127.0.0.1:8000

The service's TTL is its own (`--ttl 1` of `cachebench run`, CACHE_DEFAULT_TIMEOUT=1 of
`tox -e serve`); the figures are the checker's `refills`, `misses_per_refill` and
`refill_get_p99_ms` (see the README's "Invalidation and fill strategies, measured").
"""

from locust import constant_pacing, run_single_user, task

from locust_cachebench.users import VideosUser

# Measures expiries, so only with a short TTL: `cachebench run` runs it when asked
# (--scenarios hot_expiry), not in its default matrix, whose TTL is 300 s.
IN_DEFAULT_MATRIX = False
HOT_KEY = 1  # the hottest id under Zipf too


class HotReader(VideosUser):
    @task
    def get(self) -> None:
        self.videos.get(HOT_KEY)


class HotWriter(VideosUser):
    fixed_count = 2
    wait_time = constant_pacing(2)

    @task
    def put(self) -> None:
        self.videos.put(HOT_KEY)


if __name__ == "__main__":
    run_single_user(HotReader)
