"""The comparison report: figures per configuration and scenario, their bounds, charts and
a verdict, written as report.md and a self-contained report.html.

reports.cells computes the numbers; `build_sections` words them; the renderers only lay them
out (report.html from the Jinja2 template in templates/).
"""

import base64
import json
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
from jinja2 import Environment, PackageLoader
from markdown_it import MarkdownIt
from markupsafe import Markup
from matplotlib.figure import Figure

from reports.cells import cache_order, cells, configurations, fault_cells
from reports.figures import PERCENTILES
from reports.history import read_history, run_window
from reports.resources import (
    DRIFT_NOISE_FACTOR,
    DRIFT_SHARE,
    GROWTH_SHARE,
    intervals,
    read_resources,
    resource_chart,
)
from reports.stats import UNSTABLE_CV, Estimate, change
from reports.strategies import dose_response, strategy_cells
from reports.timeline import BUCKET_NS, RECOVERED
from reports.visibility import VISIBILITY_FILE, pooled

LATENCY_LABELS = {"get_hit": "GET HIT", "get_miss": "GET MISS", "put": "PUT"}  # the tables
CHARTED_LATENCY = "all"  # the chart: every operation


@dataclass
class Section:
    title: str
    paragraphs: list[str] = field(default_factory=list)
    table: pd.DataFrame | None = None
    images: list[Path] = field(default_factory=list)
    code: str | None = None


def verdict(scenario_cells: pd.DataFrame) -> str:
    """The fastest configuration of one scenario, and the stale-read price of each."""
    fastest = max(scenario_cells.itertuples(), key=lambda c: c.throughput.mean)
    sentence = f"Fastest: **{fastest.cache}** at {_interval(fastest.throughput)} ops/s"
    baseline = scenario_cells[scenario_cells["cache"] == "none"]
    if fastest.cache != "none" and not baseline.empty:
        base = baseline.iloc[0]["throughput"].mean
        sentence += f", {fastest.throughput.mean / base:.1f}× no cache" if base else ""
    # As `cachebench compare` decides: a difference within the noise of the repeats is none.
    ties = [
        c.cache
        for c in scenario_cells.itertuples()
        if c.cache != fastest.cache
        and not change(c.throughput_runs, fastest.throughput_runs).beyond_noise
    ]
    if ties:
        sentence += f" (not told apart from it, within the noise: {', '.join(ties)})"
    sentence += "."
    prices = [
        f"{c.cache} {c.stale_rate:.2%} of reads stale (median age "
        f"{c.staleness_median_ms:.0f} ms, max {c.staleness_max_ms:.0f} ms)"
        for c in scenario_cells.itertuples()
        if c.stale_reads
    ]
    fresh = [c.cache for c in scenario_cells.itertuples() if not c.stale_reads]
    if fresh:
        prices.append(f"{', '.join(fresh)}: no stale read")
    sentence += " Stale-read price: " + "; ".join(prices) + "."
    unstable = [c.cache for c in scenario_cells.itertuples() if c.throughput.unstable]
    if unstable:
        sentence += (
            f" Unstable (throughput CV ≥ {UNSTABLE_CV:.0%}): {', '.join(unstable)}; "
            "compare them with care."
        )
    return sentence


def _interval(e: Estimate) -> str:
    if e.n < 2:
        return f"{e.mean:.0f} (1 run, no interval)"
    return f"{e.mean:.0f} [{e.low:.0f}–{e.high:.0f}]"


def _load(options: dict) -> str:
    """How Locust offered the load: its users' closed loop, or an open loop at a rate."""
    if options.get("arrival_rate") is None:
        return f"Locust {options['users']} users"
    return (
        f"Locust, an open loop at {options['arrival_rate']:g} operations/s ({options['arrival']} "
        f"arrivals, at most {options['max_in_flight']} in flight per process; latency "
        "corrected from when each was due)"
    )


def _cpus(options: dict) -> str:
    """Where the load generator and the server ran (--affinity)."""
    cpus = options.get("cpu_sets") or {}
    if not cpus.get("loadgen_cpus"):
        return (
            "Load generator and server share the machine's cores: quote ratios within this "
            "run rather than absolute numbers."
        )
    server = cpus.get("server_cpus") or "not ours"
    return (
        f"Load generator on CPU {cpus['loadgen_cpus']}, server and its cache on CPU {server} "
        f"(`--affinity {options.get('affinity')}`); other work on the machine still shares them."
    )


def _keys(keys: int | Sequence[int]) -> str:
    return ", ".join(f"{k:,}" for k in keys) if isinstance(keys, list | tuple) else f"{keys:,}"


