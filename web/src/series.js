// One metric's curve as the page keeps it: buckets of (x, min, max, last), loaded downsampled
// from the coordinator's curve endpoint and grown by pushed points. Past `limit` buckets it
// merges neighbours in pairs, as the server's buckets would, so a run of any length stays a few
// thousand points to draw.

export const METRICS = ['loss', 'val_loss', 'val_accuracy', 'learning_rate', 'grad_norm'];

export class Series {
  constructor(limit = 4000) {
    this.limit = limit;
    this.clear();
  }

  clear() {
    this.x = [];
    this.min = [];
    this.max = [];
    this.last = [];
    this.lastX = -Infinity;  // the newest raw x taken, so a point is never taken twice
  }

  // Buckets of GET /v1/job/{id}/curve, columns [x_lo, x_hi, count, min, max, first, last].
  load(reply) {
    this.clear();
    for (const [, xHi, count, lo, hi, , last] of reply.buckets) {
      if (!count) continue;
      this.push(xHi, lo, hi, last);
    }
    if (reply.buckets.length) this.lastX = reply.buckets[reply.buckets.length - 1][1];
  }

  push(x, lo, hi, last) {
    this.x.push(x);
    this.min.push(lo);
    this.max.push(hi);
    this.last.push(last);
  }

  // Raw telemetry points (step, wall_time_ns, metric values); xMode 'step' or 'time' (ms).
  append(points, metric, xMode) {
    let added = 0;
    for (const p of points) {
      const v = p[metric];
      if (v === null || v === undefined || !Number.isFinite(v)) continue;
      const x = xMode === 'time' ? Math.floor(p.wall_time_ns / 1e6) : p.step;
      if (x <= this.lastX) continue;
      this.lastX = x;
      this.push(x, v, v, v);
      added += 1;
    }
    if (this.x.length > this.limit) this.halve();
    return added;
  }

  halve() {
    const out = { x: [], min: [], max: [], last: [] };
    const n = this.x.length;
    for (let i = 0; i < n; i += 2) {
      const j = Math.min(i + 1, n - 1);
      out.x.push(this.x[j]);
      out.min.push(Math.min(this.min[i], this.min[j]));
      out.max.push(Math.max(this.max[i], this.max[j]));
      out.last.push(this.last[j]);
    }
    Object.assign(this, out);
  }

  get length() {
    return this.x.length;
  }
}

// Exponential moving average, debiased as TensorBoard's smoothing is (weight 0: the raw values).
export function smooth(values, weight) {
  if (!weight) return values;
  const out = new Array(values.length);
  let acc = 0;
  let n = 0;
  for (let i = 0; i < values.length; i++) {
    const v = values[i];
    if (v === null || !Number.isFinite(v)) {
      out[i] = null;
      continue;
    }
    acc = acc * weight + (1 - weight) * v;
    n += 1;
    out[i] = acc / (1 - weight ** n);
  }
  return out;
}

// The step the trainer had reached at a wall time, interpolated between known (time_ms, step)
// pairs: pushed points, the steps config changes took effect at, the last step reported. It
// places a change that has no applied step of its own (a refusal, a freeze) on a step axis.
export class Timeline {
  constructor(limit = 20000) {
    this.limit = limit;
    this.t = [];
    this.step = [];
  }

  addPair(t, step) {
    const n = this.t.length;
    if (!n || t > this.t[n - 1]) {
      this.t.push(t);
      this.step.push(step);
    } else {
      let i = n - 1;  // rare: a pair older than the newest, from a marker
      while (i > 0 && this.t[i - 1] >= t) i--;
      if (this.t[i] === t) return;
      this.t.splice(i, 0, t);
      this.step.splice(i, 0, step);
    }
    if (this.t.length > this.limit) {
      this.t = this.t.filter((_, i) => i % 2 === 1);
      this.step = this.step.filter((_, i) => i % 2 === 1);
    }
  }

  add(points) {
    for (const p of points) this.addPair(Math.floor(p.wall_time_ns / 1e6), p.step);
  }

  stepAt(timeMs) {
    const { t, step } = this;
    if (!t.length || timeMs < t[0]) return null;
    if (timeMs >= t[t.length - 1]) return step[step.length - 1];
    let lo = 0;
    let hi = t.length - 1;
    while (hi - lo > 1) {
      const mid = (lo + hi) >> 1;
      if (t[mid] <= timeMs) lo = mid;
      else hi = mid;
    }
    const f = (timeMs - t[lo]) / (t[hi] - t[lo] || 1);
    return Math.round(step[lo] + f * (step[hi] - step[lo]));
  }
}
