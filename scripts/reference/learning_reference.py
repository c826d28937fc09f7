#!/usr/bin/env python3
"""Reference values for plexus-learning's psychometric engines.

Computes, on fixed inputs that are written into the fixture too:

- IRT probability and Fisher information of 2PL/3PL/4PL items with catsim
  (``catsim.irt.icc``, ``catsim.irt.inf``, ``catsim.irt.test_info``; D = 1);
- Gauss-Legendre quadrature grids as girth builds them
  (``girth.utilities.utils._get_quadrature_points``, scipy's
  ``roots_legendre``) and the uniform grid (``numpy.linspace``);
- EAP ability estimates with girth (``ability_eap`` for 2PL,
  ``ability_3pl_eap`` for 3PL) on Gauss-Legendre grids, and the posterior
  standard deviation (girth reports only the mean) with numpy on the same
  grids; on the crate's default grid (121 equally spaced nodes on [-6, 6],
  which girth cannot use) both come from numpy with the same formula;
- BKT with pyBKT's own code: one-step-ahead predictions and state
  predictions (``pyBKT.fit.predict_onestep.run``), filtered posteriors and
  the log-likelihood (``pyBKT.fit.EM_fit.run``) for fixed parameters and
  sequences, and an EM fit (``pyBKT.fit.EM_fit.EM_fit``) from fixed
  starting parameters on data simulated with a fixed seed (EM_fit's loop
  is copied into this script around pyBKT's E-step and M-step, because
  pyBKT 1.4.3's loop fails under numpy 2);
- 2PL calibration by girth's marginal maximum likelihood (``twopl_mml``)
  on data simulated with a fixed seed;
- classical item statistics for the analytics (its own seeded generator, so
  the sections above do not move): p-values with numpy and point-biserial
  correlations with ``scipy.stats.pointbiserialr`` (item against the rest
  score and against the total) on a response matrix with missing answers,
  a mastery histogram (``numpy.histogram``), medians (``numpy.median``) and
  accuracy trends (``numpy.polyfit``).

Everything runs serially (pyBKT's ``parallel=False``) so the output does not
depend on the number of CPUs. Writes
crates/modules/learning/tests/fixtures/learning_reference.json, which the Rust
tests in crates/modules/learning/tests/it/ compare against.

usage:
    python3 -m venv /tmp/lrnvenv
    /tmp/lrnvenv/bin/pip install -r scripts/reference/learning-requirements.txt
    /tmp/lrnvenv/bin/python scripts/reference/learning_reference.py [output.json]
"""

from __future__ import annotations

import json
import sys
from importlib.metadata import version
from pathlib import Path

import numpy as np
from catsim import irt as catsim_irt
from girth import ability_3pl_eap, ability_eap, twopl_mml
from girth.utilities.utils import _get_quadrature_points
from pyBKT.fit import EM_fit, M_step, predict_onestep
from scipy.special import expit
from scipy.stats import norm, pointbiserialr

ROOT = Path(__file__).resolve().parents[2]
FIXTURE = ROOT / "crates" / "modules" / "learning" / "tests" / "fixtures" / "learning_reference.json"
# CI writes elsewhere and compares with the committed fixture.
OUT = Path(sys.argv[1]).resolve() if len(sys.argv) > 1 else FIXTURE

SEED = 20250611

# (a, b, c, d): 2PL, 3PL, 4PL and extreme items.
ITEMS = [
    (1.0, 0.0, 0.0, 1.0),
    (1.7, -1.2, 0.0, 1.0),
    (0.45, 2.3, 0.0, 1.0),
    (2.5, 0.8, 0.2, 1.0),
    (1.2, -0.4, 0.25, 1.0),
    (0.9, 1.5, 0.1, 0.95),
    (3.8, -2.7, 0.05, 0.98),
    (0.2, 0.0, 0.0, 1.0),
]
THETAS = [-6.0, -3.5, -1.0, -0.25, 0.0, 0.3, 1.7, 4.0, 6.0]

