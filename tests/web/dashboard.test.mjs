// The dashboard in a real browser (Debian's chromium, headless, driven by playwright-core)
// against a real coordinator and host daemon training a real job:
//  - reads are not public here: the page says so until a read token is given;
//  - the job appears on the fleet page and its curve grows on the job page;
//  - an operator's learning-rate edit is applied by the trainer: the applied revision catches up
//    and its marker says at which step;
//  - a freeze makes a policy's write refused, and the page shows it refused;
//  - a wrong value shows the server's error beside the field and changes nothing;
//  - markup in data (a reason, an operator's name) is shown as text, never run; job and host
//    names cannot hold markup at all (the coordinator refuses them);
//  - a job with 100k telemetry points: the page's first load and first curve are measured.
// Screenshots and the measurements go to TV_WEB_SHOTS.
//   TRAINVISOR=build/bin/trainvisor TV_WEB_ROOT=build/web TV_WEB_DIR=web node --test tests/web/
import assert from 'node:assert/strict';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { join, resolve } from 'node:path';
import { after, before, test } from 'node:test';
import { Fleet, OPERATOR_TOKEN, READ_TOKEN, WORKER_TOKEN, until } from './fleet.mjs';

const need = (name) => {
  if (!process.env[name]) throw new Error(`${name} is not set (see this file's header)`);
  return resolve(process.env[name]);
};
const TRAINVISOR = need('TRAINVISOR');
const WEB_ROOT = need('TV_WEB_ROOT');
const WEB_DIR = need('TV_WEB_DIR');
const SHOTS = resolve(process.env.TV_WEB_SHOTS || join(WEB_ROOT, '..', 'web-test-shots'));
const LR = 'training/optimizer/learning_rate';

let chromium;
try {
  ({ chromium } = createRequire(join(WEB_DIR, 'package.json'))('playwright-core'));
} catch (e) {
  throw new Error(`playwright-core is not installed in ${WEB_DIR}/node_modules (scripts/setup.sh runs npm ci): ${e.message}`);
}

const fleet = new Fleet();
let browser;
let page;
const report = {};

async function shot(name) {
  await page.screenshot({ path: join(SHOTS, `${name}.png`), fullPage: true });
}

before(async () => {
  await mkdir(SHOTS, { recursive: true });
  await fleet.start({ trainvisor: TRAINVISOR, webRoot: WEB_ROOT });
  browser = await chromium.launch({
    executablePath: process.env.TV_CHROMIUM || '/usr/bin/chromium',
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking',
      '--disable-component-update', '--disable-sync'],
  });
  page = await browser.newPage({ viewport: { width: 1400, height: 1000 } });
  page.errors = [];
  page.on('pageerror', (e) => page.errors.push(e.message));
});

after(async () => {
  if (browser) await browser.close();
  await fleet.stop();
  await writeFile(join(SHOTS, 'report.json'), `${JSON.stringify(report, null, 2)}\n`);
});

// Fails with the fleet's logs when a step does not hold.
async function step(what, fn) {
  try {
    return await fn();
  } catch (e) {
    if (page) await shot(`failed-${what.replace(/\W+/g, '-')}`).catch(() => {});
    e.message += `\n${fleet.describe()}`;
    throw e;
  }
}

const chartLastX = (metric) => page.locator(`.chart[data-metric="${metric}"]`).getAttribute('data-last-x').then(Number);

test('the job appears on the fleet page and its curve grows on the job page', () => step('curve grows', async () => {
  await page.goto(`${fleet.url}/`);
  // Reads need a token on this coordinator: the page says so, and the push channel is refused.
  await until('the page to say reads need a token', async () =>
    /reads need a token/.test(await page.locator('.page-error').textContent()), 10000);
  await until('the push channel to be refused', async () =>
    (await page.locator('.conn').getAttribute('data-state')) === 'closed', 15000);
  assert.match(await page.locator('.conn').getAttribute('title'), /read_token/);
  await page.locator('[data-action="sign-in"]').click();
  await page.fill('input[name="readToken"]', READ_TOKEN);
  await page.click('.signin-form button[type="submit"]');
  await until('the push channel to open', async () => (await page.locator('.conn').getAttribute('data-state')) === 'open');
  assert.equal(await page.locator('.page-error').count(), 0);
  const row = page.locator('tr[data-name="mlp-live"]');
  await until('mlp-live to show as running with a step', async () =>
    (await row.locator('[data-status]').textContent()) === 'running' && /\d/.test(await row.locator('td').nth(4).textContent()), 60000);
  await page.locator('tr[data-host="h1"]').waitFor();
  await shot('fleet');
  await row.locator('a.job-link').click();
  await page.locator('.chart[data-metric="loss"] canvas').waitFor({ timeout: 30000 });
  const first = await chartLastX('loss');
  await until('the loss curve to grow', async () => (await chartLastX('loss')) > first + 50, 30000);
  assert.match(await page.locator('.job-name').textContent(), /^mlp-live$/);
  // The trainer's own log lines, as its host sent them, pushed live.
  await until("the trainer's log lines", async () =>
    /trainer: epoch \d+ done at step \d+: loss/.test(await page.locator('pre.log').textContent()), 30000);
  // When each change takes effect, from the knob schema.
  assert.equal(await page.locator('tr[data-path="training/control/batch_size"] .effect').textContent(), 'next epoch');
  assert.equal(await page.locator('tr[data-path="training/optimizer/name"] .effect').textContent(), 'at start');
  assert.equal(await page.locator(`tr[data-path="${LR}"] .effect`).textContent(), 'next step');
  await shot('job');
}));

