"""The figures of a sweep: each offered rate's verdict against a latency objective, the
capacity of each configuration at the objective beside its bound, and the report (its
curves and table), laid out by reports/report.py's machinery.

Numbers first (verdicts, capacities), wording apart (the tables and sections).
"""

import json
import math
import re
from pathlib import Path

import pandas as pd
from matplotlib.figure import Figure

from reports.report import Section, _save, render_html, render_markdown

# A rate passes when the achieved throughput is at least this share of the offered one...
DELIVERED_SHARE = 0.95
# ...the GETs' p99, from when each was due, is within the objective, and nothing failed.
OBJECTIVE_COLUMN = "get_corrected_p99_ms"
PASS, FAIL, FLAGGED = "pass", "fail", "flagged"
# sweep.csv: what each run measured (the figures of reports/figures.py and the runner's).
COLUMNS = (
    "cache", "scenario", "variant", "rate", "repeat", "offered_rps", "throughput_rps",
    "get_corrected_p50_ms", "get_corrected_p99_ms", "get_p50_ms", "get_p99_ms", "hit_rate",
    "stale_rate", "stale_reads", "errors", "unsent_arrivals", "arrivals_waited_share",
    "send_lag_p99_ms", "miss_rps", "miss_rps_bound", "processes", "loadgen_cpu",
    "loadgen_cpus", "server_cpus", "load_avg_1m", "verdict", "why", "invalid", "history",
)  # fmt: skip
# A configuration: the cache and its variant (the matrix's other dimensions), per scenario.
LINE = ["scenario", "cache", "variant"]


def run_verdict(row: dict, slo_p99_ms: float) -> tuple[str, str]:
    """One run's verdict against the objective, and why: `flagged` when it may not be quoted
    (its `invalid`: the load generator set the pace, or too little was measured), else
    `pass` or `fail` (throughput under DELIVERED_SHARE of the offered rate, the GETs'
    corrected p99 over `slo_p99_ms`, or errors)."""
    if row.get("invalid"):
        return FLAGGED, str(row["invalid"])
    offered = row.get("offered_rps") or row["rate"]
    reasons = []
    if not (row.get("throughput_rps") or 0) >= DELIVERED_SHARE * offered:
        reasons.append(f"{row.get('throughput_rps') or 0:.0f} of {offered:.0f} ops/s offered")
    p99 = row.get(OBJECTIVE_COLUMN)
    if p99 is None or not p99 <= slo_p99_ms:
        reasons.append(f"GET p99 {_number(p99)} ms over {slo_p99_ms:g}")
    if row.get("errors"):
        reasons.append(f"{row['errors']} errors")
    return (FAIL, "; ".join(reasons)) if reasons else (PASS, "")


def rate_verdict(verdicts: list[str]) -> str:
    """A rate's verdict over its repeats: fail if one quoted repeat failed, pass if every
    quoted one passed, flagged when none may be quoted."""
    quoted = [v for v in verdicts if v != FLAGGED]
    if not quoted:
        return FLAGGED
    return FAIL if FAIL in quoted else PASS


def rates(sweep: pd.DataFrame) -> pd.DataFrame:
    """One row per configuration × rate: the medians of its repeats' figures and its
    verdict (rate_verdict); the configurations in the sweep's order, each by rate."""
    if sweep.empty:
        return pd.DataFrame()
    rows = []
    for (scenario, cache, variant, rate), runs in sweep.groupby([*LINE, "rate"], sort=False):
        rows.append({
            "scenario": scenario, "cache": cache, "variant": variant, "rate": rate,
            "repeats": len(runs),
            "verdict": rate_verdict(list(runs["verdict"])),
            **{c: runs[c].median() for c in (
                "throughput_rps", "offered_rps", "get_corrected_p50_ms", "get_corrected_p99_ms",
                "get_p50_ms", "get_p99_ms", "stale_rate", "hit_rate", "miss_rps",
                "miss_rps_bound",
            )},
            "processes": int(runs["processes"].max()),
        })  # fmt: skip
    # The configurations in the order they ran (the sweep's --caches), each by rate.
    table = pd.DataFrame(rows)
    lines = list(table[LINE].itertuples(index=False, name=None))
    rank = {line: i for i, line in enumerate(dict.fromkeys(lines))}
    table["line_rank"] = [rank[line] for line in lines]
    return table.sort_values(["line_rank", "rate"]).drop(columns="line_rank").reset_index(drop=True)


