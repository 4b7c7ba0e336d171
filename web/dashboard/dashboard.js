// The btcml dashboard: one page over the public API (src/serve/openapi.json), bundled by esbuild and embedded in the
// binary. Views are chosen by the URL's #fragment; the one on screen refreshes every POLL_MS without a reload.
// The API key lives in this tab's sessionStorage and goes out only in the X-API-Key header, never in a URL.
import { CandlestickSeries, ColorType, LineSeries, LineStyle, createChart, createOptionsChart } from 'lightweight-charts';
import './dashboard.css';

const POLL_MS = 2000;
const BARS_SHOWN = 168; // a week of hourly bars: the forecast fan stays wide enough to read
const COLORS = ['#2962ff', '#ff6d00', '#00897b', '#8e24aa', '#c62828', '#6d4c41', '#546e7a'];
const KEY_STORE = 'btcml.apiKey';
// Live errors are fractions of the price (log returns): they need more digits than prices.
const SMALL = { type: 'price', precision: 5, minMove: 0.00001 };

const state = { series: [], current: null, view: null, charts: [], busy: false, again: false };

// ---- helpers -------------------------------------------------------------------------------------------------

class ApiError extends Error {
  constructor(status, detail) {
    super(`${status}: ${detail}`);
    this.status = status;
  }
}

async function api(path, options = {}) {
  const headers = { ...(options.headers || {}) };
  const key = sessionStorage.getItem(KEY_STORE);
  if (key) headers['X-API-Key'] = key;
  const response = await fetch(path, { ...options, headers });
  const body = (response.headers.get('content-type') || '').includes('json') ? await response.json() : null;
  if (!response.ok) throw new ApiError(response.status, (body && body.detail) || response.statusText);
  return body;
}

function seriesQuery(extra = {}) {
  const s = state.current;
  return new URLSearchParams({ symbol: s.symbol, interval: s.interval, ...extra }).toString();
}

/** An element from a tag, attributes (`testid` becomes data-testid) and children (strings become text). */
function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value === undefined || value === null) continue;
    if (name === 'testid') node.dataset.testid = value;
    else if (name.startsWith('on')) node.addEventListener(name.slice(2), value);
    else node.setAttribute(name, value);
  }
  for (const child of children.flat()) node.append(child instanceof Node ? child : String(child ?? ''));
  return node;
}

const price = (v) => (v === null || v === undefined ? '–' : Number(v).toFixed(2));
const num = (v, digits = 4) => (v === null || v === undefined ? '–' : Number(v).toFixed(digits));
const pct = (v) => (v === null || v === undefined ? '–' : `${(100 * v).toFixed(1)} %`);
const unix = (iso) => Math.floor(Date.parse(iso) / 1000);
const shortTime = (iso) => (iso ? iso.replace('T', ' ').replace(/:00Z$|Z$/, '') : '–');

function age(seconds) {
  if (seconds === null || seconds === undefined) return '–';
  const a = Math.abs(seconds);
  const text = a < 120 ? `${a} s` : a < 7200 ? `${Math.round(a / 60)} min` : a < 172800 ? `${Math.round(a / 3600)} h`
                                                                                         : `${Math.round(a / 86400)} d`;
  return seconds < 0 ? `in ${text}` : `${text} ago`;
}

function card(label, value, testid, cls) {
  return el('div', { class: 'card' }, el('div', { class: 'label' }, label),
            el('div', { class: `value ${cls || ''}`, testid }, value));
}

function table(headers, rows, testid) {
  return el('div', { class: 'scroll' },
            el('table', { testid }, el('thead', {}, el('tr', {}, headers.map((h) => el('th', {}, h)))),
               el('tbody', {}, rows.length ? rows : [el('tr', {}, el('td', { colspan: headers.length, class: 'muted' },
                                                                     'nothing yet'))])));
}

function legend(entries) {
  return el('div', { class: 'legend' },
            entries.map(([name, color]) => el('span', {}, el('i', { style: `background:${color}` }), name)));
}

const chartLayout = {
  autoSize: true,
  layout: { background: { type: ColorType.Solid, color: '#ffffff' }, textColor: '#1c2330' },
  grid: { vertLines: { color: '#eef1f5' }, horzLines: { color: '#eef1f5' } },
};

