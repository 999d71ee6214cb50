#!/usr/bin/python3
"""The MMD permutation test in numpy, timed in two forms, for bench_drift_mmd to compare with.

Reads the windows and the permutations bench_drift_mmd wrote into --dir:
    x.f32            the reference window, n rows of d float32 features (row-major, raw)
    y.f32            the current window, m rows of d float32 features
    membership.u8    B rows of n + m bytes: 1 where a pooled row (reference rows first) goes to
                     the reference-sized side of that permutation
and runs the same test as tv_drift's MmdReference::test on them in two forms:

  loop     the form alibi-detect's MMDDrift uses: the pooled kernel matrix once, then for each
           permutation a permuted copy k[idx][:, idx] and its three block sums
           (alibi_detect.utils.pytorch.distance.mmd2_from_kernel_matrix, here in numpy);
  batched  the fastest numpy form we know: float32 throughout, Z @ Z.T (a SYRK in numpy), the
           kernel computed in place, and all B permuted statistics from one product K @ U with
           the 0/1 indicator matrix U of the permutations; no Python loop over permutations.

Both use tv_drift's definitions: a Gaussian RBF kernel exp(-|a - b|^2 / (2 sigma^2)), sigma^2
half the lower median of the squared distances between distinct rows of at most
--bandwidth-rows evenly spaced reference rows (row k * n // s), the unbiased MMD^2
    S_xx / (n (n-1)) + S_yy / (m (m-1)) - 2 S_xy / (n m),
and p = (k + 1) / (B + 1), k the number of permuted statistics >= the observed one.

Prints one JSON object: for each form the medians over its repetitions of its CPU time
(time.process_time; "ms", "runs_ms" each repetition's) and of its wall time (time.perf_counter;
"wall_ms"), the data already in memory, and its statistic and p-value. On one thread the CPU time
is the cost of the work; the wall time adds whatever else the machine ran meanwhile. Exits 1, saying why on stderr, when the
two forms disagree with each other, or with --expect (the C++ result), by more than --tolerance
on a statistic or on the p-value beyond a rounding-level tie. Threads: the caller sets OPENBLAS_NUM_THREADS and
OMP_NUM_THREADS before this process starts (one thread each unless it says otherwise).
"""

import argparse
import json
import os
import statistics
import sys
import time

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402  (after the thread settings, which OpenBLAS reads when it loads)


def fail(message):
    print(f"mmd_numpy: {message}", file=sys.stderr)
    sys.exit(1)


def read_inputs(args):
    n, m, d, b = args.n, args.m, args.d, args.permutations

    def load(name, dtype, count):
        path = os.path.join(args.dir, name)
        data = np.fromfile(path, dtype=dtype)
        if data.size != count:
            fail(f"{path}: expected {count} values, found {data.size}")
        return data

    x = load("x.f32", np.float32, n * d).reshape(n, d)
    y = load("y.f32", np.float32, m * d).reshape(m, d)
    member = load("membership.u8", np.uint8, b * (n + m)).reshape(b, n + m).astype(bool)
    if not (member.sum(axis=1) == n).all():
        fail("membership.u8: every permutation must put exactly n rows on the reference side")
    return x, y, member


