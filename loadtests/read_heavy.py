"""Read-heavy traffic: 95 % GET, 5 % PUT over the keyspace, the load a cache is built for.

    locust -f loadtests/read_heavy.py --headless -u 20 -r 20 -t 30s --host http://127.0.0.1:8000

Options (--keys, --key-dist, --zipf-s, --history-dir, ...): see the README's "Load tests".
"""

from locust import run_single_user, task

from locust_cachebench.users import VideosUser


class ReadHeavyUser(VideosUser):
    @task(95)
    def get(self) -> None:
        self.read()

    @task(5)
    def put(self) -> None:
        self.write()


if __name__ == "__main__":
    run_single_user(ReadHeavyUser)
