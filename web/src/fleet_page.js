// The fleet: every job with its state, progress, latest metrics and config lag, filtered by
// status; every host with its capability and last heartbeat. Kept current by the push channel.
import { html } from 'htm/preact';
import { useEffect, useState } from 'preact/hooks';
import { api } from './api.js';
import { events } from './events.js';
import { ago, num, shortId } from './format.js';
import { canOperate } from './session.js';
import { JobActions, RevisionLag, StatusBadge } from './widgets.js';

const STATUSES = ['pending', 'claimed', 'running', 'completed', 'stopped', 'failed', 'cancelled'];
const STALE_MS = 30000;

function useFleet() {
  const [jobs, setJobs] = useState(new Map());
  const [workers, setWorkers] = useState(new Map());
  const [error, setError] = useState('');
  useEffect(() => {
    const offs = [
      events.on('job', (m) => setJobs((old) => new Map(old).set(m.job.id, m.job))),
      events.on('worker', (m) => setWorkers((old) => new Map(old).set(m.worker.name, m.worker))),
      events.subscribeFleet(),
    ];
    // The first view before the channel's first push; summaries then replace these rows.
    api.jobs().then((r) => setJobs((old) => {
      const next = new Map(r.jobs.map((j) => [j.id, { ...j, desired_revision: j.config.desired_revision,
        applied_revision: j.config.applied_revision, last: null }]));
      for (const [id, j] of old) next.set(id, j);
      return next;
    }), (e) => setError(e.message));
    api.workers().then((r) => setWorkers((old) => new Map([...r.workers.map((w) => [w.name, w]), ...old])),
      (e) => setError(e.message));
    return () => offs.forEach((off) => off());
  }, []);
  return { jobs: [...jobs.values()], workers: [...workers.values()], error };
}

function JobRow({ j, operate }) {
  const last = j.last || {};
  return html`<tr data-job=${j.id} data-name=${j.name}>
    <td><a href=${`#/job/${j.id}`} class="job-link">${j.name}</a><div class="mono muted">${shortId(j.id)}</div></td>
    <td><${StatusBadge} status=${j.status} /></td>
    <td>${j.worker || '–'}</td>
    <td class="num">${j.attempt}</td>
    <td class="num">${num(last.epoch)} / ${num(last.step)}</td>
    <td class="num">${num(last.loss)}</td>
    <td class="num">${num(last.val_accuracy)}</td>
    <td class="num">${num(last.learning_rate)}</td>
    <td><${RevisionLag} desired=${j.desired_revision} applied=${j.applied_revision} /></td>
    <td>${ago(j.heartbeat_ms)}</td>
    ${operate ? html`<td><${JobActions} id=${j.id} status=${j.status} /></td>` : ''}
  </tr>`;
}

function capability(c) {
  if (!c) return '–';
  const parts = [`${c.cores} cores`, `${num(c.ram_gib, 3)} GiB`];
  if (c.cuda) parts.push(`CUDA ×${c.cuda_devices} (${num(c.vram_gib, 3)} GiB)`);
  if (c.torch_version) parts.push(`torch ${c.torch_version}`);
  return parts.join(' · ');
}

// Pipelines change at the pace of their triggers: read again every few seconds.
function Pipelines() {
  const [list, setList] = useState(null);
  useEffect(() => {
    let live = true;
    const load = () => api.pipelines().then((r) => live && setList(r.pipelines), () => {});
    load();
    const timer = setInterval(load, 5000);
    return () => {
      live = false;
      clearInterval(timer);
    };
  }, []);
  if (!list || !list.length) return '';
  return html`<section class="panel"><h2>Pipelines</h2>
    <table class="pipelines">
      <thead><tr><th>Pipeline</th><th>State</th><th>Model</th><th>Trigger</th><th>Samples</th><th>Firings</th><th>Deployed</th></tr></thead>
      <tbody>${list.map((p) => html`<tr key=${p.name} data-pipeline=${p.name}>
        <td><a href=${`#/pipeline/${p.name}`}>${p.name}</a></td>
        <td><span class=${`status status-${p.state === 'running' ? 'running' : 'failed'}`}>${p.state}</span></td>
        <td>${p.model}</td><td>${p.trigger}</td><td class="num">${num(p.samples)}</td>
        <td class="num">${p.triggers}</td><td class="mono">${shortId(p.deployed) || '–'}</td></tr>`)}</tbody>
    </table></section>`;
}

export function FleetPage({ session }) {
  const { jobs, workers, error } = useFleet();
  const [filter, setFilter] = useState('');
  const counts = Object.fromEntries(STATUSES.map((s) => [s, jobs.filter((j) => j.status === s).length]));
  const shown = jobs.filter((j) => !filter || j.status === filter)
    .sort((a, b) => (b.updated_ms || 0) - (a.updated_ms || 0));
  const operate = canOperate(session);
  const now = Date.now();
  return html`<div class="fleet-page">
    ${error ? html`<div class="page-error" role="alert">${error}</div>` : ''}
    <section class="panel">
      <h2>Jobs</h2>
      <div class="filters">
        <button class=${filter === '' ? 'chip on' : 'chip'} onClick=${() => setFilter('')}>all ${jobs.length}</button>
        ${STATUSES.map((s) => html`<button class=${filter === s ? 'chip on' : 'chip'} data-filter=${s}
          onClick=${() => setFilter(s)}>${s} ${counts[s]}</button>`)}
      </div>
      <table class="jobs">
        <thead><tr><th>Job</th><th>Status</th><th>Host</th><th>Attempt</th><th>Epoch / step</th><th>Loss</th>
          <th>Val acc</th><th>LR</th><th>Config rev</th><th>Heartbeat</th>${operate ? html`<th></th>` : ''}</tr></thead>
        <tbody>${shown.map((j) => html`<${JobRow} key=${j.id} j=${j} operate=${operate} />`)}</tbody>
      </table>
      ${shown.length ? '' : html`<p class="muted">No ${filter || ''} jobs.</p>`}
    </section>
    <${Pipelines} />
    <section class="panel">
      <h2>Hosts</h2>
      <table class="hosts">
        <thead><tr><th>Host</th><th>Capability</th><th>Registered</th><th>Last heartbeat</th></tr></thead>
        <tbody>${workers.map((w) => html`<tr key=${w.name} data-host=${w.name}
            class=${now - w.last_seen_ms > STALE_MS ? 'stale' : ''}>
          <td>${w.name}</td><td>${capability(w.capability)}</td><td>${ago(w.registered_ms, now)}</td>
          <td>${ago(w.last_seen_ms, now)}</td></tr>`)}</tbody>
      </table>
      ${workers.length ? '' : html`<p class="muted">No host has enrolled yet.</p>`}
    </section>
  </div>`;
}