test('an operator edit of the learning rate is applied by the trainer and marked on the curves', () => step('edit applied', async () => {
  await page.locator('[data-action="sign-in"]').click();
  await page.fill('input[name="operatorName"]', 'ana');
  await page.fill('input[name="operatorToken"]', OPERATOR_TOKEN);
  await page.click('.signin-form button[type="submit"]');
  await page.locator('.operator-name').waitFor();
  const before = (await fleet.api('GET', `/v1/job/${(await fleet.job('mlp-live')).id}/config`)).body;
  await page.fill(`input.knob-input[data-path="${LR}"]`, '0.0123');
  await page.fill('input.reason', 'slower, from the dashboard');
  await page.click('[data-action="apply"]');
  const revision = before.revision + 1;
  const marker = page.locator(`.marker-list li[data-revision="${revision}"]`);
  await until(`revision ${revision}'s marker to say where it was applied`, async () =>
    (await marker.getAttribute('class')) === 'applied', 30000);
  assert.match(await marker.textContent(), /human:ana: learning_rate 0\.05 → 0\.0123 — slower, from the dashboard — applied at step \d+/);
  await until('the applied revision to catch up', async () =>
    Number(await page.locator('.job-header .rev').getAttribute('data-applied')) >= revision, 15000);
  const cfg = (await fleet.api('GET', `/v1/job/${before.job}/config`)).body;
  assert.equal(cfg.values[LR], 0.0123);
  assert.ok(cfg.applied.revision >= revision, `the trainer applied revision ${cfg.applied.revision}`);
  const audit = page.locator('table.audit tr', { hasText: 'human:ana' }).first();
  assert.match(await audit.textContent(), /0\.05 → 0\.0123.*accepted/);
}));

test('a freeze makes a policy write refused, shown as refused', () => step('freeze refuses', async () => {
  const id = (await fleet.job('mlp-live')).id;
  await page.click('tr.folder[data-folder="training/optimizer"] [data-action="freeze"]');
  await page.locator('tr.folder[data-folder="training/optimizer"] .badge.frozen').waitFor();
  // A policy running as its own process writes with the worker token.
  const write = await fleet.api('POST', `/v1/job/${id}/config`,
    { policy: 'tuner', writes: { [LR]: 0.5 }, reason: 'tuner: raise the rate' }, { 'X-Worker-Token': WORKER_TOKEN });
  assert.ok(write.status >= 400 && write.status < 500, `the policy's write answered ${write.status}`);
  const refused = page.locator('table.audit tr.refused', { hasText: 'policy:tuner' });
  await refused.waitFor({ timeout: 15000 });
  assert.match(await refused.textContent(), /tuner: raise the rate.*refused.*frozen/s);
  await page.locator('.marker-list li.refused', { hasText: 'policy:tuner' }).waitFor();
  await page.click('tr.folder[data-folder="training/optimizer"] [data-action="unfreeze"]');
  await page.locator('tr.folder[data-folder="training/optimizer"] [data-action="freeze"]').waitFor();
  await shot('job-refused');
}));

test("a wrong value shows the server's error beside the field and changes nothing", () => step('wrong value', async () => {
  const id = (await fleet.job('mlp-live')).id;
  const before = (await fleet.api('GET', `/v1/job/${id}/config`)).body;
  for (const [text, said] of [['fast', /expects float64, got "fast"/], ['-1', /-1 is below the minimum 0/]]) {
    await page.fill(`input.knob-input[data-path="${LR}"]`, text);
    await page.click('[data-action="apply"]');
    const error = page.locator(`tr[data-path="${LR}"] .field-error`);
    await error.waitFor();
    assert.match(await error.textContent(), said);
    assert.match(await error.textContent(), new RegExp(`'${LR}'`));
  }
  const now = (await fleet.api('GET', `/v1/job/${id}/config`)).body;
  assert.equal(now.revision, before.revision);
  assert.equal(now.values[LR], before.values[LR]);
  await shot('job-wrong-value');
  await page.click('.batch button:not(.primary)');  // discard
}));

