// The twister2 dashboard in the browser: a plain ES module, no build step, no framework.
// It routes on location.pathname (`/`: the jobs, `/jobs/<id>`: one job), reads /api/* as JSON and follows
// Server-Sent Events for live updates. The server's CSP (`default-src 'self'`) forbids inline scripts and
// style attributes, so all styling is in style.css and SVG geometry is set through attributes. Text from the
// API only ever goes in through text nodes (never innerHTML).

const AUTH_MSG = 'Not signed in: open the login link that `twister2 dashboard` printed (http://HOST:PORT/?token=...)';
const NO_LOGS_MSG = 'logs are not available here for this job (its job master reports from the cluster)';
const MAX_LOG_LINES = 1000;
const STATE_ORDER = ['QUEUED', 'STARTING', 'RUNNING', 'SUCCEEDED', 'FAILED', 'KILLED', 'LOST', 'UNREACHABLE'];
const SVG_NS = 'http://www.w3.org/2000/svg';

const app = document.getElementById('app');
const alerts = document.getElementById('alerts');
const connBadge = document.querySelector('[data-conn]');

// ---- DOM helpers ----

/** An element with attributes (null/false skipped, true = empty) and children (nodes, or strings as text). */
const h = (tag, attrs = {}, ...children) => fill(document.createElement(tag), attrs, children);
const s = (tag, attrs = {}, ...children) => fill(document.createElementNS(SVG_NS, tag), attrs, children);
function fill(e, attrs, children) {
  for (const [k, v] of Object.entries(attrs)) if (v != null && v !== false) e.setAttribute(k, v === true ? '' : String(v));
  for (const c of children.flat(Infinity)) if (c != null && c !== false) e.append(c instanceof Node ? c : String(c));
  return e;
}
const card = (title, ...body) => h('section', { class: 'card' }, h('h2', {}, title), ...body);
const stateClass = (state) => `state-${String(state).replace(/[^A-Za-z_]/g, '')}`;
const badge = (state, attrs = {}) => h('span', { class: `badge ${stateClass(state)}`, ...attrs }, String(state));
const sortIds = (ids) => [...(ids ?? [])].map(Number).sort((a, b) => a - b);
const table = (heads, tbody) => h('div', { class: 'table-wrap' },
  h('table', {}, h('thead', {}, h('tr', {}, heads.map((t) => h('th', { scope: 'col' }, t)))), tbody));

/** Replaces a select's options only when the values change (so an open dropdown is not disturbed), keeps `value`. */
function setOptions(sel, values, value, label = (v) => v, all = null) {
  const key = JSON.stringify([all, values]);
  if (sel.optionsKey !== key) {
    sel.optionsKey = key;
    sel.replaceChildren(...(all ? [h('option', { value: '' }, all)] : []), ...values.map((v) => h('option', { value: v }, label(v))));
  }
  sel.value = String(value);
}

// ---- time ----

const pad = (n) => String(n).padStart(2, '0');
/** A span of time: "42 s", "3 min 12 s", "2 h 5 min", "3 d 4 h". */
function span(ms) {
  const sec = Math.max(0, Math.floor(ms / 1000));
  const min = Math.floor(sec / 60);
  const hr = Math.floor(min / 60);
  if (sec < 60) return `${sec} s`;
  if (min < 60) return `${min} min ${sec % 60} s`;
  return hr < 24 ? `${hr} h ${min % 60} min` : `${Math.floor(hr / 24)} d ${hr % 24} h`;
}
/** A local time of day, with the date when it is not today. */
function clock(at, seconds = true) {
  const d = new Date(at);
  if (Number.isNaN(d.getTime())) return '—';
  const t = `${pad(d.getHours())}:${pad(d.getMinutes())}${seconds ? `:${pad(d.getSeconds())}` : ''}`;
  return d.toDateString() === new Date().toDateString() ? t : `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${t}`;
}
// Relative times are elements marked data-since / data-from, so one ticker refreshes them all every second.
const since = (iso, fmt) => timeText(h('span', { 'data-since': iso, 'data-fmt': fmt, title: clock(iso) }));
const duration = (from, to) => timeText(h('span', { 'data-from': from, 'data-to': to, title: `${clock(from)} – ${to ? clock(to) : 'now'}` }));
function timeText(e) {
  const { since: at, fmt, from, to } = e.dataset;
  const ms = at !== undefined ? Date.now() - Date.parse(at) : (to ? Date.parse(to) : Date.now()) - Date.parse(from);
  if (Number.isNaN(ms)) e.textContent = '—';
  else if (fmt === 'ago') e.textContent = ms < 60000 ? `${(Math.max(0, ms) / 1000).toFixed(1)} s ago` : `${span(ms)} ago`;
  else e.textContent = span(ms);
  return e;
}
setInterval(() => document.querySelectorAll('[data-since], [data-from]').forEach(timeText), 1000);