# 2PL and 3PL banks for EAP, and response patterns over all their items.
EAP_2PL = {
    "a": [1.2, 0.8, 1.9, 1.4, 0.6, 2.2, 1.0, 1.6, 0.9, 1.3, 2.0, 0.7],
    "b": [-1.5, -0.9, -0.3, 0.0, 0.4, 0.2, 1.1, -2.0, 2.2, 0.7, -0.6, 1.6],
}
EAP_3PL = {
    "a": [1.1, 1.8, 0.7, 2.4, 1.3, 0.95, 1.6, 2.0],
    "b": [-1.0, 0.3, 1.4, -0.2, 0.9, -1.8, 2.1, 0.5],
    "c": [0.2, 0.15, 0.25, 0.1, 0.2, 0.0, 0.3, 0.18],
}
GRIDS_GL = [(41, -4.5, 4.5), (61, -6.0, 6.0)]
GRID_UNIFORM = (121, -6.0, 6.0)
PRIORS = [(0.0, 1.0), (0.5, 1.3)]

# BKT parameter sets (prior, learn, guess, slip, forget) and sequences (1 = correct).
BKT_PARAMS = [
    (0.2, 0.1, 0.2, 0.1, 0.0),
    (0.5, 0.3, 0.25, 0.15, 0.0),
    (0.05, 0.02, 0.3, 0.05, 0.0),
    (0.4, 0.2, 0.1, 0.2, 0.05),
]
BKT_SEQUENCES = [
    [1],
    [0],
    [0, 0, 1, 1, 1, 1],
    [1, 0, 1, 0, 1, 1, 0, 1, 1, 1],
    [0, 0, 0, 0, 0, 0, 0, 0],
    [1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1],
    [0, 1, 0, 0, 1, 1, 1, 0, 1, 1, 1, 1, 1, 1],
]
BKT_TRUE = (0.3, 0.15, 0.2, 0.1)  # prior, learn, guess, slip used to simulate the EM data
BKT_START = (0.2, 0.1, 0.2, 0.1)  # EM starting point: the crate's defaults
BKT_LEARNERS = 300
BKT_TOL = 0.005
BKT_MAXITER = 100

CALIB_PERSONS = 1000
CALIB_A = [0.8, 1.2, 1.6, 2.0, 1.0, 0.7, 1.4, 1.8, 1.1, 0.9, 1.5, 1.3]
CALIB_B = [-1.8, -1.0, -0.5, 0.0, 0.3, 0.8, 1.2, -0.2, 1.8, -1.3, 0.5, 0.1]

# Item statistics: 2PL answers (item 5 has a negative slope: a miskeyed item),
# a last item everyone answers correctly, about 12 % missing answers and one
# learner (row 3) who answered nothing. Own generator: SEED + 1.
ITEMSTAT_LEARNERS = 60
ITEMSTAT_A = [1.2, 0.8, 1.6, 0.5, 2.0, -0.9, 1.0, 0.3, 1.4]
ITEMSTAT_B = [-1.0, 0.0, 0.5, -2.5, 1.0, 0.0, 2.5, 0.2, -0.3]
ITEMSTAT_MISSING = 0.12


def floats(x) -> list[float]:
    return [float(v) for v in np.asarray(x, dtype=float).ravel()]


def irt_section() -> dict:
    rows = []
    for a, b, c, d in ITEMS:
        rows.append(
            {
                "a": a,
                "b": b,
                "c": c,
                "d": d,
                "p": [float(catsim_irt.icc(t, a, b, c, d)) for t in THETAS],
                "info": [float(catsim_irt.inf(t, a, b, c, d)) for t in THETAS],
            }
        )
    matrix = np.array([[a, b, c, d] for a, b, c, d in ITEMS])
    return {
        "thetas": THETAS,
        "items": rows,
        "test_info": [float(catsim_irt.test_info(t, matrix)) for t in THETAS],
    }


def grid(kind: str, n: int, lo: float, hi: float) -> tuple[np.ndarray, np.ndarray]:
    if kind == "gauss_legendre":
        return _get_quadrature_points(n, lo, hi)
    x = np.linspace(lo, hi, n)
    return x, np.full(n, (hi - lo) / (n - 1))


