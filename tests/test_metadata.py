"""What a result is recorded with: the conditions of each run (load, clock, CPUs)."""

import os

import pytest

from cachebench.metadata import cpu_list, cpu_mhz, run_conditions

CPUINFO = "processor\t: 0\ncpu MHz\t\t: 2000.000\n\nprocessor\t: 1\ncpu MHz\t\t: 3000.000\n"


@pytest.mark.parametrize(
    ("cpufreq_khz", "cpuinfo", "cpus", "mhz"),
    [
        ({0: "1500000\n", 1: "2500000\n"}, CPUINFO, {0, 1}, 2000.0),  # cpufreq first
        ({}, CPUINFO, {0, 1}, 2500.0),  # a VM without cpufreq: /proc/cpuinfo
        ({}, CPUINFO, {1}, 3000.0),  # only the CPUs the run may use
        ({0: "not a number"}, CPUINFO, {0}, 2000.0),
        ({}, "processor\t: 0\nmodel name\t: cpu\n", {0}, None),  # no clock said
        ({}, None, {0}, None),  # no /proc/cpuinfo
    ],
    ids=["cpufreq", "cpuinfo", "affinity", "bad-cpufreq", "no-mhz", "nothing"],
)
def test_cpu_clock_comes_from_cpufreq_else_cpuinfo_else_is_unknown(
    tmp_path, cpufreq_khz, cpuinfo, cpus, mhz
):
    sys_cpu, proc_cpuinfo = tmp_path / "cpu", tmp_path / "cpuinfo"
    for cpu, khz in cpufreq_khz.items():
        (sys_cpu / f"cpu{cpu}" / "cpufreq").mkdir(parents=True)
        (sys_cpu / f"cpu{cpu}" / "cpufreq" / "scaling_cur_freq").write_text(khz)
    if cpuinfo is not None:
        proc_cpuinfo.write_text(cpuinfo)
    assert cpu_mhz(cpus, sys_cpu, proc_cpuinfo) == mhz


@pytest.mark.parametrize(
    ("cpus", "written"),
    [({0}, "0"), ({0, 1}, "0-1"), ({5, 0, 1, 2}, "0-2,5"), ({1, 3, 5}, "1,3,5")],
)
def test_cpus_are_written_as_taskset_writes_them(cpus, written):
    assert cpu_list(cpus) == written


@pytest.mark.skipif(not hasattr(os, "sched_getaffinity"), reason="needs Linux's affinity")
def test_each_run_records_the_machines_conditions_as_it_starts():
    conditions = run_conditions()
    assert conditions["affinity"] == cpu_list(os.sched_getaffinity(0))
    assert conditions["load_avg_1m"] >= 0
    assert conditions["cpu_mhz"] is None or conditions["cpu_mhz"] > 0
