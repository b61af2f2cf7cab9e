"""The report, from a summary of runs: sections, verdicts, bounds, charts, self-contained HTML."""

import math
import re

import pandas as pd
import pytest
from summaries import matrix_summary, run_row

from reports.cells import cells
from reports.report import MIN_VISIBILITY_READS, verdict, write_report
from reports.visibility import VISIBILITY_FILE


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


def faulted_summary(out) -> pd.DataFrame:
    """redis calm and with a stall, three repeats; the stalled runs' timelines in `out`."""
    rows = []
    recoveries = {1: 0.5, 2: 1.25, 3: math.inf}
    for repeat in (1, 2, 3):
        rows.append(run_row("redis", "mixed", repeat, 700.0, variant="fault=none", fault="none"))
        path = f"histories/redis-mixed-cache-stall-r{repeat}/timeline.csv"
        (out / path).parent.mkdir(parents=True)
        pd.DataFrame({
            "t_s": [0, 0.25, 0.5, 0.75], "throughput_rps": [400, 0, 0, 380],
            "errors": [0, 3, 1, 0], "bypass_share": [0, 1, 1, 0], "stale_reads": [0, 0, 0, 2],
            "in_fault": [False, True, True, False],
        }).to_csv(out / path, index=False)  # fmt: skip
        rows.append(run_row(
            "redis", "mixed", repeat, 300.0, variant="fault=cache-stall", fault="cache-stall",
            fault_start_s=0.25, fault_end_s=0.75, availability_during=0.9 + repeat / 100,
            availability_after=0.9996, baseline_rps=100.0, time_to_recover_s=recoveries[repeat],
            stale_reads_after=repeat - 1, staleness_after_max_ms=300.0 * repeat, timeline=path,
        ))  # fmt: skip
    return pd.DataFrame(rows)


def test_the_faults_section_sets_each_fault_beside_the_calm_run(tmp_path):
    metadata = {
        **METADATA,
        "options": {**METADATA["options"], "faults": ["cache-stall"]},
        "not_applicable": {"simple [fault=cache-stall]": "`simple` has no cache server"},
    }
    markdown, page = write_report(tmp_path, faulted_summary(tmp_path), metadata, {}, [])
    text = markdown.read_text()
    faults = text.split("\n## Faults\n")[1].split("\n## ")[0]
    assert "`simple [fault=cache-stall]` was not run: `simple` has no cache server." in faults
    row = next(line for line in faults.splitlines() if line.startswith("| mixed |"))
    assert row.split(" | ")[1:] == [
        "redis [fault=cache-stall]",
        "3",
        "0.25–0.75",
        "91.0% / 99.9%",  # the lowest of the repeats; 99.96 % is not 100 %
        "not within the window (1 of 3 runs)",
        "3 (900)",  # 0 + 1 + 2 stale reads, the oldest 900 ms
        "0 |",
    ]
    chart = tmp_path / "charts" / "timeline-mixed-redis_fault_cache-stall_.png"
    assert chart.stat().st_size > 0
    assert f"({chart.relative_to(tmp_path)})" in faults
    assert "| redis [fault=none] |" in text  # the calm run, in the scenario's table
    assert page.read_text().count("data:image/png;base64,") == 3 + 1


def test_a_report_without_faults_has_no_faults_section(summary, tmp_path):
    markdown, _ = write_report(tmp_path, summary, METADATA, {}, [])
    assert "## Faults" not in markdown.read_text()


def strategies_summary():
    """redis × write_heavy × three invalidations × two work times × two repeats, with the
    hottest key's refills; and `none`, which has no strategy."""
    stale = {("delete", 10): 2, ("delete", 50): 9, ("lease", 10): 0, ("lease", 50): 0,
             ("versioned", 10): 0, ("versioned", 50): 0}  # fmt: skip
    rows = [
        run_row(
            "redis", "write_heavy", repeat, 300.0 + repeat,
            variant=f"work_ms={work},invalidation={invalidation}",
            work_ms=work, invalidation=invalidation, stale_reads=stale[invalidation, work],
            stale_rate=stale[invalidation, work] / 300, staleness_max_ms=40.0,
            extra_store_reads=1 if invalidation == "versioned" else 0,
            refills=20, misses_per_refill=1.5, refill_get_p99_ms=60.0,
            visibility_1pct_ms=200.0 + repeat, visibility_01pct_ms=None,
        )
        for repeat in (1, 2)
        for work in (10, 50)
        for invalidation in ("delete", "lease", "versioned")
    ]  # fmt: skip
    rows += [
        run_row("none", "write_heavy", r, 40.0, variant=f"work_ms={w}", work_ms=w)
        for r in (1, 2)
        for w in (10, 50)
    ]
    return pd.DataFrame(rows)


