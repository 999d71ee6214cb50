// One job: its state and revisions, live curves with config markers, the config tree, the
// audit log and the trainer's log tail.
import { html } from 'htm/preact';
import { useMemo, useState } from 'preact/hooks';
import { api } from './api.js';
import { AuditPanel } from './audit_panel.js';
import { Chart } from './chart.js';
import { ConfigPanel } from './config_panel.js';
import { ago, num, shortId } from './format.js';
import { useJobData } from './job_data.js';
import { LogPanel } from './log_panel.js';
import { chartMarkers, describe } from './markers.js';
import { canOperate } from './session.js';
import { JobActions, RevisionLag, StatusBadge } from './widgets.js';

const CHARTS = [
  { metric: 'loss', title: 'Training loss', color: '#2563eb' },
  { metric: 'val_loss', title: 'Validation loss', color: '#7c3aed' },
  { metric: 'val_accuracy', title: 'Validation accuracy', color: '#059669' },
  { metric: 'learning_rate', title: 'Learning rate', color: '#d97706' },
  { metric: 'grad_norm', title: 'Gradient norm', color: '#db2777' },
];

function Header({ id, job, summary, config }) {
  const s = summary || {};
  const last = s.last || {};
  return html`<section class="job-header">
    <h1><span class="job-name">${job ? job.name : shortId(id)}</span>
      <${StatusBadge} status=${s.status || (job && job.status)} /></h1>
    <dl class="facts">
      <div><dt>Job</dt><dd class="mono" title=${id}>${shortId(id)}</dd></div>
      <div><dt>Model</dt><dd>${job ? job.model || (job.spec.trainer ? 'command' : '–') : '–'}</dd></div>
      <div><dt>Host</dt><dd>${s.worker || (job && job.worker) || '–'}</dd></div>
      <div><dt>Attempt</dt><dd>${s.attempt ?? (job && job.attempt) ?? '–'}</dd></div>
      <div><dt>Epoch / step</dt><dd>${num(last.epoch)} / ${num(last.step)}</dd></div>
      <div><dt>Loss</dt><dd>${num(last.loss)}</dd></div>
      <div><dt>Val accuracy</dt><dd>${num(last.val_accuracy)}</dd></div>
      <div><dt>Learning rate</dt><dd>${num(last.learning_rate)}</dd></div>
      <div><dt>Config revision</dt><dd><${RevisionLag} desired=${s.desired_revision ?? (config && config.revision)}
        applied=${s.applied_revision ?? (config && config.applied && config.applied.revision)} /></dd></div>
      <div><dt>Heartbeat</dt><dd>${ago(s.heartbeat_ms)}</dd></div>
    </dl>
    ${job && job.last_error ? html`<p class="job-error">${job.last_error}</p>` : ''}
  </section>`;
}

function ChartControls({ xMode, setXMode, smoothing, setSmoothing }) {
  return html`<div class="chart-controls">
    <label>x axis <select value=${xMode} onChange=${(e) => setXMode(e.target.value)}>
      <option value="step">step</option><option value="time">time</option></select></label>
    <label>smoothing <input type="range" min="0" max="0.99" step="0.01" value=${smoothing}
      onInput=${(e) => setSmoothing(Number(e.target.value))} /> <span class="mono">${smoothing.toFixed(2)}</span></label>
    <span class="legend"><i class="swatch human"></i>human <i class="swatch policy"></i>policy
      <i class="swatch refused"></i>refused <i class="swatch system"></i>other · dashed: not (yet) applied</span>
  </div>`;
}

function MarkerList({ markers }) {
  const shown = markers.filter((m) => m.kind === 'write' || !m.accepted).slice(-12).reverse();
  if (!shown.length) return '';
  return html`<ul class="marker-list">${shown.map((m) => html`<li key=${m.seq} data-revision=${m.revision}
      class=${m.accepted ? (m.applied_step !== null ? 'applied' : 'pending') : 'refused'}>${describe(m)}</li>`)}</ul>`;
}

export function JobPage({ id, session }) {
  const [xMode, setXMode] = useState('step');
  const [smoothing, setSmoothing] = useState(0);
  const [logScale, setLogScale] = useState({ loss: false, learning_rate: true });
  const d = useJobData(id, xMode);
  const placed = useMemo(() => chartMarkers(d.markers, xMode, d.timeline), [d.markers, xMode, d.version]);
  const operate = canOperate(session);
  const status = (d.summary && d.summary.status) || (d.job && d.job.status);
  return html`<div class="job-page">
    <p><a href="#/">← Fleet</a></p>
    ${d.error ? html`<div class="page-error" role="alert">${d.error}</div>` : ''}
    <${Header} id=${id} job=${d.job} summary=${d.summary} config=${d.config} />
    ${operate ? html`<${JobActions} id=${id} status=${status} onDone=${d.refresh} />` : ''}
    <section class="panel">
      <h2>Curves</h2>
      <${ChartControls} xMode=${xMode} setXMode=${setXMode} smoothing=${smoothing} setSmoothing=${setSmoothing} />
      <div class="charts">${CHARTS.map((c) => html`<div class="chart-cell" key=${c.metric}>
        <label class="log-toggle"><input type="checkbox" checked=${Boolean(logScale[c.metric])}
          onChange=${(e) => setLogScale({ ...logScale, [c.metric]: e.target.checked })} /> log</label>
        <${Chart} metric=${c.metric} title=${c.title} color=${c.color} series=${d.series[c.metric]}
          version=${d.version} xMode=${xMode} smoothing=${smoothing} logScale=${Boolean(logScale[c.metric])}
          markers=${placed} /></div>`)}</div>
      <${MarkerList} markers=${d.markers} />
    </section>
    <div class="columns">
      <section class="panel"><h2>Config</h2>
        <${ConfigPanel} job=${id} config=${d.config} knobs=${d.knobs} canEdit=${operate} onChanged=${d.refresh} /></section>
      <section class="panel"><h2>Trainer log</h2><${LogPanel} log=${d.log} /></section>
    </div>
    <section class="panel"><h2>Audit log</h2><${AuditPanel} entries=${d.audit} /></section>
  </div>`;
}