def _ms(value: float) -> str:
    return "–" if value is None or math.isnan(value) else f"{value:.1f}"


def _rate(value: float) -> str:
    return "–" if value is None or math.isnan(value) else f"{value:.1%}"


def comparison_table(scenario_cells: pd.DataFrame) -> pd.DataFrame:
    """The figures of one scenario, worded for the reader."""
    rows = []
    for cell in scenario_cells.itertuples():
        row = {
            "cache": cell.cache,
            "ops/s mean [95% CI]": _interval(cell.throughput),
            "CV": "–" if math.isnan(cell.throughput.cv) else (
                f"{cell.throughput.cv:.1%}" + (" ⚠" if cell.throughput.unstable else "")
            ),
            "hit rate": _rate(cell.hit_rate),
            "stale reads": f"{_rate(cell.stale_rate)} ({cell.stale_reads})",
            "stale age median / max ms": (
                f"{_ms(cell.staleness_median_ms)} / {_ms(cell.staleness_max_ms)}"
                if cell.stale_reads else "–"
            ),
        }  # fmt: skip
        for group, label in LATENCY_LABELS.items():
            row[f"{label} p50/p95/p99/max ms"] = " / ".join(
                _ms(getattr(cell, f"{group}_{p}_ms")) for p in PERCENTILES
            )
        row["errors"] = cell.errors
        row["phantoms"] = cell.phantoms
        row["lost writes"] = "–" if pd.isna(cell.lost_writes) else int(cell.lost_writes)
        rows.append(row)
    return pd.DataFrame(rows)


def bounds_table(scenario_cells: pd.DataFrame) -> pd.DataFrame:
    rows = []
    for c in scenario_cells.itertuples():
        rows.append({
            "cache": c.cache,
            "misses/s (≤ slots ÷ work)": f"{c.miss_rps:.1f} (≤ {c.miss_rps_bound:.1f})",
            "fastest MISS ms": f"{_ms(c.get_miss_min_ms)} (≥ {c.get_miss_min_ms_bound:.0f})",
            "ops/s (≤ users ÷ latency)": f"{c.throughput.mean:.0f} " + (
                f"(≤ {c.throughput_law_rps:.0f})" if math.isfinite(c.throughput_law_rps)
                else "(open loop: no such bound)"
            ),
            "flags": c.bound_flags or "ok",
        })  # fmt: skip
    return pd.DataFrame(rows)


def charts(cell_table: pd.DataFrame, directory: Path, order: Sequence[str] = ()) -> list[Path]:
    """Throughput by configuration, latency percentiles, and hit rate against stale rate."""
    directory.mkdir(parents=True, exist_ok=True)
    scenarios = list(dict.fromkeys(cell_table["scenario"]))
    caches = cache_order(cell_table, order)
    width = 0.8 / max(len(caches), 1)
    paths = []

    fig = Figure(figsize=(8, 4))
    ax = fig.subplots()
    for i, cache in enumerate(caches):
        sub = cell_table[cell_table["cache"] == cache].set_index("scenario")
        means = [sub.loc[s, "throughput"].mean if s in sub.index else 0 for s in scenarios]
        errors = [_half_width(sub.loc[s, "throughput"]) if s in sub.index else 0 for s in scenarios]
        positions = [x + i * width for x in range(len(scenarios))]
        ax.bar(positions, means, width, yerr=errors, capsize=3, label=cache)
    ax.set_xticks([x + width * (len(caches) - 1) / 2 for x in range(len(scenarios))], scenarios)
    ax.set_ylabel("operations/s (mean, 95% CI)")
    ax.set_title("Throughput by cache configuration")
    ax.legend()
    paths.append(_save(fig, directory / "throughput.png"))

    fig, panels = scenario_panels(scenarios, width=4)
    for ax, scenario in panels:
        sub = cell_table[cell_table["scenario"] == scenario].set_index("cache")
        names = [c for c in caches if c in sub.index]
        for j, p in enumerate(("p50", "p95", "p99")):
            values = [sub.loc[c, f"{CHARTED_LATENCY}_{p}_ms"] for c in names]
            ax.bar([x + j * 0.27 for x in range(len(names))], values, 0.27, label=p)
        ax.set_xticks([x + 0.27 for x in range(len(names))], names)
        ax.set_title(f"Latency of every operation, {scenario}")
        ax.set_ylabel("ms (median over repeats)")
    panels[0][0].legend()
    paths.append(_save(fig, directory / "latency.png"))

    fig = Figure(figsize=(6, 4))
    ax = fig.subplots()
    for scenario, marker in zip(scenarios, "os^Dv", strict=False):
        sub = cell_table[cell_table["scenario"] == scenario]
        ax.scatter(sub["hit_rate"], sub["stale_rate"], marker=marker, label=scenario)
        for cell in sub.itertuples():
            # Shared caches often land on the same point: stack their labels.
            ax.annotate(cell.cache, (cell.hit_rate, cell.stale_rate), fontsize=8,
                        xytext=(4, 4 + 9 * caches.index(cell.cache)),
                        textcoords="offset points")  # fmt: skip
    ax.set_xlim(-0.05, 1.1)
    ax.set_xlabel("hit rate")
    ax.set_ylabel("stale-read rate")
    ax.set_title("What the cache buys (hits) and costs (stale reads)")
    ax.legend()
    paths.append(_save(fig, directory / "hit_vs_stale.png"))
    return paths


