// A real fleet for the dashboard's browser tests: a coordinator serving the bundle and a host
// daemon training a real job, each its own process on 127.0.0.1, and a stand-in host that
// reports a long run's telemetry through the same host API (enrol, claim, telemetry), so that a
// page with 100k points can be measured without waiting for a trainer to make them.
import { spawn } from 'node:child_process';
import { mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export const OPERATOR_TOKEN = 'op-dashboard-token';
export const WORKER_TOKEN = 'wk-dashboard-token';
export const READ_TOKEN = 'rd-dashboard-token';

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// Polls fn until it returns a truthy value; throws with `what` after timeoutMs.
export async function until(what, fn, timeoutMs = 30000, everyMs = 100) {
  const deadline = Date.now() + timeoutMs;
  let last;
  for (;;) {
    try {
      const v = await fn();
      if (v) return v;
    } catch (e) {
      last = e;
    }
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${last ? `: ${last.message}` : ''}`);
    await sleep(everyMs);
  }
}

// The seeds are drawn per run: a job's id (and so its shared-memory block's name) follows from
// its spec, and two runs on one machine must not share a block.
function manifest() {
  const seed = 1 + Math.floor(Math.random() * 1e9);
  return `
[[jobs]]
name = "mlp-live"
model = "mlp"
seed = ${seed}
allowed_hosts = ["h1"]
[jobs.params]
hidden = 64
layers = 1
[jobs.data]
max_train_samples = 4000
max_val_samples = 1000
[jobs.hyper]
training.optimizer.learning_rate = 0.05
training.optimizer.momentum = 0.9
training.control.batch_size = 64
training.control.max_epochs = 100000
training.control.eval_every = 25

[[jobs]]
name = "long-run"
model = "mlp"
seed = ${seed + 1}
allowed_hosts = ["seeder"]
[jobs.hyper]
training.optimizer.learning_rate = 0.1
`;
}

export class Fleet {
  async start({ trainvisor, webRoot }) {
    this.dir = await mkdtemp(join(tmpdir(), 'tv-dashboard-'));
    this.procs = [];
    this.logs = {};
    await writeFile(join(this.dir, 'fleet.toml'), manifest());
    const env = { ...process.env, TRAINVISOR_OPERATOR_TOKEN: OPERATOR_TOKEN, TRAINVISOR_WORKER_TOKEN: WORKER_TOKEN,
      TRAINVISOR_READ_TOKEN: READ_TOKEN };
    const coordinator = this.spawn('coordinator', trainvisor, ['coordinator', '--data-dir', join(this.dir, 'data'),
      '--manifest', join(this.dir, 'fleet.toml'), '--port', '0', '--web-root', webRoot, '--stale-after', '30', '--no-public-reads'], env);
    this.url = await until('the coordinator to print its URL', () => {
      const line = this.logs.coordinator.stdout.split('\n')[0];
      return line.startsWith('http') ? line.trim() : null;
    }, 20000);
    this.spawn('host', trainvisor, ['host', '--name', 'h1', '--work-dir', join(this.dir, 'work'),
      '--heartbeat-every', '0.5', '--poll-every', '0.3', '--coordinator', this.url], env);
    this.coordinator = coordinator;
    return this;
  }

  spawn(name, program, args, env) {
    const p = spawn(program, args, { env, stdio: ['ignore', 'pipe', 'pipe'] });
    const log = { stdout: '', stderr: '' };
    this.logs[name] = log;
    p.stdout.on('data', (d) => { log.stdout += d; });
    p.stderr.on('data', (d) => { log.stderr = (log.stderr + d).slice(-20000); });
    p.on('exit', (code, signal) => { log.exit = code ?? signal; });
    this.procs.push(p);
    return p;
  }

  // A request; reads carry the read token unless `headers` names another credential.
  async api(method, path, body, headers = {}) {
    const res = await fetch(this.url + path, {
      method,
      headers: { 'Content-Type': 'application/json', 'X-Read-Token': READ_TOKEN, ...headers },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const text = await res.text();
    return { status: res.status, body: text ? JSON.parse(text) : null };
  }

  async job(name) {
    const r = await this.api('GET', `/v1/jobs/${name}`);
    if (r.status !== 200) throw new Error(`job ${name}: ${r.status} ${JSON.stringify(r.body)}`);
    return r.body;
  }

  operatorHeaders(name = 'ana') {
    return { 'X-Operator-Token': OPERATOR_TOKEN, 'X-Operator-Name': name };
  }

  // The stand-in host "seeder": claims long-run and reports `count` points of a smooth curve.
  async seedLongRun(count) {
    const enrol = await this.api('POST', '/v1/hosts/seeder/enrol', {}, { 'X-Worker-Token': WORKER_TOKEN });
    if (enrol.status !== 200) throw new Error(`enrol: ${enrol.status} ${JSON.stringify(enrol.body)}`);
    const cred = { 'X-Host-Credential': enrol.body.credential };
    const capability = { cores: 2, cuda: false, cuda_devices: 0, hostname: 'seeder', ram_gib: 8,
      vram_gib: 0, torch_version: '1.13.1', trainvisor_version: '0.1.0' };
    const claim = await until('long-run to be claimed by the seeder', async () => {
      const c = await this.api('POST', '/v1/job/claim', { worker: 'seeder', capability }, cred);
      return c.status === 200 && c.body.job ? c.body : null;
    }, 20000, 300);
    const id = claim.job.id;
    const t0 = Date.now() * 1e6 - count * 10e6;
    // Batches under the server's 1 MiB body limit.
    for (let from = 0; from < count; from += 2500) {
      const points = [];
      for (let i = from; i < Math.min(count, from + 2500); i++) {
        const step = i + 1;
        const evaluated = step % 100 === 0;
        points.push({ step, epoch: Math.floor(step / 1000), flags: evaluated ? 1 : 0, config_revision: 1,
          loss: 2.3 * Math.exp(-step / 20000) + 0.2 + 0.05 * Math.sin(step / 37), grad_norm: 1 + 0.3 * Math.cos(step / 53),
          learning_rate: 0.1, samples_per_sec: 5000, val_loss: evaluated ? 2.3 * Math.exp(-step / 25000) + 0.3 : null,
          val_accuracy: evaluated ? 0.9 - 0.6 * Math.exp(-step / 15000) : null, wall_time_ns: t0 + step * 10e6 });
      }
      const r = await this.api('POST', `/v1/job/${id}/telemetry`, { host: 'seeder', missed: 0, points, refusals: [] },
        { ...cred, 'X-Lease-Token': claim.lease_token });
      if (r.status !== 200) throw new Error(`telemetry: ${r.status} ${JSON.stringify(r.body)}`);
    }
    return id;
  }

  // The host first (its trainers checkpoint and stop while the coordinator still answers), then
  // the coordinator; then any process still working in this fleet's folder (a trainer runs in a
  // session of its own, so it outlives a host killed after a timeout) is killed.
  async stop() {
    const exited = (p) => p.exitCode !== null || p.signalCode !== null;
    for (const p of this.procs.slice().reverse()) {
      if (exited(p)) continue;
      p.kill('SIGTERM');
      await until(`pid ${p.pid} to stop`, () => exited(p), 20000).catch(() => p.kill('SIGKILL'));
    }
    await this.killLeftovers();
    if (this.dir && !process.env.TV_KEEP) await rm(this.dir, { recursive: true, force: true });
  }

  async killLeftovers() {
    if (!this.dir) return;
    for (const pid of await readdir('/proc').catch(() => [])) {
      if (!/^\d+$/.test(pid)) continue;
      const cmdline = await readFile(`/proc/${pid}/cmdline`, 'utf8').catch(() => '');
      if (cmdline.includes(this.dir)) {
        try {
          process.kill(Number(pid), 'SIGKILL');
        } catch {
          // gone meanwhile
        }
      }
    }
  }

  describe() {
    return Object.entries(this.logs).map(([name, l]) => `--- ${name} (exit ${l.exit ?? 'running'}):\n${l.stderr.slice(-3000)}`).join('\n');
  }
}
