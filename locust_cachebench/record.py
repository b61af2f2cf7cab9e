"""`locust-run.json`: what the master (or the single process) says about the run when the test
starts, as its workers join, and when Locust quits (its fields: README's "The history")."""

import json
import os
import socket
import sys
from dataclasses import asdict
from pathlib import Path
from typing import Any

import locust

from locust_cachebench.cpu import CPU_SATURATED
from locust_cachebench.run import LoadRun
from locust_cachebench.thresholds import Verdict
from reports.redact import redact


def record(run: LoadRun, verdicts: list[Verdict], exit_code: int | None) -> dict[str, Any]:
    """What locust-run.json says about the run (see README); `exit_code` None while it runs."""
    environment = run.environment
    runner = environment.runner
    options = environment.parsed_options
    stats = environment.stats.total
    cpu = run.cpu_percent()
    counts = dict(getattr(runner, "final_user_classes_count", {}) or {})
    return {
        "locust_version": locust.__version__,
        "hostname": socket.gethostname(),
        "command": [redact(arg) for arg in sys.argv],
        "host": environment.host and redact(environment.host),
        "user_classes": sorted(u.__name__ for u in environment.user_classes),
        "user_count": sum(counts.values()) or getattr(options, "num_users", None),
        "user_classes_count": counts,
        "processes": run.processes(),
        **{k: v for k, v in asdict(run.settings).items() if k != "history_dir"},
        **run.arrivals_record(),
        "t_seeded_ns": run.t_seeded_ns,
        "t_stop_ns": run.t_stop_ns,
        "cpu_warning": bool(
            getattr(runner, "cpu_warning_emitted", False)
            or getattr(runner, "worker_cpu_warning_emitted", False)
            or any(p is not None and p >= CPU_SATURATED for p in cpu.values())
        ),
        "cpu_percent": cpu,
        "requests": stats.num_requests,
        "failures": stats.num_failures,
        "fail_ratio": stats.fail_ratio,
        "total_rps": stats.total_rps,
        "hit_rate": {row.pop("scenario"): row for row in run.hits.rows()},
        "history_files": run.history_files(),
        "histories": run.histories.record() if run.histories is not None else {},
        "incomplete": run.incomplete if run.histories is not None else None,
        "thresholds": [asdict(v) | {"passed": v.passed} for v in verdicts],
        "error": run.error,
        "exit_code": exit_code,
    }


def write_json(path: Path, data: dict[str, Any]) -> None:
    """Write `data` to `path` whole or not at all (a reader never sees half a file)."""
    partial = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    partial.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    os.replace(partial, path)
