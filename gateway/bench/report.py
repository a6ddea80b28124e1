"""The benchmark's results as a Markdown table and a picture."""

from __future__ import annotations

from pathlib import Path
from typing import Any

__all__ = ["headline_figure", "write_headline", "write_markdown", "write_plot"]


def _cell(spread: dict[str, float], fmt: str = ",.0f") -> str:
    return f"{spread['median']:{fmt}} ({spread['min']:{fmt}}–{spread['max']:{fmt}})"


def write_markdown(results: dict[str, Any], path: Path) -> None:
    """Tables of medians with (min–max) over the rounds."""
    rounds = results["config"]["rounds"]
    lines = [
        f"Entries per run: {results['config']['entries']:,}; rounds: {rounds}; median (min–max).",
        "",
        "| wire form | limit: raw nats-py msgs/s | gateway entries/s | gateway / limit "
        "| CPU µs per message: limit, gateway |",
        "|---|---|---|---|---|",
    ]
    for form, row in results["throughput"].items():
        ratio = _cell(row["ratio_gateway_to_limit"], ".2f")
        cpu = f"{row['limit_cpu_us']['median']:.1f}, {row['gateway_cpu_us']['median']:.1f}"
        lines.append(f"| {form} | {_cell(row['limit'])} | {_cell(row['gateway'])} | {ratio} | {cpu} |")
    lines += _contenders(results)
    if "memory" in results:
        lines += ["", _memory_line(results["memory"])]
    path.write_text("\n".join(lines) + "\n")


def _overload_line(row: dict[str, Any]) -> str:
    sent = row.get("sent_per_s", 0.0)
    wire = (
        f" (the producer got {sent:,.0f}/s onto the wire)" if 0 < sent < 0.98 * row["offered_per_s"] else ""
    )
    return (
        f"Overload: {row['offered_per_s']:,.0f} entries/s offered ({row.get('factor', 2):g}x the peak of "
        f"{row['peak_per_s']:,.0f}/s){wire} for {row['seconds']} s: "
        f"goodput median {row['median_per_s']:,.0f}/s, "
        f"weakest second {row['min_per_s']:,.0f}/s, **{row['ratio_to_peak']:.2f} of the peak**."
    )


def _memory_line(row: dict[str, Any]) -> str:
    return (
        f"Memory: holding {row['entries']:,} mix entries under a throttle "
        f"({row['wire_bytes'] / 1e6:,.1f} MB on the wire, {row['wire_bytes_per_entry']:,.0f} B each), "
        f"the gateway's RSS grew {row['added_bytes'] / 1e6:,.1f} MB over its base of "
        f"{row['base_rss_bytes'] / 1e6:,.1f} MB: **{row['ratio_to_wire']:.2f}x their wire bytes** "
        f"({row['added_bytes_per_entry']:,.0f} B per entry; none dropped)."
    )


def _sustained_line(row: dict[str, Any]) -> str:
    tried = ", ".join(
        f"{t['share']:.0%} ({t['offered_per_s']:,.0f}/s): p99 {t['p99_ms']:.0f} ms" for t in row["tried"]
    )
    held = row["held"]
    verdict = (
        f"**{held['offered_per_s']:,.0f} entries/s ({held['share']:.0%} of the burst peak "
        f"{row['peak_per_s']:,.0f}/s)**"
        if held
        else "**none of the rates tried**"
    )
    return (
        f"Sustained capacity (held for {row['seconds']:g} s with p99, send to stored in JetStream, "
        f"within {row['p99_bound_ms']:.0f} ms): "
        f"{verdict}; tried {tried}."
    )


def _contenders(results: dict[str, Any]) -> list[str]:
    base = results["baselines"]
    lat = results["latency_at_half_load"]
    lines = [
        "",
        "| contender | entries/s | gateway (mix) / contender |",
        "|---|---|---|",
        f"| naive per-entry JetStream publish, awaiting each ack | {_cell(base['naive'])} "
        f"| {_cell(base['ratio_gateway_to_naive'], '.1f')} |",
        f"| naive per-entry JetStream publish, pipelined (publish_async) | {_cell(base['naive_pipelined'])} "
        f"| {_cell(base['ratio_gateway_to_naive_pipelined'], '.1f')} |",
        f"| OpenTelemetry SDK (BatchLogRecordProcessor, no-op exporter) | {_cell(base['otel'])} "
        f"| {_cell(base['ratio_gateway_to_otel'], '.1f')} |",
        "",
        f"Latency per entry at {lat['offered_per_s']:,.0f} entries/s (half the peak), send to stored batch: "
        f"p50 {lat['p50_ms']:.1f} ms, p99 {lat['p99_ms']:.1f} ms, max {lat['max_ms']:.1f} ms "
        f"over {lat['entries']:,} entries; "
        f"bus {lat['bus_msgs_per_s']:,.0f} msgs/s and {lat['bus_bytes_per_s'] / 1e6:,.2f} MB/s "
        f"(per-entry publishing would put {lat['offered_per_s']:,.0f} msgs/s on the bus).",
        "",
        _overload_line(results["overload"]),
        "",
        *([_overload_line(results["overload_10x"]), ""] if "overload_10x" in results else []),
        _sustained_line(results["sustained"]),
        "",
        f"| batch size | peak entries/s | bus msgs/s at peak | p99 at {lat['offered_per_s']:,.0f}/s (ms) |",
        "|---|---|---|---|",
    ]
    for row in results["batch_size_sweep"]:
        p99, peak, bus = row["latency"]["p99_ms"], row["entries_per_s"], row["bus_msgs_per_s"]
        lines.append(f"| {row['batch_size']} | {peak:,.0f} | {bus:,.0f} | {p99:.1f} |")
    lines += _variants(results["variants"])
    lines += ["", "| handler | caller's cost per logger.info call (µs) |", "|---|---|"]
    lines += [f"| {name} | {cost:.1f} |" for name, cost in results["call_cost_us"].items()]
    return lines