def test_the_strategies_table_and_the_race_window_sweep(tmp_path):
    options = {**METADATA["options"], "work_ms": [10, 50], "work_phase": "after-read",
               "invalidations": ["delete", "lease", "versioned"],
               "caches": ["none", "redis"]}  # fmt: skip
    refused = {"simple [work_ms=10,invalidation=lease]": "CACHE_INVALIDATION='lease' does not "
               "apply to CACHE_BACKEND='simple': it needs an atomic compare-and-set"}  # fmt: skip
    metadata = {**METADATA, "options": options, "not_applicable": refused}
    markdown, page = write_report(tmp_path, strategies_summary(), metadata, {}, [])
    text = markdown.read_text()
    assert "`VIDEOS_WORK_MS=10, 50` (after-read)" in text
    strategies = text.split("## Invalidation and fill strategies")[1].split("\n## ")[0]
    columns = ("ops/s mean [95% CI]", "GET HIT / MISS p50 ms", "extra store reads per GET",
               "stale reads (max age ms)", "misses per refill (GET p99 ms during)")  # fmt: skip
    for column in columns:
        assert column in strategies
    assert "| write_heavy | redis [work_ms=50,invalidation=delete] | 302 [" in strategies
    assert "| 0 | 3.0% (18, 40.0) | 1.5 (60.0) | 201.5 | – |" in strategies
    assert "| visible to 99% ms | 99.9% ms |" in strategies
    assert strategies.index("| none [work_ms=10] |") < strategies.index("| redis [")
    assert "| redis [work_ms=10,invalidation=versioned] |" in strategies
    assert (
        "`simple [work_ms=10,invalidation=lease]` was not run: CACHE_INVALIDATION='lease' does "
        "not apply to CACHE_BACKEND='simple'" in strategies
    )
    sweep = text.split("## Stale reads against the race window")[1].split("\n## ")[0]
    assert "| scenario | configuration | 10 ms | 50 ms |" in sweep
    assert "| write_heavy | redis delete | 0.7% (4) | 3.0% (18) |" in sweep
    assert "| write_heavy | redis lease | 0.0% (0) | 0.0% (0) |" in sweep
    assert "the work time is the window" in sweep
    assert (tmp_path / "charts" / "stale_vs_work.png").stat().st_size > 0
    assert page.read_text().count("data:image/png;base64,") == 4


def test_the_strategies_report_draws_each_configuration_s_pooled_visibility(tmp_path):
    summary = strategies_summary()
    summary["history"] = [f"histories/run-{i}" for i in range(len(summary))]
    for run in summary.itertuples():
        # Each repeat 10 of its reads stale at 1–2 ms; one sparse interval, left out.
        stale = 10 if run.invalidation == "delete" else 0
        curve = pd.DataFrame({"t_ms": [0.0, 1.0, 2.0], "t_end_ms": [1.0, 2.0, math.inf],
                              "reads": [100, 100, MIN_VISIBILITY_READS - 1],
                              "stale": [0, stale, 0]})  # fmt: skip
        curve["probability"] = curve["stale"] / curve["reads"]
        (tmp_path / run.history).mkdir(parents=True)
        curve.to_csv(tmp_path / run.history / VISIBILITY_FILE, index=False)
    options = {
        **METADATA["options"],
        "work_ms": [10, 50],
        "work_phase": "after-read",
        "invalidations": ["delete", "lease", "versioned"],
        "caches": ["none", "redis"],
    }
    markdown, page = write_report(tmp_path, summary, {**METADATA, "options": options}, {}, [])
    section = markdown.read_text().split("## How long until a write is visible")[1]
    assert f"fewer than {MIN_VISIBILITY_READS} reads left out" in section
    assert (tmp_path / "charts" / "visibility.png").stat().st_size > 0
    assert page.read_text().count("data:image/png;base64,") == 5


def test_without_strategies_the_report_has_no_strategies_section(summary, tmp_path):
    markdown, _ = write_report(tmp_path, summary, METADATA, {}, [])
    assert "Invalidation and fill strategies" not in markdown.read_text()
    assert not (tmp_path / "charts" / "stale_vs_work.png").exists()
