// Small pieces the fleet and job pages share.
import { html } from 'htm/preact';
import { useState } from 'preact/hooks';
import { api } from './api.js';

export function StatusBadge({ status }) {
  if (!status) return '';
  return html`<span class=${`status status-${status}`} data-status=${status}>${status}</span>`;
}

// Desired vs applied config revision; the lag is how many revisions the trainer has yet to apply.
export function RevisionLag({ desired, applied }) {
  if (desired === null || desired === undefined) return '–';
  if (applied === null || applied === undefined) return html`<span class="rev" data-desired=${desired}>${desired} / –</span>`;
  const lag = desired - applied;
  return html`<span class=${`rev ${lag > 0 ? 'lagging' : ''}`} data-desired=${desired} data-applied=${applied}
    title="desired / applied by the trainer">${desired} / ${applied}${lag > 0 ? ` (${lag} behind)` : ''}</span>`;
}

const ACTIVE = new Set(['pending', 'claimed', 'running']);

export function JobActions({ id, status, onDone }) {
  const [error, setError] = useState('');
  const run = async (what) => {
    setError('');
    try {
      if (what === 'cancel') await api.cancel(id);
      else await api.requeue(id, what === 'resume');
      onDone && onDone();
    } catch (e) {
      setError(e.message);
    }
  };
  return html`<span class="job-actions">
    ${ACTIVE.has(status) ? html`<button class="small danger" data-action="cancel" onClick=${() => run('cancel')}>Cancel</button>`
      : status ? html`<button class="small" data-action="requeue" onClick=${() => run('requeue')}>Requeue</button>
        <button class="small" data-action="resume" title="requeue from the last checkpoint" onClick=${() => run('resume')}>Resume</button>` : ''}
    ${error ? html`<span class="field-error" role="alert">${error}</span>` : ''}
  </span>`;
}
