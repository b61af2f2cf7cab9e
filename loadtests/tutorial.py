"""The tutorial's own check, automated: get-put-get and get-delete-get on a video of each
user's own, the last GET of each sequence checking that it sees the write (read-your-writes).

A violation is a Locust failure naming the sequence that broke. With SimpleCache and several
gunicorn workers it is expected: a write invalidates only the cache of the worker that
served it, and the next GET may reach another worker's stale copy.

    locust -f loadtests/tutorial.py --headless -u 4 -r 4 -t 30s --host http://127.0.0.1:8000
"""

from locust import run_single_user, task

from locust_cachebench.contract import Expect
from locust_cachebench.users import VideosUser

# A check of read-your-writes on private ids, not a traffic mix: `cachebench run` runs it
# only when asked (--scenarios tutorial).
IN_DEFAULT_MATRIX = False


class TutorialUser(VideosUser):
    video_id: int
    written = False  # whether the video is known to exist (this user's last write was a PUT)

    def on_start(self) -> None:
        super().on_start()
        self.video_id = self.load.private_id()

    @task
    def sequences(self) -> None:
        self.get_put_get()
        self.get_delete_get()

    def get_put_get(self) -> None:
        self.videos.get(self.video_id)
        status, name = self.videos.put(self.video_id)
        if status == 201:
            self.written = True
            self.videos.get(self.video_id, Expect("get-put-get", name))

    def get_delete_get(self) -> None:
        self.videos.get(self.video_id)
        expect = Expect("get-delete-get", None) if self.written else None
        if self.videos.delete(self.video_id, expect) == 204:
            self.written = False
            self.videos.get(self.video_id, expect)


if __name__ == "__main__":
    run_single_user(TutorialUser)
