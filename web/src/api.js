// The coordinator's HTTP API as the page uses it. Every error is an ApiError carrying the HTTP
// status and the server's own words, so the page shows what the server said.
import { getSession } from './session.js';

export class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

function headers(write) {
  const s = getSession();
  const h = { Accept: 'application/json' };
  if (write) {
    h['Content-Type'] = 'application/json';
    if (s.operatorToken) h['X-Operator-Token'] = s.operatorToken;
    if (s.operatorName) h['X-Operator-Name'] = s.operatorName;
  } else if (s.readToken) {
    h['X-Read-Token'] = s.readToken;
  } else if (s.operatorToken) {
    h['X-Operator-Token'] = s.operatorToken;  // an operator may read
  }
  return h;
}

async function call(method, path, body) {
  let res;
  try {
    res = await fetch(path, {
      method,
      headers: headers(method !== 'GET'),
      body: body === undefined ? undefined : JSON.stringify(body),
      cache: 'no-store',
      credentials: 'omit',
    });
  } catch (e) {
    throw new ApiError(0, `coordinator unreachable (${method} ${path}): ${e.message}`);
  }
  const text = await res.text();
  let data = null;
  try {
    data = text ? JSON.parse(text) : null;
  } catch {
    data = null;
  }
  if (!res.ok) {
    const said = data && typeof data.error === 'string' ? data.error : text.slice(0, 300);
    throw new ApiError(res.status, said || `${res.status} ${res.statusText}`);
  }
  return data;
}

const enc = encodeURIComponent;
const query = (params) =>
  Object.entries(params)
    .filter(([, v]) => v !== undefined && v !== null && v !== '')
    .map(([k, v]) => `${enc(k)}=${enc(v)}`)
    .join('&');

export const api = {
  jobs: () => call('GET', '/v1/jobs'),
  job: (id) => call('GET', `/v1/job/${enc(id)}`),
  workers: () => call('GET', '/v1/workers'),
  knobs: () => call('GET', '/v1/knobs'),
  config: (id) => call('GET', `/v1/job/${enc(id)}/config`),
  markers: (id, after = 0) => call('GET', `/v1/job/${enc(id)}/config/markers?${query({ after, limit: 1000 })}`),
  audit: (id, after = 0) => call('GET', `/v1/job/${enc(id)}/config/log?${query({ after, limit: 1000 })}`),
  curve: (id, params) => call('GET', `/v1/job/${enc(id)}/curve?${query(params)}`),
  log: (id) => call('GET', `/v1/job/${enc(id)}/log`),
  writeConfig: (id, writes, reason) => call('POST', `/v1/job/${enc(id)}/config`, { writes, reason }),
  freeze: (id, prefix) => call('POST', `/v1/job/${enc(id)}/config/freeze`, { prefix }),
  unfreeze: (id, prefix) => call('POST', `/v1/job/${enc(id)}/config/unfreeze`, { prefix }),
  pipelines: () => call('GET', '/v1/pipelines'),
  pipeline: (name) => call('GET', `/v1/pipeline/${enc(name)}`),
  triggers: (name) => call('GET', `/v1/pipeline/${enc(name)}/triggers`),
  rollback: (name, reason) => call('POST', `/v1/pipeline/${enc(name)}/rollback`, { reason }),
  cancel: (id) => call('POST', `/v1/job/${enc(id)}/cancel`, {}),
  requeue: (id, fromCheckpoint) =>
    call('POST', `/v1/job/${enc(id)}/requeue`, { from_checkpoint: Boolean(fromCheckpoint) }),
};
