"""Mixed traffic: 80 % GET, 16 % PUT, 4 % DELETE over the keyspace; deleted ids come back
with later PUTs.

    locust -f loadtests/mixed.py --headless -u 20 -r 20 -t 30s --host http://127.0.0.1:8000

Options (--keys, --key-dist, --zipf-s, --history-dir, ...): see the README's "Load tests".
"""

from locust import run_single_user, task

from locust_cachebench.users import VideosUser


class MixedUser(VideosUser):
    @task(80)
    def get(self) -> None:
        self.read()

    @task(16)
    def put(self) -> None:
        self.write()

    @task(4)
    def delete(self) -> None:
        self.remove()


if __name__ == "__main__":
    run_single_user(MixedUser)