test('markup in data is shown as text, never run', () => step('markup as text', async () => {
  const id = (await fleet.job('mlp-live')).id;
  // Job and host names cannot hold markup: the coordinator refuses them.
  const named = await fleet.api('POST', '/v1/hosts/%3Cscript%3E/enrol', {}, { 'X-Worker-Token': WORKER_TOKEN });
  assert.equal(named.status, 400);
  const manifest = join(fleet.dir, 'fleet.toml');
  const kept = await readFile(manifest, 'utf8');
  await writeFile(manifest, `${kept}\n[[jobs]]\nname = "<script>alert(1)</script>"\nmodel = "mlp"\n`);
  const reload = await fleet.api('POST', '/v1/manifest/reload?dry_run=1', {}, fleet.operatorHeaders('ana'));
  await writeFile(manifest, kept);
  assert.ok(reload.status >= 400 && reload.status < 500, `a <script> job name answered ${reload.status}`);
  assert.match(JSON.stringify(reload.body), /invalid name/);
  const markup = '<script>window.__tvInjected = 1</script><img src=x onerror="window.__tvInjected = 2">';
  // An operator's name is free text: one made of markup writes, with a reason made of markup.
  const name = '<img src=y onerror="window.__tvInjected = 3">';
  const write = await fleet.api('POST', `/v1/job/${id}/config`, { writes: { 'training/control/eval_every': 30 }, reason: markup },
    fleet.operatorHeaders(name));
  assert.equal(write.status, 200, JSON.stringify(write.body));
  const actor = page.locator('table.audit span.actor', { hasText: 'human:<img' }).first();
  await actor.waitFor({ timeout: 15000 });
  assert.equal(await actor.textContent(), `human:${name}`);
  const cell = page.locator('table.audit td.reason-text', { hasText: '<script>' }).first();
  await cell.waitFor({ timeout: 15000 });
  assert.equal(await cell.textContent(), markup);
  assert.equal(await page.evaluate(() => window.__tvInjected), undefined);
  assert.equal(await page.locator('img[src="x"], img[src="y"]').count(), 0);
  // The page's own sign-in shows the name it was given as text too.
  await page.click('.signin button');  // sign out
  await page.locator('[data-action="sign-in"]').click();
  await page.fill('input[name="operatorName"]', name);
  await page.fill('input[name="operatorToken"]', OPERATOR_TOKEN);
  await page.click('.signin-form button[type="submit"]');
  assert.equal(await page.locator('.operator-name').textContent(), name);
  assert.equal(await page.locator('img[src="y"]').count(), 0);
  const marker = page.locator('.marker-list li', { hasText: '<img src=x' });
  await marker.waitFor({ timeout: 15000 });
  assert.match(await marker.textContent(), /eval_every 25 → 30 — <script>window.__tvInjected = 1<\/script><img src=x onerror=/);
  assert.equal(await page.evaluate(() => window.__tvInjected), undefined);
  assert.deepEqual(page.errors, []);
}));

test('a job with 100k telemetry points: first load and first curve measured', () => step('100k points', async () => {
  const id = await fleet.seedLongRun(100000);
  const curve = await fetch(`${fleet.url}/v1/job/${id}/curve?metric=loss&buckets=1000`, { headers: { 'X-Read-Token': READ_TOKEN } });
  report.curve_bytes_100k_points = (await curve.text()).length;
  // A new tab of the same browser context: the tab's session storage starts empty, so it is given
  // the read token the way a bookmarked page would be after signing in.
  const fresh = await browser.newPage({ viewport: { width: 1400, height: 1000 } });
  await fresh.addInitScript((token) => sessionStorage.setItem('tv.readToken', token), READ_TOKEN);
  const started = Date.now();
  await fresh.goto(`${fleet.url}/#/job/${id}`);
  await fresh.locator('.chart[data-metric="loss"] canvas').waitFor({ timeout: 30000 });
  report.first_curve_wall_ms_100k_points = Date.now() - started;
  const t = await fresh.evaluate(() => {
    const nav = performance.getEntriesByType('navigation')[0];
    const mark = performance.getEntriesByName('tv:first-curve')[0];
    return { load: nav.loadEventEnd, domContentLoaded: nav.domContentLoadedEventEnd, firstCurve: mark ? mark.startTime : null };
  });
  report.first_load_ms = Math.round(t.load);
  report.dom_content_loaded_ms = Math.round(t.domContentLoaded);
  report.first_curve_ms_100k_points = Math.round(t.firstCurve);
  assert.ok(t.firstCurve > 0, 'the page marked its first curve');
  const points = Number(await fresh.locator('.chart[data-metric="loss"]').getAttribute('data-points'));
  assert.ok(points > 500 && points <= 1000, `the loss chart holds ${points} buckets of the 100k points`);
  await fresh.screenshot({ path: join(SHOTS, 'job-100k.png'), fullPage: true });
  await fresh.close();
  console.log(`RESULT dashboard ${JSON.stringify(report)}`);
}));