/** A time chart (or a numeric-axis one with `numeric`) in `container`, disposed when the view changes. */
function newChart(container, numeric = false) {
  const chart = numeric ? createOptionsChart(container, chartLayout)
                        : createChart(container, { ...chartLayout, timeScale: { timeVisible: true } });
  state.charts.push(chart);
  return chart;
}

function line(chart, color, extra = {}) {
  return chart.addSeries(LineSeries, { color, lineWidth: 2, priceLineVisible: false, ...extra });
}

/** Points sorted by time with one value per time (the last given wins), as the chart requires. */
function points(list) {
  const byTime = new Map();
  for (const p of list) if (p.value !== null && p.value !== undefined && Number.isFinite(p.time)) byTime.set(p.time, p);
  return [...byTime.values()].sort((a, b) => a.time - b.time);
}

// ---- views ---------------------------------------------------------------------------------------------------
// Each view builds its skeleton once (mount) and fills it from the API on every poll (update).

const overview = {
  mount(main) {
    this.cards = el('div', { class: 'cards' });
    this.chartBox = el('div', { class: 'chart', testid: 'price-chart' });
    this.forecast = el('div');
    this.alerts = el('div');
    main.append(el('section', {}, this.cards),
                el('section', {}, el('h2', {}, 'Price, forecast fan (median and 80 % band) and past forecasts'),
                   this.chartBox,
                   legend([['median', COLORS[0]], ['80 % band', COLORS[1]], ['past forecasts (shortest horizon)',
                                                                             COLORS[3]]])),
                el('div', { class: 'grid2' }, el('section', {}, el('h2', {}, 'Forecast'), this.forecast),
                   el('section', {}, el('h2', {}, 'Alerts'), this.alerts)));
    const chart = newChart(this.chartBox);
    this.candles = chart.addSeries(CandlestickSeries, { upColor: '#1e9e63', downColor: '#d9453b', wickUpColor: '#1e9e63',
                                                        wickDownColor: '#d9453b', borderVisible: false });
    this.median = line(chart, COLORS[0]);
    this.upper = line(chart, COLORS[1], { lineStyle: LineStyle.Dashed, lineWidth: 1 });
    this.lower = line(chart, COLORS[1], { lineStyle: LineStyle.Dashed, lineWidth: 1 });
    this.past = line(chart, COLORS[3], { lineWidth: 1 });
    this.chart = chart;
  },
  async update() {
    const s = state.current;
    const from = new Date((unix(s.last_time) - (BARS_SHOWN - 1) * intervalSeconds(s.interval)) * 1000).toISOString();
    const [bars, forecast, predictions, alerts] = await Promise.all([
      api(`/api/v1/bars?${seriesQuery({ from, limit: BARS_SHOWN })}`),
      s.model_version === null ? null : api(`/api/v1/forecast?${seriesQuery()}`),
      api(`/api/v1/predictions?${seriesQuery({ from, limit: 10000 })}`),
      api('/api/v1/alerts?limit=20'),
    ]);
    const last = bars.bars[bars.bars.length - 1];
    const fc = forecast ? forecast.forecasts : [];
    // The time scale gives each time one slot: empty slots for the bars to come keep the fan's horizons to scale.
    const step = intervalSeconds(s.interval);
    const future = [];
    if (last && fc.length)
      for (let t = unix(last.time) + step; t <= Math.max(...fc.map((f) => unix(f.target_time))); t += step)
        future.push({ time: t });
    this.candles.setData(bars.bars.map((b) => ({ time: unix(b.time), open: b.open, high: b.high, low: b.low,
                                                 close: b.close })).concat(future));
    const start = forecast && { time: unix(forecast.as_of), value: last && last.time === forecast.as_of ? last.close : null };
    const fan = (key) => (start && start.value !== null ? [start] : []).concat(
      fc.map((f) => ({ time: unix(f.target_time), value: f[key] })));
    this.median.setData(points(fan('price')));
    this.upper.setData(points(fan('upper')));
    this.lower.setData(points(fan('lower')));
    const shortest = Math.min(...predictions.predictions.map((p) => p.horizon));
    this.past.setData(points(predictions.predictions.filter((p) => p.horizon === shortest && p.target_time <= (last || {}).time)
                                .map((p) => ({ time: unix(p.target_time), value: p.price }))));
    if (!this.fitted && bars.bars.length) {
      this.chart.timeScale().fitContent();
      this.fitted = true;
    }
    this.cards.replaceChildren(
      card('Last close', last ? price(last.close) : '–', 'last-close'),
      card('Last bar', last ? shortTime(last.time) : '–', 'last-bar'),
      card('Data age', age(s.age_seconds), 'data-age', s.age_seconds > 2 * intervalSeconds(s.interval) ? 'bad' : ''),
      card('Serving model', forecast ? `v${forecast.model_version}` : 'none', 'model-version'),
      card('Open alerts', String(alerts.open), 'open-alerts', alerts.open ? 'bad' : 'good'));
    this.forecast.replaceChildren(forecast ? el('p', { class: 'muted' }, `as of ${shortTime(forecast.as_of)}`) : '',
      table(['horizon', 'target time', 'median', '80 % band'],
            fc.map((f) => el('tr', { testid: `forecast-h${f.horizon}` }, el('td', {}, `${f.horizon}`),
                             el('td', {}, shortTime(f.target_time)), el('td', { testid: 'median' }, price(f.price)),
                             el('td', {}, `${price(f.lower)} – ${price(f.upper)}`))), 'forecast-table'));
    this.alerts.replaceChildren(table(['alert', 'status', 'since', 'what btcml did'],
      alerts.alerts.map((a) => el('tr', {}, el('td', {}, a.alertname), el('td', { class: a.status === 'firing' ? 'bad' : '' },
                                                                           a.status),
                                  el('td', {}, shortTime(a.starts_at)), el('td', {}, a.outcome))), 'alerts-table'));
  },
};

