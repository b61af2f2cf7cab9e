"""The live hit rate: the share of GETs answered with `X-Cache: HIT`, per scenario.

Each process counts the GETs of its users from Locust's `request` events, as Locust's own
example (examples/extend_modern_web_ui_cache_stats.py) counts X-Cache; workers send what they
counted since their last report to the master with Locust's own stats reports, so the master's
figures cover every process.
"""

from collections.abc import Mapping

# The request context entry that names the scenario (user class) of the user that sent it.
SCENARIO = "scenario"


class HitCounter:
    """GETs and HITs per scenario (user class name) in this process."""

    def __init__(self) -> None:
        self._counts: dict[str, list[int]] = {}

    def on_request(
        self,
        request_type: str,
        response: object = None,
        context: Mapping[str, object] | None = None,
        **_kwargs: object,
    ) -> None:
        """Count a GET of a scenario's user (a `request` listener); any other request is not."""
        scenario = (context or {}).get(SCENARIO)
        if request_type != "GET" or not isinstance(scenario, str):
            return
        # No headers: a transport error or timeout, a GET that is no HIT.
        headers = getattr(response, "headers", None)
        counts = self._counts.setdefault(scenario, [0, 0])
        counts[0] += 1
        counts[1] += headers is not None and headers.get("X-Cache") == "HIT"

    def add(self, counts: Mapping[str, list[int]]) -> None:
        for scenario, (gets, hits) in counts.items():
            mine = self._counts.setdefault(scenario, [0, 0])
            mine[0] += gets
            mine[1] += hits

    def take(self) -> dict[str, list[int]]:
        """The counts so far, then zero (what a worker sends in each report)."""
        taken = self._counts
        self._counts = {}
        return taken

    def reset(self) -> None:
        self._counts = {}

    def rows(self) -> list[dict[str, object]]:
        """One row per scenario with GETs, plus a total row when there are several."""
        rows = [
            _row(scenario, gets, hits)
            for scenario, (gets, hits) in sorted(self._counts.items())
            if gets
        ]
        if len(rows) > 1:
            rows.append(
                _row("Aggregated", sum(r["gets"] for r in rows), sum(r["hits"] for r in rows))
            )
        return rows


def _row(scenario: str, gets: int, hits: int) -> dict[str, object]:
    return {"scenario": scenario, "gets": gets, "hits": hits, "rate": hits / gets if gets else None}


def format_table(rows: list[dict[str, object]]) -> str:
    """The rows as a console table in the manner of Locust's summary."""
    width = max([len("Scenario"), *(len(str(r["scenario"])) for r in rows)])
    lines = [
        "Cache hit rate (share of GETs answered with X-Cache: HIT)",
        f"{'Scenario':<{width}} {'# GETs':>10} {'# HITs':>10} {'hit rate':>9}",
        "-" * (width + 32),
    ]
    for row in rows:
        rate = "-" if row["rate"] is None else f"{row['rate']:.1%}"
        lines.append(f"{row['scenario']:<{width}} {row['gets']:>10} {row['hits']:>10} {rate:>9}")
    if not rows:
        lines.append("(no GETs)")
    return "\n".join(lines)
