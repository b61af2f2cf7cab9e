"""Write-heavy traffic: 50 % GET, 50 % PUT over the keyspace, where invalidation dominates.

    locust -f loadtests/write_heavy.py --headless -u 20 -r 20 -t 30s --host http://127.0.0.1:8000

Options (--keys, --key-dist, --zipf-s, --history-dir, ...): see the README's "Load tests".
"""

from locust import run_single_user, task

from locust_cachebench.users import VideosUser


class WriteHeavyUser(VideosUser):
    @task(50)
    def get(self) -> None:
        self.read()

    @task(50)
    def put(self) -> None:
        self.write()


if __name__ == "__main__":
    run_single_user(WriteHeavyUser)