/** Plots `metric` of the model and of every baseline the API reports as `<name>_<metric>` (names come from data). */
function metricLines(chart, rows, metric, existing) {
  const names = [...new Set(rows.flatMap((r) => Object.keys(r)))].filter((k) => k === metric || k.endsWith(`_${metric}`));
  names.sort((a, b) => (a === metric ? -1 : b === metric ? 1 : a.localeCompare(b)));
  const entries = [];
  names.forEach((name, i) => {
    if (!existing.has(name)) existing.set(name, line(chart, COLORS[i % COLORS.length], { priceFormat: SMALL }));
    existing.get(name).setData(points(rows.map((r) => ({ time: unix(r.computed_at), value: r[name] }))));
    entries.push([name === metric ? `model ${metric}` : name.replace(`_${metric}`, ` ${metric}`),
                  COLORS[i % COLORS.length]]);
  });
  return legend(entries);
}

const accuracy = {
  mount(main) {
    this.horizonBox = el('div');
    this.pinballBox = el('div', { class: 'chart small', testid: 'pinball-chart' });
    this.coverageBox = el('div', { class: 'chart small', testid: 'coverage-chart' });
    this.pinballLegend = el('div');
    this.latest = el('div');
    this.drift = el('div');
    main.append(el('section', {}, el('h2', {}, 'Live accuracy of forecasts that came due'), this.horizonBox),
                el('div', { class: 'grid2' },
                   el('section', {}, el('h2', {}, 'Pinball loss against the baselines'), this.pinballBox,
                      this.pinballLegend),
                   el('section', {}, el('h2', {}, 'Coverage of the 80 % band'), this.coverageBox,
                      legend([['coverage', COLORS[0]], ['target 80 %', COLORS[1]]]))),
                el('section', {}, el('h2', {}, 'Latest window'), this.latest),
                el('section', {}, el('h2', {}, 'Drift per feature (PSI; above 0.2 is a shift)'), this.drift));
    this.pinball = newChart(this.pinballBox);
    this.pinballSeries = new Map();
    const coverage = newChart(this.coverageBox);
    this.coverage = line(coverage, COLORS[0]);
    this.target = line(coverage, COLORS[1], { lineStyle: LineStyle.Dashed, lineWidth: 1 });
  },
  async update() {
    const m = await api(`/api/v1/monitoring?${seriesQuery()}`);
    const horizons = [...new Set(m.live_metrics.map((r) => r.horizon))].sort((a, b) => a - b);
    if (!horizons.includes(this.horizon)) this.horizon = horizons[0];
    this.horizonBox.replaceChildren(
      horizons.length ? el('span', {}, 'horizon ', horizons.map((h) => el('button', {
        testid: `horizon-${h}`, disabled: h === this.horizon ? '' : null,
        onclick: () => { this.horizon = h; refresh(); } }, `${h}`)))
                      : el('p', { class: 'muted' }, 'No forecast has been scored yet: scores appear once forecasts come due.'));
    const rows = m.live_metrics.filter((r) => r.horizon === this.horizon);
    this.pinballLegend.replaceChildren(metricLines(this.pinball, rows, 'pinball', this.pinballSeries));
    const cov = points(rows.map((r) => ({ time: unix(r.computed_at), value: r.coverage_80 })));
    this.coverage.setData(cov);
    this.target.setData(cov.map((p) => ({ time: p.time, value: 0.8 })));
    const newest = new Map();
    for (const r of m.live_metrics) newest.set(r.horizon, r); // oldest first: the last one per horizon stays
    this.latest.replaceChildren(table(['horizon', 'forecasts', 'MAE', 'naive MAE', 'pinball', 'baseline pinball',
                                       'coverage 80 %', 'direction'],
      [...newest.values()].map((r) => el('tr', { testid: `live-h${r.horizon}` }, el('td', {}, `${r.horizon}`),
        el('td', {}, `${r.scored}`), el('td', { testid: 'mae' }, num(r.mae, 5)), el('td', {}, num(r.naive_mae, 5)),
        el('td', { testid: 'pinball' }, num(r.pinball, 5)), el('td', {}, num(r.baseline_pinball, 5)),
        el('td', { testid: 'coverage' }, pct(r.coverage_80)), el('td', {}, pct(r.direction_accuracy)))), 'live-table'));
    this.drift.replaceChildren(table(['feature', 'PSI', 'bars', 'model', 'measured'],
      m.drift.map((d) => el('tr', {}, el('td', {}, d.feature), el('td', { class: d.psi > 0.2 ? 'bad' : '' }, num(d.psi, 3)),
                            el('td', {}, `${d.bars}`), el('td', {}, `v${d.model_version}`),
                            el('td', {}, shortTime(d.computed_at)))), 'drift-table'));
  },
};

