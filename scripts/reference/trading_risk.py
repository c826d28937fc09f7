#!/usr/bin/env python3
"""Reference values for plexus-trading's portfolio risk metrics.

Generates a few daily simple-return series with a fixed seed (normal,
fat-tailed, with a crash, short, all positive, a length whose 5th percentile
falls exactly on an element), each with a benchmark series of the same
length, computes every metric with empyrical-reloaded (and scipy for the
Gaussian quantiles), and writes the inputs, the expected outputs and the
library versions to crates/modules/trading/tests/fixtures/risk_reference.json,
which the Rust test tests/it/analytics.rs compares against to 1e-9.

A metric empyrical answers with NaN or an infinity (Sortino with no
downside, Calmar with no drawdown) is written as null: the Rust side refuses
those with an error instead of returning a non-finite number.

usage:
    python3 -m venv /tmp/refvenv
    /tmp/refvenv/bin/pip install -r scripts/reference/requirements.txt
    /tmp/refvenv/bin/python scripts/reference/trading_risk.py
"""

from __future__ import annotations

import json
import math
import sys
from importlib.metadata import version
from pathlib import Path

import empyrical as ep
import numpy as np
from scipy import stats

ROOT = Path(__file__).resolve().parents[2]
FIXTURE = ROOT / "crates" / "modules" / "trading" / "tests" / "fixtures" / "risk_reference.json"
# CI writes elsewhere and compares with the committed fixture (scripts/test.sh).
OUT = Path(sys.argv[1]).resolve() if len(sys.argv) > 1 else FIXTURE

SEED = 20240521
RISK_FREE = 0.0001  # a daily risk-free return for the *_rf variants
CUTOFFS = {"95": 0.05, "99": 0.01}


def series(rng: np.random.Generator) -> list[tuple[str, np.ndarray, np.ndarray]]:
    """(name, returns, benchmark) triples; returns loosely follow the benchmark."""
    cases = []

    bench = rng.normal(0.0004, 0.009, 252)
    ret = 0.0002 + 1.15 * bench + rng.normal(0.0, 0.006, 252)
    cases.append(("normal_252", ret, bench))

    bench = rng.standard_t(3, 500) * 0.007
    ret = 0.0001 + 0.8 * bench + rng.standard_t(4, 500) * 0.005
    cases.append(("fat_tailed_500", ret, bench))

    bench = rng.normal(0.0003, 0.01, 120)
    ret = 1.4 * bench + rng.normal(0.0005, 0.004, 120)
    ret[60] = -0.22  # the crash
    ret[61:66] = [-0.05, 0.03, -0.04, 0.02, -0.06]
    bench[60] = -0.12
    cases.append(("crash_120", ret, bench))

    bench = rng.normal(0.0, 0.012, 30)
    ret = -0.5 * bench + rng.normal(0.001, 0.01, 30)
    cases.append(("short_30", ret, bench))

    # (101 - 1) * 0.05 = 5 and (101 - 1) * 0.01 = 1: percentiles on an element.
    bench = rng.normal(0.0002, 0.01, 101)
    ret = 0.9 * bench + rng.normal(0.0, 0.005, 101)
    cases.append(("odd_101", ret, bench))

    bench = rng.normal(0.001, 0.004, 40)
    ret = np.abs(rng.normal(0.002, 0.003, 40)) + 1e-4
    cases.append(("all_positive_40", ret, bench))

    return cases


def finite(x: float) -> float | None:
    x = float(x)
    return x if math.isfinite(x) else None


def parametric_var(r: np.ndarray, cutoff: float) -> float:
    """Gaussian VaR as a return quantile: mean + z(cutoff) * std (ddof=1)."""
    return float(np.mean(r) + stats.norm.ppf(cutoff) * np.std(r, ddof=1))


def parametric_es(r: np.ndarray, cutoff: float) -> float:
    """Gaussian expected shortfall as a return: mean - std * pdf(z) / cutoff."""
    z = stats.norm.ppf(cutoff)
    return float(np.mean(r) - np.std(r, ddof=1) * stats.norm.pdf(z) / cutoff)


def metrics(r: np.ndarray, b: np.ndarray) -> dict[str, float | None]:
    m: dict[str, float | None] = {
        "cum_returns_final": ep.cum_returns_final(r),
        "annual_return": ep.annual_return(r),
        "annual_volatility": ep.annual_volatility(r),
        "sharpe_ratio": ep.sharpe_ratio(r),
        "sharpe_ratio_rf": ep.sharpe_ratio(r, risk_free=RISK_FREE),
        "sortino_ratio": ep.sortino_ratio(r),
        "downside_risk": ep.downside_risk(r),
        "max_drawdown": ep.max_drawdown(r),
        "calmar_ratio": ep.calmar_ratio(r),
        "beta": ep.beta(r, b),
        "alpha": ep.alpha(r, b),
        "beta_rf": ep.beta(r, b, risk_free=RISK_FREE),
        "alpha_rf": ep.alpha(r, b, risk_free=RISK_FREE),
    }
    for name, cutoff in CUTOFFS.items():
        m[f"value_at_risk_{name}"] = ep.value_at_risk(r, cutoff=cutoff)
        m[f"conditional_value_at_risk_{name}"] = ep.conditional_value_at_risk(r, cutoff=cutoff)
        m[f"parametric_var_{name}"] = parametric_var(r, cutoff)
        m[f"parametric_es_{name}"] = parametric_es(r, cutoff)
    return {k: finite(v) for k, v in m.items()}


def main() -> int:
    rng = np.random.default_rng(SEED)
    cases = []
    for name, r, b in series(rng):
        cases.append(
            {
                "name": name,
                "returns": [float(x) for x in r],
                "benchmark": [float(x) for x in b],
                "expected": metrics(r, b),
            }
        )
    ppf = [0.5, 0.3, 0.05, 0.01, 0.025, 0.975, 0.99, 0.999, 1e-5, 1e-10, 1e-300, 0.425, 0.075, 0.925]
    doc = {
        "generator": "scripts/reference/trading_risk.py",
        "seed": SEED,
        "risk_free": RISK_FREE,
        "periods_per_year": 252,
        "versions": {
            pkg: version(pkg)
            for pkg in ("empyrical-reloaded", "numpy", "scipy", "pandas", "Bottleneck")
        },
        "python": sys.version.split()[0],
        "norm_ppf": [{"p": p, "z": float(stats.norm.ppf(p))} for p in ppf],
        "cases": cases,
    }
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(doc, indent=1) + "\n")
    sys.stderr.write(f"wrote {OUT}: {len(cases)} cases\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
