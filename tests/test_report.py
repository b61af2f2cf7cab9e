"""The report, from a summary of runs: sections, verdicts, bounds, charts, self-contained HTML."""

import re

import pandas as pd
import pytest
from summaries import matrix_summary, run_row

from reports.cells import cells
from reports.report import verdict, write_report


@pytest.fixture
def summary():
    """Two scenarios, four caches, three repeats; redis is the fastest."""
    return matrix_summary()


METADATA = {
    "run_id": "test", "started": "then", "finished": "now", "commit": "abc",
    "python": "3.11", "machine": {"cpu_count": 2, "cpu_model": "cpu"},
    "options": {
        "workers": 2, "threads": 1, "work_ms": 50, "work_phase": "before-read",
        "strategy": "cached", "cache_timeout_s": 300, "users": 8, "warmup_s": 1,
        "duration_s": 4, "keys": 100, "key_dist": "zipf", "zipf_s": 1.0, "repeats": 3,
        "clock_skew_ms": 2.5,
    },
}  # fmt: skip


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
    assert "Clock skew allowed: 2.5 ms: a read counts as stale only when stale by more" in text
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
