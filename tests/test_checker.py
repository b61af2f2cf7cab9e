"""The stale-read checker on hand-built histories (times are nanoseconds)."""

import pytest
from histories import delete, get, history, put, verdicts

from reports.checker import FINAL_VERDICTS, VERDICTS, classify_final_reads, classify_reads

OK = ("ok", None)
PHANTOM = ("phantom", None)
FUTURE = ("future", None)
UNJUDGED = ("unjudged", None)


def stale(age: int) -> tuple[str, int]:
    return ("stale", age)


# Sequential writes and reads on one key.


def test_a_read_of_the_latest_write_is_ok():
    assert verdicts(history(put(2, "A", 0, 10), get(2, "A", 20, 30))) == [OK]


def test_a_read_of_a_superseded_write_is_stale_aged_from_the_supersession():
    h = history(put(2, "A", 0, 10), put(2, "B", 20, 30), get(2, "A", 45, 50))
    assert verdicts(h) == [stale(45 - 30)]


def test_a_superseding_write_counts_only_once_completed_before_the_read_is_invoked():
    h = history(
        put(2, "A", 0, 10),
        put(2, "B", 20, 40),
        get(2, "A", 30, 35),  # B still in flight
        get(2, "A", 40, 45),  # B completed at the very time the read was invoked
        get(2, "A", 41, 45),
    )
    assert verdicts(h) == [OK, OK, stale(1)]


def test_a_write_invoked_exactly_when_the_other_completed_does_not_supersede_it():
    h = history(put(2, "A", 0, 10), put(2, "B", 10, 20), get(2, "A", 30, 40))
    assert verdicts(h) == [OK]


def test_the_age_runs_from_the_earliest_completion_of_a_superseding_write():
    h = history(
        put(2, "A", 0, 10),
        put(2, "B", 20, 100),  # invoked first, completes last
        put(2, "C", 30, 40),
        get(2, "A", 35, 36),
        get(2, "A", 50, 60),
    )
    assert verdicts(h) == [OK, stale(50 - 40)]


def test_a_stale_read_of_an_older_write_in_a_chain():
    h = history(
        put(2, "A", 0, 10),
        put(2, "B", 20, 30),
        put(2, "C", 40, 50),
        get(2, "A", 60, 70),
        get(2, "B", 60, 70),
        get(2, "C", 60, 70),
    )
    assert verdicts(h) == [stale(60 - 30), stale(60 - 50), OK]


# Concurrent writes and reads.


def test_concurrent_writes_do_not_supersede_each_other():
    h = history(
        put(2, "A", 0, 20, worker="w1"),
        put(2, "B", 10, 30, worker="w2"),
        get(2, "A", 40, 50, worker="w3"),
        get(2, "B", 40, 50, worker="w4"),
        get(2, "A", 60, 70, worker="w3"),  # a register may flip back: A took effect last
    )
    assert verdicts(h) == [OK, OK, OK]


def test_a_write_concurrent_with_the_first_cannot_supersede_it_but_a_later_one_does():
    h = history(
        put(2, "A", 0, 10),
        put(2, "B", 5, 50),
        get(2, "A", 55, 60),
        put(2, "C", 60, 70),
        get(2, "A", 80, 90),
    )
    assert verdicts(h) == [OK, stale(80 - 70)]


def test_a_read_concurrent_with_a_write_may_return_either_value():
    h = history(
        put(2, "A", 0, 10),
        put(2, "B", 20, 40),
        get(2, "A", 15, 45),
        get(2, "B", 15, 45),
        get(2, "B", 25, 30),
    )
    assert verdicts(h) == [OK, OK, OK]


def test_many_workers_writing_at_once_then_one_write_after_them_all():
    workers = [f"w{i}" for i in range(20)]
    ops = [put(2, f"N{i}", i, 100 + i, worker=w) for i, w in enumerate(workers)]
    ops += [get(2, f"N{i}", 200, 210, worker=w) for i, w in enumerate(workers)]
    ops += [put(2, "last", 300, 310, worker="w0")]
    ops += [get(2, f"N{i}", 400, 410, worker=w) for i, w in enumerate(workers)]
    ops += [get(2, "last", 400, 410, worker="w5")]
    assert verdicts(history(*ops)) == [OK] * 20 + [stale(400 - 310)] * 20 + [OK]


# Absence: the initial state, DELETEs and re-PUTs.


def test_a_key_starts_absent_but_key_1_starts_as_HelloWorld():
    h = history(
        get(7, None, 0, 10),
        get(1, "HelloWorld", 0, 10),
        put(7, "A", 20, 30),
        put(1, "B", 20, 30),
        get(7, None, 40, 50),
        get(1, "HelloWorld", 40, 50),
    )
    assert verdicts(h) == [OK, OK, stale(40 - 30), stale(40 - 30)]


def test_a_404_of_key_1_before_any_delete_is_invoked_is_a_future_read_without_any_a_phantom():
    assert verdicts(history(get(1, None, 0, 10), delete(1, 20, 30))) == [FUTURE]
    assert verdicts(history(get(1, None, 0, 10))) == [PHANTOM]