async function promote(version, message) {
  try {
    const r = await api(`/api/v1/models/${version}/promote`, { method: 'POST' });
    message.textContent = `version ${r.version} is the champion now (was ${r.previous ?? 'none'})`;
    message.className = 'good';
  } catch (e) {
    message.textContent = e.status === 401 ? `refused: ${e.message} (enter an API key above)` : `refused: ${e.message}`;
    message.className = 'bad';
  }
  refresh();
}

const models = {
  mount(main) {
    this.message = el('p', { testid: 'promote-result', role: 'status' });
    this.list = el('div');
    this.history = el('div');
    main.append(el('section', {}, el('h2', {}, 'Model versions (test-split metrics; the baselines each was gated on)'),
                   this.message, this.list),
                el('section', {}, el('h2', {}, 'Promotion decisions'), this.history));
  },
  async update() {
    const [list, promotions] = await Promise.all([api('/api/v1/models'), api(`/api/v1/promotions?${seriesQuery()}`)]);
    const mine = list.models.filter((m) => m.symbol === state.current.symbol && m.interval === state.current.interval)
                     .slice(-20).reverse();
    const cards = await Promise.all(mine.map((m) => api(`/api/v1/models/${m.version}`)));
    const gates = new Map(promotions.versions.map((v) => [v.version, v.gate]));
    const rows = cards.map((c) => {
      const horizons = Object.keys(c.metrics || {}).sort((a, b) => Number(a.slice(1)) - Number(b.slice(1)));
      const summary = horizons.map((h) => {
        const byModel = c.metrics[h];
        const others = Object.keys(byModel).filter((k) => k !== 'model');
        return `${h}: ${num(byModel.model && byModel.model.pinball, 5)} (${others
          .map((o) => `${o} ${num(byModel[o].pinball, 5)}`).join(', ')})`;
      });
      const gate = gates.get(c.version);
      return el('tr', { testid: `model-${c.version}` }, el('td', {}, `v${c.version}`),
                el('td', { testid: 'alias' }, c.champion ? el('strong', { class: 'good' }, 'champion')
                                                         : (c.aliases || []).join(', ')),
                el('td', {}, shortTime(c.created_at)), el('td', {}, summary.map((s) => el('div', {}, s))),
                el('td', { style: 'white-space:normal', title: gate ? gate.reason : '' },
                   gate && gate.decision ? `${gate.decision}${gate.forced ? ' (forced)' : ''}` : '–'),
                el('td', {}, c.champion ? '' : el('button', { testid: `promote-${c.version}`,
                                                             onclick: () => promote(c.version, this.message) },
                                                  'Promote')));
    });
    this.list.replaceChildren(table(['version', 'alias', 'trained', 'pinball per horizon: model (baselines)', 'gate', ''],
                                    rows, 'models-table'));
    const changes = promotions.champion_history; // newest first
    const latest = changes[0];
    const rollback = latest && latest.previous !== null
      ? el('button', { testid: 'rollback', onclick: () => promote(latest.previous, this.message) },
           `Roll back to v${latest.previous}`) : '';
    this.history.replaceChildren(rollback, table(['when', 'champion', 'previous', 'why'],
      changes.map((c) => el('tr', {}, el('td', {}, shortTime(c.changed_at)),
                                             el('td', {}, c.version === null ? 'none' : `v${c.version}`),
                                             el('td', {}, c.previous === null ? '–' : `v${c.previous}`),
                                             el('td', { style: 'white-space:normal' }, c.reason))), 'promotions-table'));
  },
};

