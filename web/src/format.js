// Numbers and times as the tables and tooltips show them.

export function num(v, digits = 4) {
  if (v === null || v === undefined || Number.isNaN(v)) return '–';
  if (typeof v !== 'number') return String(v);
  if (Number.isInteger(v) && Math.abs(v) < 1e15) return v.toLocaleString('en-US');
  const a = Math.abs(v);
  if (a !== 0 && (a < 1e-3 || a >= 1e6)) return v.toExponential(Math.max(1, digits - 2));
  return Number(v.toPrecision(digits)).toString();
}

// A config value as the operator wrote it: floats keep a decimal point.
export function value(v, type) {
  if (v === null || v === undefined) return '–';
  if (typeof v === 'number') {
    if (type === 'float64' && Number.isInteger(v)) return v.toFixed(1);
    // 12 significant digits: 0.1 * 0.01 reads 0.001, not 0.0010000000000000002.
    return Number.isInteger(v) ? String(v) : String(Number(v.toPrecision(12)));
  }
  return typeof v === 'string' ? v : JSON.stringify(v);
}

export function ago(ms, now = Date.now()) {
  if (!ms) return '–';
  const s = Math.max(0, Math.round((now - ms) / 1000));
  if (s < 60) return `${s}s ago`;
  if (s < 3600) return `${Math.floor(s / 60)}m ${s % 60}s ago`;
  if (s < 86400) return `${Math.floor(s / 3600)}h ${Math.floor((s % 3600) / 60)}m ago`;
  return `${Math.floor(s / 86400)}d ago`;
}

export function clock(ms) {
  if (!ms) return '–';
  const d = new Date(ms);
  const pad = (n) => String(n).padStart(2, '0');
  return `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
}

export function datetime(ms) {
  if (!ms) return '–';
  const d = new Date(ms);
  return `${d.toISOString().slice(0, 10)} ${clock(ms)}`;
}

export const shortId = (id) => (id ? id.slice(0, 12) : '');
