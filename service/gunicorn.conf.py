"""Gunicorn settings for the videos service, every one from the environment (see README).

Checks the app's settings too, in the master, so that a bad value is one line and an exit
instead of a traceback from every worker.
"""

import os
import sys

from service.settings import (
    SettingError,
    check_together,
    defaults,
    parse_settings,
    worker_timeout,
)

try:
    _app_settings = defaults("app") | parse_settings(os.environ, "app")
    check_together(_app_settings)
    _settings = defaults("gunicorn") | parse_settings(os.environ, "gunicorn")
except SettingError as exc:
    sys.exit(f"cachebench service: {exc}")

bind = _settings["SERVICE_BIND"]
workers = _settings["SERVICE_WORKERS"]
threads = _settings["SERVICE_THREADS"]
worker_class = "gthread" if threads > 1 else "sync"
accesslog = "-" if _settings["SERVICE_ACCESS_LOG"] else None
errorlog = "-"
# A sync worker reads a request from a blocking socket without a deadline, and beats only
# between requests: a client that sends part of its request and goes quiet holds the worker
# until the master, missing its heartbeat for `timeout` seconds, kills it and starts another.
# So the timeout drops silent clients, and must outlast the longest legitimate request.
timeout = _settings["SERVICE_TIMEOUT"] or worker_timeout(_app_settings)
graceful_timeout = 5
# Gunicorn 25.1+ opens one control socket per user by default; deployments side by side
# (the tests, the matrix runner) would fight over it, and nothing here uses it.
control_socket_disable = True
