// One metric's chart: uPlot over a Series, with the min/max of each bucket as a band, the last
// value as a line (smoothed on request), log scale on request, and the job's config changes drawn
// as vertical markers that name their actor and reason under the cursor.
import uPlot from 'uplot';
import { html } from 'htm/preact';
import { useEffect, useRef } from 'preact/hooks';
import { smooth } from './series.js';

const HEIGHT = 220;

function chartData(series, xMode, smoothing, logScale) {
  const xs = xMode === 'time' ? series.x.map((x) => x / 1000) : series.x.slice();
  const positive = (a) => (logScale ? a.map((v) => (v > 0 ? v : null)) : a);
  return [xs, positive(series.min), positive(series.max), positive(series.last),
    positive(smooth(series.last, smoothing))];
}

// The marker nearest to the cursor (within a few pixels), or null.
function markerAt(u, markers, left) {
  let best = null;
  let bestDist = 6;
  for (const m of markers) {
    const d = Math.abs(u.valToPos(m.x, 'x') - left);
    if (d <= bestDist) {
      best = m;
      bestDist = d;
    }
  }
  return best;
}

function markersPlugin(markersRef, tipRef, xMode) {
  const toX = (m) => (xMode === 'time' ? m.x / 1000 : m.x);
  const placed = () => markersRef.current.map((m) => ({ ...m, x: toX(m) }));
  return {
    hooks: {
      draw: [
        (u) => {
          const { ctx } = u;
          const { left, top, width, height } = u.bbox;
          const dpr = window.devicePixelRatio || 1;
          for (const m of placed()) {
            const px = Math.round(u.valToPos(m.x, 'x', true));
            if (px < left || px > left + width) continue;
            ctx.save();
            ctx.strokeStyle = m.color;
            ctx.lineWidth = 1.5 * dpr;
            if (m.dashed) ctx.setLineDash([4 * dpr, 3 * dpr]);
            ctx.beginPath();
            ctx.moveTo(px, top);
            ctx.lineTo(px, top + height);
            ctx.stroke();
            ctx.fillStyle = m.color;
            ctx.beginPath();
            ctx.arc(px, top + 4 * dpr, 3.5 * dpr, 0, 2 * Math.PI);
            ctx.fill();
            ctx.restore();
          }
        },
      ],
      setCursor: [
        (u) => {
          const tip = tipRef.current;
          if (!tip) return;
          const { left } = u.cursor;
          const m = left === undefined || left < 0 ? null : markerAt(u, placed(), left);
          if (!m) {
            tip.hidden = true;
            return;
          }
          tip.textContent = m.text;  // text, never HTML: reasons come from policies and people
          tip.hidden = false;
          tip.style.left = `${Math.min(left + 12, u.bbox.width / (window.devicePixelRatio || 1) - 180)}px`;
        },
      ],
    },
  };
}

function options(title, xMode, logScale, color, width, markersRef, tipRef, sparse) {
  return {
    title,
    width,
    height: HEIGHT,
    scales: {
      x: { time: xMode === 'time' },
      y: logScale ? { distr: 3, log: 10 } : { auto: true },
    },
    axes: [{ label: xMode === 'time' ? '' : 'step' }, { size: 60 }],
    series: [
      { label: xMode === 'time' ? 'time' : 'step' },
      { label: 'min', stroke: 'transparent', points: { show: false } },
      { label: 'max', stroke: 'transparent', points: { show: false } },
      { label: 'value', stroke: `${color}66`, width: 1, points: { show: sparse, size: 4 } },
      { label: 'smoothed', stroke: color, width: 2, points: { show: false } },
    ],
    bands: [{ series: [2, 1], fill: `${color}22` }],
    cursor: { drag: { x: true, y: false } },
    legend: { live: true },
    plugins: [markersPlugin(markersRef, tipRef, xMode)],
  };
}

export function Chart({ metric, title, series, version, xMode, smoothing, logScale, markers, color }) {
  const box = useRef(null);
  const tip = useRef(null);
  const plot = useRef(null);
  const markersRef = useRef(markers);
  markersRef.current = markers;
  const sparse = series.length < 300;
  const empty = series.length === 0;  // uPlot needs an x range: no chart before the first point

  useEffect(() => {
    if (empty) return undefined;
    const width = box.current.clientWidth || 600;
    // The tooltip lives in uPlot's overlay, outside what Preact renders.
    tip.current = document.createElement('div');
    tip.current.className = 'marker-tip';
    tip.current.hidden = true;
    const u = new uPlot(options(title, xMode, logScale, color, width, markersRef, tip, sparse),
      chartData(series, xMode, smoothing, logScale), box.current);
    u.over.appendChild(tip.current);
    plot.current = u;
    const resize = new ResizeObserver(() => u.setSize({ width: box.current.clientWidth, height: HEIGHT }));
    resize.observe(box.current);
    return () => {
      resize.disconnect();
      u.destroy();
      plot.current = null;
    };
  }, [xMode, logScale, sparse, empty]);

  useEffect(() => {
    if (plot.current) plot.current.setData(chartData(series, xMode, smoothing, logScale));
  }, [version, smoothing]);

  useEffect(() => {
    if (plot.current) plot.current.redraw(false, false);
  }, [markers]);

  return html`<div class="chart" data-metric=${metric} data-points=${series.length}
      data-last-x=${empty ? '' : series.x[series.length - 1]}
      data-markers=${markers.length}>
    ${empty ? html`<div class="chart-empty"><b>${title}</b><span class="muted">no points yet</span></div>` : ''}
    <div ref=${box}></div>
  </div>`;
}