def _variants(variants: dict[str, Any]) -> list[str]:
    lines = [
        "",
        "| the gateway run as | entries/s (mix) | against 1 process | CPU µs per entry "
        "| cores busy: gateway, nats-server |",
        "|---|---|---|---|---|",
    ]
    for name, row in variants.items():
        cores = f"{row['gateway_cores']['median']:.2f}, {row['server_cores']['median']:.2f}"
        lines.append(
            f"| {name} (`{' '.join(row['args'])}`) | {_cell(row['entries_per_s'])} "
            f"| {_cell(row['speedup'], '.2f')} | {row['gateway_cpu_us']['median']:.1f} | {cores} |"
        )
    return lines


def write_plot(results: dict[str, Any], path: Path) -> None:
    """Throughput and p99 latency against batch size."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = results["batch_size_sweep"]
    sizes = [r["batch_size"] for r in rows]
    fig, left = plt.subplots(figsize=(7, 4))
    left.plot(sizes, [r["entries_per_s"] for r in rows], "o-", color="tab:blue", label="peak entries/s")
    left.set_xscale("log")
    left.set_xlabel("max batch entries")
    left.set_ylabel("peak entries/s", color="tab:blue")
    right = left.twinx()
    right.plot(sizes, [r["latency"]["p99_ms"] for r in rows], "s--", color="tab:red", label="p99 latency")
    right.set_ylabel("p99 latency at half load (ms)", color="tab:red")
    lines = left.get_lines() + right.get_lines()  # one legend for both axes: told apart in a quick run too
    left.legend(lines, [str(line.get_label()) for line in lines], loc="upper left")
    left.set_title("cortex-log-gateway: throughput and latency against batch size")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


_CONTENDERS = (
    ("naive", "per-entry publish,\nawaiting each ack"),
    ("naive_pipelined", "per-entry publish,\npipelined"),
    ("otel", "OpenTelemetry SDK\n(BatchLogRecordProcessor)"),
)


def _against_limit(axis: Any, throughput: dict[str, Any]) -> None:
    """Per wire form, the limit's and the gateway's medians side by side, the ratio written."""
    forms = list(throughput)
    ys = list(range(len(forms)))
    limit = [throughput[f]["limit"]["median"] for f in forms]
    gateway = [throughput[f]["gateway"]["median"] for f in forms]
    axis.barh([y + 0.2 for y in ys], limit, height=0.4, color="tab:gray", label="limit: raw nats-py (msgs/s)")
    axis.barh(
        [y - 0.2 for y in ys], gateway, height=0.4, color="tab:blue", label="gateway (entries/s stored)"
    )
    ratios = [throughput[f]["ratio_gateway_to_limit"]["median"] for f in forms]  # each round's pair
    for y, gw, ratio in zip(ys, gateway, ratios, strict=True):
        axis.text(gw, y - 0.2, f" {gw:,.0f} ({ratio:.2f} of the limit)", va="center", fontsize=8)
    axis.set_yticks(ys, forms)
    axis.invert_yaxis()
    axis.set_xlabel("messages per second (median)")
    axis.set_title("the gateway against the raw limit, per wire form")
    axis.legend(loc="lower right", fontsize=8)


def _against_contenders(axis: Any, results: dict[str, Any]) -> None:
    """The gateway (mix) and each contender: medians, min–max whiskers, values written."""
    spreads = [results["throughput"]["mix"]["gateway"], *(results["baselines"][k] for k, _ in _CONTENDERS)]
    medians = [s["median"] for s in spreads]
    whiskers = [
        [m - s["min"] for m, s in zip(medians, spreads, strict=True)],
        [s["max"] - m for m, s in zip(medians, spreads, strict=True)],
    ]
    names = ["gateway (mix)", *(label for _, label in _CONTENDERS)]
    colors = ["tab:blue", "tab:orange", "tab:orange", "tab:green"]
    bars = axis.barh(names, medians, xerr=whiskers, capsize=3, color=colors)
    axis.bar_label(bars, labels=[f"{m:,.0f}" for m in medians], padding=4, fontsize=8)
    axis.invert_yaxis()
    axis.set_xlabel("entries per second (median, min–max)")
    axis.set_title("the gateway against each contender")


def headline_figure(results: dict[str, Any]) -> Any:
    """The picture a reader wants first: the gateway's entries/s against the raw limit for each
    wire form, and against each contender."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4.8))
    _against_limit(left, results["throughput"])
    _against_contenders(right, results)
    config = results["config"]
    fig.suptitle(
        f"cortex-log-gateway bench: {config['entries']:,} entries per run, {config['rounds']} round(s)"
    )
    fig.tight_layout()
    return fig


def write_headline(results: dict[str, Any], path: Path) -> None:
    """:func:`headline_figure` as a PNG."""
    import matplotlib.pyplot as plt

    fig = headline_figure(results)
    fig.savefig(path, dpi=110)
    plt.close(fig)
