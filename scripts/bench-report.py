#!/usr/bin/env python3
"""Tables and plots of the benchmark matrix (scripts/bench.sh).

    python3 scripts/bench-report.py RAW RESULTS.md PLOT_DIR

RAW holds one `key=value` line per client run, as the produce and consume
drivers write them with --raw (and `#` lines: date, machine, load). For
each benchmark (produce, consume) and broker it writes a markdown table of
medians per case and client (records/s, client CPU per record, peak RSS,
broker busy) with kpax's ratios to each peer, a check of issue 22's
targets, and two SVG bar charts (records/s, CPU per record) into PLOT_DIR.
Standard library only.
"""

import statistics
import sys
from collections import defaultdict
from pathlib import Path

CLIENTS = ["kpax", "rdkafka", "java", "franz"]
CODECS = ["none", "gzip", "snappy", "lz4", "zstd"]
COLORS = {"kpax": "#d9480f", "rdkafka": "#1971c2", "java": "#5c940d", "franz": "#862e9c"}


def parse(path):
    runs, notes = [], []
    for line in Path(path).read_text().splitlines():
        if line.startswith("#"):
            notes.append(line[1:].strip())
            continue
        kv = dict(p.split("=", 1) for p in line.split() if "=" in p)
        if "client" in kv and "bench" in kv:
            runs.append(kv)
    return runs, notes


def case_key(r):
    acks = r.get("acks", "-") if r["bench"] == "produce" else "-"
    return (
        int(r.get("partitions", 6)),
        int(r["size"]),
        {"all": 0, "1": 1, "-": 2}[acks],
        CODECS.index(r.get("compression", "none")) if r.get("compression", "none") in CODECS else 9,
        r.get("compression", "none"),
    )


def case_name(k, bench):
    parts, size, acks, _, codec = k
    s = f"{size // 1024} KiB" if size >= 1024 else f"{size} B"
    if parts != 6:
        s = f"{parts:,} partitions, " + s
    if bench == "produce":
        s += ", acks=all idempotent" if acks == 0 else ", acks=1"
    if codec != "none":
        s += f", {codec}"
    return s


def med(rs, key):
    vals = []
    for r in rs:
        try:
            vals.append(float(r[key]))
        except (KeyError, ValueError):
            pass
    return statistics.median(vals) if vals else None


def busy(rs):
    vals = [float(r["broker_cpu_s"]) / float(r["wall_s"]) for r in rs if "broker_cpu_s" in r]
    return statistics.median(vals) if vals else None


def fmt(x, digits=2):
    if x is None:
        return "–"
    if abs(x) >= 1000:
        return f"{x:,.0f}"
    return f"{x:.{digits}f}"


def clients_in(groups):
    """The clients that ran in any of `groups` (lists of runs), in CLIENTS order."""
    return [c for c in CLIENTS if any(r["client"] == c for rs in groups for r in rs)]


def per_client(labels, clients):
    """Column heads: each label once per client."""
    return [f"{label} {c}" for label in labels for c in clients]


def ratio(a, b):
    return None if a is None or b is None or b == 0 else a / b


