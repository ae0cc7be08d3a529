"""The bench's tables: every result, and ours beside Nchan's."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

COLUMNS: list[tuple[str, str, Callable[[Any], str]]] = [
    ("server", "server", str),
    ("scenario", "scenario", str),
    ("sizes", "sizes", str),
    ("deliveries_per_s", "deliveries/s", lambda v: f"{v:,.0f}"),
    ("deliveries_per_server_cpu_s", "deliveries/server-CPU-s", lambda v: f"{v:,.0f}"),
    ("publishes_per_s", "publishes/s", lambda v: f"{v:,.0f}"),
    ("publishes_per_server_cpu_s", "publishes/server-CPU-s", lambda v: f"{v:,.0f}"),
    ("client_us_per_msg", "client CPU µs/msg", lambda v: f"{v:.0f}"),
    ("server_us_per_msg", "server+Redis CPU µs/msg", lambda v: f"{v:.0f}"),
    ("rows_per_s", "rows/s", lambda v: f"{v:,.0f}"),
    ("commits_per_s", "rows committed/s", lambda v: f"{v:,.0f}"),
    ("postgres_cpu_us_per_row", "PostgreSQL CPU µs/row", lambda v: f"{v:.0f}"),
    ("p50_ms", "p50 ms", lambda v: f"{v:.2f}"),
    ("p99_ms", "p99 ms", lambda v: f"{v:.2f}"),
    ("max_ms", "max ms", lambda v: f"{v:.2f}"),
    ("rss_per_connection_kib", "RSS/conn KiB", lambda v: f"{v:.1f}"),
    ("rss_total_mib", "workers RSS MiB", lambda v: f"{v:,.0f}"),
    ("redis_used_memory_mib", "Redis used_memory MiB", lambda v: f"{v:.1f}"),
    ("connect_s", "connect s", lambda v: f"{v:.1f}"),
    ("broadcast_ms", "POST / to all ms", lambda v: f"{v:,.0f}"),
    ("idle_cpu_pct", "idle CPU % (workers)", lambda v: f"{v:.1f}"),
    ("idle_pings", "pings in idle window", lambda v: f"{v:,}"),
    ("idle_redis_cpu_pct", "idle Redis CPU %", lambda v: f"{v:.2f}"),
    ("wire_bytes_per_delivery", "wire B/delivery", lambda v: f"{v:,.0f}"),
    ("wire_ratio_vs_plain", "wire vs plain", lambda v: f"{v:.2f}"),
    ("cpu_ratio_vs_plain", "deliveries/CPU-s vs plain", lambda v: f"{v:.2f}"),
    ("compress_us_per_message", "compress µs/msg", lambda v: f"{v:.1f}"),
    ("handshakes_per_server_cpu_s", "handshakes/server-CPU-s", lambda v: f"{v:,.0f}"),
    ("ratio_vs_1proc", "2proc/1proc", lambda v: f"{v:.2f}"),
    ("cpu_ratio_vs_1proc", "per-CPU-s vs 1proc", lambda v: f"{v:.2f}"),
    ("machine_busy_pct", "machine busy %", lambda v: f"{v:.0f}"),
    ("workers_cpu_s", "workers CPU s", lambda v: f"{v:.2f}"),
    ("nginx_cpu_s", "nginx CPU s", lambda v: f"{v:.2f}"),
    ("redis_cpu_s", "Redis CPU s", lambda v: f"{v:.2f}"),
    ("redis_cpu_us_per_publish", "Redis CPU µs/publish", lambda v: f"{v:.1f}"),
    ("in_script_us_per_publish", "in-script µs/publish", lambda v: f"{v:.1f}"),
    ("redis_cpu_us_per_publish_by_master", "per master µs", lambda v: "/".join(map(str, v))),
    ("keys_by_master", "keys by master", lambda v: "/".join(map(str, v))),
    ("max_growth_pct", "soak growth %", lambda v: f"{v:+.1f}"),
    ("presence_publish_s", "presence publish s", lambda v: f"{v:.2f}"),
    ("presence_redis_bytes_per_channel", "Redis B/channel", lambda v: f"{v:.0f}"),
    ("root_page_ms", "/ page ms", lambda v: f"{v:.1f}"),
    ("subtree_page_ms", "subtree page ms", lambda v: f"{v:.1f}"),
    ("channel_ms", "channel ms", lambda v: f"{v:.1f}"),
    ("all_pages_s", "all pages s", lambda v: f"{v:.2f}"),
    ("withdraw_ms", "withdraw ms", lambda v: f"{v:.0f}"),
    ("events_per_s", "events/s", lambda v: f"{v:,.0f}"),
    ("server_us_per_event", "server CPU µs/event", lambda v: f"{v:.0f}"),
    ("redis_bytes_per_event", "Redis B/event", lambda v: f"{v:.0f}"),
    ("lost", "lost", str),
    ("duplicated", "dup", str),
    ("out_of_order", "ooo", str),
    ("wall_s", "wall s", lambda v: f"{v:.2f}"),
    ("server_cpu_s", "server CPU s", lambda v: f"{v:.2f}"),
    ("client_cpu_s", "client CPU s", lambda v: f"{v:.2f}"),
    ("skipped", "skipped", str),
    ("error", "error", str),
]


def table(results: list[dict[str, Any]]) -> str:
    columns = [c for c in COLUMNS if any(c[0] in r for r in results)]
    lines = [
        "| " + " | ".join(title for _, title, _ in columns) + " |",
        "|" + "---|" * len(columns),
    ]
    for r in results:
        cells = [fmt(r[key]) if key in r else "" for key, _, fmt in columns]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


#: The comparison: (our scenario, Nchan's scenario, key, metric title, format).
#: Nchan has no batch endpoint: our batch-publish is set against its publish-only.
COMPARED: list[tuple[str, str, str, str, Callable[[float], str]]] = [
    (
        "fanout-1x1000",
        "fanout-1x1000",
        "deliveries_per_server_cpu_s",
        "deliveries/server-CPU-s ↑",
        "{:,.0f}".format,
    ),
    ("fanout-1x1000", "fanout-1x1000", "deliveries_per_s", "deliveries/s ↑", "{:,.0f}".format),
    (
        "fanout-100x10",
        "fanout-100x10",
        "deliveries_per_server_cpu_s",
        "deliveries/server-CPU-s ↑",
        "{:,.0f}".format,
    ),
    ("fanout-100x10", "fanout-100x10", "deliveries_per_s", "deliveries/s ↑", "{:,.0f}".format),
    ("latency", "latency", "p50_ms", "p50 ms ↓", "{:.2f}".format),
    ("latency", "latency", "p99_ms", "p99 ms ↓", "{:.2f}".format),
    (
        "publish-only",
        "publish-only",
        "publishes_per_server_cpu_s",
        "publishes/server-CPU-s ↑",
        "{:,.0f}".format,
    ),
    ("publish-only", "publish-only", "publishes_per_s", "publishes/s ↑", "{:,.0f}".format),
    (
        "batch-publish",
        "publish-only",
        "publishes_per_server_cpu_s",
        "messages/server-CPU-s ↑ (Nchan: single POSTs)",
        "{:,.0f}".format,
    ),
    (
        "idle-memory",
        "idle-memory",
        "rss_per_connection_kib",
        "RSS/idle conn KiB ↓",
        "{:.1f}".format,
    ),
    ("idle-memory", "idle-memory", "rss_per_connection_kb", "RSS/idle conn KB ↓", "{:.1f}".format),
    (
        "fanout-1x1000-2proc",
        "fanout-1x1000-2proc",
        "deliveries_per_server_cpu_s",
        "deliveries/server-CPU-s ↑",
        "{:,.0f}".format,
    ),
    (
        "fanout-1x1000-2proc",
        "fanout-1x1000-2proc",
        "deliveries_per_s",
        "deliveries/s ↑",
        "{:,.0f}".format,
    ),
    (
        "fanout-1x1000-2proc",
        "fanout-1x1000-2proc",
        "ratio_vs_1proc",
        "2proc/1proc deliveries/s ↑",
        "{:.2f}".format,
    ),
]


def metric_cell(r: dict[str, Any] | None, key: str, fmt: Callable[[float], str]) -> str:
    if r is None:
        return "not run"
    if "skipped" in r:
        return f"skipped: {r['skipped']}"
    if "error" in r and key not in r:
        return f"error: {r['error']}"
    return fmt(r[key]) if key in r else ""


def pair(a: dict[str, Any] | None, b: dict[str, Any] | None, key: str) -> str:
    return " / ".join(f"{r[key]:.2f}" if r is not None and key in r else "-" for r in (a, b))


def checks(r: dict[str, Any] | None) -> str:
    if r is None or "lost" not in r:
        return "-"
    return f"{r['lost']}/{r['duplicated']}/{r['out_of_order']}"


def comparison(results: list[dict[str, Any]]) -> str:
    """One row per scenario and key metric: ours, Nchan, ours/Nchan, and the CPU beside."""
    found = {(r["target"], r["scenario"]): r for r in results}
    lines = [
        "| scenario | metric | ours | Nchan | ours/Nchan | server CPU s ours / Nchan "
        "| client CPU s ours / Nchan | wall s ours / Nchan | lost/dup/ooo ours / Nchan |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for mine, theirs, key, title, fmt in COMPARED:
        a, b = found.get(("ours", mine)), found.get(("nchan", theirs))
        if a is None and b is None:
            continue
        scenario = mine if mine == theirs else f"{mine} (Nchan: {theirs})"
        ratio = ""
        if a is not None and b is not None and key in a and b.get(key):
            ratio = f"{a[key] / b[key]:.2f}"
        lines.append(
            f"| {scenario} | {title} | {metric_cell(a, key, fmt)} | {metric_cell(b, key, fmt)} "
            f"| {ratio} | {pair(a, b, 'server_cpu_s')} | {pair(a, b, 'client_cpu_s')} "
            f"| {pair(a, b, 'wall_s')} | {checks(a)} / {checks(b)} |"
        )
    return "\n".join(lines)
