// A continual-training pipeline: its state and stream, the trigger timeline with each firing's
// reason and outcome, the evaluated accuracy over time (the new model against the deployed one),
// and the deployed model with the alias' history; an operator rolls the alias back or deploys
// one of the pipeline's models. Pipelines change at the pace of their triggers, so the page
// reads them again every few seconds rather than holding a push subscription.
import { html } from 'htm/preact';
import { useEffect, useState } from 'preact/hooks';
import { api } from './api.js';
import { Chart } from './chart.js';
import { clock, datetime, num, shortId } from './format.js';
import { canOperate } from './session.js';

const REFRESH_MS = 4000;

// The evaluated accuracies of the decided firings, as two Series-like curves over time (ms).
function accuracyCurves(triggers) {
  const make = () => ({ x: [], min: [], max: [], last: [], get length() { return this.x.length; } });
  const fresh = make();
  const deployed = make();
  for (const t of triggers) {
    const at = t.decided_ms || t.fired_ms;
    for (const [side, curve] of [['new', fresh], ['deployed', deployed]]) {
      const a = t.metrics && t.metrics[side] && t.metrics[side].accuracy;
      if (typeof a !== 'number') continue;
      curve.x.push(at);
      curve.min.push(a);
      curve.max.push(a);
      curve.last.push(a);
    }
  }
  return { fresh, deployed };
}

function usePipeline(name) {
  const [data, setData] = useState({ detail: null, triggers: [], error: '' });
  useEffect(() => {
    let live = true;
    const load = () => Promise.all([api.pipeline(name), api.triggers(name)]).then(
      ([detail, t]) => live && setData({ detail, triggers: t.triggers, error: '' }),
      (e) => live && setData((old) => ({ ...old, error: e.message })));
    load();
    const timer = setInterval(load, REFRESH_MS);
    return () => {
      live = false;
      clearInterval(timer);
    };
  }, [name]);
  return data;
}

function Rollback({ name }) {
  const [error, setError] = useState('');
  const [done, setDone] = useState('');
  const run = async () => {
    setError('');
    try {
      const move = await api.rollback(name, 'rolled back from the dashboard');
      setDone(`alias now holds ${shortId(move.digest)}`);
    } catch (e) {
      setError(e.message);
    }
  };
  return html`<span><button class="small danger" data-action="rollback" onClick=${run}>Roll back</button>
    ${done ? html` <span class="muted">${done}</span>` : ''}${error ? html`<span class="field-error">${error}</span>` : ''}</span>`;
}

function Triggers({ triggers }) {
  if (!triggers.length) return html`<p class="muted">The trigger has not fired yet.</p>`;
  return html`<table class="triggers">
    <thead><tr><th>#</th><th>Fired</th><th>Window</th><th>Reason</th><th>Job</th><th>Outcome</th><th>Gate</th></tr></thead>
    <tbody>${triggers.slice().reverse().map((t) => html`<tr key=${t.index} data-trigger=${t.index} class=${`outcome-${t.outcome}`}>
      <td>${t.index}</td><td title=${datetime(t.fired_ms)}>${clock(t.fired_ms)}</td>
      <td class="mono">${num(t.window_begin)}–${num(t.end_sample)}</td>
      <td class="reason-text">${t.reason}</td>
      <td>${t.job_id ? html`<a href=${`#/job/${t.job_id}`} class="mono">${shortId(t.job_id)}</a>` : '–'}</td>
      <td><span class=${`badge ${t.outcome === 'deployed' ? 'ok' : t.outcome === 'training' ? '' : 'refused'}`}>${t.outcome}</span></td>
      <td class="reason-text">${t.gate}</td></tr>`)}</tbody>
  </table>`;
}

function AliasLog({ moves }) {
  if (!moves.length) return html`<p class="muted">Nothing deployed yet.</p>`;
  return html`<table class="aliases">
    <thead><tr><th>Rev</th><th>When</th><th>Model</th><th>Before</th><th>Trigger</th><th>Actor</th><th>Reason</th></tr></thead>
    <tbody>${moves.slice().reverse().map((m) => html`<tr key=${m.revision}>
      <td>${m.revision}</td><td title=${datetime(m.at_ms)}>${clock(m.at_ms)}</td>
      <td class="mono">${shortId(m.digest) || '–'}</td><td class="mono">${shortId(m.previous) || '–'}</td>
      <td>${m.trigger >= 0 ? m.trigger : '–'}</td><td>${m.actor}</td><td class="reason-text">${m.reason}</td></tr>`)}</tbody>
  </table>`;
}

export function PipelinePage({ name, session }) {
  const { detail, triggers, error } = usePipeline(name);
  const s = detail ? detail.summary : null;
  const curves = accuracyCurves(triggers);
  return html`<div class="pipeline-page">
    <p><a href="#/">← Fleet</a></p>
    ${error ? html`<div class="page-error" role="alert">${error}</div>` : ''}
    ${s ? html`<section class="job-header">
      <h1><span class="job-name">${s.name}</span> <span class=${`status status-${s.state === 'running' ? 'running' : 'failed'}`}>${s.state}</span></h1>
      <dl class="facts">
        <div><dt>Model</dt><dd>${s.model}</dd></div><div><dt>Trigger</dt><dd>${s.trigger}</dd></div>
        <div><dt>Source</dt><dd>${s.source}</dd></div><div><dt>Strategy</dt><dd>${s.strategy}</dd></div>
        <div><dt>Samples</dt><dd>${num(s.samples)} (${num(s.segments)} segments)</dd></div>
        <div><dt>Read by the trigger</dt><dd>${num(s.read_samples)}</dd></div>
        <div><dt>Firings</dt><dd>${s.triggers} (${s.training} training)</dd></div>
        <div><dt>Alias</dt><dd>${s.alias}</dd></div>
        <div><dt>Deployed</dt><dd class="mono">${shortId(s.deployed) || '–'}${s.deployed_trigger >= 0 ? ` (trigger ${s.deployed_trigger})` : ''}</dd></div>
      </dl>
      ${s.error ? html`<p class="job-error">${s.error}</p>` : ''}
      ${canOperate(session) && s.deployed ? html`<${Rollback} name=${name} />` : ''}
    </section>` : ''}
    <section class="panel"><h2>Accuracy over time</h2>
      <div class="charts">
        <${Chart} metric="new_accuracy" title="New model's accuracy" color="#059669" series=${curves.fresh}
          version=${triggers.length} xMode="time" smoothing=${0} logScale=${false} markers=${[]} />
        <${Chart} metric="deployed_accuracy" title="Deployed model's accuracy (at each decision)" color="#2563eb"
          series=${curves.deployed} version=${triggers.length} xMode="time" smoothing=${0} logScale=${false} markers=${[]} />
      </div></section>
    <section class="panel"><h2>Trigger timeline</h2><${Triggers} triggers=${triggers} /></section>
    <section class="panel"><h2>Deployments</h2><${AliasLog} moves=${detail ? detail.alias_log : []} /></section>
  </div>`;
}