// ---- messages ----

function showError(message) {
  const close = h('button', { type: 'button', class: 'link' }, 'Dismiss');
  close.addEventListener('click', clearError);
  alerts.replaceChildren(h('div', { class: 'alert', role: 'alert' }, h('p', { 'data-error': '' }, message), close));
}
const clearError = () => alerts.replaceChildren();

// ---- API ----

/** An error to show, with the HTTP status of its answer (0: no answer; 401: not signed in). */
const apiError = (status, message) => Object.assign(new Error(message), { status });
async function errorOf(res) {
  if (res.status === 401) return apiError(401, AUTH_MSG);
  const data = await res.json().catch(() => null);
  return apiError(res.status, data?.error?.message || `${res.status} ${res.statusText}`.trim());
}

/** GET `path`, or POST `body` as JSON (with the header the server asks of every POST against cross-site requests). */
async function api(path, body) {
  const headers = { accept: 'application/json' };
  const post = body === undefined ? {} : { method: 'POST', body: JSON.stringify(body) };
  if (post.method) Object.assign(headers, { 'content-type': 'application/json', 'x-twister2-dashboard': '1' });
  const res = await fetch(path, { credentials: 'same-origin', headers, ...post }).catch(() => null);
  if (!res) throw apiError(0, 'cannot reach the dashboard server');
  if (!res.ok) throw await errorOf(res);
  return res.json().catch(() => ({}));
}

// Streams not connected now; while there are any, the top bar says "reconnecting…".
const downStreams = new Set();
function setDown(stream, down) {
  downStreams[down ? 'add' : 'delete'](stream);
  connBadge.hidden = downStreams.size === 0;
}

/**
 * An EventSource that keeps going. EventSource reconnects by itself after a dropped connection but gives up
 * for good on an answer that is not an event stream (401, 404, 502...): then we ask the URL why, stop on a 4xx
 * (`onFatal`) and try again later on anything else. `handlers.open(again)` runs on each (re)connection,
 * `handlers.error()` when the connection is lost; the other handlers get their event's JSON data.
 */
function openStream(url, handlers, onFatal) {
  let es = null, timer = 0, delay = 1000, closed = false, hadError = false;
  const stream = { close() { closed = true; clearTimeout(timer); es?.close(); setDown(stream, false); } };
  const connect = () => {
    es = new EventSource(url);
    es.addEventListener('open', () => {
      delay = 1000;
      setDown(stream, false);
      handlers.open?.(hadError);
      hadError = false;
    });
    es.addEventListener('error', () => {
      if (closed) return;
      hadError = true;
      setDown(stream, true);
      handlers.error?.();
      if (es.readyState !== EventSource.CLOSED) return;
      probe(url).then((err) => {
        if (closed) return;
        if (err) return void (stream.close(), onFatal(err));
        timer = setTimeout(connect, delay);
        delay = Math.min(delay * 2, 30000);
      });
    });
    for (const [name, fn] of Object.entries(handlers)) {
      if (name === 'open' || name === 'error') continue;
      es.addEventListener(name, (e) => {
        const data = parseJson(e.data);
        if (!closed && data !== undefined) fn(data); // not JSON: nothing we could show
      });
    }
  };
  connect();
  return stream;
}

function parseJson(text) {
  try { return JSON.parse(text); } catch { return undefined; }
}
function decode(component) {
  try { return decodeURIComponent(component); } catch { return null; } // a malformed escape
}