const runs = {
  mount(main) {
    this.picker = el('div');
    this.curveBox = el('div', { class: 'chart small', testid: 'loss-chart' });
    this.details = el('div');
    main.append(el('section', {}, el('h2', {}, 'Training runs'), this.picker),
                el('section', {}, el('h2', {}, 'Loss per epoch'), this.curveBox,
                   legend([['train loss', COLORS[0]], ['validation loss', COLORS[1]]])),
                el('section', {}, el('h2', {}, 'Parameters and duration'), this.details));
    const chart = newChart(this.curveBox, true);
    this.train = line(chart, COLORS[0]);
    this.validation = line(chart, COLORS[1]);
    this.chart = chart;
  },
  async update() {
    const all = await api('/api/v1/runs?limit=50');
    const mine = all.training_runs.filter((r) => r.symbol === state.current.symbol && r.interval === state.current.interval);
    if (!mine.some((r) => r.model_version === this.version)) this.version = mine.length ? mine[0].model_version : null;
    this.picker.replaceChildren(table(['model', 'run', 'trained', 'best epoch', ''],
      mine.map((r) => el('tr', {}, el('td', {}, `v${r.model_version}`), el('td', {}, r.run_id.slice(0, 12)),
                         el('td', {}, shortTime(r.created_at)), el('td', {}, `${r.best_epoch ?? '–'}`),
                         el('td', {}, el('button', { testid: `run-${r.model_version}`,
                                                     disabled: r.model_version === this.version ? '' : null,
                                                     onclick: () => { this.version = r.model_version; refresh(); } },
                                         'Show')))), 'runs-table'));
    if (this.version === null) return;
    const selected = mine.find((r) => r.model_version === this.version);
    const [modelCard, run] = await Promise.all([api(`/api/v1/models/${this.version}`),
                                           selected.run_id ? api(`/api/v1/runs/${selected.run_id}`) : null]);
    const epochs = modelCard.epochs || [];
    this.train.setData(epochs.map((e) => ({ time: e.epoch, value: e.train_loss })));
    this.validation.setData(epochs.map((e) => ({ time: e.epoch, value: e.validation_loss })));
    this.chart.timeScale().fitContent();
    const seconds = epochs.reduce((sum, e) => sum + (e.seconds || 0), 0);
    const params = Object.entries(modelCard.hyperparameters || {});
    this.details.replaceChildren(
      el('div', { class: 'cards' }, card('Epochs', `${epochs.length}`, 'epochs'),
         card('Training time', `${seconds.toFixed(2)} s`, 'train-seconds'),
         card('Run time', run && run.seconds !== null ? `${run.seconds.toFixed(1)} s` : '–', 'run-seconds'),
         card('MLflow', run && run.mlflow_url ? el('a', { href: run.mlflow_url, target: '_blank', rel: 'noopener' },
                                                  'open run') : 'not configured', 'mlflow')),
      table(['parameter', 'value'], params.map(([k, v]) => el('tr', {}, el('td', {}, k), el('td', {}, `${v}`))),
            'params-table'));
  },
};