def test_deletes_and_re_puts():
    h = history(
        put(2, "A", 0, 10),
        delete(2, 20, 30),
        get(2, None, 40, 50),
        get(2, "A", 40, 50),
        put(2, "B", 60, 70),
        get(2, "B", 80, 90),
        get(2, None, 80, 90),  # every absent-write superseded: the initial state and the DELETE
        delete(2, 100, 110),
        get(2, None, 120, 130),
        get(2, "B", 120, 130),
    )
    assert verdicts(h) == [OK, stale(40 - 30), OK, stale(80 - 70), OK, stale(120 - 110)]


def test_a_404_is_ok_while_any_absent_write_it_could_return_is_not_superseded():
    h = history(
        put(2, "A", 0, 10),
        delete(2, 20, 30),
        put(2, "B", 40, 50),
        delete(2, 45, 80),  # concurrent with B: nothing supersedes it
        get(2, None, 90, 95),
    )
    assert verdicts(h) == [OK]


def test_a_404_ignores_the_deletes_invoked_after_it_completed():
    h = history(put(2, "A", 0, 10), get(2, None, 20, 30), delete(2, 40, 50))
    assert verdicts(h) == [stale(20 - 10)]


def test_a_delete_answered_404_changed_nothing():
    h = history(
        put(2, "A", 0, 10),
        delete(2, 20, 30, status=404),
        get(2, "A", 40, 50),  # not superseded by the 404
        get(2, None, 40, 50),  # nor explained by it: the initial absence was superseded
    )
    assert verdicts(h) == [OK, stale(40 - 10)]


# Writes that failed, or were refused.


@pytest.mark.parametrize("status", [0, 500, 503])
def test_a_failed_write_explains_a_read_but_never_supersedes_one(status):
    h = history(
        put(2, "A", 0, 10),
        put(2, "B", 20, 30, status=status),
        get(2, "B", 40, 50),
        get(2, "A", 40, 50),
    )
    assert verdicts(h) == [OK, OK]


@pytest.mark.parametrize("status", [0, 503])
def test_a_failed_delete_explains_a_404(status):
    h = history(put(2, "A", 0, 10), delete(2, 20, 30, status=status), get(2, None, 40, 50))
    assert verdicts(h) == [OK]


def test_a_timed_out_write_may_take_effect_late_so_is_never_superseded():
    h = history(put(2, "A", 0, 10, status=0), put(2, "B", 20, 30), get(2, "A", 40, 50))
    assert verdicts(h) == [OK]


def test_a_write_answered_5xx_took_effect_before_its_answer_if_at_all():
    h = history(put(2, "A", 0, 10, status=503), put(2, "B", 20, 30), get(2, "A", 40, 50))
    assert verdicts(h) == [stale(40 - 30)]


@pytest.mark.parametrize("status", [400, 413, 415])
def test_a_write_refused_with_4xx_did_not_happen(status):
    h = history(
        put(2, "A", 0, 10),
        put(2, "B", 20, 30, status=status),
        get(2, "A", 40, 50),
        get(2, "B", 40, 50),
    )
    assert verdicts(h) == [OK, PHANTOM]


# Reads that no correct service returns, and reads not judged.


def test_phantoms_a_name_never_written_or_written_to_another_key():
    h = history(put(2, "A", 0, 10), get(2, "nobody wrote me", 20, 30), get(3, "A", 20, 30))
    assert verdicts(h) == [PHANTOM, PHANTOM]


def test_a_read_of_a_write_invoked_after_the_read_completed_is_a_future_read():
    h = history(get(2, "A", 0, 10), put(2, "A", 11, 20), get(2, "A", 5, 11))
    assert verdicts(h) == [FUTURE, OK]


def test_a_200_whose_body_was_not_a_video_read_nothing_and_is_not_judged():
    """A worker killed while answering: the headers (200) came, the body was cut short."""
    h = history(put(2, "A", 0, 10), get(2, "", 20, 30, status=200))
    assert verdicts(h) == [UNJUDGED]


@pytest.mark.parametrize("status", [0, 500, 503, 400, 405])
def test_a_get_that_failed_is_not_judged(status):
    h = history(put(2, "A", 0, 10), put(2, "B", 20, 30), get(2, "A", 40, 50, status=status))
    assert verdicts(h) == [UNJUDGED]


def test_a_name_written_twice_is_judged_in_the_readers_favour():
    h = history(put(2, "A", 0, 10), put(2, "B", 20, 30), put(2, "A", 40, 50), get(2, "A", 60, 70))
    assert verdicts(h) == [OK]


def test_reads_keep_their_rows_and_index_and_gain_three_columns():
    h = history(put(2, "A", 0, 10), get(2, "A", 20, 30, worker="w9", cache="HIT"))
    reads = classify_reads(h)
    assert list(reads.index) == [1]
    assert list(reads.columns) == [*h.columns, "verdict", "staleness_ns", "earlier_run"]
    assert reads.loc[1, "worker"] == "w9"
    assert list(reads["verdict"].cat.categories) == list(VERDICTS)
    assert reads["staleness_ns"].dtype == "Int64"


