"""Compare a committed reference fixture with a fresh recomputation.

Structure, keys, strings, integers and booleans must be identical; floats
must agree to 1e-12 relative (or 1e-15 absolute near zero). The libraries'
results can differ in the last bit between runs on the same machine (numpy's
vectorized sums depend on memory alignment, BLAS on its thread count), which
says nothing about the values the Rust tests check (to 1e-9 and looser).

Except the results of iterative optimizers, listed in LOOSE with their
tolerance: girth's 2PL calibration (marginal maximum likelihood, scipy's
bounded minimizer inside EM) is the same on every run on one machine but
differs from one CPU to another in the 11th significant digit (on an AMD EPYC
without AVX-512, up to 1.4e-10 relative from the fixture written elsewhere:
numpy picks its SIMD kernels by CPU, and the optimizer carries the last bit
along). The Rust test compares its own calibration with girth's to 0.02.

usage: python3 same.py COMMITTED.json RECOMPUTED.json
"""

import json
import math
import sys


# Path prefixes of iterative results, and the relative tolerance they get.
LOOSE = {
    "$.calibration.girth_a[": 1e-8,
    "$.calibration.girth_b[": 1e-8,
}


def tolerance(path):
    for prefix, tol in LOOSE.items():
        if path.startswith(prefix):
            return tol
    return 1e-12


def diff(a, b, path="$"):
    if isinstance(a, bool) or isinstance(b, bool) or not (isinstance(a, float) or isinstance(b, float)):
        if type(a) is not type(b):
            yield f"{path}: {type(a).__name__} vs {type(b).__name__}"
        elif isinstance(a, dict):
            if a.keys() != b.keys():
                yield f"{path}: keys {sorted(a.keys() ^ b.keys())} differ"
            for k in a.keys() & b.keys():
                yield from diff(a[k], b[k], f"{path}.{k}")
        elif isinstance(a, list):
            if len(a) != len(b):
                yield f"{path}: {len(a)} vs {len(b)} items"
            for i, (x, y) in enumerate(zip(a, b)):
                yield from diff(x, y, f"{path}[{i}]")
        elif a != b:
            yield f"{path}: {a!r} vs {b!r}"
        return
    x, y = float(a), float(b)
    if math.isnan(x) and math.isnan(y):
        return
    if not math.isclose(x, y, rel_tol=tolerance(path), abs_tol=1e-15):
        yield f"{path}: {x!r} vs {y!r}"


def main():
    with open(sys.argv[1]) as f:
        committed = json.load(f)
    with open(sys.argv[2]) as f:
        fresh = json.load(f)
    problems = list(diff(committed, fresh))
    for p in problems[:50]:
        print(p, file=sys.stderr)
    if problems:
        print(f"{len(problems)} difference(s) between {sys.argv[1]} and {sys.argv[2]}", file=sys.stderr)
        sys.exit(1)
    print(f"{sys.argv[1]}: the recomputation agrees")


main()
