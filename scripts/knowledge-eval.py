#!/usr/bin/env python3
"""Known-item retrieval quality over the Rust documentation.

Each query names an item or a chapter whose page is known; the script asks
`plexus kb search QUERY --json --limit 10` as a reader who may read everything
and reports MRR@10 (mean of 1/rank of the right page, 0 when it is not in the
top 10) and recall@10 (share of queries whose page is in the top 10).

usage: scripts/knowledge-eval.py PLEXUS_BIN CONFIG DATA_DIR
"""

from __future__ import annotations

import json
import subprocess
import sys

# (query, expected page relative to share/doc/rust/html)
KNOWN = [
    ("HashMap", "std/collections/struct.HashMap.html"),
    ("Vec", "std/vec/struct.Vec.html"),
    ("String", "std/string/struct.String.html"),
    ("Option", "std/option/enum.Option.html"),
    ("Result", "std/result/enum.Result.html"),
    ("Arc", "std/sync/struct.Arc.html"),
    ("Mutex", "std/sync/struct.Mutex.html"),
    ("Rc", "std/rc/struct.Rc.html"),
    ("RefCell", "std/cell/struct.RefCell.html"),
    ("Box", "std/boxed/struct.Box.html"),
    ("BTreeMap", "std/collections/struct.BTreeMap.html"),
    ("Iterator", "std/iter/trait.Iterator.html"),
    ("Read", "std/io/trait.Read.html"),
    ("Display", "std/fmt/trait.Display.html"),
    ("From", "std/convert/trait.From.html"),
    ("PathBuf", "std/path/struct.PathBuf.html"),
    ("Duration", "std/time/struct.Duration.html"),
    ("TcpListener", "std/net/struct.TcpListener.html"),
    ("read_to_string", "std/fs/fn.read_to_string.html"),
    ("thread spawn", "std/thread/fn.spawn.html"),
    ("println", "std/macro.println.html"),
    ("str", "std/primitive.str.html"),
    ("async keyword", "std/keyword.async.html"),
    ("E0382", "error_codes/E0382.html"),
    ("E0499", "error_codes/E0499.html"),
    ("What is Ownership", "book/ch04-01-what-is-ownership.html"),
    ("hash maps", "book/ch08-03-hash-maps.html"),
    ("threads", "book/ch16-01-threads.html"),
    ("traits reference", "reference/items/traits.html"),
    ("nomicon lifetimes", "nomicon/lifetimes.html"),
    ("manifest format", "cargo/reference/manifest.html"),
    ("hello world rust by example", "rust-by-example/hello.html"),
]


def main() -> None:
    plexus, config, data = sys.argv[1:4]
    reciprocal, found = 0.0, 0
    for query, page in KNOWN:
        out = subprocess.run(
            [plexus, "kb", "search", query, "--json", "--limit", "10", "--config", config, "--data-dir", data],
            capture_output=True, text=True, check=True,
        ).stdout
        hits = json.loads(out)["hits"]
        ids = [h["id"] for h in hits]
        # a folded near-duplicate (the core:: twin of a std:: page) counts as the page
        folded = [[h["id"], *h.get("duplicates", [])] for h in hits]
        want = f"rustdoc:{page}"
        rank = next((i + 1 for i, group in enumerate(folded) if want in group), None)
        if rank:
            reciprocal += 1 / rank
            found += 1
        print(f"{query!r:34} rank {rank if rank else '-':>2}   top: {ids[0] if ids else '(none)'}")
    n = len(KNOWN)
    print(f"\nknown-item queries: {n}   MRR@10 {reciprocal / n:.3f}   recall@10 {found / n:.3f}")


if __name__ == "__main__":
    main()
