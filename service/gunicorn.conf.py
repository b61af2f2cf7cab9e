"""Gunicorn settings for the videos service, every one from the environment (see README).

Checks the app's settings too, in the master, so that a bad value is one line and an exit
instead of a traceback from every worker.
"""

import os
import sys

from service.settings import SettingError, defaults, parse_settings

try:
    parse_settings(os.environ, "app")
    _settings = defaults("gunicorn") | parse_settings(os.environ, "gunicorn")
except SettingError as exc:
    sys.exit(f"cachebench service: {exc}")

bind = _settings["SERVICE_BIND"]
workers = _settings["SERVICE_WORKERS"]
threads = _settings["SERVICE_THREADS"]
worker_class = "gthread" if threads > 1 else "sync"
accesslog = "-" if _settings["SERVICE_ACCESS_LOG"] else None
errorlog = "-"
# The GET view sleeps VIDEOS_WORK_MS (up to 60 s) while holding a sync worker.
timeout = 90
graceful_timeout = 5
# Gunicorn 25.1+ opens one control socket per user by default; deployments side by side
# (the tests, the matrix runner) would fight over it, and nothing here uses it.
control_socket_disable = True