def curve_cells(cell_table: pd.DataFrame) -> pd.DataFrame:
    """The cells with a capacity, each with `line`: its configuration without the capacity
    (the backend, policy, keyspace), the hit-rate curve it belongs to."""
    if "hit_rate_top_c" not in cell_table:
        return pd.DataFrame()
    sized = cell_table[cell_table["hit_rate_top_c"].notna()]
    line = sized["cache"].str.replace(r"capacity=[^,\]]*,?", "", regex=True)
    line = line.str.replace(r",?\]$", "]", regex=True).str.replace(" []", "", regex=False)
    return sized.assign(line=line).sort_values(["scenario", "line", "capacity_share"])


def curve_table(sized: pd.DataFrame) -> pd.DataFrame:
    """Each measured hit rate beside its theory: Che's LRU and the top-C bound."""
    return pd.DataFrame([{
        "configuration": c.line,
        "keys": int(c.keys),
        "capacity (entries)": int(c.capacity_entries),
        "capacity ÷ keys": f"{c.capacity_share:.1%}",
        "eviction": c.eviction_policy,
        "hit rate": _rate(c.hit_rate),
        "Che (LRU)": _rate(c.hit_rate_che),
        "top-C bound": _rate(c.hit_rate_top_c),
        "of the bound": _rate(c.hit_rate / c.hit_rate_top_c),
        "below Che": f"{(c.hit_rate_che - c.hit_rate) * 100:+.1f} pt",
    } for c in sized.itertuples()])  # fmt: skip


THEORY_LINES = (("hit_rate_che", "k--", "Che, LRU"), ("hit_rate_top_c", "k:", "top-C bound"))


def curve_chart(sized: pd.DataFrame, path: Path) -> Path:
    """Hit rate against capacity ÷ keyspace: a line per configuration and policy, and the
    theory's (Che's LRU dashed, top-C dotted) per keyspace."""
    scenarios = list(dict.fromkeys(sized["scenario"]))
    fig, panels = scenario_panels(scenarios)
    for ax, scenario in panels:
        cells_of = sized[sized["scenario"] == scenario]
        for line, points in cells_of.groupby("line", sort=False):
            ax.plot(points["capacity_share"], points["hit_rate"], marker="o", label=line)
        for keys, points in cells_of.groupby("keys"):
            theory = points.drop_duplicates("capacity_share")
            for column, style, name in THEORY_LINES:
                label = f"{name} ({keys:.0f} keys)"
                ax.plot(theory["capacity_share"], theory[column], style, linewidth=1, label=label)
        ax.set_xscale("log")
        ax.set_ylim(0, 1.05)
        ax.set_xlabel("capacity ÷ keyspace")
        ax.set_ylabel("hit rate (median over repeats)")
        ax.set_title(f"Hit-rate curve, {scenario}")
        ax.legend(fontsize=7)
    return _save(fig, path)


def curve_sections(cell_table: pd.DataFrame, chart_dir: Path) -> list[Section]:
    sized = curve_cells(cell_table)
    if sized.empty:
        return []
    sections = []
    for scenario in dict.fromkeys(sized["scenario"]):
        of = sized[sized["scenario"] == scenario]
        gap = (of["hit_rate_che"] - of["hit_rate"]).mean()
        closest = of.groupby("line")["hit_rate"].sum() / of.groupby("line")["hit_rate_top_c"].sum()
        sections.append(Section(f"Hit-rate curve, `{scenario}`", [
            "Each measured hit rate beside its theory for reads of independent keys of known "
            "popularity: **Che's approximation** of an LRU cache of that capacity, and the "
            "**top-C bound**, the share of the reads of the C likeliest keys, which no cache "
            "of C entries passes (a rate above it is flagged in the bounds).",
            f"Writes are {of['write_share'].mean():.1%} of the operations here; each "
            "invalidates its key's entry, and the run starts cold, so the measured rates lie "
            f"on average {gap * 100:.1f} points below Che's. Closest to the bound: "
            + ", ".join(f"{line} {share:.0%}" for line, share in
                        closest.sort_values(ascending=False).items())
            + " of it (hits over the bound's, summed over the capacities).",
        ], curve_table(of)))  # fmt: skip
    sections[-1].images.append(curve_chart(sized, chart_dir / "hit_rate_curve.png"))
    return sections