def bars_svg(title, unit, groups, clients, values):
    """Grouped bar chart: one group per case, one bar per client."""
    width, height, left, top, bottom = 900, 360, 70, 40, 90
    plot_w, plot_h = width - left - 20, height - top - bottom
    top_val = max([v for g in values for v in g.values() if v is not None] + [1e-9]) * 1.1
    gw = plot_w / max(len(groups), 1)
    bw = gw * 0.8 / max(len(clients), 1)
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'font-family="sans-serif" font-size="12">',
        f'<rect width="{width}" height="{height}" fill="white"/>',
        f'<text x="{width / 2}" y="20" text-anchor="middle" font-size="15">{title}</text>',
    ]
    for i in range(6):
        v = top_val * i / 5
        y = top + plot_h - plot_h * i / 5
        out.append(f'<line x1="{left}" y1="{y:.1f}" x2="{width - 20}" y2="{y:.1f}" stroke="#ddd"/>')
        out.append(f'<text x="{left - 5}" y="{y + 4:.1f}" text-anchor="end">{fmt(v)}</text>')
    out.append(
        f'<text x="15" y="{top + plot_h / 2}" transform="rotate(-90 15 {top + plot_h / 2})" '
        f'text-anchor="middle">{unit}</text>'
    )
    for gi, (name, vals) in enumerate(zip(groups, values)):
        x0 = left + gi * gw + gw * 0.1
        for ci, c in enumerate(clients):
            v = vals.get(c)
            if v is None:
                continue
            h = plot_h * v / top_val
            x = x0 + ci * bw
            out.append(
                f'<rect x="{x:.1f}" y="{top + plot_h - h:.1f}" width="{bw * 0.9:.1f}" '
                f'height="{h:.1f}" fill="{COLORS[c]}"><title>{c}: {fmt(v)}</title></rect>'
            )
        cx = left + gi * gw + gw / 2
        for li, part in enumerate(name.split(", ")):
            out.append(
                f'<text x="{cx:.1f}" y="{top + plot_h + 16 + 14 * li}" text-anchor="middle">{part}</text>'
            )
    for ci, c in enumerate(clients):
        x = left + ci * 110
        out.append(f'<rect x="{x}" y="{height - 18}" width="12" height="12" fill="{COLORS[c]}"/>')
        out.append(f'<text x="{x + 16}" y="{height - 8}">{c}</text>')
    out.append("</svg>")
    return "\n".join(out) + "\n"