def capacities(rate_table: pd.DataFrame) -> pd.DataFrame:
    """Per configuration, its capacity at the objective: the highest rate that passed
    (NaN: none did), the lowest rate above it that did not and whether that one was only
    flagged (the load generator, not the server, ended the search), and the bound:
    workers × threads ÷ work time is the most misses a second the server can serve, so
    over the share of operations that miss, the most operations a second."""
    rows = []
    for (scenario, cache, variant), line in rate_table.groupby(LINE, sort=False):
        passed = line[line["verdict"] == PASS]
        capacity = passed["rate"].max() if len(passed) else math.nan
        above = line[(line["verdict"] != PASS) & ~(line["rate"] <= capacity)]
        limit = above.iloc[0] if len(above) else None
        miss_share = (line["miss_rps"] / line["throughput_rps"]).median()
        bound = line["miss_rps_bound"].iloc[0] / miss_share if miss_share > 0 else math.inf
        rows.append({
            "scenario": scenario, "cache": cache, "variant": variant,
            "capacity_rps": capacity,
            "limit_rps": limit["rate"] if limit is not None else math.nan,
            "limited_by_loadgen": limit is not None and limit["verdict"] == FLAGGED,
            "miss_share": miss_share,
            "bound_rps": bound,
            "rates_tried": len(line),
            "processes": int(line["processes"].max()),
        })  # fmt: skip
    return pd.DataFrame(rows)


def _number(value: float | None, digits: int = 0) -> str:
    return (
        "–"
        if value is None or (isinstance(value, float) and math.isnan(value))
        else (f"{value:,.{digits}f}")
    )


def _configuration(cache: str, variant: str) -> str:
    return f"{cache} [{variant}]" if isinstance(variant, str) and variant else cache


def capacity_table(table: pd.DataFrame, slo_p99_ms: float) -> pd.DataFrame:
    """The capacities, worded: each beside its bound."""
    rows = []
    for c in table.itertuples():
        capacity = "none passed" if math.isnan(c.capacity_rps) else _number(c.capacity_rps)
        if not math.isnan(c.limit_rps):
            capacity += (
                f" (at {_number(c.limit_rps)}: the load generator set the pace, not judged)"
                if c.limited_by_loadgen
                else f" (failed at {_number(c.limit_rps)})"
            )
        rows.append({
            "scenario": c.scenario,
            "configuration": _configuration(c.cache, c.variant),
            f"capacity at GET p99 ≤ {slo_p99_ms:g} ms, ops/s": capacity,
            "bound, ops/s (misses/s bound ÷ miss share)": (
                f"{_number(c.bound_rps)} ({c.miss_share:.0%} miss)"
                if math.isfinite(c.bound_rps) else "none (no miss)"
            ),
            "of the bound": (
                f"{c.capacity_rps / c.bound_rps:.0%}"
                if math.isfinite(c.bound_rps) and not math.isnan(c.capacity_rps) else "–"
            ),
            "rates tried": c.rates_tried,
            "Locust processes": c.processes,
        })  # fmt: skip
    return pd.DataFrame(rows)


def rates_table(rate_table: pd.DataFrame) -> pd.DataFrame:
    """Every rate of every configuration, worded."""
    return pd.DataFrame([{
        "configuration": _configuration(r.cache, r.variant),
        "offered ops/s": f"{_number(r.rate)} ({_number(r.offered_rps)} drawn)",
        "achieved ops/s": _number(r.throughput_rps),
        "GET p50 / p99 ms, corrected": (
            f"{_number(r.get_corrected_p50_ms, 1)} / {_number(r.get_corrected_p99_ms, 1)}"
        ),
        "GET p50 / p99 ms, service time": (
            f"{_number(r.get_p50_ms, 1)} / {_number(r.get_p99_ms, 1)}"
        ),
        "stale reads": "–" if pd.isna(r.stale_rate) else f"{r.stale_rate:.2%}",
        "verdict": r.verdict,
        "Locust processes": r.processes,
    } for r in rate_table.itertuples()])  # fmt: skip


def sweep_charts(rate_table: pd.DataFrame, slo_p99_ms: float, directory: Path) -> list[Path]:
    """Per scenario: corrected GET p50 and p99 against the achieved rate, a line per
    configuration, the objective drawn; and the stale-read rate against the offered rate."""
    directory.mkdir(parents=True, exist_ok=True)
    paths = []
    for scenario, of in rate_table.groupby("scenario", sort=False):
        name = re.sub(r"[^A-Za-z0-9_-]+", "_", scenario)
        fig = Figure(figsize=(8, 4.5))
        ax = fig.subplots()
        for i, ((cache, variant), line) in enumerate(of.groupby(["cache", "variant"], sort=False)):
            color = f"C{i % 10}"
            label = _configuration(cache, variant)
            ax.plot(line["throughput_rps"], line["get_corrected_p99_ms"], "o-", color=color,
                    label=f"{label} p99")  # fmt: skip
            ax.plot(line["throughput_rps"], line["get_corrected_p50_ms"], "x--", color=color,
                    label=f"{label} p50")  # fmt: skip
        ax.axhline(slo_p99_ms, color="tab:red", linestyle=":", label=f"objective {slo_p99_ms:g} ms")
        ax.set_yscale("log")
        ax.set_xlabel("achieved operations/s")
        ax.set_ylabel("GET latency from when due, ms")
        ax.set_title(f"Latency against throughput, {scenario}")
        ax.legend(fontsize=7, ncol=2)
        paths.append(_save(fig, directory / f"sweep-latency-{name}.png"))

        fig = Figure(figsize=(8, 4))
        ax = fig.subplots()
        for (cache, variant), line in of.groupby(["cache", "variant"], sort=False):
            ax.plot(line["rate"], line["stale_rate"], "o-", label=_configuration(cache, variant))
        ax.set_xlabel("offered operations/s")
        ax.set_ylabel("stale-read rate")
        ax.set_title(f"Stale reads against offered load, {scenario}")
        ax.legend(fontsize=7)
        paths.append(_save(fig, directory / f"sweep-stale-{name}.png"))
    return paths


