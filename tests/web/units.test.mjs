// The dashboard's pure parts, without a browser: the curve model (loading buckets, taking pushed
// points once, halving), smoothing, the step-at-time interpolation, how markers are placed and
// described, the config tree and how typed text becomes a value.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { configTree, typedValue } from '../../web/src/config_panel.js';
import { num, value } from '../../web/src/format.js';
import { chartMarkers, describe } from '../../web/src/markers.js';
import { Series, Timeline, smooth } from '../../web/src/series.js';

const point = (step, loss, extra = {}) => ({ step, loss, wall_time_ns: (1000 + step) * 1e6, val_loss: null, ...extra });

test('a series loads buckets and takes each pushed point once', () => {
  const s = new Series();
  s.load({ buckets: [[1, 10, 10, 0.5, 2.0, 2.0, 0.6], [11, 20, 0, 0, 0, 0, 0], [21, 30, 10, 0.3, 0.9, 0.9, 0.4]] });
  assert.deepEqual(s.x, [10, 30]);  // the empty bucket is left out
  assert.deepEqual(s.last, [0.6, 0.4]);
  assert.equal(s.append([point(25, 1), point(30, 1), point(31, 0.2), point(32, null)], 'loss', 'step'), 1);
  assert.deepEqual(s.x, [10, 30, 31]);
  assert.equal(s.append([point(31, 0.2)], 'loss', 'step'), 0);
  assert.equal(s.append([point(40, 0.1)], 'loss', 'time'), 1);
  assert.equal(s.x[3], 1040);  // ms
});

test('past its limit a series merges neighbours: min of mins, max of maxes, the later last', () => {
  const s = new Series(4);
  s.append([1, 2, 3, 4, 5].map((i) => point(i, i % 2 ? 10 * i : -i)), 'loss', 'step');
  assert.deepEqual(s.x, [2, 4, 5]);
  assert.deepEqual(s.min, [-2, -4, 50]);
  assert.deepEqual(s.max, [10, 30, 50]);
  assert.deepEqual(s.last, [-2, -4, 50]);
});

test('smoothing is a debiased EMA that skips missing values', () => {
  assert.deepEqual(smooth([1, 2], 0), [1, 2]);
  const out = smooth([1, null, 3], 0.5);
  assert.equal(out[0], 1);  // debiased: the first value is itself
  assert.equal(out[1], null);
  assert.ok(Math.abs(out[2] - (0.5 * 0.5 + 0.5 * 3) / (1 - 0.25)) < 1e-12);
});

test('the step at a time is interpolated between known pairs', () => {
  const t = new Timeline();
  t.addPair(1000, 10);
  t.addPair(3000, 30);
  t.addPair(2000, 100);  // an older pair, from a marker: kept in time order
  assert.equal(t.stepAt(500), null);
  assert.equal(t.stepAt(1500), 55);
  assert.equal(t.stepAt(2500), 65);
  assert.equal(t.stepAt(9000), 30);
});

const marker = (m) => ({ seq: 1, kind: 'write', revision: 2, actor: 'human:ana', reason: 'slower', time_ms: 2000,
  accepted: true, refusal: '', count: 1, applied_step: 120,
  keys: [{ path: 'training/optimizer/learning_rate', old: 0.05, new: 0.0123 }], ...m });

test('markers sit where they took effect, or where the trainer was when they were made', () => {
  const t = new Timeline();
  t.addPair(1000, 100);
  t.addPair(3000, 300);
  const [applied, pending, refused] = chartMarkers([marker({}), marker({ applied_step: null }),
    marker({ accepted: false, refusal: 'frozen', actor: 'policy:tuner', count: 3 })], 'step', t);
  assert.equal(applied.x, 120);
  assert.equal(applied.dashed, false);
  assert.equal(pending.x, 200);
  assert.equal(pending.dashed, true);
  assert.equal(refused.color, '#dc2626');
  assert.equal(chartMarkers([marker({})], 'time', t)[0].x, 2000);
  assert.equal(describe(marker({})), 'r2 human:ana: learning_rate 0.05 → 0.0123 — slower — applied at step 120');
  assert.match(describe(marker({ accepted: false, refusal: 'frozen', count: 3 })), /refused ×3: frozen$/);
});

test('typed text becomes a value of the knob type where it parses, else stays text for the server to refuse', () => {
  assert.equal(typedValue(' 0.01 ', 'float64'), 0.01);
  assert.equal(typedValue('1e-3', 'float64'), 0.001);
  assert.equal(typedValue('fast', 'float64'), 'fast');
  assert.equal(typedValue('2.5', 'int64'), 2.5);  // the server says an int64 knob takes no fraction
  assert.equal(typedValue('true', 'bool'), true);
  assert.equal(typedValue('yes', 'bool'), 'yes');
  assert.equal(typedValue('adamw', 'string'), 'adamw');
});

test('the config tree lists folders before their keys, with schema knobs not set shown at their default', () => {
  const knobs = [
    { key: 'training/optimizer/learning_rate', type: 'float64', default: 0.05, takes_effect: 'next_step' },
    { key: 'training/control/batch_size', type: 'int64', default: 64, takes_effect: 'next_epoch' },
    { key: 'trainvisor/revision', type: 'int64', default: 0, takes_effect: 'agent' },
  ];
  const rows = configTree({ 'training/optimizer/learning_rate': 0.1 }, knobs);
  assert.deepEqual(rows.map((r) => r.folder || r.path), ['training', 'training/control', 'training/control/batch_size',
    'training/optimizer', 'training/optimizer/learning_rate']);
  const lr = rows.find((r) => r.path === 'training/optimizer/learning_rate');
  assert.equal(lr.value, 0.1);
  assert.equal(lr.set, true);
  const batch = rows.find((r) => r.path === 'training/control/batch_size');
  assert.equal(batch.value, 64);
  assert.equal(batch.set, false);
  assert.equal(batch.spec.takes_effect, 'next_epoch');
});

test('numbers read as written', () => {
  assert.equal(value(0.0010000000000000002, 'float64'), '0.001');
  assert.equal(value(1, 'float64'), '1.0');
  assert.equal(value(64, 'int64'), '64');
  assert.equal(value(null), '–');
  assert.equal(num(58259), '58,259');
  assert.equal(num(1e-8), '1.00e-8');
});
