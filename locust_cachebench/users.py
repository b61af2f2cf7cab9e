"""The base of every scenario: a FastHttpUser that reads, writes and deletes videos of the
keyspace (or of its own), validating and recording each operation.

Importing it registers the plugin's listeners (locust_cachebench/plugin.py) on Locust's events.
"""

import gevent.event
from locust import FastHttpUser, constant

import locust_cachebench.plugin  # noqa: F401  (registers the listeners that make the run)
from locust_cachebench.client import VideosClient
from locust_cachebench.history import Writer
from locust_cachebench.hits import SCENARIO
from locust_cachebench.run import DEFAULT_HOST, LoadRun


class VideosUser(FastHttpUser):
    """A user of the videos API; scenarios weight its operations with @task."""

    abstract = True
    host = DEFAULT_HOST
    # Closed loop, no think time: each user sends its next request as soon as it has an answer.
    wait_time = constant(0)

    load: LoadRun  # not `run`: that is the User method running its tasks
    videos: VideosClient
    # Set on the users that the open loop's arrivals run their tasks on (arrivals.py).
    serves_arrivals = False

    def on_start(self) -> None:
        # Hung on the environment by the plugin's `init` listener.
        self.load = self.environment.cachebench
        if self.load.open_loop and not self.serves_arrivals:
            # The arrivals send every request: a user Locust spawns has nothing to do until
            # the test stops it.
            gevent.event.Event().wait()
        writer = Writer(self.load.next_worker_id())
        self.videos = VideosClient(self.client, self.load.history, writer)

    def context(self) -> dict:
        """Each request's context names the scenario, for the hit counter's `request` listener."""
        return {SCENARIO: type(self).__name__}

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
