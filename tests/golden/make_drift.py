#!/usr/bin/python3
"""Writes drift_mmd.json and drift_ks.json: inputs and expected outputs of the two-sample drift
tests, computed in float64 with numpy (and scipy for the KS cross-check).

MMD cases: the unbiased MMD^2 with a Gaussian RBF kernel whose sigma^2 is half the lower median
of the squared distances between distinct rows of an evenly spaced reference sample (row
k * n // s for k < s), or a given sigma; the permuted statistics for the permutations of
tv_drift's permutation_membership (SplitMix64 and Lemire's bounded integers, restated below);
p = (k + 1) / (B + 1).

KS cases: scipy.stats.ks_2samp's statistic per feature; the per-feature p-value
Q_KS((sqrt(e) + 0.12 + 0.11 / sqrt(e)) D) with e = n m / (n + m), Q_KS = scipy.special.kolmogorov;
Bonferroni and Benjamini-Hochberg corrections; and, for comparison only, ks_2samp's own
asymptotic p-value (method="asymp"), which uses the exact one-sample distribution at round(e).

Debian's python3-scipy cannot be installed beside libboost1.81-dev (its python3-pythran pulls
libboost1.74-dev), so the generator runs scipy from the unpacked package:
    mkdir -p /tmp/scipy && cd /tmp/scipy && apt-get download python3-scipy python3-decorator \\
        liblbfgsb0 && for f in *.deb; do dpkg -x "$f" root; done
    cd - && LD_LIBRARY_PATH=/tmp/scipy/root/usr/lib/x86_64-linux-gnu \\
        PYTHONPATH=/tmp/scipy/root/usr/lib/python3/dist-packages \\
        /usr/bin/python3 tests/golden/make_drift.py
"""

import json
from pathlib import Path

import numpy as np
import scipy
import scipy.special
import scipy.stats

MASK = (1 << 64) - 1


class SplitMix64:
    def __init__(self, seed):
        self.state = seed & MASK

    def next(self):
        self.state = (self.state + 0x9E3779B97F4A7C15) & MASK
        z = self.state
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK
        return z ^ (z >> 31)

    def below(self, bound):
        threshold = ((1 << 64) - bound) % bound
        while True:
            m = self.next() * bound
            low = m & MASK
            if low >= bound or low >= threshold:
                return m >> 64


def membership(pooled, first, permutations, seed):
    rng = SplitMix64(seed)
    out = []
    for _ in range(permutations):
        order = list(range(pooled))
        chosen = np.zeros(pooled, dtype=bool)
        for i in range(first):
            j = i + rng.below(pooled - i)
            order[i], order[j] = order[j], order[i]
            chosen[order[i]] = True
        out.append(chosen)
    return out


def unbiased_mmd2(k, first):
    n, m = first.sum(), (~first).sum()
    kxx = k[np.ix_(first, first)].sum()
    kyy = k[np.ix_(~first, ~first)].sum()
    kxy = k[np.ix_(first, ~first)].sum()
    return kxx / (n * (n - 1)) + kyy / (m * (m - 1)) - 2 * kxy / (n * m)


