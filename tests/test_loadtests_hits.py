"""The live hit rate: counted per scenario, summed over workers, shown as a table."""

from locust_cachebench.hits import HitCounter, format_table


def test_hit_counts_sent_by_workers_add_up_on_the_master():
    worker = HitCounter()
    worker.add({"ReadHeavyUser": [10, 7]})
    master = HitCounter()
    master.add(worker.take())
    worker.add({"ReadHeavyUser": [2, 0]})
    master.add(worker.take())
    master.add({"MixedUser": [4, 1]})
    assert master.rows() == [
        {"scenario": "MixedUser", "gets": 4, "hits": 1, "rate": 0.25},
        {"scenario": "ReadHeavyUser", "gets": 12, "hits": 7, "rate": 7 / 12},
        {"scenario": "Aggregated", "gets": 16, "hits": 8, "rate": 0.5},
    ]
    assert worker.take() == {}, "each report sends what was counted since the last"


def test_the_hit_rate_table():
    counter = HitCounter()
    counter.add({"ReadHeavyUser": [200, 150]})
    assert format_table(counter.rows()).splitlines() == [
        "Cache hit rate (share of GETs answered with X-Cache: HIT)",
        "Scenario          # GETs     # HITs  hit rate",
        "-" * 45,
        "ReadHeavyUser        200        150     75.0%",
    ]