def sigma2_from(sq_dist_ref, n, limit):
    """Half the lower median of the squared distances between distinct sampled reference rows,
    read off the reference block of a squared-distance matrix; zeros are skipped when they are
    the median (most rows equal)."""
    s = min(n, limit)
    rows = np.arange(s) * n // s
    d = sq_dist_ref[np.ix_(rows, rows)][np.triu_indices(s, 1)]

    def lower_median(v):
        return float(np.partition(v, (v.size + 1) // 2 - 1)[(v.size + 1) // 2 - 1])

    median = lower_median(d)
    if median == 0:
        d = d[d > 0]
        if d.size == 0:
            fail("reference: all sampled rows are equal; no bandwidth")
        median = lower_median(d)
    return median / 2.0


def loop_form(x, y, member, limit):
    n, m = len(x), len(y)
    z = np.concatenate([x, y])
    zz = (z * z).sum(axis=1, keepdims=True)
    dist = np.maximum(zz + zz.T - 2.0 * (z @ z.T), 0.0)  # alibi's squared_pairwise_distance
    gamma = np.float32(1.0 / (2.0 * sigma2_from(dist, n, limit)))
    k = np.exp(-gamma * dist)
    k = k - np.diag(np.diag(k))  # zero diagonal, as MMDDrift.score does

    def block_statistic(km):
        kxx, kyy, kxy = km[:-m, :-m], km[-m:, -m:], km[-m:, :-m]
        return float(kxx.sum()) / (n * (n - 1)) + float(kyy.sum()) / (m * (m - 1)) - 2.0 * float(
            kxy.mean()
        )

    mmd2 = block_statistic(k)
    permuted = np.empty(len(member))
    for b, chosen in enumerate(member):
        idx = np.concatenate([np.flatnonzero(chosen), np.flatnonzero(~chosen)])
        permuted[b] = block_statistic(k[idx][:, idx])
    return mmd2, permuted


def batched_form(x, y, member, limit):
    n, m = len(x), len(y)
    z = np.concatenate([x, y])
    zz = np.einsum("ij,ij->i", z, z)
    k = z @ z.T  # numpy runs a SYRK for a product with its own transpose
    k *= -2.0
    k += zz[:, None]
    k += zz[None, :]
    np.maximum(k, 0.0, out=k)
    gamma = np.float32(1.0 / (2.0 * sigma2_from(k[:n, :n], n, limit)))
    k *= -gamma
    np.exp(k, out=k)
    np.fill_diagonal(k, 0.0)

    # With u_b the indicator of the reference-sized side, q_b = u_b' K u_b = S_xx,
    # p_b = u_b' K 1 = S_xx + S_xy and T = 1' K 1 = S_xx + 2 S_xy + S_yy.
    u = member.T.astype(np.float32)  # (n + m) x B
    ku = k @ u
    q = np.einsum("ij,ij->j", u, ku, dtype=np.float64)
    r = k.sum(axis=1, dtype=np.float64)
    p = r @ u.astype(np.float64)
    t = r.sum()
    c_xx, c_yy, c_xy = 1.0 / (n * (n - 1)), 1.0 / (m * (m - 1)), 2.0 / (n * m)
    permuted = c_xx * q + c_yy * (t - 2.0 * p + q) - c_xy * (p - q)
    s_xx, s_xy = k[:n, :n].sum(dtype=np.float64), k[:n, n:].sum(dtype=np.float64)
    mmd2 = c_xx * s_xx + c_yy * (t - s_xx - 2.0 * s_xy) - c_xy * s_xy
    return float(mmd2), permuted


def p_value(mmd2, permuted):
    return (int((permuted >= mmd2).sum()) + 1) / (len(permuted) + 1)


def timed(form, repeats, *inputs):
    """Runs `form` `repeats` times: the medians of its CPU time and of its wall time (ms), and
    its last result."""
    cpu, wall, result = [], [], None
    for _ in range(repeats):
        start_cpu, start_wall = time.process_time(), time.perf_counter()
        result = form(*inputs)
        wall.append((time.perf_counter() - start_wall) * 1e3)
        cpu.append((time.process_time() - start_cpu) * 1e3)
    return {"ms": statistics.median(cpu), "wall_ms": statistics.median(wall), "runs_ms": cpu}, result


def check_agreement(name_a, a, name_b, b, tolerance):
    """Statistics within `tolerance`; p-values equal unless a permuted statistic lies within
    `tolerance` of the observed one (a rounding-level tie that either side may count)."""
    (mmd2_a, perm_a), (mmd2_b, perm_b) = a, b
    if abs(mmd2_a - mmd2_b) > tolerance:
        fail(f"MMD^2 differs: {name_a} {mmd2_a!r}, {name_b} {mmd2_b!r}")
    worst = float(np.max(np.abs(perm_a - perm_b)))
    if worst > tolerance:
        fail(f"permuted statistics differ by up to {worst!r} between {name_a} and {name_b}")
    ties = int((np.abs(perm_a - mmd2_a) <= tolerance).sum())
    gap = abs(p_value(mmd2_a, perm_a) - p_value(mmd2_b, perm_b)) * (len(perm_a) + 1)
    if gap > ties + 1e-9:
        fail(f"p-values differ beyond rounding between {name_a} and {name_b}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--dir", required=True)
    parser.add_argument("--n", type=int, required=True)
    parser.add_argument("--m", type=int, required=True)
    parser.add_argument("--d", type=int, required=True)
    parser.add_argument("--permutations", type=int, required=True)
    parser.add_argument("--bandwidth-rows", type=int, default=1000)
    parser.add_argument("--loop-repeats", type=int, default=3)
    parser.add_argument("--batched-repeats", type=int, default=5)
    parser.add_argument(
        "--expect",
        help="float64 file from tv_drift: MMD^2, p-value, then the B permuted statistics",
    )
    parser.add_argument("--tolerance", type=float, default=1e-5)
    args = parser.parse_args()
    for name in ("n", "m", "d", "permutations", "loop_repeats", "batched_repeats"):
        if getattr(args, name) < 1:
            fail(f"--{name.replace('_', '-')}: must be at least 1")
    if args.n < 2 or args.m < 2:
        fail("--n, --m: at least 2 rows each")

    inputs = (*read_inputs(args), args.bandwidth_rows)
    loop_times, loop = timed(loop_form, args.loop_repeats, *inputs)
    batched_times, batched = timed(batched_form, args.batched_repeats, *inputs)
    check_agreement("loop", loop, "batched", batched, args.tolerance)
    if args.expect:
        theirs = np.fromfile(args.expect, dtype=np.float64)
        if theirs.size != args.permutations + 2:
            fail(f"{args.expect}: expected {args.permutations + 2} values, found {theirs.size}")
        if p_value(theirs[0], theirs[2:]) != theirs[1]:
            fail(f"{args.expect}: its p-value does not follow from its statistics")
        check_agreement("batched", batched, "tv_drift", (theirs[0], theirs[2:]), args.tolerance)

    print(
        json.dumps(
            {
                "threads": {k: os.environ.get(k) for k in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS")},
                "numpy": np.__version__,
                "loop": {**loop_times, "mmd2": loop[0], "p_value": p_value(*loop)},
                "batched": {**batched_times, "mmd2": batched[0], "p_value": p_value(*batched)},
            }
        )
    )


if __name__ == "__main__":
    main()