def strategies_table(table: pd.DataFrame) -> pd.DataFrame:
    """Each strategy's price (throughput, GET latency, store reads) beside what it buys
    (stale reads, misses per refill), from strategy_cells."""
    rows = []
    for c in table.itertuples():
        row = {
            "scenario": c.scenario,
            "configuration": c.cache,
            "ops/s mean [95% CI]": _interval(c.throughput),
            "hit rate": _rate(c.hit_rate),
            "GET HIT / MISS p50 ms": f"{_ms(c.get_hit_p50_ms)} / {_ms(c.get_miss_p50_ms)}",
            "extra store reads per GET": (
                "–" if pd.isna(c.extra_store_reads) else f"{c.extra_store_reads:.0f}"
            ),
            "stale reads (max age ms)": (
                f"{_rate(c.stale_rate)} ({c.stale_reads}, {_ms(c.staleness_max_ms)})"
                if c.stale_reads
                else f"{_rate(c.stale_rate)} (0)"
            ),
        }
        if hasattr(c, "misses_per_refill"):
            row["misses per refill (GET p99 ms during)"] = (
                f"{c.misses_per_refill:.1f} ({_ms(c.refill_get_p99_ms)})"
                if not pd.isna(c.misses_per_refill)
                else "–"
            )
        for column, label in VISIBILITY_LABELS.items():
            if hasattr(c, column):
                row[label] = _ms(getattr(c, column))
        rows.append(row)
    return pd.DataFrame(rows)


# t-visibility's figures (reports.checker's): the time after a write's completion from which
# under 1 % and 0.1 % of the reads still see an older value.
VISIBILITY_LABELS = {"visibility_1pct_ms": "visible to 99% ms", "visibility_01pct_ms": "99.9% ms"}


def dose_response_table(sweep: pd.DataFrame) -> pd.DataFrame:
    """The sweep as a table: one row per scenario and line, one column per work time."""
    rows = []
    times = {f"{t:g} ms": "–" for t in sorted(sweep["work_ms"].unique())}  # "–": not measured
    for (scenario, line), points in sweep.groupby(["scenario", "line"], sort=False):
        row = {"scenario": scenario, "configuration": line, **times}
        for p in points.itertuples():
            row[f"{p.work_ms:g} ms"] = f"{_rate(p.stale_rate)} ({p.stale_reads})"
        rows.append(row)
    return pd.DataFrame(rows)


def dose_response_chart(sweep: pd.DataFrame, path: Path) -> Path:
    """The stale-read rate against the work time (the race window), a line per
    invalidation strategy, a panel per scenario."""
    scenarios = list(dict.fromkeys(sweep["scenario"]))
    fig, panels = scenario_panels(scenarios)
    for ax, scenario in panels:
        lines = sweep[sweep["scenario"] == scenario].groupby("line", sort=False)
        # Markers and dashes of their own: lines at 0 (lease, versioned) lie on each other.
        for (line, points), marker, dashes in zip(lines, "osD^vP*X", ("-", "--", ":", "-.") * 2,
                                                  strict=False):  # fmt: skip
            ax.plot(points["work_ms"], points["stale_rate"] * 100, marker=marker,
                    linestyle=dashes, markerfacecolor="none", label=line)  # fmt: skip
        ax.set_xlabel("work time, ms (the race window with --work-phase after-read)")
        ax.set_ylabel("stale reads, % of judged reads")
        ax.set_ylim(bottom=0)
        ax.set_title(f"Stale reads against the race window, {scenario}")
        ax.legend(fontsize=8)
    return _save(fig, path)


def refused_strategies(metadata: dict) -> list[str]:
    """The configurations whose strategy does not apply to their cache, so were not run: the
    service refuses them in its own words, which name the setting first."""
    return [
        f"`{cell}` was not run: {why}."
        for cell, why in metadata.get("not_applicable", {}).items()
        if why.startswith(("CACHE_INVALIDATION=", "CACHE_FILL="))
    ]