const pipelines = {
  mount(main) {
    this.message = el('p', { testid: 'trigger-result', role: 'status' });
    this.list = el('div');
    main.append(el('section', {}, el('h2', {}, 'Pipelines'), this.message, this.list));
  },
  async update() {
    const { pipelines: all } = await api('/api/v1/pipelines');
    const mine = all.filter((p) => p.symbol === state.current.symbol && p.interval === state.current.interval);
    const sections = await Promise.all(mine.map(async (p) => {
      const { runs: list } = await api(`/api/v1/pipelines/${encodeURIComponent(p.name)}/runs?limit=10`);
      const trigger = p.kind === 'retrain'
        ? el('button', { testid: `trigger-${p.name}`, onclick: () => this.trigger(p.name) }, 'Retrain now') : '';
      return el('div', {}, el('h2', {}, `${p.name} `, el('span', { class: 'muted' },
                                                         `(${p.kind}, ${p.every && p.every !== 'never' ? `every ${p.every}` : 'on triggers only'}) `), trigger),
        table(['run', 'trigger', 'reason', 'status', 'queued', 'seconds', 'tasks'],
              list.map((r) => el('tr', {}, el('td', {}, `${r.id}`), el('td', {}, r.trigger),
                                 el('td', { style: 'white-space:normal' }, r.reason),
                                 el('td', { class: r.status === 'failed' ? 'bad' : '' }, r.status + (r.error ? `: ${r.error}` : '')),
                                 el('td', {}, shortTime(r.queued_at)), el('td', {}, num(r.seconds, 1)),
                                 el('td', {}, (r.tasks || []).map((t) => el('div', { class: t.status === 'failed' ? 'bad' : '' },
                                   `${t.task} ${t.status}${t.attempt > 1 ? ` (try ${t.attempt})` : ''}${t.error ? `: ${t.error}` : ''}`))))),
              `pipeline-${p.name}`));
    }));
    this.list.replaceChildren(...(sections.length ? sections
      : [el('p', { class: 'muted' }, 'No pipeline is configured for this series (see the series: section of the config file).')]));
  },
  async trigger(name) {
    try {
      const r = await api(`/api/v1/pipelines/${encodeURIComponent(name)}/runs`, {
        method: 'POST', headers: { 'Content-Type': 'application/json' },
        body: JSON.stringify({ reason: 'manual retrain from the dashboard' }) });
      this.message.textContent = `run ${r.run.id} ${r.created ? 'queued' : 'was already queued'}`;
      this.message.className = 'good';
    } catch (e) {
      this.message.textContent = `refused: ${e.message}`;
      this.message.className = 'bad';
    }
    refresh();
  },
};

const data = {
  mount(main) {
    this.cards = el('div', { class: 'cards' });
    this.runs = el('div');
    this.rejected = el('div');
    this.gaps = el('div');
    main.append(el('section', {}, this.cards), el('section', {}, el('h2', {}, 'Ingest runs'), this.runs),
                el('div', { class: 'grid2' }, el('section', {}, el('h2', {}, 'Rejected rows by reason'), this.rejected),
                   el('section', {}, el('h2', {}, 'Gaps in the latest bars'), this.gaps)));
  },
  async update() {
    const s = state.current;
    const [all, gaps] = await Promise.all([api('/api/v1/runs?limit=50'), api(`/api/v1/gaps?${seriesQuery()}`)]);
    const mine = all.ingest_runs.filter((r) => r.symbol === s.symbol && r.interval === s.interval);
    const withRejects = mine.filter((r) => r.rows_rejected > 0).slice(0, 10);
    const rejected = await Promise.all(withRejects.map((r) => api(`/api/v1/ingest-runs/${r.id}/rejected?limit=1`)));
    this.cards.replaceChildren(card('Bars stored', `${s.bars}`, 'bars-stored'), card('First bar', shortTime(s.first_time)),
                               card('Last bar', shortTime(s.last_time)), card('Data age', age(s.age_seconds)),
                               card('Missing bars', `${gaps.missing_bars}`, 'missing-bars', gaps.missing_bars ? 'bad' : ''));
    this.runs.replaceChildren(table(['run', 'source', 'status', 'started', 'read', 'inserted', 'duplicate', 'rejected'],
      mine.slice(0, 20).map((r) => el('tr', { testid: `ingest-${r.id}` }, el('td', {}, `${r.id}`), el('td', {}, r.source),
                         el('td', { class: r.status === 'failed' ? 'bad' : '' }, r.status + (r.error ? `: ${r.error}` : '')),
                         el('td', {}, shortTime(r.started_at)), el('td', {}, `${r.rows_read}`),
                         el('td', {}, `${r.rows_inserted}`), el('td', {}, `${r.rows_duplicate}`),
                         el('td', { testid: 'rejected', class: r.rows_rejected ? 'bad' : '' }, `${r.rows_rejected}`))),
      'ingest-table'));
    this.rejected.replaceChildren(table(['run', 'reason', 'rows', 'first rejected row'],
      rejected.flatMap((r) => Object.entries(r.by_reason).map(([reason, n]) => el('tr', {}, el('td', {}, `${r.run_id}`),
        el('td', {}, reason), el('td', { testid: `reason-${reason}` }, `${n}`),
        el('td', { class: 'muted' }, r.rows[0] ? `line ${r.rows[0].line}: ${r.rows[0].raw.slice(0, 60)}` : '')))),
      'rejected-table'));
    this.gaps.replaceChildren(el('p', { class: 'muted' }, `${gaps.bars} bars from ${shortTime(gaps.from)} to ${shortTime(gaps.to)}`),
      table(['after', 'before', 'missing bars'], gaps.gaps.slice(-50).reverse().map((g) => el('tr', {},
        el('td', {}, shortTime(g.after)), el('td', {}, shortTime(g.before)), el('td', {}, `${g.missing_bars}`))), 'gaps-table'));
  },
};

