"""The tutorial's Video resource: GET (cached), PUT and DELETE on /videos/<id>, and /health."""

import time
from typing import NoReturn

from flask import Flask, current_app, request
from flask.typing import ResponseReturnValue
from flask_restful import Api, Resource, abort
from werkzeug.exceptions import RequestEntityTooLarge
from werkzeug.routing import BaseConverter

from service.cache import cache, cache_state, mark_view_ran, try_invalidation
from service.fill import cached_get
from service.fill import init_app as init_fill
from service.invalidation import current_invalidation, write_video
from service.invalidation import init_app as init_invalidation
from service.openapi import OpenApiDocument
from service.store import StoreError, Video, get_store
from service.validation import MAX_BODY_BYTES, InvalidInput, check_video_id, parse_video


def simulate_work(work_ms: int) -> None:
    """The tutorial's expensive work: sleep `work_ms` milliseconds; 0 is no work at all."""
    # time.sleep(0) is not free: it enters the kernel and sleeps for the timer slack, about
    # 80 µs on the benchmark machine, more than the store read and the cache together.
    if work_ms:
        time.sleep(work_ms / 1000)


def read_video(video_id: int) -> tuple[dict, int]:
    """The GET view body: the expensive work, then the store, as in the tutorial."""
    mark_view_ran()
    config = current_app.config
    if config["VIDEOS_WORK_PHASE"] == "before-read":
        simulate_work(config["VIDEOS_WORK_MS"])
    video = get_store().get(video_id)
    if config["VIDEOS_WORK_PHASE"] == "after-read":
        simulate_work(config["VIDEOS_WORK_MS"])
    if video is None:
        abort(404, message="video doesn't exist")
    return video, 200


def read_body() -> bytes:
    """The whole request body: 413 if it is longer than MAX_BODY_BYTES, InvalidInput if it
    cannot be read whole.

    Flask's MAX_CONTENT_LENGTH is set one byte higher: for a chunked body Werkzeug stops
    reading at the limit without an error, so only a body past it proves it too long.
    """
    try:
        body = request.get_data(cache=False)
    except RequestEntityTooLarge:
        body = None
    except Exception as exc:
        # The server parses the body while the view reads it and reports a malformed one as
        # it pleases: gunicorn raises its own errors (a chunk size that is not hex, a chunk
        # not followed by CRLF), Werkzeug its ClientDisconnected. Any of them is the client's
        # fault, and catching them all keeps the service free of one server's exceptions.
        unreadable_body(f"the body could not be read: {exc}")
    if body is None or len(body) > MAX_BODY_BYTES:
        abort(413, message=f"the body is larger than {MAX_BODY_BYTES} bytes")
    # Werkzeug trusts a server that terminates the input (gunicorn does) to deliver the
    # whole body: a client that stops early leaves a short body, and no error.
    announced = request.content_length
    if announced is not None and len(body) < announced:
        unreadable_body(
            f"the body ended after {len(body)} of the {announced} bytes its Content-Length "
            "announced"
        )
    return body


def unreadable_body(message: str) -> NoReturn:
    """Refuse a body that did not arrive whole: a 400, and one log line, not a traceback,
    since any client can send as many as it likes."""
    current_app.logger.warning("refused a request body: %s", message)
    raise InvalidInput(message)


class VideoResource(Resource):
    """PUT and DELETE; each strategy's subclass adds the cached GET and its invalidation, or
    its write (StrategyVideo)."""

    def dispatch_request(self, *args: object, **kwargs: object) -> ResponseReturnValue:
        try:
            check_video_id(kwargs["video_id"])
            return super().dispatch_request(*args, **kwargs)
        except InvalidInput as exc:
            abort(400, message=str(exc), **({"field": exc.field} if exc.field else {}))
        except StoreError as exc:
            current_app.logger.error("store error: %s", exc)
            abort(503, message=f"the video store is unavailable: {exc}")

    def put(self, video_id: int) -> tuple[dict, int]:
        if not request.is_json:
            abort(415, message="PUT needs a JSON body with Content-Type: application/json")
        video = parse_video(read_body())
        self.write(video_id, video)
        return video, 201

    def delete(self, video_id: int) -> tuple[str, int]:
        if not self.write(video_id, None):
            abort(404, message="video doesn't exist")
        return "", 204

    def write(self, video_id: int, video: Video | None) -> bool:
        """The tutorial's write: the store, then the invalidation. `video` None deletes;
        False if there was no video to delete."""
        if not write_video(get_store(), video_id, video):
            return False
        try_invalidation(lambda: self.invalidate(video_id))
        return True

    def invalidate(self, video_id: int) -> None:
        raise NotImplementedError