def mmd_case(name, x, y, permutations, seed, sigma=0.0, bandwidth_rows=1000):
    x64, y64 = x.astype(np.float64), y.astype(np.float64)
    n = len(x)
    given_sigma = sigma
    if sigma <= 0:
        s = min(n, bandwidth_rows)
        rows = x64[[k * n // s for k in range(s)]]
        d2 = ((rows[:, None, :] - rows[None, :, :]) ** 2).sum(-1)
        upper = np.sort(d2[np.triu_indices(s, 1)])
        sigma = np.sqrt(upper[(len(upper) + 1) // 2 - 1] / 2)
    z = np.concatenate([x64, y64])
    d2 = ((z[:, None, :] - z[None, :, :]) ** 2).sum(-1)
    k = np.exp(-d2 / (2 * sigma * sigma))
    np.fill_diagonal(k, 0.0)
    first = np.arange(len(z)) < n
    observed = unbiased_mmd2(k, first)
    permuted = [unbiased_mmd2(k, f) for f in membership(len(z), n, permutations, seed)]
    exceeding = sum(1 for p in permuted if p >= observed)
    return {"name": name, "dims": x.shape[1], "reference": x.ravel().tolist(),
            "current": y.ravel().tolist(), "permutations": permutations, "seed": seed,
            "bandwidth_rows": bandwidth_rows, "given_sigma": given_sigma,
            "sigma": float(sigma), "mmd2": float(observed), "permuted": [float(p) for p in permuted],
            "p_value": (exceeding + 1) / (permutations + 1)}


def ks_case(name, x, y):
    n, m, dims = len(x), len(y), x.shape[1]
    e = n * m / (n + m)
    root = np.sqrt(e)
    stats, ps, scipy_ps = [], [], []
    for f in range(dims):
        r = scipy.stats.ks_2samp(x[:, f].astype(np.float64), y[:, f].astype(np.float64))
        stats.append(float(r.statistic))
        ps.append(float(scipy.special.kolmogorov((root + 0.12 + 0.11 / root) * r.statistic)))
        scipy_ps.append(float(scipy.stats.ks_2samp(x[:, f], y[:, f], method="asymp").pvalue))
    order = np.sort(ps)
    bh = min(1.0, min(order[k] * dims / (k + 1) for k in range(dims)))
    return {"name": name, "dims": dims, "reference": x.ravel().tolist(),
            "current": y.ravel().tolist(), "statistic": stats, "p_value": ps,
            "scipy_asymp_p_value": scipy_ps, "bonferroni": min(1.0, min(ps) * dims), "fdr": bh}


def main():
    rng = np.random.default_rng(20261207)
    f32 = lambda a: np.asarray(a, dtype=np.float32)
    mmd = [
        mmd_case("no drift, 40 x 40 rows of 5", f32(rng.normal(size=(40, 5))),
                 f32(rng.normal(size=(40, 5))), 50, 3),
        mmd_case("mean shift 0.5, 50 x 30 rows of 8", f32(rng.normal(size=(50, 8))),
                 f32(rng.normal(0.5, 1.0, size=(30, 8))), 100, 4),
        mmd_case("fixed sigma 1.5, 30 x 30 rows of 3", f32(rng.normal(size=(30, 3))),
                 f32(rng.normal(0.2, 1.2, size=(30, 3))), 60, 5, sigma=1.5),
        mmd_case("bandwidth from 25 of 60 rows, uniform pixels", f32(rng.uniform(size=(60, 16))),
                 f32(rng.uniform(size=(45, 16)) ** 1.3), 80, 6, bandwidth_rows=25),
    ]
    ks = [
        ks_case("shift in feature 2, 80 x 80 rows of 4",
                f32(rng.normal(size=(80, 4))),
                f32(rng.normal(size=(80, 4)) + np.array([0, 0, 0.9, 0]))),
        ks_case("ties: integers, 50 x 70 rows of 3", f32(rng.integers(0, 6, size=(50, 3))),
                f32(rng.integers(0, 7, size=(70, 3)))),
        ks_case("no drift, 200 x 150 rows of 6", f32(rng.normal(size=(200, 6))),
                f32(rng.normal(size=(150, 6)))),
    ]
    here = Path(__file__).resolve().parent
    meta = {"generator": "tests/golden/make_drift.py", "numpy": np.__version__,
            "scipy": scipy.__version__}
    (here / "drift_mmd.json").write_text(json.dumps({**meta, "cases": mmd}, indent=1) + "\n")
    (here / "drift_ks.json").write_text(json.dumps({**meta, "cases": ks}, indent=1) + "\n")
    print(f"wrote {len(mmd)} MMD and {len(ks)} KS cases")


if __name__ == "__main__":
    main()