const VIEWS = { overview, accuracy, models, runs, pipelines, data };

// ---- shell ---------------------------------------------------------------------------------------------------

function intervalSeconds(text) {
  const units = { s: 1, m: 60, h: 3600, d: 86400, w: 604800 };
  const m = /^(\d+)([smhdw])$/.exec(text);
  return m ? Number(m[1]) * units[m[2]] : 3600;
}

function setStatus(text, bad) {
  const status = document.getElementById('status');
  status.textContent = text;
  status.className = bad ? 'bad' : '';
}

async function loadSeries() {
  const { series } = await api('/api/v1/series');
  state.series = series;
  const select = document.getElementById('series');
  const names = series.map((s) => `${s.symbol} ${s.interval}`);
  if ([...select.options].map((o) => o.value).join() !== names.join())
    select.replaceChildren(...names.map((n) => el('option', { value: n }, n)));
  const wanted = state.current ? `${state.current.symbol} ${state.current.interval}` : null;
  // The first time: the series a model serves, as GET /api/v1/forecast chooses.
  const chosen = series.find((s) => `${s.symbol} ${s.interval}` === wanted) || series.find((s) => s.model_version !== null)
                 || series[0] || null;
  state.current = chosen;
  if (chosen) select.value = `${chosen.symbol} ${chosen.interval}`;
}

function show(name) {
  for (const chart of state.charts) chart.remove();
  state.charts = [];
  const main = document.getElementById('main');
  main.replaceChildren();
  for (const a of document.querySelectorAll('#nav a')) a.classList.toggle('active', a.hash === `#${name}`);
  state.view = VIEWS[name];
  main.dataset.view = name;
  state.view.mount(main);
}

async function refresh() {
  if (state.busy) {
    state.again = true; // a view change or an action while a refresh runs: refresh once more right after it
    return;
  }
  state.busy = true;
  state.again = false;
  const view = state.view;
  try {
    await loadSeries();
    if (!state.current) {
      setStatus('No bars are stored yet: ingest some (btcml ingest, or POST /api/v1/bars).');
    } else {
      await view.update();
      setStatus('');
    }
    document.getElementById('updated').textContent = `updated ${new Date().toLocaleTimeString()}`;
    document.body.dataset.updates = String(Number(document.body.dataset.updates || 0) + 1);
  } catch (e) {
    setStatus(`could not load: ${e.message}`, true);
  } finally {
    state.busy = false;
    if (state.again) refresh();
  }
}

function route() {
  const name = location.hash.slice(1);
  show(VIEWS[name] ? name : 'overview');
  refresh();
}

function start() {
  const form = document.getElementById('key-form');
  const input = document.getElementById('api-key');
  const keyState = document.getElementById('key-state');
  const showKeyState = () => { keyState.textContent = sessionStorage.getItem(KEY_STORE) ? 'key set' : 'read only'; };
  form.addEventListener('submit', (event) => {
    event.preventDefault();
    if (input.value) sessionStorage.setItem(KEY_STORE, input.value);
    else sessionStorage.removeItem(KEY_STORE);
    input.value = '';
    showKeyState();
  });
  showKeyState();
  document.getElementById('series').addEventListener('change', (event) => {
    const [symbol, interval] = event.target.value.split(' ');
    state.current = state.series.find((s) => s.symbol === symbol && s.interval === interval);
    route();
  });
  window.addEventListener('hashchange', route);
  route();
  setInterval(refresh, POLL_MS);
}

start();
