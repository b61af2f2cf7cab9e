"""The history format: one row per operation a load-test client performed, as it saw it.

Written by the Locust scenarios (locust_cachebench/history.py) as `history-*.csv` files and read by
reports/history.py. Nothing in it comes from the service's internals, so any server with the
same API can be judged from it. This module needs nothing but Python, so that a Locust
process writing a history does not import pandas.
"""

# The columns every history file has, in this order; writers may add more after them.
COLUMNS = ("op", "key", "value", "status", "cache", "t_invoke_ns", "t_complete_ns", "worker")
# Columns added since, which the load tests write after COLUMNS: a history without one (an
# older one, or another writer's) is read as if it held the column named beside it.
ADDED_COLUMNS = {"t_intended_ns": "t_invoke_ns"}
WRITTEN_COLUMNS = COLUMNS + tuple(ADDED_COLUMNS)
DTYPES = {
    "op": "category",  # get, put, delete
    "key": "int64",  # the video id
    "value": "string",  # the name written, or the name read; empty for a 404 or an error
    "status": "int32",  # HTTP status; 0 for a transport error or timeout
    "cache": "category",  # the X-Cache header, empty if absent
    "t_invoke_ns": "int64",  # time.time_ns() just before sending
    "t_complete_ns": "int64",  # time.time_ns() just after the full response
    "worker": "category",  # a stable id of the Locust process and user
    # When the operation should have been sent: an open loop's arrival, else t_invoke_ns.
    "t_intended_ns": "int64",
}
OPS = ("get", "put", "delete")
FILE_PATTERN = "history-*.csv"
INITIAL_VALUES = {1: "HelloWorld"}  # what the service holds before any write
# Every name the harness writes: `<writer>#<n>`, the writer `<host>-<pid>-<token>-u<n>` (a
# user) or `<host>-<pid>-<token>-seed` (the seeding). A name of this form whose writer is not
# in a history was written by another run of the harness, before that history began.
NAME_PATTERN = r"(?P<writer>[A-Za-z0-9.-]+-[0-9]+-[0-9a-f]{6}-(?:u[0-9]+|seed))#[0-9]+"

# The value of every key once the load has stopped, read through a cache-less service: one
# GET per key, in the history's columns (op is always get), made by the runner if it can.
FINAL_READS_FILE = "final-reads.csv"

# What the Locust run says of itself at its end (see README, "The history"): among others
# t_seeded_ns (the measured load began) and t_stop_ns (it was stopped).
RUN_FILE = "locust-run.json"

# Written by the master (or the single process) the moment seeding finished, replaced whole:
# {"t_seeded_ns": ...}, as in RUN_FILE, for whoever times something live from it (the matrix
# runner's faults).
SEEDED_FILE = "seeded.json"