/** Why a stream was refused: an error for a 4xx answer; null when trying again may help. */
async function probe(url) {
  const ctl = new AbortController();
  try {
    const res = await fetch(url, { credentials: 'same-origin', signal: ctl.signal });
    return res.status >= 400 && res.status < 500 ? await errorOf(res) : null;
  } catch {
    return null;
  } finally {
    ctl.abort(); // a stream that does answer now is EventSource's to read, not ours
  }
}

// ---- routing ----

let page = null;
function route() {
  page?.dispose();
  clearError();
  const root = h('section', { class: 'page' });
  app.replaceChildren(root);
  const m = /^\/jobs\/([^/]+)\/?$/.exec(location.pathname);
  const jobId = m && decode(m[1]);
  page = location.pathname === '/' ? jobsPage(root) : jobId ? jobPage(root, jobId) : null;
  if (!page) {
    document.title = 'Not found · twister2';
    root.append(h('h1', {}, 'Page not found'), h('p', {}, h('a', { href: '/', 'data-link': true }, '← All jobs')));
  }
}
// Links marked data-link change the page without a reload (a modified click still opens a tab as usual).
document.addEventListener('click', (e) => {
  const a = e.target instanceof Element ? e.target.closest('a[data-link]') : null;
  if (!a || e.defaultPrevented || e.button !== 0 || e.metaKey || e.ctrlKey || e.shiftKey || e.altKey) return;
  e.preventDefault();
  const path = new URL(a.href).pathname;
  if (path === location.pathname) return;
  history.pushState(null, '', path);
  window.scrollTo(0, 0);
  route();
});
window.addEventListener('popstate', route);

// ---- jobs page ----

const jobFilters = { state: '', cluster: '' }; // kept across pages, so going back shows the same selection

function jobsPage(root) {
  root.dataset.page = 'jobs';
  document.title = 'Jobs · twister2';
  const jobs = new Map();
  let loaded = false, failed = false, stream = null, timer = 0;
  const self = { disposed: false, dispose() { self.disposed = true; stream?.close(); clearTimeout(timer); } };

  const stateSel = h('select', { 'data-filter': 'state' });
  const clusterSel = h('select', { 'data-filter': 'cluster' });
  const count = h('span', { class: 'muted count' });
  const tbody = h('tbody');
  const wrap = table(['Job ID', 'Name', 'Cluster', 'State', 'Workers', 'Age', 'Duration', 'Message'], tbody);
  const empty = h('p', { class: 'empty' });
  root.append(h('div', { class: 'page-head' }, h('h1', {}, 'Jobs'),
    h('div', { class: 'filters' }, h('label', {}, 'State ', stateSel), h('label', {}, 'Cluster ', clusterSel), count)), wrap, empty);
  for (const [key, sel] of [['state', stateSel], ['cluster', clusterSel]]) {
    sel.addEventListener('change', () => { jobFilters[key] = sel.value; render(); });
  }

  // Events come in bursts (every job at connect): draw once per burst.
  const later = () => { timer ||= setTimeout(() => { timer = 0; render(); }, 20); };
  function render() {
    const time = (j) => Date.parse(j.startedAt) || 0;
    const all = [...jobs.values()].sort((a, b) => time(b) - time(a) || (a.jobId < b.jobId ? 1 : -1));
    const rank = (st) => (STATE_ORDER.includes(st) ? STATE_ORDER.indexOf(st) : 99);
    const states = [...new Set(all.map((j) => j.state))].sort((a, b) => rank(a) - rank(b) || a.localeCompare(b));
    const clusters = [...new Set(all.map((j) => j.cluster))].sort();
    // A chosen filter stays in the list even when no job has it now, rather than silently changing.
    if (jobFilters.state && !states.includes(jobFilters.state)) states.push(jobFilters.state);
    if (jobFilters.cluster && !clusters.includes(jobFilters.cluster)) clusters.push(jobFilters.cluster);
    setOptions(stateSel, states, jobFilters.state, undefined, 'All');
    setOptions(clusterSel, clusters, jobFilters.cluster, undefined, 'All');
    const { state, cluster } = jobFilters;
    const shown = all.filter((j) => (!state || j.state === state) && (!cluster || j.cluster === cluster));
    tbody.replaceChildren(...shown.map(jobRow));
    wrap.hidden = shown.length === 0;
    empty.hidden = shown.length > 0;
    empty.textContent = !loaded ? (failed ? 'Could not load the jobs.' : 'Loading jobs…')
      : all.length === 0 ? 'No jobs yet. Jobs of this machine (TWISTER2_HOME) and jobs whose job master reports to this dashboard show up here.'
        : 'No job matches these filters.';
    count.textContent = shown.length === all.length ? `${all.length} job${all.length === 1 ? '' : 's'}` : `${shown.length} of ${all.length} jobs`;
  }

  // The list, also after a reconnection: a job removed meanwhile sent its `removed` to nobody.
  async function load() {
    const { jobs: list = [] } = await api('/api/jobs');
    const fresh = new Set(list.map((j) => j.jobId));
    for (const id of jobs.keys()) if (!fresh.has(id)) jobs.delete(id);
    for (const j of list) {
      const old = jobs.get(j.jobId); // an event may have brought a newer one meanwhile
      if (!old || !(Date.parse(old.updatedAt) > Date.parse(j.updatedAt))) jobs.set(j.jobId, j);
    }
    loaded = true;
    later();
  }
  const onErr = (err) => { if (!self.disposed) { showError(err.message); failed = true; later(); } };
  load().then(() => true, (err) => { onErr(err); return err.status !== 401; }).then((go) => {
    if (!go || self.disposed) return;
    stream = openStream('/api/events', {
      open: (again) => { if (again) load().catch(onErr); },
      job: (j) => { if (j?.jobId) { jobs.set(j.jobId, j); loaded = true; later(); } },
      removed: ({ jobId }) => { jobs.delete(jobId); later(); },
    }, onErr);
  });
  render();
  return self;
}