def sweep_sections(sweep: pd.DataFrame, metadata: dict, out: Path) -> list[Section]:
    options, settings = metadata["options"], metadata["sweep"]
    slo = settings["slo_p99_ms"]
    rate_table = rates(sweep)
    cpus = options.get("cpu_sets", {})
    sections = [Section("How this was measured", [
        f"Sweep `{metadata['run_id']}`, {metadata['started']} to {metadata['finished']}, "
        f"commit `{metadata['commit']}` on {metadata['machine']['cpu_count']} CPUs "
        f"({metadata['machine']['cpu_model']}), Python {metadata['python']}.",
        f"Each configuration × scenario at a series of offered rates ({settings['rates']}), "
        f"an open loop ({options['arrival']} arrivals, at most {options['max_in_flight']} in "
        f"flight per Locust process), {options['warmup_s']:g} s warm-up + at least "
        f"{options['duration_s']:g} s measured per run (longer at low rates, for "
        f"{settings['min_ops']} operations), {options['repeats']} repeat(s) per rate; gunicorn "
        f"{options['workers']} workers × {options['threads']} threads, "
        f"`VIDEOS_WORK_MS={options['work_ms']}`, {options['keys'][0]:,} keys "
        f"({options['key_dist']}). CPUs: load generator "
        f"{cpus.get('loadgen_cpus') or 'not pinned'}, server "
        f"{cpus.get('server_cpus') or 'not pinned'} (`--affinity {options['affinity']}`).",
        f"A rate **passes** when the achieved throughput is at least {DELIVERED_SHARE:.0%} of "
        f"the rate offered (as drawn), the GETs' p99 measured from when each was due "
        f"(corrected for coordinated omission) is within {slo:g} ms, and no operation failed. "
        "A run that may not be quoted (the load generator set the pace, or too little was "
        "measured) is **flagged**: neither a pass nor a fail, it ends the search upwards.",
    ])]  # fmt: skip
    if rate_table.empty:
        sections.append(Section("Results", ["No run finished."]))
    else:
        table = capacities(rate_table)
        sections.append(Section("Capacity at the objective", [
            "The highest offered rate that passed, per configuration, beside its bound: "
            "workers × threads ÷ work time is the most misses a second the server can serve "
            "(Little's law), so over the share of operations that miss, the most operations "
            "a second. The search doubles the rate until one fails, then bisects between the "
            "last pass and the first failure: a capacity is known to within that last step.",
        ], capacity_table(table, slo)))  # fmt: skip
        sections.append(Section("Curves", images=sweep_charts(rate_table, slo, out / "charts")))
        sections.append(Section("Every rate", [
            "Medians over a rate's repeats; `drawn`: the arrivals actually scheduled in the "
            "window, per second (Poisson arrivals vary around the rate).",
        ], rates_table(rate_table)))  # fmt: skip
    flagged = sweep[sweep["verdict"] != PASS] if not sweep.empty else sweep
    notes = [f"`{r.cache}` × `{r.scenario}` at {r.rate:g}/s, repeat {r.repeat}: {r.verdict}, "
             f"{r.why}" for r in flagged.itertuples()]  # fmt: skip
    notes += [f"`{cache}` was not run: {why}" for cache, why in metadata["skipped"].items()]
    notes += [f"failed: {failure}" for failure in metadata["failures"]]
    if notes:
        sections.append(Section("Runs that did not pass", notes))
    sections.append(Section("Metadata", code=json.dumps(metadata, indent=2, default=str)))
    return sections


def write_sweep_report(out: Path, sweep: pd.DataFrame, metadata: dict) -> tuple[Path, Path]:
    """Write report.md, report.html and their charts into `out`; returns the two reports."""
    sections = sweep_sections(sweep, metadata, out)
    title = "cachebench sweep: capacity at a latency objective"
    markdown, page = out / "report.md", out / "report.html"
    markdown.write_text(render_markdown(title, sections, out))
    page.write_text(render_html(title, sections))
    return markdown, page
