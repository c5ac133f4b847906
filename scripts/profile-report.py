#!/usr/bin/env python3
"""One row of benches/results/profile.md: a client's perf samples by kind.

Reads `perf report --no-children --sort dso,symbol -g none --stdio` on
stdin; argv: client, case, and the client's own result line (for its CPU per
record). Prints one markdown table row: the share of samples that went to
what the bytes cost (copies, CRC32C, codecs, the kernel's TCP path, page
faults) and to what the records cost (the client's own code, the allocator,
the async runtime, locks and wake-ups, clock reads).
"""
import re
import sys

# (column, [patterns on "dso symbol"]), first match wins.
KINDS = [
    ("copy", [r"__mem(move|cpy|set)", r"\bmemcpy\b", r"copy_crc_floor"]),
    ("CRC32C", [r"crc32c", r"\bcrc32\b", r"rd_crc32c"]),
    ("codec", [r"lz4", r"zstd", r"ZSTD", r"snap", r"miniz", r"inflate", r"deflate", r"LZ4", r"HUF_", r"FSE_"]),
    ("page faults", [r"page_fault", r"handle_mm_fault", r"do_anonymous_page", r"clear_page", r"alloc_pages",
                     r"folio", r"memcg", r"\blru", r"zap_", r"unmap_page", r"charge_memcg", r"pte_", r"vma_"]),
    ("sched, futex", [r"futex", r"schedule", r"finish_task_switch", r"try_to_wake_up", r"_raw_spin_unlock_irq",
                      r"\bsyscall\b", r"pthread_cond", r"lll_lock", r"epoll", r"sched_", r"enqueue_", r"dequeue_",
                      r"update_curr", r"psi_"]),
    ("kernel TCP", [r"tcp_", r"ip_", r"__dev_", r"net_", r"skb", r"sock_", r"_copy_(from|to)_iter", r"copy_user",
                    r"napi", r"netif", r"loopback", r"__sys_(send|recv)", r"inet_", r"sk_", r"__x64_sys_(writev|sendmsg|recvfrom|recvmsg|read|write)",
                    r"do_writev", r"vfs_", r"rw_verify", r"fdget", r"__fsnotify", r"security_socket", r"release_sock", r"lock_sock",
                    r"__check_object_size", r"check_heap_object", r"simple_copy_to_iter", r"__skb", r"kmalloc", r"kmem_cache", r"kfree"]),
    ("other kernel", [r"\[kernel", r"\[k\]"]),
    ("allocator", [r"malloc", r"\bfree\b", r"cfree", r"_int_", r"realloc", r"__rust_(alloc|dealloc|realloc)", r"tcache", r"unlink_chunk", r"sysmalloc"]),
    ("clock", [r"clock_gettime", r"vdso", r"SystemTime", r"Instant", r"now_ms", r"rd_clock", r"Timespec"]),
    ("runtime, sync", [r"tokio::", r"mio::", r"parking_lot", r"std::sys::sync", r"Mutex", r"Condvar", r"semaphore",
                       r"Notify", r"rd_kafka_q_", r"cnd_", r"mtx_", r"thrd_", r"pthread"]),
    ("client code", [r"kpax", r"rd_kafka", r"rd_", r"bytes::", r"\[\.\]"]),
]

COLUMNS = [k for k, _ in KINDS] + ["unsorted"]


def main() -> None:
    client, case, line = sys.argv[1], sys.argv[2], sys.argv[3] if len(sys.argv) > 3 else ""
    share = {c: 0.0 for c in COLUMNS}
    total = 0.0
    for raw in sys.stdin:
        m = re.match(r"\s*([\d.]+)%\s+(\S+)\s+(\[[.k]\])\s+(.*)", raw)
        if not m:
            continue
        pct, dso, kind, sym = float(m.group(1)), m.group(2), m.group(3), m.group(4).strip()
        text = f"{dso} {kind} {sym}"
        total += pct
        for col, pats in KINDS:
            if any(re.search(p, text) for p in pats):
                share[col] += pct
                break
        else:
            share["unsorted"] += pct
    us = re.search(r"us_per_rec=([\d.]+)", line)
    us_rec = f"{float(us.group(1)):.3f}" if us else "–"
    scale = 100.0 / total if total else 0.0
    cells = [f"{share[c] * scale:.0f}" for c in COLUMNS]
    print(f"| {case} | {client} | {us_rec} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