function jobRow(j) {
  return h('tr', { 'data-job-id': j.jobId },
    h('td', { class: 'mono' }, h('a', { href: `/jobs/${encodeURIComponent(j.jobId)}`, 'data-link': true }, j.jobId)),
    h('td', {}, j.name ?? ''), h('td', {}, j.cluster ?? ''), h('td', { 'data-field': 'state' }, badge(j.state)),
    h('td', { 'data-field': 'workers', class: 'num' }, `${j.running ?? 0}/${j.numWorkers ?? 0}`),
    h('td', {}, since(j.startedAt, 'age')), h('td', {}, duration(j.startedAt, j.endedAt)), h('td', { class: 'msg' }, j.message ?? ''));
}

// ---- job page ----

function jobPage(root, jobId) {
  root.dataset.page = 'job';
  root.dataset.jobId = jobId;
  document.title = `${jobId} · twister2`;
  const base = `/api/jobs/${encodeURIComponent(jobId)}`;
  let detail = null, latest = null, stream = null, busy = false, chartWidth = 0, timer = 0;
  const self = { disposed: false, dispose() {
    self.disposed = true;
    stream?.close(); clearTimeout(timer); logs.close(); resize.disconnect();
    for (const d of [scaleDlg, killDlg]) if (d.open) d.close();
  } };

  // Each part renders into its own container, so a new detail leaves the logs, dialogs and scroll alone.
  const titleBox = h('div', { class: 'title' }, h('h1', {}, jobId));
  const info = h('div', { class: 'info' }, h('p', { class: 'muted' }, 'Loading job…'));
  const scaleBtn = h('button', { type: 'button', 'data-action': 'scale', disabled: true }, 'Scale…');
  const killBtn = h('button', { type: 'button', 'data-action': 'kill', class: 'danger', disabled: true }, 'Kill');
  const notice = h('p', { class: 'notice', role: 'status' });
  const [specBody, chartBody, workersBody, barriersBody] = [h('div'), h('div', { class: 'chart' }), h('tbody'), h('div')];
  const timeline = h('ol', { class: 'timeline', 'data-timeline': '' });
  const logs = logPanel(jobId);
  const workerHeads = ['ID', 'State', 'Host', 'IP', 'Ports', 'Restarts', 'Last heartbeat', 'Health', 'Message'];
  const content = h('div', { class: 'job-content', hidden: true },
    h('div', { class: 'grid' }, card('Spec', specBody), card('Workers running over time', chartBody)),
    card('Workers', table(workerHeads, workersBody)),
    h('div', { class: 'grid' }, card('Barriers in progress', barriersBody), card('Event timeline', h('div', { class: 'scroll' }, timeline))),
    card('Log tail', logs.el));

  const scaleInput = h('input', { type: 'number', min: 1, step: 1, 'data-scale-input': '', id: 'scale-input', inputmode: 'numeric' });
  const scaleDlg = dialog('Scale job', [h('p', {}, `How many workers should job ${jobId} have?`),
    h('label', { for: 'scale-input' }, 'Workers '), scaleInput], 'Scale', false, (dlg, msg) => {
    const n = Number(scaleInput.value);
    if (scaleInput.value.trim() === '' || !Number.isInteger(n) || n < 1) {
      msg.textContent = 'Enter a whole number of workers, 1 or more.';
      return;
    }
    dlg.close();
    act('scale', { workers: n }, `Asked to scale job ${jobId} to ${n} workers.`);
  });
  const killDlg = dialog(`Kill job ${jobId}?`, [h('p', {}, 'Its workers are stopped and the job ends.')], 'Kill', true, (dlg) => {
    dlg.close();
    act('kill', {}, `Asked to kill job ${jobId}.`);
  });
  scaleBtn.addEventListener('click', () => {
    scaleInput.value = String(detail?.numWorkers ?? 1);
    scaleDlg.showModal();
    scaleInput.select();
  });
  killBtn.addEventListener('click', () => killDlg.showModal());

  root.append(h('a', { class: 'back', href: '/', 'data-link': true }, '← All jobs'),
    h('div', { class: 'job-head' }, h('div', { class: 'head-main' }, titleBox, info), h('div', { class: 'actions' }, scaleBtn, killBtn)),
    notice, content, scaleDlg, killDlg);

  function syncButtons() {
    scaleBtn.disabled = busy || !detail?.controls?.scale;
    killBtn.disabled = busy || !detail?.controls?.kill;
  }
  // Scale or kill; what it changes comes back on the detail stream. Buttons stay off while the request is out.
  async function act(kind, body, done) {
    busy = true;
    syncButtons();
    clearError();
    notice.textContent = '';
    const [answer, err] = await api(`${base}/${kind}`, body).then((a) => [a, null], (e) => [null, e]);
    busy = false;
    syncButtons();
    if (self.disposed) return;
    if (err) showError(err.message);
    else notice.textContent = answer?.queued ? `${done} Its job master gets this with its next report.` : done;
  }

  // Details can come fast (workers registering one by one): draw the newest once per burst.
  const later = (d) => { latest = d; timer ||= setTimeout(() => { timer = 0; render(latest); }, 20); };
  function render(d) {
    if (self.disposed || !d) return;
    detail = d;
    content.hidden = false;
    titleBox.replaceChildren(h('h1', {}, d.jobId ?? jobId), badge(d.state, { 'data-field': 'job-state' }));
    const meta = [['Name', d.name], ['Cluster', d.cluster], ['Workers', `${d.running ?? 0}/${d.numWorkers ?? 0} running`],
      ['Started', clock(d.startedAt)], ['Duration', duration(d.startedAt, d.endedAt)],
      ['Source', d.via === 'report' ? 'reported by its job master' : 'this machine']];
    info.replaceChildren(...[
      h('ul', { class: 'meta' }, meta.map(([k, v]) => h('li', {}, h('span', { class: 'muted' }, `${k} `), v ?? '—'))),
      d.message && h('p', { class: 'message' }, d.message),
      d.driver && h('p', { class: 'driver' }, 'Driver ', badge(d.driver.state), driverText(d.driver))].filter(Boolean));
    syncButtons();
    specBody.replaceChildren(d.spec?.length
      ? h('dl', { class: 'spec' }, d.spec.map(([k, v]) => [h('dt', {}, k), h('dd', {}, v)]))
      : h('p', { class: 'muted' }, 'no spec'));
    const workers = [...(d.workers ?? [])].sort((a, b) => a.workerId - b.workerId);
    workersBody.replaceChildren(...(workers.length ? workers.map(workerRow)
      : [h('tr', {}, h('td', { colspan: workerHeads.length, class: 'muted' }, 'no workers yet'))]));
    barriersBody.replaceChildren(barrierList(d.barriers));
    // Newest first; entries of the same instant keep their order, reversed.
    const entries = (d.timeline ?? []).map((e, i) => ({ ...e, i, t: Date.parse(e.at) || 0 }))
      .filter((e) => e.event && e.event.type !== 'snapshot').sort((a, b) => b.t - a.t || b.i - a.i);
    timeline.replaceChildren(...(entries.length ? entries.map((e) => h('li', {}, h('time', { datetime: e.at }, clock(e.at)),
      h('span', { class: `dot ${stateClass(e.event.state ?? 'none')}` }), h('span', {}, describe(e.event))))
      : [h('li', { class: 'muted' }, 'no events yet')]));
    drawChart();
    logs.update(d);
  }
  function drawChart() {
    chartWidth = chartBody.clientWidth;
    const live = !['SUCCEEDED', 'FAILED', 'KILLED'].includes(detail.state) && !detail.endedAt;
    chartBody.replaceChildren(chart(detail.samples, chartWidth || 600, live));
  }
  // The chart is drawn in pixels of its box (for crisp text), so it is drawn again when the box changes width:
  // a moment later, not in the observer's callback, where changing the box's height would be an error.
  let resizeTimer = 0;
  const resize = new ResizeObserver(() => {
    clearTimeout(resizeTimer);
    resizeTimer = setTimeout(() => { if (detail && !self.disposed && Math.abs(chartBody.clientWidth - chartWidth) > 1) drawChart(); }, 50);
  });
  resize.observe(chartBody);

  const onErr = (err) => {
    if (self.disposed) return;
    showError(err.message);
    if (!detail) info.replaceChildren(h('p', { class: 'muted' }, err.status === 404 ? 'No such job.' : 'Could not load this job.'));
  };
  api(base).then(render).then(() => true, (err) => { onErr(err); return err.status !== 401 && err.status !== 404; }).then((go) => {
    if (go && !self.disposed) stream = openStream(`${base}/events`, { detail: later }, onErr);
  });
  return self;
}

