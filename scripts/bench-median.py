#!/usr/bin/env python3
"""Median of several bench-http.sh tables: usage bench-median.py run1.md run2.md ..."""
import re
import statistics
import sys

rows = {}
order = []
for path in sys.argv[1:]:
    for line in open(path, encoding="utf-8"):
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) != 8 or cells[0] in ("server", "---") or not re.match(r"^[\d,]+$", cells[2]):
            continue
        key = (cells[0], cells[1])
        if key not in rows:
            rows[key] = []
            order.append(key)
        rows[key].append([float(c.replace(",", "")) for c in cells[2:]])

print(f"Median of {len(sys.argv) - 1} runs.\n")
print("| server | era | req/s | p50 ms | p90 ms | p99 ms | p99.9 ms | errors |")
print("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |")
for key in order:
    cols = list(zip(*rows[key]))
    med = [statistics.median(c) for c in cols]
    print(f"| {key[0]} | {key[1]} | {med[0]:,.0f} | {med[1]:.2f} | {med[2]:.2f} | {med[3]:.2f} | {med[4]:.2f} | {int(sum(cols[5]))} |")