def posterior_moments(x, w, prior, like) -> tuple[float, float]:
    """Posterior mean and SD of theta on the grid (x, w) with a normal prior."""
    f = w * norm.pdf(x, prior[0], prior[1]) * like
    mean = float(np.sum(f * x) / np.sum(f))
    sd = float(np.sqrt(np.sum(f * (x - mean) ** 2) / np.sum(f)))
    return mean, sd


def likelihood(x, a, b, c, d, pattern) -> np.ndarray:
    like = np.ones_like(x)
    for ai, bi, ci, di, u in zip(a, b, c, d, pattern):
        p = ci + (di - ci) * expit(ai * (x - bi))
        like *= p if u else 1.0 - p
    return like


def patterns(rng: np.random.Generator, n_items: int) -> list[list[int]]:
    fixed = [[1] * n_items, [0] * n_items, [i % 2 for i in range(n_items)]]
    random = [[int(v) for v in rng.integers(0, 2, n_items)] for _ in range(5)]
    return fixed + random


def eap_section(rng: np.random.Generator) -> dict:
    grids = []
    for n, lo, hi in GRIDS_GL:
        x, w = grid("gauss_legendre", n, lo, hi)
        grids.append({"kind": "gauss_legendre", "n": n, "lo": lo, "hi": hi, "nodes": floats(x), "weights": floats(w)})
    n, lo, hi = GRID_UNIFORM
    x, w = grid("uniform", n, lo, hi)
    grids.append({"kind": "uniform", "n": n, "lo": lo, "hi": hi, "nodes": floats(x), "weights": floats(w)})

    cases = []
    for model, bank in (("2pl", EAP_2PL), ("3pl", EAP_3PL)):
        k = len(bank["a"])
        a = np.array(bank["a"])
        b = np.array(bank["b"])
        c = np.array(bank.get("c", [0.0] * k))
        d = np.ones(k)
        pats = patterns(rng, k)
        data = np.array(pats, dtype=int).T  # items x persons, girth's layout
        for n, lo, hi in GRIDS_GL:
            opts = {"quadrature_n": n, "quadrature_bounds": (lo, hi)}
            if model == "2pl":
                girth_theta = ability_eap(data, b, a, opts)
            else:
                girth_theta = ability_3pl_eap(data, b, a, c, opts)
            x, w = grid("gauss_legendre", n, lo, hi)
            sds = [posterior_moments(x, w, (0.0, 1.0), likelihood(x, a, b, c, d, p))[1] for p in pats]
            cases.append(
                {
                    "model": model,
                    "grid": {"kind": "gauss_legendre", "n": n, "lo": lo, "hi": hi},
                    "prior": [0.0, 1.0],
                    "source": "girth theta, numpy se",
                    "a": floats(a),
                    "b": floats(b),
                    "c": floats(c),
                    "patterns": pats,
                    "theta": floats(girth_theta),
                    "se": sds,
                }
            )
        n, lo, hi = GRID_UNIFORM
        x, w = grid("uniform", n, lo, hi)
        for prior in PRIORS:
            moments = [posterior_moments(x, w, prior, likelihood(x, a, b, c, d, p)) for p in pats]
            cases.append(
                {
                    "model": model,
                    "grid": {"kind": "uniform", "n": n, "lo": lo, "hi": hi},
                    "prior": list(prior),
                    "source": "numpy theta and se",
                    "a": floats(a),
                    "b": floats(b),
                    "c": floats(c),
                    "patterns": pats,
                    "theta": [m for m, _ in moments],
                    "se": [s for _, s in moments],
                }
            )
    return {"grids": grids, "cases": cases}


def pybkt_model(prior: float, learn: float, guess: float, slip: float, forget: float) -> dict:
    """A one-skill, one-resource model in the layout pyBKT's fit code uses."""
    As = np.array([[[1.0 - learn, forget], [learn, 1.0 - forget]]])
    return {
        "prior": prior,
        "learns": np.array([learn]),
        "forgets": np.array([forget]),
        "guesses": np.array([guess]),
        "slips": np.array([slip]),
        "As": As,
        "emissions": np.array([[[1.0 - guess, guess], [slip, 1.0 - slip]]]),
        "pi_0": np.array([[1.0 - prior], [prior]]),
    }