/** A modal dialog whose form (Enter or the confirm button) calls onConfirm(dialog, messageElement). */
function dialog(title, body, confirmLabel, danger, onConfirm) {
  const msg = h('p', { class: 'dialog-msg', role: 'alert' });
  const cancel = h('button', { type: 'button', 'data-cancel': '' }, 'Cancel');
  const confirm = h('button', { type: 'submit', 'data-confirm': '', class: danger ? 'danger' : 'primary' }, confirmLabel);
  const form = h('form', { novalidate: true }, h('h2', {}, title), body, msg, h('div', { class: 'dialog-buttons' }, cancel, confirm));
  const dlg = h('dialog', {}, form);
  form.addEventListener('submit', (e) => {
    e.preventDefault();
    onConfirm(dlg, msg);
  });
  cancel.addEventListener('click', () => dlg.close());
  dlg.addEventListener('close', () => { msg.textContent = ''; });
  return dlg;
}

function workerRow(w) {
  const health = w.health || '';
  const healthClass = { ok: 'health-ok', late: 'health-late' }[health] ?? (health.startsWith('failed') ? 'health-failed' : '');
  const ports = Object.entries(w.ports ?? {}).map(([k, v]) => `${k}:${v}`).join(', ');
  return h('tr', { 'data-worker-id': w.workerId },
    h('td', { class: 'num' }, w.workerId), h('td', { 'data-field': 'state' }, badge(w.state)), h('td', {}, w.host || '—'),
    h('td', { class: 'mono' }, w.ip || '—'), h('td', { class: 'mono' }, ports || '—'), h('td', { class: 'num' }, w.restarts ?? 0),
    h('td', {}, w.lastHeartbeatAt ? since(w.lastHeartbeatAt, 'ago') : '—'), h('td', { class: healthClass }, health || '—'),
    h('td', { class: 'msg' }, w.message ?? ''));
}

