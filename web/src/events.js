// The coordinator's push channel (GET /v1/events, a WebSocket): one connection per tab, shared by
// every view. It says hello with the tab's token, keeps the views' subscriptions across
// reconnects (with a backoff), and hands each message to the listeners of its type.
import { getSession } from './session.js';

const RETRY_MIN_MS = 500;
const RETRY_MAX_MS = 10000;

export class Events {
  constructor() {
    this.ws = null;
    this.listeners = new Map();  // type -> Set(fn)
    this.fleet = 0;              // views subscribed to the fleet
    this.jobs = new Map();       // job id -> {count, resume: () => message}
    this.retryMs = RETRY_MIN_MS;
    this.state = 'connecting';
    this.closedReason = '';
    this.stopped = false;
  }

  start() {
    this.stopped = false;
    this.connect();
  }

  on(type, fn) {
    if (!this.listeners.has(type)) this.listeners.set(type, new Set());
    this.listeners.get(type).add(fn);
    return () => this.listeners.get(type).delete(fn);
  }

  emit(type, message) {
    for (const fn of this.listeners.get(type) || []) fn(message);
  }

  setState(state, reason = '') {
    this.state = state;
    this.closedReason = reason;
    this.emit('state', { state, reason });
  }

  connect() {
    const scheme = location.protocol === 'https:' ? 'wss:' : 'ws:';
    const ws = new WebSocket(`${scheme}//${location.host}/v1/events`);
    this.ws = ws;
    this.setState('connecting');
    ws.onopen = () => {
      const s = getSession();
      const token = s.readToken || s.operatorToken;
      if (token) this.send({ type: 'hello', read_token: token });
    };
    ws.onmessage = (e) => this.receive(e.data);
    ws.onclose = (e) => {
      if (this.ws !== ws) return;
      this.ws = null;
      this.setState('closed', e.reason || `connection closed (code ${e.code})`);
      // 1008: refused (no or a wrong token, a foreign Origin): retrying cannot help until the
      // tab's credentials change, which calls reconnect().
      if (this.stopped || e.code === 1008) return;
      setTimeout(() => this.connect(), this.retryMs);
      this.retryMs = Math.min(RETRY_MAX_MS, this.retryMs * 2);
    };
  }

  // A new token: the channel starts over with it.
  reconnect() {
    this.retryMs = RETRY_MIN_MS;
    if (this.ws) this.ws.close(1000, 'new token');
    else this.connect();
  }

  receive(text) {
    let m;
    try {
      m = JSON.parse(text);
    } catch {
      return;
    }
    if (m.type === 'ready') {
      this.retryMs = RETRY_MIN_MS;
      this.setState('open');
      if (this.fleet > 0) this.send({ type: 'subscribe', fleet: true });
      for (const [job, sub] of this.jobs) this.send({ type: 'subscribe', job, ...sub.resume() });
    }
    this.emit(m.type, m);
  }

  send(message) {
    if (this.ws && this.ws.readyState === WebSocket.OPEN) this.ws.send(JSON.stringify(message));
  }

  subscribeFleet() {
    if (this.fleet++ === 0 && this.state === 'open') this.send({ type: 'subscribe', fleet: true });
    return () => {
      if (--this.fleet === 0) this.send({ type: 'unsubscribe', fleet: true });
    };
  }

  // resume(): the subscription's position ({after_step, after_seq}) to ask for on (re)connect,
  // so that a reconnect sends only what the view has not seen.
  subscribeJob(job, resume) {
    const sub = this.jobs.get(job) || { count: 0, resume };
    sub.count += 1;
    sub.resume = resume;
    this.jobs.set(job, sub);
    if (this.state === 'open') this.send({ type: 'subscribe', job, ...resume() });
    return () => {
      if (--sub.count > 0) return;
      this.jobs.delete(job);
      this.send({ type: 'unsubscribe', job });
    };
  }
}

export const events = new Events();
