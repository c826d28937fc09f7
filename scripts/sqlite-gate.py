#!/usr/bin/env python3
"""SQLite's write gate during one benchmark run, from two scrapes of /metrics.

usage: sqlite-gate.py "$(curl -s URL/metrics)" "$(curl -s URL/metrics)"   (before, after)

Prints writers per group commit and where a writer's time went (waiting to
enter, holding the gate, committing), and the WAL's fdatasyncs outside the
gate (commits per fdatasync, time each) and the WAL's restarts through the
gate (time each); nothing when the server runs on
PostgreSQL (no gate) or saw no writes.
"""
import sys


def counters(text: str) -> dict:
    out = {}
    for line in text.splitlines():
        if line.startswith("plexus_sqlite"):
            name, value = line.split()[:2]
            out[name] = float(value)
    return out


before, after = counters(sys.argv[1]), counters(sys.argv[2])
d = {k: v - before.get(k, 0.0) for k, v in after.items()}
writers, commits = d.get("plexus_sqlite_writers_total", 0), d.get("plexus_sqlite_write_batches_total", 0)
if writers and commits:
    print(
        "  (SQLite write gate)        %d writers in %d commits (%.1f each); per writer: waited %.0f us, held %.0f us;"
        " per commit %.0f us"
        % (
            writers,
            commits,
            writers / commits,
            d["plexus_sqlite_write_wait_microseconds_total"] / writers,
            d["plexus_sqlite_write_held_microseconds_total"] / writers,
            d["plexus_sqlite_commit_microseconds_total"] / commits,
        )
    )
    syncs = d.get("plexus_sqlite_wal_syncs_total", 0)
    if syncs:
        print(
            "  (SQLite WAL fdatasync)     %d outside the gate (%.1f commits each), %.0f us each"
            % (syncs, commits / syncs, d["plexus_sqlite_wal_sync_microseconds_total"] / syncs)
        )
    restarts = d.get("plexus_sqlite_wal_restarts_total", 0)
    if restarts:
        print(
            "  (SQLite WAL restarts)      %d through the gate, holding it %.0f us each"
            % (restarts, d["plexus_sqlite_wal_restart_microseconds_total"] / restarts)
        )