def strategies_sections(summary: pd.DataFrame, metadata: dict, chart_dir: Path) -> list[Section]:
    """The strategies' table and, with more than one work time, the race-window sweep."""
    options = metadata["options"]
    table = strategy_cells(summary, options.get("caches", ()))
    if table.empty:
        return []
    sections = [Section("Invalidation and fill strategies", [
        "Each configuration's price beside what it buys. **Extra store reads per GET** are "
        "those the invalidation makes beyond the tutorial's, hit or miss, as the service "
        "declares them (and its tests count them on SQLite). A **refill** of the most read "
        "key starts with a GET that missed it (after an expiry or a write) and lasts until "
        "that GET is answered, its fill stored; the GETs sent meanwhile that missed are the "
        "refill's too. More than one "
        "miss per refill is a stampede; the p99 beside it is of the GETs of that key in "
        "flight during a refill.",
        *refused_strategies(metadata),
    ], strategies_table(table))]  # fmt: skip
    sweep = dose_response(summary)
    if not sweep.empty:
        chart_dir.mkdir(parents=True, exist_ok=True)
        sections.append(Section("Stale reads against the race window", [
            f"With `--work-phase {options.get('work_phase')}`, "
            + ("the GET's work runs between its store read and its fill, so the work time "
               "is the window in which a concurrent write makes the fill stale"
               if options.get("work_phase") == "after-read" else
               "the work runs before the store read, so the race window is not the work time "
               "(`--work-phase after-read` makes it so)")
            + ". Each point pools the stale reads of a line's quotable repeats over their "
            "judged reads; the count is in brackets.",
        ], dose_response_table(sweep),
            [dose_response_chart(sweep, chart_dir / "stale_vs_work.png")]))  # fmt: skip
    curves = visibility_curves(summary, chart_dir.parent)
    if curves:
        chart_dir.mkdir(parents=True, exist_ok=True)
        sections.append(Section("How long until a write is visible", [
            "t-visibility: of the reads invoked t after the last write on their key completed, "
            "the share that still returned an older value, against t; each configuration's "
            "quotable repeats pooled, intervals with fewer than "
            f"{MIN_VISIBILITY_READS} reads left out. The table's columns *visible to 99%* and "
            "*99.9%* are the t from which that share stays under 1 % and 0.1 % (README, "
            "\"Checking a history\").",
        ], images=[visibility_chart(curves, chart_dir / "visibility.png")]))  # fmt: skip
    return sections


# An interval of t with fewer reads than this says too little to draw.
MIN_VISIBILITY_READS = 20


def visibility_curves(summary: pd.DataFrame, out: Path) -> dict[tuple[str, str], pd.DataFrame]:
    """Each (scenario, configuration)'s t-visibility curve, its quotable repeats' curves
    (VISIBILITY_FILE, beside their histories in `out`) pooled."""
    named = configurations(summary[summary["invalid"] == ""])
    curves = {}
    for (scenario, cache), runs in named.groupby(["scenario", "cache"], sort=False):
        paths = [out / history / VISIBILITY_FILE for history in runs.get("history", ())]
        found = [pd.read_csv(path) for path in paths if path.exists()]
        if found:
            curves[(scenario, cache)] = pooled(found)
    return curves


def visibility_chart(curves: dict[tuple[str, str], pd.DataFrame], path: Path) -> Path:
    """The t-visibility curves, a line per configuration, a panel per scenario."""
    scenarios = list(dict.fromkeys(scenario for scenario, _ in curves))
    fig, panels = scenario_panels(scenarios)
    for ax, scenario in panels:
        for (of, cache), curve in curves.items():
            drawn = curve[curve["reads"] >= MIN_VISIBILITY_READS]
            if of == scenario and not drawn.empty:
                ax.step(drawn["t_ms"], drawn["probability"] * 100, where="post", label=cache)
        ax.set_xscale("symlog", linthresh=0.1)
        ax.set_xlabel("t: read invoked after the write completed, ms")
        ax.set_ylabel("reads still older, %")
        ax.set_ylim(bottom=0)
        ax.set_title(f"How long until a write is visible, {scenario}")
        ax.legend(fontsize=8)
    return _save(fig, path)


def faults_table(table: pd.DataFrame) -> pd.DataFrame:
    """The figures of each faulted cell (reports.cells.fault_cells), worded for the reader."""
    rows = []
    for c in table.itertuples():
        if c.not_recovered:
            recovery = f"not within the window ({c.not_recovered} of {c.repeats} runs)"
        elif pd.isna(c.time_to_recover_s):
            recovery = "– (less than a second of the window before or after the fault)"
        else:
            recovery = f"{c.time_to_recover_s:.2f}"
        rows.append({
            "scenario": c.scenario,
            "configuration": c.cache,
            "runs": c.repeats,
            "fault, s into the window": f"{c.fault_start_s:.2f}–{c.fault_end_s:.2f}",
            "availability during / after (lowest)": (
                f"{_share(c.availability_during)} / {_share(c.availability_after)}"
            ),
            "time to recover s (longest)": recovery,
            "stale reads after (max age ms)": (
                f"{c.stale_reads_after} ({c.staleness_after_max_ms:.0f})"
                if c.stale_reads_after else "0"
            ),
            "lost writes": "–" if pd.isna(c.lost_writes) else int(c.lost_writes),
        })  # fmt: skip
    return pd.DataFrame(rows)


