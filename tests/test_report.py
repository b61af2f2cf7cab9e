"""The report, from a summary of runs: sections, verdicts, bounds, charts, self-contained HTML."""

import re

import pandas as pd
import pytest

from reports.figures import PERCENTILES
from reports.report import LATENCY_GROUPS, cells, verdict, write_report

CACHES = ("none", "simple", "filesystem", "redis")


def run_row(cache, scenario, repeat, throughput, **overrides):
    row = {
        "cache": cache, "scenario": scenario, "repeat": repeat,
        "throughput_rps": throughput, "hit_rate": 0.0 if cache == "none" else 0.9,
        "stale_reads": 3 if cache == "simple" else 0,
        "stale_rate": 0.01 if cache == "simple" else 0.0,
        "staleness_median_ms": 120.0 if cache == "simple" else None,
        "staleness_max_ms": 900.0 if cache == "simple" else None,
        "errors": 0, "phantoms": 0, "lost_writes": 0, "ops": 5000, "judged_reads": 300,
        "miss_rps": 39.0, "miss_rps_bound": 40.0, "get_miss_min_ms": 50.5,
        "get_miss_min_ms_bound": 50.0, "throughput_law_rps": throughput * 1.02,
        "bound_flags": "", "invalid": "",
    }  # fmt: skip
    for group in (*LATENCY_GROUPS, "all"):
        for p in PERCENTILES:
            row[f"{group}_{p}_ms"] = {"p50": 2.0, "p95": 5.0, "p99": 9.0, "max": 30.0}[p]
    row.update(overrides)
    return row


@pytest.fixture
def summary():
    """Two scenarios, four caches, three repeats; redis is the fastest."""
    speed = {"none": 40, "simple": 600, "filesystem": 500, "redis": 700}
    rows = [
        run_row(cache, scenario, repeat, speed[cache] + repeat)
        for scenario in ("read_heavy", "mixed")
        for cache in CACHES
        for repeat in (1, 2, 3)
    ]
    rows.append(run_row("redis", "mixed", 4, 10.0, invalid="load generator saturated (CPU 97%)"))
    return pd.DataFrame(rows)


METADATA = {
    "run_id": "test", "started": "then", "finished": "now", "commit": "abc",
    "python": "3.11", "machine": {"cpu_count": 2, "cpu_model": "cpu"},
    "options": {
        "workers": 2, "threads": 1, "work_ms": 50, "work_phase": "before-read",
        "strategy": "cached", "cache_timeout_s": 300, "users": 8, "warmup_s": 1,
        "duration_s": 4, "keys": 100, "key_dist": "zipf", "zipf_s": 1.0, "repeats": 3,
    },
}  # fmt: skip


def test_cells_leave_out_runs_that_cannot_be_quoted(summary):
    table = cells(summary)
    redis_mixed = table[(table["cache"] == "redis") & (table["scenario"] == "mixed")].iloc[0]
    assert redis_mixed["repeats"] == 3
    assert redis_mixed["throughput"].mean == pytest.approx(702)


def test_verdict_names_the_fastest_and_each_stale_price(summary):
    table = cells(summary)
    text = verdict(table[table["scenario"] == "read_heavy"])
    assert "Fastest: **redis**" in text
    assert "no cache" in text
    assert "simple 1.00% of reads stale" in text
    assert "none, filesystem, redis: no stale read" in text
    assert "not told apart" not in text


def test_a_fastest_within_the_noise_of_another_says_so(summary):
    summary.loc[summary["cache"] == "filesystem", "throughput_rps"] = [690, 700, 712] * 2
    text = verdict(cells(summary).query("scenario == 'mixed'"))
    assert "Fastest: **redis**" in text
    assert "(not told apart from it, within the noise: filesystem)" in text


def test_bound_flags_of_a_cell_come_from_its_aggregate(summary):
    summary.loc[summary["cache"] == "none", "miss_rps"] = 30.0  # bound 40: 25 % below
    table = cells(summary).set_index(["scenario", "cache"])
    assert table.loc[("mixed", "none"), "bound_flags"] == (
        "misses/s 30.0 more than 10% below the bound 40.0"
    )
    assert table.loc[("mixed", "redis"), "bound_flags"] == ""


def test_unstable_throughput_is_flagged(summary):
    summary.loc[(summary["cache"] == "simple") & (summary["repeat"] == 1), "throughput_rps"] = 300
    text = verdict(cells(summary).query("scenario == 'mixed'"))
    assert "Unstable" in text
    assert "simple" in text.split("Unstable")[1]


def test_report_has_every_section_and_is_self_contained(summary, tmp_path):
    markdown, page = write_report(
        tmp_path, summary, METADATA, {"redis": "redis-server not found"}, ["x: it broke"]
    )
    text = markdown.read_text()
    for heading in ("How this was measured", "Scenario `read_heavy`", "Scenario `mixed`",
                    "Charts", "Bounds, `read_heavy`", "Runs not quoted", "Definitions",
                    "Metadata"):  # fmt: skip
        assert f"## {heading}" in text
    assert "load generator saturated" in text
    assert "`redis` was not run: redis-server not found" in text
    assert "failed: x: it broke" in text
    for chart in ("throughput", "latency", "hit_vs_stale"):
        assert (tmp_path / "charts" / f"{chart}.png").stat().st_size > 0
        assert f"(charts/{chart}.png)" in text
    html = page.read_text()
    assert html.count("data:image/png;base64,") == 3
    assert not re.search(r"""(src|href)=['"]?(https?:|/|charts/)""", html)


@pytest.mark.parametrize(
    "summary",
    [
        pd.DataFrame([run_row("none", "mixed", 1, 1.0, invalid="too few operations")]),
        pd.DataFrame(),
    ],
    ids=["invalid", "no-run"],
)
def test_report_of_no_quotable_run_says_so(tmp_path, summary):
    markdown, _ = write_report(tmp_path, summary, METADATA, {}, ["none-mixed-r1: it broke"])
    text = markdown.read_text()
    assert "No run finished with figures that can be quoted." in text
    assert "failed: none-mixed-r1: it broke" in text


def test_html_words_the_sections_as_markdown_does_and_escapes_messages(summary, tmp_path):
    failure = "x: <script>alert(1)</script> **lost** [see](http://example.com/)"
    _, page = write_report(tmp_path, summary, METADATA, {}, [failure])
    html = page.read_text()
    assert "<h2>Scenario <code>mixed</code></h2>" in html
    assert "Fastest: <strong>redis</strong>" in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt; <strong>lost</strong>" in html
    assert "[see](http://example.com/)" in html  # a link stays text: nothing loads from afar
    assert "<td>none</td><td>42 [40–44]</td>" in html
