"""A comparison's cells: each scenario × cache aggregated over its quotable repeats."""

import pandas as pd
import pytest
from summaries import matrix_summary

from reports.cells import cells


@pytest.fixture
def summary():
    """Two scenarios, four caches, three repeats; redis is the fastest."""
    return matrix_summary()


def test_cells_leave_out_runs_that_cannot_be_quoted(summary):
    table = cells(summary)
    redis_mixed = table[(table["cache"] == "redis") & (table["scenario"] == "mixed")].iloc[0]
    assert redis_mixed["repeats"] == 3
    assert redis_mixed["throughput"].mean == pytest.approx(702)


def test_bound_flags_of_a_cell_come_from_its_aggregate(summary):
    summary.loc[summary["cache"] == "none", "miss_rps"] = 30.0  # bound 40: 25 % below
    table = cells(summary).set_index(["scenario", "cache"])
    assert table.loc[("mixed", "none"), "bound_flags"] == (
        "misses/s 30.0 more than 10% below the bound 40.0"
    )
    assert table.loc[("mixed", "redis"), "bound_flags"] == ""


def test_cells_come_in_the_caches_order_within_each_scenario(summary):
    order = ["none", "simple", "filesystem", "redis"]
    table = cells(summary.iloc[::-1], order)
    assert list(table["scenario"]) == ["mixed"] * 4 + ["read_heavy"] * 4
    assert list(table["cache"][:4]) == order
    # Without an order, the summary's (the matrix's, which is that of --caches).
    assert list(cells(summary.iloc[::-1])["cache"][:4]) == order[::-1]


def test_a_cell_aggregates_latency_as_the_report_says(summary):
    mixed_simple = (summary["cache"] == "simple") & (summary["scenario"] == "mixed")
    summary.loc[mixed_simple, "get_hit_p50_ms"] = [1.0, 2.0, 9.0]
    summary.loc[mixed_simple, "get_hit_max_ms"] = [10.0, 50.0, 20.0]
    cell = cells(summary).set_index(["scenario", "cache"]).loc[("mixed", "simple")]
    assert cell["get_hit_p50_ms"] == 2.0  # the median over the repeats
    assert cell["get_hit_max_ms"] == 50.0  # the largest


def test_a_summary_with_nothing_quotable_has_no_cell(summary):
    summary["invalid"] = "too few operations (5 < 100)"
    assert cells(summary).empty


def test_a_variant_is_a_configuration_of_its_own_beside_its_backend(summary):
    faulted = summary[summary["cache"] == "redis"].assign(variant="fault=cache-stall")
    table = cells(pd.concat([summary.assign(variant=""), faulted]), ["none", "redis"])
    mixed = table[table["scenario"] == "mixed"]
    assert list(mixed["cache"]) == [
        "none",
        "redis",
        "redis [fault=cache-stall]",
        "simple",
        "filesystem",
    ]
    assert set(mixed["backend"]) == {"none", "redis", "simple", "filesystem"}
