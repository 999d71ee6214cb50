// The job's config changes (GET /v1/job/{id}/config/markers) as the charts draw them: an accepted
// write at the step it took effect, or, before the trainer reports it and for refusals and
// freezes, at the step the trainer had reached when it was made.
import { value } from './format.js';

export const COLORS = { human: '#2563eb', policy: '#d97706', system: '#64748b', refused: '#dc2626' };

export function actorKind(actor) {
  if (actor.startsWith('human:')) return 'human';
  if (actor.startsWith('policy:')) return 'policy';
  return 'system';
}

const leaf = (path) => path.slice(path.lastIndexOf('/') + 1);

export function describe(m) {
  const what = m.kind === 'write'
    ? m.keys.map((k) => `${leaf(k.path)} ${value(k.old)} → ${value(k.new)}`).join(', ')
    : `${m.kind} ${m.keys.map((k) => k.path).join(', ')}`;
  const where = !m.accepted
    ? `refused${m.count > 1 ? ` ×${m.count}` : ''}: ${m.refusal}`
    : m.kind !== 'write' ? '' : m.applied_step !== null ? `applied at step ${m.applied_step}` : 'not yet applied';
  return [`r${m.revision} ${m.actor}: ${what}`, m.reason, where].filter(Boolean).join(' — ');
}

// xMode 'step': x is a step; 'time': x is ms since the epoch.
export function chartMarkers(markers, xMode, timeline) {
  const out = [];
  for (const m of markers) {
    let x;
    if (xMode === 'time') x = m.time_ms;
    else if (m.accepted && m.kind === 'write' && m.applied_step !== null) x = m.applied_step;
    else x = timeline.stepAt(m.time_ms);
    if (x === null || x === undefined) continue;
    const kind = m.accepted ? actorKind(m.actor) : 'refused';
    out.push({
      x,
      color: COLORS[kind],
      dashed: !m.accepted || m.kind !== 'write' || m.applied_step === null,
      text: describe(m),
      refused: !m.accepted,
    });
  }
  // Refusals drawn last, on top: a freeze and the refusal it causes often share a pixel.
  return [...out.filter((m) => !m.refused), ...out.filter((m) => m.refused)];
}