function barrierList(barriers) {
  if (!barriers?.length) return h('p', { class: 'muted' }, 'no barrier in progress');
  return h('ul', { class: 'barriers' }, barriers.map((b) => {
    const [arrived, missing] = [sortIds(b.arrived), sortIds(b.missing)];
    return h('li', { 'data-barrier': b.name, 'data-arrived': arrived.join(','), 'data-missing': missing.join(',') },
      h('div', {}, h('strong', {}, b.name), h('span', { class: 'muted' }, ` (generation ${b.generation})`)),
      h('progress', { max: arrived.length + missing.length || 1, value: arrived.length }),
      h('div', {}, `arrived: ${arrived.length ? arrived.join(', ') : 'none yet'} · `,
        h('span', { class: 'missing' }, missing.length ? `waiting for ${missing.join(', ')}` : 'waiting for none')));
  }));
}

function driverText(driver) {
  let text = driver.message ? `: ${driver.message}` : '';
  if (driver.result !== undefined) {
    const json = JSON.stringify(driver.result) ?? '';
    text += ` → ${json.length > 200 ? `${json.slice(0, 200)}…` : json}`;
  }
  return text;
}

/** One line for a job event (`snapshot`s are left out before). */
function describe(ev) {
  const msg = ev.message ? `: ${ev.message}` : '';
  switch (ev.type) {
    case 'job-state': return `job ${ev.state}${msg}`;
    case 'worker-state': return `worker ${ev.workerId} ${ev.state}${ev.restarts ? ` (restarts: ${ev.restarts})` : ''}${msg}`;
    case 'scaled': return `scaled ${ev.from} -> ${ev.to}`;
    case 'driver-state': return `driver ${ev.state}${msg}`;
    default: return String(ev.type);
  }
}