def main():
    if len(sys.argv) != 4:
        sys.exit("usage: bench-report.py RAW RESULTS.md PLOT_DIR")
    raw, results, plots = sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3])
    runs, notes = parse(raw)
    if not runs:
        sys.exit(f"{raw}: no client runs")
    plots.mkdir(parents=True, exist_ok=True)
    by = defaultdict(lambda: defaultdict(list))
    for r in runs:
        by[(r["bench"], r["broker"])][case_key(r)].append(r)

    md = [
        "# Benchmark results: kpax, rdkafka, the Java client and franz-go",
        "",
        "Made by `scripts/bench.sh` (tables and plots by `scripts/bench-report.py` from",
        "`benches/results/raw.txt`, one line per client run). Each client runs in its own",
        "process against the same broker with the same settings (linger 5 ms, 64 KiB",
        "batches, 6 partitions, keyless records; consumers by assignment, fetch max 50 MB,",
        "8 MB per partition, 5 ms max wait); client CPU is the client process's user+system",
        "time from before the client is created to its last acknowledgement or N-th record;",
        "peak RSS is the client process's VmHWM; broker busy is the broker processes' CPU",
        "over the client's wall time. Medians over the repetitions.",
        "",
    ]
    md += [f"- {n}" for n in notes]
    md.append("")
    misses = []
    for (bench, broker) in sorted(by, key=lambda k: (k[0] != "produce", k[1] != "mock3", k)):
        cases = by[(bench, broker)]
        clients = clients_in(cases.values())
        peers = [c for c in clients if c != "kpax"]
        md.append(f"## {bench}, {broker}")
        md.append("")
        head = ["case"] + per_client(["rec/s", "CPU µs/rec", "RSS MiB"], clients)
        head += [f"kpax÷{p} rec/s" for p in peers]
        head += [f"kpax÷{p} CPU/rec" for p in peers]
        head += ["broker busy (kpax run)", "reps"]
        md.append("| " + " | ".join(head) + " |")
        md.append("|" + "---|" * len(head))
        groups, tput, cpu = [], [], []
        for k in sorted(cases):
            rs = cases[k]
            per = {c: [r for r in rs if r["client"] == c] for c in clients}
            rec = {c: med(per[c], "rec_s") for c in clients}
            us = {c: med(per[c], "us_per_rec") for c in clients}
            rss = {c: med(per[c], "rss_kb") for c in clients}
            name = case_name(k, bench)
            row = [name]
            row += [fmt(rec[c]) for c in clients]
            row += [fmt(us[c], 3) for c in clients]
            row += [fmt(rss[c] / 1024 if rss[c] else None, 0) for c in clients]
            row += [fmt(ratio(rec["kpax"], rec[p])) for p in peers]
            row += [fmt(ratio(us["kpax"], us[p])) for p in peers]
            row += [fmt(busy(per["kpax"])), str(len(per["kpax"]))]
            md.append("| " + " | ".join(row) + " |")
            groups.append(name)
            tput.append(rec)
            cpu.append(us)
            if broker.startswith("mock") and "rdkafka" in clients:
                rr, cr = ratio(rec["kpax"], rec["rdkafka"]), ratio(us["kpax"], us["rdkafka"])
                if rr is None or rr < 2 or cr is None or cr > 0.4:
                    misses.append(f"{bench} {name} on {broker}: {fmt(rr)}× records/s, {fmt(cr)}× CPU per record")
            for p in ("java", "franz"):
                cr = ratio(us["kpax"], us.get(p))
                if p in clients and cr is not None and cr >= 1:
                    misses.append(f"{bench} {name} on {broker}: kpax uses {fmt(cr)}× {p}'s CPU per record")
        md.append("")
        stem = f"{bench}-{broker}"
        (plots / f"{stem}-records.svg").write_text(
            bars_svg(f"{bench} on {broker}: records/s (higher is better)", "records/s", groups, clients, tput)
        )
        (plots / f"{stem}-cpu.svg").write_text(
            bars_svg(f"{bench} on {broker}: client CPU µs per record (lower is better)", "µs/record", groups, clients, cpu)
        )
        md.append(f"![{stem} records/s](results/{stem}-records.svg)")
        md.append(f"![{stem} CPU per record](results/{stem}-cpu.svg)")
        md.append("")
    scaling = [
        (b, k, cases)
        for (b, k), cases in sorted(by.items())
        if len({c[0] for c in cases}) > 1
    ]
    if scaling:
        md.append("## Scaling with the number of partitions")
        md.append("")
        md.append(
            "The same case at 6 to 10,000 partitions: records/s, client CPU per record, peak RSS, "
            "and (consume) time to the first record. Memory per partition is "
            "(RSS at P - RSS at 6) / (P - 6)."
        )
        md.append("")
        for bench, broker, cases in scaling:
            by_shape = defaultdict(dict)
            for k, rs in cases.items():
                by_shape[k[1:]][k[0]] = rs
            for shape, per_p in sorted(by_shape.items()):
                if len(per_p) < 2:
                    continue
                clients = clients_in(per_p.values())
                md.append(f"### {bench} on {broker}, {case_name((6,) + shape, bench)}")
                md.append("")
                labels = ["rec/s", "CPU µs/rec", "RSS MiB", "KiB/partition"]
                if bench == "consume":
                    labels.append("first record s")
                head = ["partitions"] + per_client(labels, clients)
                md.append("| " + " | ".join(head) + " |")
                md.append("|" + "---|" * len(head))
                base = {c: med([r for r in per_p.get(6, []) if r["client"] == c], "rss_kb") for c in clients}
                for p in sorted(per_p):
                    per = {c: [r for r in per_p[p] if r["client"] == c] for c in clients}
                    row = [f"{p:,}"]
                    row += [fmt(med(per[c], "rec_s")) for c in clients]
                    row += [fmt(med(per[c], "us_per_rec"), 3) for c in clients]
                    rss = {c: med(per[c], "rss_kb") for c in clients}
                    row += [fmt(rss[c] / 1024 if rss[c] else None, 0) for c in clients]
                    row += [
                        fmt((rss[c] - base[c]) / (p - 6) if p != 6 and rss[c] and base[c] else None, 1)
                        for c in clients
                    ]
                    if bench == "consume":
                        row += [fmt(med(per[c], "first_s"), 3) for c in clients]
                    md.append("| " + " | ".join(row) + " |")
                md.append("")
    md.append("## Against issue 22's targets")
    md.append("")
    md.append(
        "On the mock: at least 2× rdkafka's records/s at no more than 0.4× its CPU per record; "
        "everywhere: less CPU per record than the Java client and franz-go."
    )
    md.append("")
    md += [f"- missed: {m}" for m in misses] or ["- every row meets them"]
    md.append("")
    results.write_text("\n".join(md))
    print(f"wrote {results} and {len(by) * 2} plots in {plots}")


if __name__ == "__main__":
    main()