def _share(value: float) -> str:
    """A share where 99.96 % must not read 100 %."""
    if value is None or math.isnan(value):
        return "–"
    return "100%" if value == 1 else f"{math.floor(value * 1000) / 10:.1f}%"


def timeline_charts(table: pd.DataFrame, out: Path, directory: Path) -> list[Path]:
    """One chart per faulted cell: each repeat's timeline (its file, relative to `out`), the
    fault's window shaded."""
    directory.mkdir(parents=True, exist_ok=True)
    panels = (
        ("throughput_rps", "ops/s"),
        ("errors", "errors"),
        ("bypass_share", "BYPASS share"),
        ("stale_reads", "stale reads"),
    )
    paths = []
    for cell in table.itertuples():
        fig = Figure(figsize=(8, 6))
        axes = fig.subplots(len(panels), 1, sharex=True)
        for run in cell.runs:
            series = pd.read_csv(out / run["timeline"])
            for ax, (column, _) in zip(axes, panels, strict=True):
                ax.step(series["t_s"], series[column], where="post", label=f"r{run['repeat']}")
                ax.axvspan(run["fault_start_s"], run["fault_end_s"], color="tab:red", alpha=0.1)
        for ax, (_, label) in zip(axes, panels, strict=True):
            ax.set_ylabel(label)
        axes[0].set_title(
            f"{cell.cache} × {cell.scenario}, per {BUCKET_NS / 1e6:.0f} ms (fault shaded)"
        )
        axes[0].legend(fontsize=8)
        axes[-1].set_xlabel("seconds into the measured window")
        name = re.sub(r"[^A-Za-z0-9_-]+", "_", f"timeline-{cell.scenario}-{cell.cache}")
        paths.append(_save(fig, directory / f"{name}.png"))
    return paths


def faults_section(summary: pd.DataFrame, metadata: dict, out: Path) -> Section:
    table = fault_cells(summary, metadata["options"].get("caches", ()))
    paragraphs = [
        "Each fault is a configuration of its own (`[fault=…]`), beside the calm run "
        "(`[fault=none]`) in the tables above. **Availability** is the share of operations "
        "answered (not 5xx, not a timeout or transport error): during the fault, of those in "
        "flight while it was in effect; after it, of those sent after it ended. **Time to "
        "recover** runs from the end of the fault to the first second whose throughput is "
        f"back to {RECOVERED:.0%} of the median second before the fault. **Stale reads "
        "after** the fault are the lost-invalidation hazard: a write whose invalidation did "
        "not reach the cache leaves the old value there until the TTL. **Lost writes** must "
        "be 0 for every fault: an acknowledged write is never lost. Each figure is the worst "
        "of the repeats."
    ]
    if metadata["options"].get("invalidations"):
        paragraphs.append(
            "Per invalidation strategy, the oldest stale read after the fault says how long a "
            "write lost to the cache stays invisible: up to the TTL "
            f"({metadata['options']['cache_timeout_s']} s here) when nothing retries it; "
            "`outbox` retries it before each GET of the key and every "
            "`CACHE_OUTBOX_RETRY_MS`, which should bound it instead."
        )
    paragraphs += [
        f"`{cell}` was not run: {why}." for cell, why in metadata.get("not_applicable", {}).items()
    ]
    if table.empty:
        paragraphs.append("No faulted run finished with figures that can be quoted.")
        return Section("Faults", paragraphs)
    images = timeline_charts(table, out, out / "charts")
    return Section("Faults", paragraphs, faults_table(table), images)