/** A step chart of samples: running (solid, filled) and total (dashed) workers over time, `width` px wide. */
function chart(samples, width, live) {
  const W = Math.max(240, Math.round(width));
  const H = W < 480 ? 180 : 220;
  const M = { l: 40, r: 14, t: 26, b: 38 };
  const pw = W - M.l - M.r, ph = H - M.t - M.b;
  const svg = s('svg', { 'data-chart': 'running', viewBox: `0 0 ${W} ${H}`, width: W, height: H, role: 'img', 'aria-label': 'Workers running over time' });
  const pts = (samples ?? []).map((p) => ({ t: Date.parse(p.at), running: p.running, total: p.total }))
    .filter((p) => Number.isFinite(p.t)).sort((a, b) => a.t - b.t);
  if (!pts.length) return fill(svg, {}, [s('text', { x: W / 2, y: H / 2, 'text-anchor': 'middle', class: 'chart-empty' }, 'no samples yet')]);
  const last = pts[pts.length - 1];
  const t1 = Math.max(last.t, live ? Date.now() : 0); // a running job's line goes on to now
  const t0 = t1 - pts[0].t < 1000 ? t1 - 60000 : pts[0].t; // one instant only: show the minute before it
  const maxV = pts.reduce((m, p) => Math.max(m, p.running, p.total), 1);
  const step = maxV <= 5 ? 1 : Math.ceil(maxV / 4);
  const top = step * Math.ceil(maxV / step);
  const r1 = (n) => Math.round(n * 10) / 10;
  const x = (t) => r1(M.l + ((t - t0) / (t1 - t0)) * pw);
  const y = (v) => r1(M.t + (1 - v / top) * ph);
  for (let v = 0; v <= top; v += step) {
    svg.append(s('line', { x1: M.l, x2: W - M.r, y1: y(v), y2: y(v), class: v === 0 ? 'axis' : 'gridline' }),
      s('text', { x: M.l - 6, y: y(v) + 4, 'text-anchor': 'end', class: 'tick' }, v));
  }
  const n = Math.max(1, Math.min(5, Math.floor(pw / 110)));
  for (let i = 0; i <= n; i++) {
    const t = t0 + ((t1 - t0) * i) / n;
    const anchor = i === 0 ? 'start' : i === n ? 'end' : 'middle';
    svg.append(s('line', { x1: x(t), x2: x(t), y1: M.t + ph, y2: M.t + ph + 4, class: 'axis' }),
      s('text', { x: x(t), y: M.t + ph + 17, 'text-anchor': anchor, class: 'tick' }, clock(t, t1 - t0 < 3600000)));
  }
  svg.append(s('text', { x: 4, y: 14, class: 'label' }, 'workers'), s('text', { x: M.l + pw / 2, y: H - 4, 'text-anchor': 'middle', class: 'label' }, 'time'));
  const path = (key) => pts.reduce((d, p, i) => d + (i ? `H${x(p.t)}V${y(p[key])}` : `M${x(p.t)},${y(p[key])}`), '') + `H${x(t1)}`;
  const running = path('running');
  const lx = W - M.r - 150;
  svg.append(s('path', { d: `${running}V${y(0)}H${x(pts[0].t)}Z`, class: 'area' }),
    s('path', { d: path('total'), class: 'total', fill: 'none' }),
    s('path', { d: running, class: 'running', fill: 'none' }),
    s('circle', { cx: x(t1), cy: y(last.running), r: 3, class: 'point' }),
    s('line', { x1: lx, x2: lx + 18, y1: 10, y2: 10, class: 'running' }), s('text', { x: lx + 22, y: 14, class: 'tick' }, 'running'),
    s('line', { x1: lx + 80, x2: lx + 98, y1: 10, y2: 10, class: 'total' }), s('text', { x: lx + 102, y: 14, class: 'tick' }, 'total'),
    s('title', {}, `running ${last.running} of ${last.total} at ${clock(last.t)}`));
  return svg;
}

