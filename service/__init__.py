"""The videos service of the Flask-RESTful caching tutorial, as a system under test.

Served with `gunicorn -c service/gunicorn.conf.py 'service:create_app()'`.
"""

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from flask import Flask

from service import cache, store, videos
from service.backends import CLIENT_TIMEOUTS
from service.settings import cache_timeout_ms, check_together, defaults, parse_settings
from service.validation import MAX_BODY_BYTES


def create_app(test_config: Mapping[str, Any] | None = None) -> Flask:
    """The app, configured from the environment, or from `test_config` alone when given."""
    app = Flask(__name__, instance_relative_config=True)
    app.config.from_mapping(defaults(), MAX_CONTENT_LENGTH=MAX_BODY_BYTES + 1)
    if test_config is None:
        app.config.from_mapping(parse_settings(os.environ))
    else:
        app.config.from_mapping(test_config)
        app.config.from_mapping(parse_settings(test_config))
    check_together(app.config)
    # Flask-Caching re-raises backend errors in debug mode; the service never runs in it.
    app.config["DEBUG"] = False
    if app.config["VIDEOS_DATABASE"] is None:
        app.config["VIDEOS_DATABASE"] = str(Path(app.instance_path) / "videos.sqlite")
    for name in CLIENT_TIMEOUTS:
        app.config[name] = cache_timeout_ms(app.config, name)

    store.init_app(app)
    cache.init_app(app)
    videos.init_app(app)
    return app