def soak_sections(
    summary: pd.DataFrame, options: dict, out: Path, chart_dir: Path
) -> list[Section]:
    """Each first repeat's resources over time beside its throughput, hit rate and p99 per
    interval, with the resources that grew and the throughput's drift (reports/resources.py)."""
    if "history" not in summary or summary.empty:
        return []
    firsts = summary[(summary["repeat"] == summary["repeat"].min()) & (summary["invalid"] == "")]
    table, images = [], []
    for row in firsts.itertuples():
        run_dir = out / row.history
        if read_resources(run_dir) is None:
            continue
        start, end = run_window(run_dir, options["warmup_s"], options["duration_s"])
        series = intervals(read_history(run_dir), start, end)
        name = Path(row.history).name
        chart_dir.mkdir(parents=True, exist_ok=True)
        images.append(resource_chart(
            name, series, read_resources(run_dir), start, chart_dir / f"resources-{name}.png"
        ))  # fmt: skip
        drift = row.throughput_drift
        table.append({
            "run": name,
            "growing (no levelling off)": (row.leaks if isinstance(row.leaks, str) else "")
            or "none",
            "throughput drift, first → last tenth": "n/a" if pd.isna(drift)
            else f"{drift:+.1%}" + (" ⚠ beyond the noise" if row.throughput_drifted else ""),
        })  # fmt: skip
    if not table:
        return []
    return [Section("Resources over the run", [
        "Sampled every second by the runner (resources.csv of each run). A resource **grows** "
        f"when its last tenth's median is over {GROWTH_SHARE:.0%} above the middle tenth's "
        "and still rising at the end; throughput **drifts** when its first and last tenths' "
        f"medians differ by more than {DRIFT_NOISE_FACTOR:g}× their spread and "
        f"{DRIFT_SHARE:.0%}. The first repeat of each configuration is drawn.",
    ], pd.DataFrame(table), images)]  # fmt: skip


def scenario_panels(scenarios: Sequence[str], width: float = 6) -> tuple[Figure, list]:
    """A figure of one panel per scenario, side by side, each `width` inches wide: the
    figure and its (axes, scenario) pairs."""
    fig = Figure(figsize=(width * len(scenarios), 4))
    axes = fig.subplots(1, len(scenarios), squeeze=False)
    return fig, list(zip(axes[0], scenarios, strict=True))


def _half_width(e: Estimate) -> float:
    return 0.0 if math.isnan(e.high) else e.high - e.mean