/** The log tail of one worker at a time, following live; lives as long as the job page. */
function logPanel(jobId) {
  const sel = h('select', { 'data-log-worker': '', id: 'log-worker' });
  const status = h('span', { class: 'muted log-status' });
  const pre = h('pre', { class: 'log', 'data-log': '', tabindex: 0 });
  const controls = h('div', { class: 'log-controls' }, h('label', { for: 'log-worker' }, 'Worker '), sel, status);
  const na = h('p', { class: 'muted', hidden: true }, NO_LOGS_MSG);
  let stream = null, worker = null, pending = [], timer = 0;
  sel.addEventListener('change', () => connect(sel.value));

  function connect(id) {
    stream?.close();
    clear();
    worker = id;
    status.textContent = 'connecting…';
    const st = (stream = openStream(`/api/jobs/${encodeURIComponent(jobId)}/logs?worker=${encodeURIComponent(id)}&tail=200`, {
      // After a reconnection the server sends the tail again, so it replaces what we had.
      open: (again) => { if (again) clear(); status.textContent = 'following'; },
      error: () => { status.textContent = 'reconnecting…'; },
      // Lines come in bursts (the tail first): lay them out once per burst.
      line: (d) => { pending.push(String(d.line ?? '')); timer ||= setTimeout(flush, 30); },
      end: () => {
        st.close(); // no more lines: EventSource would otherwise reconnect and replay the tail
        flush();
        status.textContent = 'end of log';
      },
    }, (err) => { status.textContent = err.message; if (err.status === 401) showError(AUTH_MSG); }));
  }
  function clear() {
    clearTimeout(timer);
    timer = 0;
    pending = [];
    pre.replaceChildren();
  }
  function flush() {
    clearTimeout(timer);
    timer = 0;
    if (!pending.length) return;
    // Follow the end unless the reader scrolled up to read something.
    const atEnd = pre.scrollHeight - pre.scrollTop - pre.clientHeight < 24;
    pre.append(...pending.slice(-MAX_LOG_LINES).map((line) => document.createTextNode(`${line}\n`)));
    pending = [];
    while (pre.childNodes.length > MAX_LOG_LINES) pre.firstChild.remove();
    if (atEnd) pre.scrollTop = pre.scrollHeight;
  }
  return {
    el: h('div', { class: 'logs' }, controls, pre, na),
    update(d) {
      // Worker IDs as strings (the select's values), and the driver's log when the job has one.
      const ids = new Set((d.workers ?? []).map((w) => String(w.workerId)));
      for (let i = 0; i < (d.numWorkers ?? 0); i++) ids.add(String(i));
      if (worker !== null && worker !== 'driver') ids.add(worker);
      if (!ids.size) ids.add('0');
      const list = [...ids].sort((a, b) => a - b);
      if (d.driver || worker === 'driver') list.push('driver');
      const chosen = worker ?? (ids.has('0') ? '0' : list[0]);
      setOptions(sel, list, chosen, (v) => (v === 'driver' ? 'driver' : `worker ${v}`));
      const on = Boolean(d.logs);
      controls.hidden = pre.hidden = !on;
      na.hidden = on;
      if (!on) {
        stream?.close();
        stream = worker = null;
      } else if (worker === null) connect(chosen);
    },
    close() { stream?.close(); clearTimeout(timer); },
  };
}

route();
