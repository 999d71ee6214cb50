// A job's live config as a tree of folders and knobs: typed inline edits gathered into one
// batch (one revision), freeze and unfreeze per folder, and the server's refusal shown beside the
// field it names. The server validates; the page sends what the operator typed, typed as the
// knob's schema says when it parses, so that a wrong value gets the server's own words.
import { html } from 'htm/preact';
import { useState } from 'preact/hooks';
import { api } from './api.js';
import { value as showValue } from './format.js';

const EFFECT = {
  next_step: 'takes effect at the next step',
  next_epoch: 'takes effect at the next epoch',
  start: 'read at start only: takes effect when the job next starts',
  agent: 'written by the config agent',
};
const EFFECT_SHORT = { next_step: 'next step', next_epoch: 'next epoch', start: 'at start', agent: 'agent' };

// The typed value of what the operator typed: a number where the knob is numeric and the text
// parses as one, else the text itself (which the server refuses, saying why).
export function typedValue(text, type) {
  const t = text.trim();
  if (type === 'float64' || type === 'int64') {
    return /^[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$/.test(t) ? Number(t) : t;
  }
  if (type === 'bool') return t === 'true' ? true : t === 'false' ? false : t;
  return t;
}

function guessType(v) {
  if (typeof v === 'boolean') return 'bool';
  if (typeof v === 'number') return Number.isInteger(v) ? 'int64' : 'float64';
  return 'string';
}

// Folders and keys from the config's values and the knob schema, sorted by path.
export function configTree(values, knobs) {
  const specs = new Map((knobs || []).map((k) => [k.key, k]));
  const paths = new Set(Object.keys(values || {}));
  for (const k of specs.values()) if (k.takes_effect !== 'agent') paths.add(k.key);
  const rows = [];
  const folders = new Set();
  for (const path of [...paths].sort()) {
    const spec = specs.get(path);
    if (spec && spec.takes_effect === 'agent') continue;
    const parts = path.split('/');
    for (let i = 1; i < parts.length; i++) {
      const folder = parts.slice(0, i).join('/');
      if (!folders.has(folder)) {
        folders.add(folder);
        rows.push({ folder, depth: i - 1, name: parts[i - 1] });
      }
    }
    const set = Object.prototype.hasOwnProperty.call(values || {}, path);
    rows.push({
      path,
      depth: parts.length - 1,
      name: parts[parts.length - 1],
      value: set ? values[path] : spec ? spec.default : null,
      set,
      spec: spec || { key: path, type: guessType(values[path]), help: '', takes_effect: '' },
    });
  }
  return rows;
}

const frozenBy = (path, frozen) => frozen.find((p) => path === p || path.startsWith(`${p}/`));

function KnobInput({ row, edit, onEdit, disabled }) {
  const { spec } = row;
  const current = edit !== undefined ? edit : showValue(row.value, spec.type);
  if (spec.type === 'bool') {
    return html`<select class="knob-input" data-path=${row.path} disabled=${disabled}
      value=${String(current)} onChange=${(e) => onEdit(row.path, e.target.value)}>
      <option value="true">true</option><option value="false">false</option>
    </select>`;
  }
  if (spec.allowed && spec.allowed.length) {
    return html`<select class="knob-input" data-path=${row.path} disabled=${disabled}
      value=${current} onChange=${(e) => onEdit(row.path, e.target.value)}>
      ${spec.allowed.map((a) => html`<option value=${a}>${a}</option>`)}
    </select>`;
  }
  return html`<input class="knob-input" data-path=${row.path} disabled=${disabled}
    spellcheck="false" autocomplete="off" value=${current}
    onInput=${(e) => onEdit(row.path, e.target.value)} />`;
}

function range(spec) {
  if (spec.min === null && spec.max === null) return '';
  if (spec.min === undefined && spec.max === undefined) return '';
  return `[${spec.min ?? '−∞'}, ${spec.max ?? '∞'}]`;
}

function KnobRow({ row, edit, error, frozen, onEdit, canEdit }) {
  const lock = frozenBy(row.path, frozen);
  return html`<tr class=${`knob ${edit !== undefined ? 'edited' : ''} ${row.set ? '' : 'unset'}`}
      data-path=${row.path}>
    <td class="tree-name" style=${{ paddingLeft: `${0.5 + row.depth * 1.2}rem` }}
      title=${row.spec.help}>${row.name}${lock ? html` <span class="badge frozen" title=${`frozen: ${lock}`}>frozen</span>` : ''}</td>
    <td><${KnobInput} row=${row} edit=${edit} onEdit=${onEdit} disabled=${!canEdit} />
      ${error ? html`<div class="field-error" role="alert">${error}</div>` : ''}</td>
    <td class="muted">${row.spec.type}${range(row.spec) ? ` ${range(row.spec)}` : ''}</td>
    <td class="effect" title=${EFFECT[row.spec.takes_effect] || ''}>${EFFECT_SHORT[row.spec.takes_effect] || ''}</td>
  </tr>`;
}

function FolderRow({ row, frozen, canEdit, onFreeze }) {
  const isFrozen = frozen.includes(row.folder);
  return html`<tr class="folder" data-folder=${row.folder}>
    <td class="tree-name" style=${{ paddingLeft: `${0.5 + row.depth * 1.2}rem` }} colspan="3">
      ${row.name}/ ${isFrozen ? html`<span class="badge frozen">frozen</span>` : ''}</td>
    <td>${canEdit ? html`<button class="small" data-action=${isFrozen ? 'unfreeze' : 'freeze'}
      onClick=${() => onFreeze(row.folder, !isFrozen)}>${isFrozen ? 'Unfreeze' : 'Freeze'}</button>` : ''}</td>
  </tr>`;
}

// The error's field: the knob whose path the server's message names.
function fieldOf(message, paths) {
  return paths.find((p) => message.includes(`'${p}'`)) || null;
}

export function ConfigPanel({ job, config, knobs, canEdit, onChanged }) {
  const [edits, setEdits] = useState({});
  const [errors, setErrors] = useState({});
  const [batchError, setBatchError] = useState('');
  const [reason, setReason] = useState('');
  const [busy, setBusy] = useState(false);
  if (!config) return html`<p class="muted">Loading config…</p>`;
  const rows = configTree(config.values, knobs);
  const frozen = config.frozen || [];
  const specs = new Map(rows.filter((r) => r.path).map((r) => [r.path, r.spec]));
  const count = Object.keys(edits).length;

  const onEdit = (path, text) => {
    setEdits({ ...edits, [path]: text });
    const { [path]: _, ...rest } = errors;
    setErrors(rest);
  };
  const apply = async () => {
    const writes = {};
    for (const [path, text] of Object.entries(edits)) writes[path] = typedValue(text, specs.get(path).type);
    setBusy(true);
    setBatchError('');
    try {
      await api.writeConfig(job, writes, reason || 'set from the dashboard');
      setEdits({});
      setErrors({});
      setReason('');
      onChanged();
    } catch (e) {
      const field = fieldOf(e.message, Object.keys(writes));
      if (field) setErrors({ [field]: e.message });
      else setBatchError(e.message);
    } finally {
      setBusy(false);
    }
  };
  const freeze = async (prefix, on) => {
    setBatchError('');
    try {
      await (on ? api.freeze(job, prefix) : api.unfreeze(job, prefix));
      onChanged();
    } catch (e) {
      setBatchError(e.message);
    }
  };

  return html`<div class="config-panel">
    <table class="tree">
      <thead><tr><th>Key</th><th>Value</th><th>Type</th><th>Takes effect</th></tr></thead>
      <tbody>${rows.map((row) => (row.folder
        ? html`<${FolderRow} key=${`f:${row.folder}`} row=${row} frozen=${frozen} canEdit=${canEdit} onFreeze=${freeze} />`
        : html`<${KnobRow} key=${row.path} row=${row} edit=${edits[row.path]} error=${errors[row.path]}
            frozen=${frozen} onEdit=${onEdit} canEdit=${canEdit} />`))}</tbody>
    </table>
    ${canEdit ? html`<div class="batch">
      <input class="reason" placeholder="Reason (kept in the audit log)" value=${reason}
        onInput=${(e) => setReason(e.target.value)} />
      <button class="primary" data-action="apply" disabled=${!count || busy} onClick=${apply}>
        ${count ? `Apply ${count} change${count > 1 ? 's' : ''} as one revision` : 'No changes'}</button>
      <button disabled=${!count || busy} onClick=${() => { setEdits({}); setErrors({}); setBatchError(''); }}>Discard</button>
    </div>` : html`<p class="muted">Sign in as an operator to change the config.</p>`}
    ${batchError ? html`<div class="field-error batch-error" role="alert">${batchError}</div>` : ''}
  </div>`;
}
