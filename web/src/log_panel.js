// The tail of the job's trainer log as its host last sent it: plain text, never HTML.
import { html } from 'htm/preact';
import { useEffect, useRef } from 'preact/hooks';
import { ago } from './format.js';

export function LogPanel({ log }) {
  const pre = useRef(null);
  useEffect(() => {
    if (pre.current) pre.current.scrollTop = pre.current.scrollHeight;
  }, [log]);
  if (!log || !log.lines.length) return html`<p class="muted">No log from the trainer yet.</p>`;
  return html`<div class="log-panel">
    <div class="muted">from ${log.host || '–'}, ${ago(log.updated_ms)}${log.truncated ? ' · older lines left out' : ''}</div>
    <pre ref=${pre} class="log">${log.lines.join('\n')}</pre>
  </div>`;
}
