"""The live hit rate: the share of GETs answered with `X-Cache: HIT`, per scenario.

Counted by each process; workers send what they counted since their last report to the
master with Locust's own stats reports, so the master's figures cover every process.
"""

from collections.abc import Mapping


class HitCounter:
    """GETs and HITs per scenario (user class name) in this process."""

    def __init__(self) -> None:
        self._counts: dict[str, list[int]] = {}

    def counts_of(self, scenario: str) -> list[int]:
        """The [gets, hits] list of `scenario`, for its users to increment in place."""
        return self._counts.setdefault(scenario, [0, 0])

    def add(self, counts: Mapping[str, list[int]]) -> None:
        for scenario, (gets, hits) in counts.items():
            mine = self.counts_of(scenario)
            mine[0] += gets
            mine[1] += hits

    def take(self) -> dict[str, list[int]]:
        """The counts so far, then zero (what a worker sends in each report)."""
        taken = {scenario: list(counts) for scenario, counts in self._counts.items()}
        self.reset()
        return taken

    def reset(self) -> None:
        # Users hold their scenario's list: zero it in place, never replace it.
        for counts in self._counts.values():
            counts[:] = [0, 0]

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


def web_ui_rows(rows: list[dict[str, object]]) -> list[dict[str, object]]:
    """The rows as the web UI's extra table shows them (the rate in percent)."""
    return [{**row, "rate": "-" if row["rate"] is None else f"{row['rate']:.1%}"} for row in rows]


WEB_UI_TAB = {"title": "Cache hits", "key": "cache-hits"}
WEB_UI_TABLE = {
    "key": "cache-hits",
    "structure": [
        {"key": "scenario", "title": "Scenario"},
        {"key": "gets", "title": "# GETs"},
        {"key": "hits", "title": "# HITs"},
        {"key": "rate", "title": "Hit rate"},
    ],
}
