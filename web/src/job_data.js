// The live data of one job's page: its curves, config, audit log, markers and log tail, loaded
// once and then kept current by the push channel. Curves are reloaded when the x axis changes;
// points pushed meanwhile wait and are appended after, never lost and never taken twice.
import { useEffect, useRef, useState } from 'preact/hooks';
import { api } from './api.js';
import { events } from './events.js';
import { METRICS, Series, Timeline } from './series.js';

const CURVE_BUCKETS = 1000;
let firstCurveMarked = false;

async function allPages(fetchPage, field) {
  let after = 0;
  const out = [];
  for (let page = 0; page < 50; page++) {
    const reply = await fetchPage(after);
    out.push(...reply[field]);
    const next = field === 'markers' ? reply.after : reply.entries.length && reply.entries[reply.entries.length - 1].seq;
    if (!reply[field].length || !next || next === after) break;
    after = next;
  }
  return out;
}

const optional = (promise) => promise.catch((e) => (e.status === 404 ? null : Promise.reject(e)));

function useThrottledVersion() {
  const [version, setVersion] = useState(0);
  const queued = useRef(false);
  const bump = () => {
    if (queued.current) return;
    queued.current = true;
    requestAnimationFrame(() => {
      queued.current = false;
      setVersion((v) => v + 1);
    });
  };
  return [version, bump];
}

function useDebounced(fn, ms) {
  const timer = useRef(null);
  const latest = useRef(fn);
  latest.current = fn;
  return () => {
    clearTimeout(timer.current);
    timer.current = setTimeout(() => latest.current(), ms);
  };
}

export function useJobData(id, xMode) {
  const [job, setJob] = useState(null);
  const [summary, setSummary] = useState(null);
  const [config, setConfig] = useState(null);
  const [knobs, setKnobs] = useState(null);
  const [audit, setAudit] = useState([]);
  const [markers, setMarkers] = useState([]);
  const [log, setLog] = useState(null);
  const [error, setError] = useState('');
  const [version, bump] = useThrottledVersion();
  const series = useRef(null);
  if (!series.current) series.current = Object.fromEntries(METRICS.map((m) => [m, new Series()]));
  const timeline = useRef(new Timeline());
  const seen = useRef({ step: -1, seq: 0 });
  const pending = useRef(null);  // points pushed while the curves load; null: not loading
  const xModeRef = useRef(xMode);
  xModeRef.current = xMode;

  // Markers that took effect tell the timeline where the trainer was when they were written.
  const placeMarkers = (mk) => {
    for (const m of mk) if (m.applied_step !== null) timeline.current.addPair(m.time_ms, m.applied_step);
    setMarkers(mk);
  };
  const refreshConfig = useDebounced(() => {
    api.config(id).then(setConfig, (e) => setError(e.message));
    allPages((after) => api.markers(id, after), 'markers').then(placeMarkers, (e) => setError(e.message));
  }, 150);

  const takePoints = (points) => {
    if (!points.length) return;
    timeline.current.add(points);
    seen.current.step = Math.max(seen.current.step, points[points.length - 1].step);
    if (pending.current) {
      pending.current.push(...points);
      return;
    }
    for (const m of METRICS) series.current[m].append(points, m, xModeRef.current);
    bump();
  };

  useEffect(() => {
    let live = true;
    const offs = [];
    seen.current = { step: -1, seq: 0 };
    timeline.current = new Timeline();
    (async () => {
      try {
        const [j, k, c, a] = await Promise.all([api.job(id), optional(api.knobs()), api.config(id),
          allPages((after) => api.audit(id, after), 'entries')]);
        if (!live) return;
        setJob(j);
        setKnobs(k ? k.knobs : null);
        setConfig(c);
        setAudit(a);
        if (c.applied) {
          seen.current.step = c.applied.last_step;
          timeline.current.addPair(c.applied.time_ms, c.applied.last_step);
        }
        if (a.length) seen.current.seq = a[a.length - 1].seq;
        offs.push(events.on('telemetry', (m) => m.job === id && takePoints(m.points)));
        offs.push(events.on('config', (m) => {
          if (m.job !== id) return;
          const fresh = m.entries.filter((e) => e.seq > seen.current.seq);
          if (fresh.length) seen.current.seq = fresh[fresh.length - 1].seq;
          setAudit((old) => [...old, ...fresh]);
          refreshConfig();
        }));
        offs.push(events.on('job', (m) => {
          if (m.job.id !== id) return;
          setSummary((old) => {
            if (old && old.applied_revision !== m.job.applied_revision) refreshConfig();
            return m.job;
          });
        }));
        offs.push(events.on('log', (m) => m.job === id && setLog(m)));
        offs.push(events.subscribeJob(id, () => ({ after_step: seen.current.step, after_seq: seen.current.seq })));
        const [mk, lg] = await Promise.all([allPages((after) => api.markers(id, after), 'markers'), optional(api.log(id))]);
        if (!live) return;
        placeMarkers(mk);
        if (lg) setLog((old) => old || lg);
      } catch (e) {
        if (live) setError(e.message);
      }
    })();
    return () => {
      live = false;
      offs.forEach((off) => off());
    };
  }, [id]);

  useEffect(() => {
    let live = true;
    pending.current = [];
    for (const m of METRICS) series.current[m].clear();
    bump();
    Promise.all(METRICS.map((metric) => api.curve(id, { metric, x: xMode, buckets: CURVE_BUCKETS }).then((reply) => {
      if (!live) return;
      series.current[metric].load(reply);
      if (!firstCurveMarked && reply.buckets.length) {
        firstCurveMarked = true;
        performance.mark('tv:first-curve');
      }
      bump();
    }))).then(() => {
      if (!live) return;
      const waiting = pending.current;
      pending.current = null;
      takePoints(waiting);
    }, (e) => live && setError(e.message));
    return () => {
      live = false;
    };
  }, [id, xMode]);

  return { job, summary, config, knobs, audit, markers, log, error, series: series.current, timeline: timeline.current, version, refresh: refreshConfig };
}
