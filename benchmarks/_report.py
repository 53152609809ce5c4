"""The outputs: a markdown table, a JSON file with every figure, and a PNG plot."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ._fill import Prepared, Skipped
from ._measure import Measurement
from ._plan import Plan, count_label
from ._strategies import ProbeResult

__all__ = ["Ratio", "Report", "ratios", "render_markdown", "write_all"]

_HEADLINE_LIMIT = 1000
_HEADLINE_FRAME = 256
_SEED, _PIPELINED, _FLOOR, _HTTP = (
    "seed_sequential", "pipelined_get_msg", "batch_direct_get", "http_history"
)


@dataclass(frozen=True, slots=True)
class Ratio:
    name: str
    value: float | None


@dataclass
class Report:
    plan: Plan
    meta: dict[str, Any]
    titles: dict[str, str]
    prepared: list[Prepared] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)
    #: Strategies and probes that did not run, and why.
    unavailable: dict[str, str] = field(default_factory=dict)
    #: Strategies and probes that broke during the run, and how.
    failures: dict[str, str] = field(default_factory=dict)
    measurements: list[Measurement] = field(default_factory=list)
    probe_titles: dict[str, str] = field(default_factory=dict)
    probe_results: dict[str, ProbeResult] = field(default_factory=dict)

    def median(self, strategy: str, backlog: int, deletes_pct: int = 0) -> float | None:
        for m in self.measurements:
            d = m.case.dataset
            if (m.strategy, d.backlog, d.frame, d.deletes_pct, m.case.limit) == (
                strategy, backlog, _HEADLINE_FRAME, deletes_pct, _HEADLINE_LIMIT
            ):
                return m.median_ms
        return None


def _div(a: float | None, b: float | None) -> float | None:
    return a / b if a is not None and b else None


def ratios(report: Report) -> list[Ratio]:
    """The ratios that matter, all at limit 1000 over 256 B frames, from medians taken in
    this run (the machine is too noisy to compare across runs). Missing ones are None."""
    backlogs = sorted({p.dataset.backlog for p in report.prepared
                       if p.dataset.frame == _HEADLINE_FRAME})
    ref = 100_000 if 100_000 in backlogs else (backlogs[-1] if backlogs else 0)
    med = report.median
    out = [
        Ratio(f"HTTP / floor, {ref:,} msgs", _div(med(_HTTP, ref), med(_FLOOR, ref))),
        Ratio(f"seed / HTTP, {ref:,} msgs", _div(med(_SEED, ref), med(_HTTP, ref))),
        Ratio(f"seed / floor, {ref:,} msgs", _div(med(_SEED, ref), med(_FLOOR, ref))),
        Ratio(f"pipelined / floor, {ref:,} msgs",
              _div(med(_PIPELINED, ref), med(_FLOOR, ref))),
    ]
    measured = sorted({m.strategy for m in report.measurements}, key=list(report.titles).index)
    for name in measured:
        out.append(Ratio(f"{name}: 1M / 10k msgs",
                         _div(med(name, 1_000_000), med(name, 10_000))))
    for name in measured:
        out.append(Ratio(f"{name}: 10% deleted / none, {ref:,} msgs",
                         _div(med(name, ref, 10), med(name, ref, 0))))
    return out


def write_all(report: Report, out_dir: Path) -> dict[str, Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    stem = out_dir / f"bench-{report.plan.mode}"
    paths = {"json": stem.with_suffix(".json"), "markdown": stem.with_suffix(".md"),
             "png": stem.with_suffix(".png")}
    paths["json"].write_text(json.dumps(_as_json(report), indent=2) + "\n")
    paths["markdown"].write_text(render_markdown(report))
    _plot(report, paths["png"])
    return paths


def _as_json(report: Report) -> dict[str, Any]:
    return {
        "meta": report.meta,
        "plan": {"mode": report.plan.mode, "limits": report.plan.limits,
                 "warmup": report.plan.warmup, "repeats": report.plan.repeats,
                 "coverage": report.plan.coverage},
        "datasets": [
            {"backlog": p.dataset.backlog, "frame": p.dataset.frame,
             "deletes_pct": p.dataset.deletes_pct, "stream": p.stream,
             "reused": p.reused, "prepare_seconds": round(p.seconds, 3)}
            for p in report.prepared
        ],
        "skipped": [s.reason for s in report.skipped],
        "strategies": report.titles,
        "unavailable": report.unavailable,
        "failures": report.failures,
        "probes": {name: {"title": report.probe_titles[name], "note": r.note, "rows": r.rows}
                   for name, r in report.probe_results.items()},
        "results": [_measurement_json(m) for m in report.measurements],
        "ratios": [{"name": r.name, "value": r.value} for r in ratios(report)],
    }


def _measurement_json(m: Measurement) -> dict[str, Any]:
    d = m.case.dataset
    return {
        "strategy": m.strategy, "backlog": d.backlog, "frame": d.frame,
        "deletes_pct": d.deletes_pct, "limit": m.case.limit, "repeats": len(m.samples),
        "median_ms": m.median_ms, "p95_ms": m.p95_ms,
        "min_ms": min(m.samples) * 1e3, "max_ms": max(m.samples) * 1e3,
        "samples_ms": [s * 1e3 for s in m.samples],
    }


def render_markdown(report: Report) -> str:
    meta, plan = report.meta, report.plan
    lines = [
        f"# Large-backlog read benchmark ({plan.mode})",
        "",
        f"{meta['started_at']}; {meta['cpu']} ({meta['cpu_count']} cores); "
        f"{meta['nats_server']}; nats-py {meta['nats_py']}; Python {meta['python']}; "
        f"run took {meta['elapsed_seconds']:.0f} s.",
        "",
        f"Each figure: {plan.repeats} timed reads of the newest page (stream info "
        f"included) in {plan.rounds} round(s), strategies in turn, {plan.warmup} warm-up "
        "read(s) per round; every answer checked against the expected frames. "
        "Times in ms, median / p95.",
        "",
        f"Coverage: {plan.coverage}",
        *[f"- {s.reason}" for s in report.skipped],
        "",
        *_latency_table(report),
        "",
        "## Ratios (limit 1000, 256 B frames, medians of this run)",
        "",
        "| ratio | value |",
        "|---|---|",
        *[f"| {r.name} | {_fmt_ratio(r.value)} |" for r in ratios(report)],
        *_probe_sections(report),
        *_not_measured(report),
    ]
    return "\n".join(lines) + "\n"


def _latency_table(report: Report) -> list[str]:
    names = list(report.titles)
    head = "| backlog | frame | deleted | limit | " + " | ".join(report.titles.values()) + " |"
    rows = [head, "|" + "---|" * (4 + len(names))]
    by_key = {(m.strategy, m.case.dataset, m.case.limit): m for m in report.measurements}
    for p in report.prepared:
        for limit in report.plan.limits:
            cells = [_cell(by_key.get((n, p.dataset, limit))) for n in names]
            d = p.dataset
            rows.append(f"| {d.backlog:,} | {_frame(d.frame)} | {d.deletes_pct}% | {limit} | "
                        + " | ".join(cells) + " |")
    return rows


def _probe_sections(report: Report) -> list[str]:
    lines: list[str] = []
    for name, result in report.probe_results.items():
        lines += ["", f"## {report.probe_titles[name]}", "", result.note, ""]
        if result.rows:
            keys = list(result.rows[0])
            lines += ["| " + " | ".join(keys) + " |", "|" + "---|" * len(keys)]
            lines += ["| " + " | ".join(_fmt(row[k]) for k in keys) + " |" for row in result.rows]
    return lines


def _fmt(value: object) -> str:
    return f"{value:.1f}" if isinstance(value, float) else str(value)


def _not_measured(report: Report) -> list[str]:
    if not report.unavailable and not report.failures:
        return []
    return ["", "## Not measured in this run", "",
            *[f"- `{name}`: {why}" for name, why in report.unavailable.items()],
            *[f"- `{name}`: FAILED: {why}" for name, why in report.failures.items()]]


def _cell(m: Measurement | None) -> str:
    return "n/a" if m is None else f"{m.median_ms:.1f} / {m.p95_ms:.1f}"


def _fmt_ratio(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2f}x"


def _frame(size: int) -> str:
    return f"{size // 1024} KiB" if size >= 1024 else f"{size} B"


def _plot(report: Report, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")  # no display: the plot only goes to a file
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FixedLocator, NullFormatter, ScalarFormatter

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for name, title in report.titles.items():
        points = _headline_points(report.measurements, name)
        if not points:
            continue
        xs, med, p95 = (list(v) for v in zip(*points, strict=True))
        # A whisker from the median up to the p95: bands overlap into mud on a log scale.
        up = [hi - mid for mid, hi in zip(med, p95, strict=True)]
        ax.errorbar(xs, med, yerr=[[0.0] * len(up), up], marker="o", capsize=3, label=title)
    ax.set_xscale("log")
    ax.set_yscale("log")
    # Plain numbers read better than powers of ten over one or two decades.
    ax.yaxis.set_major_locator(FixedLocator([1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000]))
    ax.yaxis.set_major_formatter(ScalarFormatter())
    ax.yaxis.set_minor_formatter(NullFormatter())
    backlogs = sorted({m.case.dataset.backlog for m in report.measurements})
    ax.set_xticks(backlogs, [count_label(b) for b in backlogs])
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.set_xlabel("backlog (messages)")
    ax.set_ylabel("latency, ms (median; whisker to p95)")
    ax.set_title(f"Newest {_HEADLINE_LIMIT} of 256 B frames, no deletions ({report.plan.mode})")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize="small")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _headline_points(
    measurements: Sequence[Measurement], name: str
) -> list[tuple[int, float, float]]:
    return sorted(
        (m.case.dataset.backlog, m.median_ms, m.p95_ms)
        for m in measurements
        if m.strategy == name and m.case.limit == _HEADLINE_LIMIT
        and m.case.dataset.frame == _HEADLINE_FRAME and m.case.dataset.deletes_pct == 0
    )
