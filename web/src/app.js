// The page's frame: the route (#/ the fleet, #/job/ID a job), the push channel's state, and the
// tab's credentials (a read token where reads are not public; the operator's token and name for
// changes), entered once and kept in this tab's session storage.
import { html } from 'htm/preact';
import { useEffect, useState } from 'preact/hooks';
import { events } from './events.js';
import { FleetPage } from './fleet_page.js';
import { JobPage } from './job_page.js';
import { PipelinePage } from './pipeline_page.js';
import { canOperate, getSession, setSession } from './session.js';

function route() {
  const job = /^#\/job\/([0-9a-f]{64})$/.exec(location.hash);
  if (job) return { page: 'job', id: job[1] };
  const pipeline = /^#\/pipeline\/([A-Za-z0-9._-]{1,100})$/.exec(location.hash);
  if (pipeline) return { page: 'pipeline', name: pipeline[1] };
  return { page: 'fleet' };
}

function Page({ where, session }) {
  if (where.page === 'job') return html`<${JobPage} key=${where.id} id=${where.id} session=${session} />`;
  if (where.page === 'pipeline') return html`<${PipelinePage} key=${where.name} name=${where.name} session=${session} />`;
  return html`<${FleetPage} session=${session} />`;
}

function Connection() {
  const [state, setState] = useState({ state: events.state, reason: events.closedReason });
  useEffect(() => events.on('state', setState), []);
  const label = { open: 'live', connecting: 'connecting…', closed: 'reconnecting…' }[state.state];
  return html`<span class=${`conn conn-${state.state}`} title=${state.reason} data-state=${state.state}>${label}</span>`;
}

function SignIn({ session, onChange }) {
  const [open, setOpen] = useState(false);
  const [form, setForm] = useState(session);
  const save = (e) => {
    e.preventDefault();
    setSession(form);
    onChange(getSession());
    setOpen(false);
  };
  if (canOperate(session) && !open) {
    return html`<span class="signin">operating as <b class="operator-name">${session.operatorName}</b>
      <button class="small" onClick=${() => { setSession({ operatorToken: '', operatorName: '' }); onChange(getSession()); }}>Sign out</button></span>`;
  }
  if (!open) return html`<button class="small" data-action="sign-in" onClick=${() => { setForm(session); setOpen(true); }}>Sign in</button>`;
  const field = (key, label, type = 'text') => html`<label>${label}<input name=${key} type=${type} autocomplete="off"
    value=${form[key]} onInput=${(e) => setForm({ ...form, [key]: e.target.value })} /></label>`;
  return html`<form class="signin-form" onSubmit=${save}>
    ${field('operatorName', 'Operator name')}${field('operatorToken', 'Operator token', 'password')}
    ${field('readToken', 'Read token (if reads are not public)', 'password')}
    <button class="primary" type="submit">Save for this tab</button>
    <button type="button" onClick=${() => setOpen(false)}>Close</button>
  </form>`;
}

export function App() {
  const [where, setWhere] = useState(route());
  const [session, setSessionState] = useState(getSession());
  const [signIns, setSignIns] = useState(0);  // a new sign-in reloads the page's data with it
  useEffect(() => {
    const onHash = () => setWhere(route());
    window.addEventListener('hashchange', onHash);
    events.start();
    return () => window.removeEventListener('hashchange', onHash);
  }, []);
  const changed = (s) => {
    setSessionState(s);
    setSignIns((n) => n + 1);
    events.reconnect();
  };
  return html`<div class="app">
    <header class="top">
      <a class="brand" href="#/">Trainvisor</a>
      <nav><a href="#/" class=${where.page === 'fleet' ? 'on' : ''}>Fleet</a></nav>
      <span class="spacer"></span>
      <${Connection} />
      <${SignIn} session=${session} onChange=${changed} />
    </header>
    <main><${Page} key=${signIns} where=${where} session=${session} /></main>
  </div>`;
}