def test_a_history_without_reads_has_no_verdicts():
    assert classify_reads(history(put(2, "A", 0, 10))).empty


# Final reads: the value of each key after the load, read without a cache.


def final(*reads: dict) -> list[str]:
    h = history(
        put(2, "A", 0, 10),
        put(2, "B", 20, 30),
        put(3, "C", 0, 10),
        delete(3, 20, 30),
        put(4, "D", 0, 20),
        put(4, "E", 10, 30),
        put(5, "F", 0, 10),
        put(5, "G", 20, 30, status=0),
    )
    return list(classify_final_reads(h, history(*reads))["verdict"].astype(str))


def test_a_final_read_of_a_write_nothing_superseded_is_ok():
    assert final(get(2, "B", 1000, 1001), get(3, None, 1000, 1001)) == ["ok", "ok"]


def test_a_final_read_of_a_superseded_write_is_a_lost_write():
    assert final(get(2, "A", 1000, 1001), get(3, "C", 1000, 1001)) == ["lost", "lost"]


def test_either_of_two_concurrent_last_writes_may_win():
    assert final(get(4, "D", 1000, 1001), get(4, "E", 1000, 1001)) == ["ok", "ok"]


def test_a_timed_out_last_write_may_have_won_or_not():
    assert final(get(5, "F", 1000, 1001), get(5, "G", 1000, 1001)) == ["ok", "ok"]


def test_final_reads_of_untouched_keys_phantoms_and_failures():
    verdict = final(
        get(1, "HelloWorld", 1000, 1001),
        get(9, None, 1000, 1001),
        get(9, "X", 1000, 1001),
        get(2, None, 1000, 1001),  # key 2 was last written by a PUT
        get(2, None, 1000, 1001, status=0),
    )
    assert verdict == ["ok", "ok", "phantom", "lost", "unjudged"]


def test_final_reads_are_judged_after_everything_whatever_their_timestamps():
    assert final(get(2, "A", 0, 1), get(2, "B", 0, 1)) == ["lost", "ok"]


def test_final_verdicts_are_categorical():
    frame = classify_final_reads(history(put(2, "A", 0, 10)), history(get(2, "A", 20, 30)))
    assert list(frame["verdict"].cat.categories) == list(FINAL_VERDICTS)


# A server that keeps its state between runs (--host): names an earlier run wrote.

EARLIER = "otherhost-4242-abcdef-u3#17"  # the harness's name format, by a writer not in it


def test_a_name_an_earlier_run_wrote_is_the_key_s_state_before_the_history_not_a_phantom():
    h = history(get(2, EARLIER, 0, 10), put(2, "A", 20, 30), get(2, EARLIER, 40, 50))
    assert verdicts(h) == [OK, stale(40 - 30)]
    assert list(classify_reads(h)["earlier_run"]) == [True, True]


def test_a_name_of_this_history_s_own_writers_that_none_wrote_is_still_a_phantom():
    h = history(
        put(2, "thishost-1-abcdef-u1#1", 0, 10, worker="thishost-1-abcdef-u1"),
        get(2, "thishost-1-abcdef-u1#9", 20, 30),
        get(2, "not the harness's format", 40, 50),
    )
    assert verdicts(h) == [PHANTOM, PHANTOM]
    assert not classify_reads(h)["earlier_run"].any()


def test_a_final_read_of_a_name_an_earlier_run_wrote_is_a_lost_write_once_superseded():
    h = history(put(2, "A", 20, 30))
    final = history(get(2, EARLIER, 100, 110), get(3, EARLIER, 100, 110))
    assert list(classify_final_reads(h, final)["verdict"].astype(str)) == ["lost", "ok"]


# Clocks that may be `skew` apart: "before" means "before by more than the skew".


def test_a_read_stale_by_less_than_the_skew_is_ok():
    h = history(put(2, "A", 0, 10), put(2, "B", 40, 50), get(2, "A", 70, 80))
    assert verdicts(h, skew_ns=19) == [stale(70 - 50)]  # its age as the clocks say
    assert verdicts(h, skew_ns=20) == [OK]


def test_a_write_invoked_within_the_skew_of_anothers_completion_does_not_supersede_it():
    h = history(put(2, "A", 0, 10), put(2, "B", 15, 20), get(2, "A", 100, 110))
    assert verdicts(h, skew_ns=4) == [stale(100 - 20)]
    assert verdicts(h, skew_ns=5) == [OK]


def test_a_read_of_a_write_invoked_within_the_skew_after_it_is_not_a_future_read():
    h = history(get(2, "A", 0, 10), put(2, "A", 15, 20))
    assert verdicts(h, skew_ns=4) == [FUTURE]
    assert verdicts(h, skew_ns=5) == [OK]


def test_a_lost_write_is_lost_whatever_the_skew_once_it_was_superseded():
    h = history(put(2, "A", 0, 10), put(2, "B", 20, 30))
    final = history(get(2, "A", 100, 101))
    assert list(classify_final_reads(h, final, skew_ns=9)["verdict"]) == ["lost"]
    assert list(classify_final_reads(h, final, skew_ns=10)["verdict"]) == ["ok"]