def pybkt_data(sequences: list[list[int]]) -> dict:
    flat = [obs + 1 for seq in sequences for obs in seq]  # pyBKT: 1 = wrong, 2 = correct
    lengths = np.array([len(s) for s in sequences], dtype=np.int64)
    starts = np.cumsum(np.concatenate(([1], lengths[:-1]))).astype(np.int64)
    return {
        "data": np.array([flat], dtype=np.int32),
        "starts": starts,
        "lengths": lengths,
        "resources": np.ones(len(flat), dtype=np.int64),
    }


def split(values, sequences) -> list[list[float]]:
    out, i = [], 0
    for seq in sequences:
        out.append(floats(values[i : i + len(seq)]))
        i += len(seq)
    return out


def em_fit(model: dict, data: dict) -> tuple[dict, list[float]]:
    """``pyBKT.fit.EM_fit.EM_fit``'s loop, line for line, with pyBKT's E-step and M-step.

    pyBKT 1.4.3's own loop stores ``total_loglike`` (a 1x1 array) into a
    scalar slot, which numpy 2 refuses; this copy converts it with float().
    """
    trans = np.zeros((1, 2, 2))
    emit = np.zeros((1, 2, 2))
    init = np.zeros((2, 1))
    lls: list[float] = []
    for i in range(BKT_MAXITER):
        result = EM_fit.run(data, model, trans, emit, init, 1, parallel=False)
        trans = result["all_trans_softcounts"]
        emit = result["all_emission_softcounts"]
        init = result["all_initial_softcounts"]
        for j in range(trans.shape[0]):
            trans[j] = trans[j].transpose()
        for j in range(emit.shape[0]):
            emit[j] = emit[j].transpose()
        lls.append(float(result["total_loglike"][0][0]))
        if i > 1 and abs(lls[i] - lls[i - 1]) <= BKT_TOL:
            break
        model = M_step.run(model, trans, emit, init)
    return model, lls


def bkt_section(rng: np.random.Generator) -> dict:
    traces = []
    data = pybkt_data(BKT_SEQUENCES)
    for params in BKT_PARAMS:
        model = pybkt_model(*params)
        correct, states = predict_onestep.run(model, data, parallel=False)
        zeros = (np.zeros((1, 2, 2)), np.zeros((1, 2, 2)), np.zeros((2, 1)))
        estep = EM_fit.run(data, pybkt_model(*params), *zeros, 1, parallel=False)
        traces.append(
            {
                "params": dict(zip(("prior", "learn", "guess", "slip", "forget"), params)),
                "predicted_correct": split(correct, BKT_SEQUENCES),
                "p_known_before": split(states[1], BKT_SEQUENCES),
                # alpha_out holds (unknown, known) pairs interleaved in C order
                "p_known_posterior": split(estep["alpha_out"].ravel()[1::2], BKT_SEQUENCES),
                "log_likelihood": float(estep["total_loglike"][0][0]),
            }
        )

    prior, learn, guess, slip = BKT_TRUE
    sequences = []
    for _ in range(BKT_LEARNERS):
        length = int(rng.integers(4, 21))
        known = rng.random() < prior
        seq = []
        for _ in range(length):
            p = 1.0 - slip if known else guess
            seq.append(int(rng.random() < p))
            if not known and rng.random() < learn:
                known = True
        sequences.append(seq)
    fitted, lls = em_fit(pybkt_model(*BKT_START, 0.0), pybkt_data(sequences))
    em = {
        "true": dict(zip(("prior", "learn", "guess", "slip"), BKT_TRUE)),
        "start": dict(zip(("prior", "learn", "guess", "slip"), BKT_START)),
        "tol": BKT_TOL,
        "maxiter": BKT_MAXITER,
        "sequences": ["".join(str(v) for v in s) for s in sequences],
        "fitted": {
            "prior": float(fitted["prior"]),
            "learn": float(fitted["learns"][0]),
            "guess": float(fitted["guesses"][0]),
            "slip": float(fitted["slips"][0]),
            "forget": float(fitted["forgets"][0]),
        },
        "log_likelihoods": floats(lls),
    }
    return {"sequences": BKT_SEQUENCES, "traces": traces, "em": em}


