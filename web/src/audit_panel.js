// The job's config audit log, newest first, refusals included: who changed what, why, and
// whether the hub took it.
import { html } from 'htm/preact';
import { clock, datetime, value } from './format.js';

const actorClass = (actor) => (actor.startsWith('human:') ? 'human' : actor.startsWith('policy:') ? 'policy' : 'system');

function change(e) {
  if (e.kind !== 'write') return e.kind === 'freeze' ? 'frozen' : 'unfrozen';
  return `${value(e.old)} → ${value(e.new)}`;
}

export function AuditPanel({ entries }) {
  if (!entries.length) return html`<p class="muted">No config changes yet.</p>`;
  const shown = entries.slice(-300).reverse();
  return html`<table class="audit">
    <thead><tr><th>Time</th><th>Rev</th><th>Actor</th><th>Key</th><th>Change</th><th>Reason</th><th>Outcome</th></tr></thead>
    <tbody>${shown.map((e) => html`<tr key=${e.seq} data-seq=${e.seq}
        class=${e.accepted ? 'accepted' : 'refused'}>
      <td title=${datetime(e.time_ms)}>${clock(e.time_ms)}</td>
      <td>${e.revision}</td>
      <td><span class=${`actor ${actorClass(e.actor)}`}>${e.actor}</span></td>
      <td class="mono">${e.path}</td>
      <td class="mono">${change(e)}</td>
      <td class="reason-text">${e.reason}</td>
      <td>${e.accepted ? html`<span class="badge ok">${e.kind === 'write' ? 'accepted' : 'done'}</span>`
        : html`<span class="badge refused" title=${e.refusal}>refused${e.count > 1 ? ` ×${e.count}` : ''}</span>
          <div class="refusal">${e.refusal}</div>`}</td>
    </tr>`)}</tbody>
  </table>`;
}