def video_resource(strategy: str, timeout: int | None) -> type[VideoResource]:
    """The Video resource whose GET is cached with `strategy` for `timeout` seconds."""
    if strategy == "cached":

        class Video(VideoResource):
            @cache.cached(timeout=timeout, key_prefix="get%s")
            def get(self, video_id: int) -> tuple[dict, int]:
                return read_video(video_id)

            def invalidate(self, video_id: int) -> None:
                cache.delete(f"get/videos/{video_id}")

    elif strategy == "memoize":

        class Video(VideoResource):
            # The tutorial's pitfall: the key includes `self`, and Flask-RESTful makes a new
            # Resource per request, so a hit needs a new instance at a reused address.
            @cache.memoize(timeout=timeout)
            def get(self, video_id: int) -> tuple[dict, int]:
                return read_video(video_id)

            def invalidate(self, video_id: int) -> None:
                cache.delete_memoized(self.get, video_id)

    else:

        class Video(VideoResource):
            @cache.memoize(timeout=timeout, args_to_ignore=["self"])
            def get(self, video_id: int) -> tuple[dict, int]:
                return read_video(video_id)

            def invalidate(self, video_id: int) -> None:
                cache.delete_memoized(self.get, video_id)

    return Video


class StrategyVideo(VideoResource):
    """The GET read and filled in plain code (service/fill.py), the write invalidated
    (service/invalidation.py), under CACHE_INVALIDATION and CACHE_FILL: the `cached`
    strategy's key, any of their strategies."""

    def get(self, video_id: int) -> ResponseReturnValue:
        return cached_get(video_id, read_video)

    def write(self, video_id: int, video: Video | None) -> bool:
        return current_invalidation().write(video_id, video)


class VideoIdConverter(BaseConverter):
    """A video id as the API writes it: ASCII digits without a leading zero.

    Werkzeug's int converter also takes `/videos/01` and non-ASCII digits: the same video
    under another path, so under another cache key, one that no PUT or DELETE invalidates.
    """

    regex = r"0|[1-9][0-9]*"

    def to_python(self, value: str) -> int:
        return int(value)

    def to_url(self, value: int) -> str:
        return str(value)


class Health(Resource):
    """What is being served, and whether its cache answers, for the tools that start the
    service and wait for it, and for an operator."""

    def get(self) -> dict:
        config = current_app.config
        return {
            "status": "ok",
            "store": config["VIDEOS_STORE"],
            "cache_backend": config["CACHE_BACKEND"],
            "cache_strategy": config["CACHE_STRATEGY"],
            # Never fails the check: a cache that does not answer is bypassed, not fatal.
            "cache": cache_state(),
            "cache_invalidation": config["CACHE_INVALIDATION"],
            "cache_fill": config["CACHE_FILL"],
            "work_ms": config["VIDEOS_WORK_MS"],
            "work_phase": config["VIDEOS_WORK_PHASE"],
        }


def init_app(app: Flask) -> None:
    app.url_map.converters["video_id"] = VideoIdConverter
    api = Api(app, catch_all_404s=True)
    if (app.config["CACHE_INVALIDATION"], app.config["CACHE_FILL"]) == ("delete", "plain"):
        resource = video_resource(app.config["CACHE_STRATEGY"], app.config["CACHE_VIEW_TIMEOUT"])
    else:
        init_invalidation(app)
        init_fill(app)
        resource = StrategyVideo
    api.add_resource(resource, "/videos/<video_id:video_id>", endpoint="video")
    api.add_resource(Health, "/health")
    api.add_resource(OpenApiDocument, "/openapi.json")