def calibration_section(rng: np.random.Generator) -> dict:
    a = np.array(CALIB_A)
    b = np.array(CALIB_B)
    theta = rng.normal(0.0, 1.0, CALIB_PERSONS)
    p = expit(a[None, :] * (theta[:, None] - b[None, :]))
    resp = (rng.random(p.shape) < p).astype(int)  # persons x items
    n, lo, hi = GRIDS_GL[0]
    opts = {"quadrature_n": n, "quadrature_bounds": (lo, hi), "use_LUT": False, "max_iteration": 200}
    result = twopl_mml(resp.T, opts)
    return {
        "grid": {"kind": "gauss_legendre", "n": n, "lo": lo, "hi": hi},
        "true_a": CALIB_A,
        "true_b": CALIB_B,
        "responses": ["".join(str(v) for v in row) for row in resp],
        "girth_a": floats(result["Discrimination"]),
        "girth_b": floats(result["Difficulty"]),
    }


def point_biserial(x: np.ndarray, y: np.ndarray):
    """scipy's point-biserial correlation; None where it is undefined (scipy: nan)."""
    if len(x) < 2 or np.all(x == x[0]) or np.all(y == y[0]):
        return None
    return float(pointbiserialr(x, y).statistic)


def analytics_section() -> dict:
    rng = np.random.default_rng(SEED + 1)
    n = ITEMSTAT_LEARNERS
    a = np.array(ITEMSTAT_A)
    b = np.array(ITEMSTAT_B)
    theta = rng.normal(0.0, 1.0, n)
    p = expit(a[None, :] * (theta[:, None] - b[None, :]))
    resp = (rng.random(p.shape) < p).astype(int)
    resp = np.hstack([resp, np.ones((n, 1), dtype=int)])
    missing = rng.random(resp.shape) < ITEMSTAT_MISSING
    missing[3, :] = True
    total = np.where(missing, 0, resp).sum(axis=1)
    items = []
    for j in range(resp.shape[1]):
        mask = ~missing[:, j]
        x = resp[mask, j]
        tot = total[mask]
        items.append(
            {
                "responses": int(mask.sum()),
                "correct": int(x.sum()),
                "p_value": float(np.mean(x)) if mask.any() else None,
                "point_biserial": point_biserial(x, tot - x),
                "point_biserial_uncorrected": point_biserial(x, tot),
            }
        )
    rows = ["".join("." if missing[i, j] else str(resp[i, j]) for j in range(resp.shape[1])) for i in range(n)]

    values = np.concatenate([rng.beta(2.0, 3.0, 40), rng.uniform(0.9, 1.0, 10)])
    counts, edges = np.histogram(values, bins=10, range=(0.0, 1.0))
    histogram = {
        "values": floats(values),
        "threshold": 0.95,
        "counts": [int(c) for c in counts],
        "edges": floats(edges),
        "mean": float(np.mean(values)),
        "median": float(np.median(values)),
        "share_mastered": float(np.mean(values >= 0.95)),
    }

    durations = [floats(np.round(rng.lognormal(np.log(40.0), 0.6, k))) for k in (1, 2, 5, 8)]
    medians = {"durations": durations, "medians": [float(np.median(d)) for d in durations]}

    sequences = [[int(v) for v in rng.integers(0, 2, k)] for k in (2, 7, 10, 15, 20)]
    slopes = {
        "sequences": sequences,
        "slopes": [float(np.polyfit(np.arange(len(s)), np.array(s, dtype=float), 1)[0]) for s in sequences],
    }
    return {
        "item_statistics": {"responses": rows, "items": items},
        "histogram": histogram,
        "medians": medians,
        "slopes": slopes,
    }


def main() -> int:
    rng = np.random.default_rng(SEED)
    doc = {
        "generator": "scripts/reference/learning_reference.py",
        "seed": SEED,
        "versions": {pkg: version(pkg) for pkg in ("catsim", "girth", "pyBKT", "numpy", "scipy")},
        "python": sys.version.split()[0],
        "irt": irt_section(),
        "eap": eap_section(rng),
        "bkt": bkt_section(rng),
        "calibration": calibration_section(rng),
        "analytics": analytics_section(),
    }
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(doc, indent=1) + "\n")
    sys.stderr.write(f"wrote {OUT}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