def _save(fig: Figure, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    return path


def build_sections(
    summary: pd.DataFrame, metadata: dict, skipped: dict[str, str], failures: list[str],
    out: Path,
) -> list[Section]:  # fmt: skip
    """The report's sections; charts go to `out`/charts."""
    chart_dir = out / "charts"
    order = metadata["options"].get("caches", ())
    cell_table = cells(summary, order)
    options = metadata["options"]
    sections = [Section("How this was measured", [
        f"Run `{metadata['run_id']}`, {metadata['started']} to {metadata['finished']}, commit "
        f"`{metadata['commit']}` on {metadata['machine']['cpu_count']} CPUs "
        f"({metadata['machine']['cpu_model']}), Python {metadata['python']}.",
        (
            f"Against `{options['host']}`, served as it is (its serving options are not the "
            "runner's, so the server-side bounds are not computed); "
            if options.get("host") else
            f"gunicorn {options['workers']} workers × {options['threads']} threads, "
            f"`VIDEOS_WORK_MS={_keys(options['work_ms'])}` ({options['work_phase']}), strategy "
            f"`{options['strategy']}`, TTL {options['cache_timeout_s']} s; "
        )
        + _load(options)
        + f", {options['warmup_s']:g} s warm-up (excluded) + {options['duration_s']:g} s "
        f"measured, {_keys(options['keys'])} keys ({options['key_dist']}, "
        f"s={options['zipf_s']}, seeded: {options.get('seed', 'all')}), "
        f"{options['repeats']} repeat(s), repeats interleaved across configurations.",
        "Throughput is a mean over repeats with its 95 % interval; latencies are medians "
        "over repeats (max: the largest); a CV of throughput of 10 % or more is flagged ⚠. "
        + _cpus(options),
        f"Clock skew allowed: {options['clock_skew_ms']:g} ms: a read counts as stale "
        "only when stale by more than that, times closer than that being concurrent "
        "(`--clock-skew-ms`; 0 when every load generator reads one machine's clock).",
    ])]  # fmt: skip
    if options.get("topology") == "hosts":
        sections[0].paragraphs.append(
            f"On hosts of the run's own (`--topology hosts`, network namespaces sharing this "
            f"machine's cores and clock): the service on {options['service_hosts']} hosts, "
            "each with the gunicorn workers above, behind HAProxy (round robin); the "
            "PostgreSQL store (a schema per run) and the cache servers on hosts of their own; "
            f"Locust's master and {options['loadgen_hosts']} worker hosts. Each run's "
            "`topology.json` has the addresses and what the balancer sent each host."
        )
    if cell_table.empty:
        sections.append(Section("Results", ["No run finished with figures that can be quoted."]))
    for scenario in dict.fromkeys(cell_table["scenario"] if not cell_table.empty else []):
        scenario_cells = cell_table[cell_table["scenario"] == scenario]
        sections.append(Section(f"Scenario `{scenario}`", [verdict(scenario_cells)],
                                comparison_table(scenario_cells)))  # fmt: skip
    if not cell_table.empty:
        sections.append(Section("Charts", images=charts(cell_table, chart_dir, order)))
        sections.extend(curve_sections(cell_table, chart_dir))
        sections.extend(strategies_sections(summary, metadata, chart_dir))
        # The charts directory is in the output, beside the runs' histories.
        sections.extend(soak_sections(summary, options, chart_dir.parent, chart_dir))
        for scenario in dict.fromkeys(cell_table["scenario"]):
            scenario_cells = cell_table[cell_table["scenario"] == scenario]
            sections.append(Section(f"Bounds, `{scenario}`", [], bounds_table(scenario_cells)))
        sections[-len(set(cell_table["scenario"]))].paragraphs.append(
            "Each figure beside the bound it must respect. Little's law at the server: a miss "
            "holds a worker slot for the work time, so misses/s ≤ workers × threads ÷ work "
            "time, and without a cache a saturated server runs at that bound (flagged when "
            "more than 10 % off). A miss is never faster than its work. The response-time law "
            "at the client: users ÷ mean latency bounds the throughput of users without think "
            "time; well below it, the load generator loses time between requests."
        )
    if options.get("faults"):
        sections.append(faults_section(summary, metadata, out))
    not_quoted = summary[summary["invalid"] != ""] if not summary.empty else summary
    problems = [f"`{r.cache}` × `{r.scenario}` repeat {r.repeat}: {r.invalid}"
                for r in not_quoted.itertuples()]  # fmt: skip
    problems += [f"`{cache}` was not run: {why}" for cache, why in skipped.items()]
    problems += [f"failed: {failure}" for failure in failures]
    if problems:
        sections.append(Section("Runs not quoted", problems))
    sections.append(Section("Definitions", [
        "A **stale read** is a GET that returned a value older than a write that had "
        "completed before the GET was sent; its **age** is how long before the GET the first "
        "such write completed. A **phantom** is a value no write wrote; a **lost write** is "
        "a key whose final value (read afterwards without a cache) is a superseded write or "
        "a phantom. "
        "All are decided from what the clients sent and saw, never from the service's "
        "internals. **Hit rate** is the share of answered GETs with `X-Cache: HIT`.",
    ]))  # fmt: skip
    sections.append(Section("Metadata", code=json.dumps(metadata, indent=2, default=str)))
    return sections


def _markdown_table(table: pd.DataFrame) -> str:
    head = "| " + " | ".join(table.columns) + " |"
    rule = "| " + " | ".join("---" for _ in table.columns) + " |"
    body = ["| " + " | ".join(str(v).replace("|", "\\|") for v in row) + " |"
            for row in table.itertuples(index=False)]  # fmt: skip
    return "\n".join([head, rule, *body])


def render_markdown(title: str, sections: list[Section], relative_to: Path) -> str:
    parts = [f"# {title}"]
    for section in sections:
        parts.append(f"## {section.title}")
        parts.extend(section.paragraphs)
        if section.table is not None:
            parts.append(_markdown_table(section.table))
        parts.extend(f"![{p.stem}]({p.relative_to(relative_to)})" for p in section.images)
        if section.code is not None:
            parts.append(f"```json\n{section.code}\n```")
    return "\n\n".join(parts) + "\n"


# The report's own inline Markdown (**bold**, `code`) as HTML. Raw HTML in a message is
# escaped, and links and images stay text, so that the page loads nothing from elsewhere.
_INLINE = MarkdownIt("commonmark", {"html": False}).disable(["link", "image", "autolink"])


def _inline(text: str) -> Markup:
    return Markup(_INLINE.renderInline(text))


def _data_uri(path: Path) -> str:
    """A chart embedded in the page: one file to send."""
    return "data:image/png;base64," + base64.b64encode(path.read_bytes()).decode()


_PAGES = Environment(
    loader=PackageLoader("reports"), autoescape=True, trim_blocks=True, lstrip_blocks=True
)
_PAGES.filters.update(inline=_inline, data_uri=_data_uri)


def render_html(title: str, sections: list[Section]) -> str:
    return _PAGES.get_template("report.html").render(title=title, sections=sections)


def write_report(
    out: Path, summary: pd.DataFrame, metadata: dict, skipped: dict[str, str],
    failures: list[str],
) -> tuple[Path, Path]:  # fmt: skip
    """Write report.md, report.html and the charts into `out`; returns the two reports."""
    sections = build_sections(summary, metadata, skipped, failures, out)
    title = "cachebench: what the cache buys and what it costs"
    markdown, page = out / "report.md", out / "report.html"
    markdown.write_text(render_markdown(title, sections, out))
    page.write_text(render_html(title, sections))
    return markdown, page
