"""The base of every scenario: a FastHttpUser that reads, writes and deletes videos of the
keyspace (or of its own), validating and recording each operation."""

from locust import FastHttpUser, constant

from locust_cachebench.client import VideosClient
from locust_cachebench.history import Writer
from locust_cachebench.run import DEFAULT_HOST, LoadRun, current_run


class VideosUser(FastHttpUser):
    """A user of the videos API; scenarios weight its operations with @task."""

    abstract = True
    host = DEFAULT_HOST
    # Closed loop, no think time: each user sends its next request as soon as it has an answer.
    wait_time = constant(0)

    load: LoadRun  # not `run`: that is the User method running its tasks
    videos: VideosClient

    def on_start(self) -> None:
        self.load = current_run()
        self.videos = VideosClient(
            self.client,
            self.load.history,
            Writer(self.load.next_worker_id()),
            self.load.hits.counts_of(type(self).__name__),
        )

    def read(self) -> None:
        """GET a chosen id."""
        self.videos.get(self.load.choose_key())

    def write(self) -> None:
        """PUT a chosen id, or one this process deleted."""
        self.videos.put(self.load.key_to_write())

    def remove(self) -> None:
        """DELETE a chosen id; a later PUT brings it back."""
        key = self.load.choose_key()
        if self.videos.delete(key) == 204:
            self.load.deleted.add(key)
