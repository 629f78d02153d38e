// The operator page: GET /api/stats and /api/treasury, drawn as tables and inline SVG plots.
// Plain ES module, no chart library: a line chart is a few paths, and every number stays readable
// as text too (each plot has its numbers in a <details> table).

import { formatChoir } from "/js/amount.js";

const SVG_NS = "http://www.w3.org/2000/svg";
const NARROW_WIDTH = 640;
const WIDE_WIDTH = 1200;
const HEIGHT = 240;
const PAD = { left: 60, right: 14, top: 12, bottom: 30 };
const COLORS = ["var(--accent)", "var(--ai)", "var(--ok)", "var(--warn)", "var(--danger)"];
// Above this many points a dot per point is noise; the line says enough.
const DOTS_MAX = 60;
const REFRESH_MS = 60_000;
const compact = new Intl.NumberFormat(undefined, { notation: "compact", maximumFractionDigits: 2 });
const plain = new Intl.NumberFormat(undefined, { maximumFractionDigits: 3 });

const $ = (id) => document.getElementById(id);

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
  for (const child of children) node.append(child instanceof Node ? child : String(child));
  return node;
}

function svg(tag, attrs = {}, text) {
  const node = document.createElementNS(SVG_NS, tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, String(v));
  if (text !== undefined) node.textContent = text;
  return node;
}

/** CHOIR as a float, for plotting only: exact amounts are shown as text with formatChoir. */
function choirFloat(units) {
  return Number(BigInt(units)) / 1e9;
}

function niceMax(value) {
  if (!(value > 0)) return 1;
  const power = 10 ** Math.floor(Math.log10(value));
  for (const step of [1, 2, 2.5, 5, 10]) {
    if (value <= step * power) return step * power;
  }
  return 10 * power;
}

/**
 * Draw a line chart into `figure`: `labels` along x (evenly spaced), one line per series.
 * series: [{ name, values: number[] }]; format: how a y value reads as text.
 */
function lineChart(figure, { title, labels, series, format = (v) => plain.format(v), wide = false }) {
  const WIDTH = wide ? WIDE_WIDTH : NARROW_WIDTH;
  figure.replaceChildren(el("figcaption", {}, title));
  const chart = svg("svg", { viewBox: `0 0 ${WIDTH} ${HEIGHT}`, role: "img", "aria-label": title });
  chart.append(svg("title", {}, title));
  figure.append(chart);
  const innerW = WIDTH - PAD.left - PAD.right;
  const innerH = HEIGHT - PAD.top - PAD.bottom;
  if (!labels.length) {
    chart.append(svg("text", { x: WIDTH / 2, y: HEIGHT / 2, "text-anchor": "middle", class: "empty" }, "nothing yet"));
    return;
  }
  const top = niceMax(Math.max(0, ...series.flatMap((s) => s.values.filter(Number.isFinite))));
  const x = (i) => PAD.left + (labels.length === 1 ? innerW / 2 : (i * innerW) / (labels.length - 1));
  const y = (v) => PAD.top + innerH - (Math.max(0, v) / top) * innerH;

  for (const fraction of [0, 0.25, 0.5, 0.75, 1]) {
    const value = top * fraction;
    chart.append(svg("line", { x1: PAD.left, x2: WIDTH - PAD.right, y1: y(value), y2: y(value), class: "axis" }));
    chart.append(svg("text", { x: PAD.left - 6, y: y(value) + 4, "text-anchor": "end", class: "tick" }, compact.format(value)));
  }
  const shown = labels.length <= 3 ? labels.map((_, i) => i) : [0, Math.floor((labels.length - 1) / 2), labels.length - 1];
  for (const i of shown) {
    const anchor = i === 0 ? "start" : i === labels.length - 1 ? "end" : "middle";
    chart.append(svg("text", { x: x(i), y: HEIGHT - 8, "text-anchor": anchor, class: "tick" }, labels[i]));
  }
  series.forEach((s, k) => {
    const color = COLORS[k % COLORS.length];
    const d = s.values.map((v, i) => `${i ? "L" : "M"}${x(i).toFixed(1)},${y(v).toFixed(1)}`).join(" ");
    // Colours through the CSSOM, not a style attribute: the Content-Security-Policy allows no inline style.
    const line = svg("path", { d, class: "line" });
    line.style.stroke = color;
    chart.append(line);
    if (s.values.length <= DOTS_MAX) {
      s.values.forEach((v, i) => {
        const dot = svg("circle", { cx: x(i), cy: y(v), r: 3, class: "dot" });
        dot.style.fill = color;
        dot.append(svg("title", {}, `${s.name}, ${labels[i]}: ${format(v)}`));
        chart.append(dot);
      });
    }
  });
  const legend = el("ul", { class: "op-legend" });
  series.forEach((s, k) => {
    const swatch = el("span");
    swatch.style.background = COLORS[k % COLORS.length];
    legend.append(el("li", {}, swatch, s.name));
  });
  figure.append(legend, numbersTable(labels, series, format));
}

function numbersTable(labels, series, format) {
  const head = el("tr", {}, el("th", { scope: "col" }, ""), ...series.map((s) => el("th", { scope: "col", class: "num" }, s.name)));
  const body = labels.map((label, i) =>
    el("tr", {}, el("th", { scope: "row" }, label), ...series.map((s) => el("td", { class: "num" }, format(s.values[i])))),
  );
  return el("details", {}, el("summary", {}, "Numbers"), el("table", { class: "op-table" }, el("thead", {}, head), el("tbody", {}, ...body)));
}

/** Every day from the first to the last, zero where nothing happened. */
function everyDay(days) {
  if (!days.length) return [];
  const byDay = new Map(days.map((d) => [d.day, d]));
  const out = [];
  const end = new Date(`${days[days.length - 1].day}T00:00:00Z`);
  for (let at = new Date(`${days[0].day}T00:00:00Z`); at <= end; at.setUTCDate(at.getUTCDate() + 1)) {
    const key = at.toISOString().slice(0, 10);
    out.push(byDay.get(key) ?? { day: key, active_users: 0, messages: 0, questions: 0, citations: 0 });
  }
  return out;
}

function when(iso) {
  return iso.endsWith("T00:00:00Z") ? iso.slice(0, 10) : iso.slice(0, 16).replace("T", " ");
}

function renderTotals(t) {
  const items = [
    ["Threads", `${t.threads} (${t.public_threads} public)`],
    ["People", t.people],
    ["Messages", t.messages],
    ["Questions asked", t.questions],
    ["Citations", t.citations],
    ["Epochs settled", t.epochs_settled],
    ["New-message rewards", formatChoir(t.new_message_rewards_paid, { decimals: 2 })],
    ["Prior rewards", formatChoir(t.prior_rewards_paid, { decimals: 2 })],
    ["Treasury", formatChoir(t.treasury_balance, { decimals: 2 })],
  ];
  $("op-totals").replaceChildren(...items.map(([k, v]) => el("div", {}, el("dt", {}, k), el("dd", {}, v))));
}

function renderActivity(days) {
  const all = everyDay(days);
  const labels = all.map((d) => d.day);
  lineChart($("chart-activity"), {
    title: "Messages, questions and citations per day",
    labels,
    series: [
      { name: "messages", values: all.map((d) => d.messages) },
      { name: "questions", values: all.map((d) => d.questions) },
      { name: "citations", values: all.map((d) => d.citations) },
    ],
  });
  lineChart($("chart-people"), {
    title: "Daily active people (authors and voters)",
    labels,
    series: [{ name: "active people", values: all.map((d) => d.active_users) }],
  });
}

function renderRewards(epochs) {
  lineChart($("chart-rewards"), {
    title: "CHOIR paid per epoch",
    labels: epochs.map((e) => `#${e.epoch}`),
    series: [
      { name: "new-message rewards", values: epochs.map((e) => choirFloat(e.new_message_paid)) },
      { name: "prior rewards", values: epochs.map((e) => choirFloat(e.prior_paid)) },
    ],
    format: (v) => `${plain.format(v)} CHOIR`,
    wide: true,
  });
}

function renderThreads(threads) {
  const select = $("op-thread");
  const chosen = select.value;
  select.replaceChildren(...threads.map((t) => el("option", { value: t.thread_id }, `${t.title} (${t.thread_id})`)));
  if (threads.some((t) => t.thread_id === chosen)) select.value = chosen;
  const draw = () => {
    const thread = threads.find((t) => t.thread_id === select.value);
    const points = thread ? thread.points : [];
    const labels = points.map((p) => when(p.at));
    lineChart($("chart-temperature"), {
      title: "Temperature T",
      labels,
      series: [{ name: "temperature", values: points.map((p) => p.temperature) }],
    });
    lineChart($("chart-stake"), {
      title: "Recommended stake",
      labels,
      series: [{ name: "recommended stake", values: points.map((p) => choirFloat(p.recommended_stake)) }],
      format: (v) => `${plain.format(v)} CHOIR`,
    });
  };
  select.onchange = draw;
  draw();
}

function renderCited(priors) {
  const rows = priors.map((p) =>
    el(
      "tr",
      {},
      el("td", { class: "num" }, p.citations),
      el("td", { class: "num" }, p.mean_score.toFixed(2)),
      el("td", { class: "mono" }, p.thread_id),
      el("td", {}, p.excerpt),
    ),
  );
  $("op-cited").replaceChildren(...(rows.length ? rows : [el("tr", {}, el("td", { colspan: "4" }, "No citation yet."))]));
}

function flowRows(flows) {
  return Object.entries(flows).map(([kind, f]) =>
    el("tr", {}, el("td", {}, kind), el("td", { class: "num" }, f.transfers), el("td", { class: "num" }, formatChoir(f.amount, { unit: false }))),
  );
}

function renderTreasury(t) {
  const ppm = t.rates.prior_rate_ppm;
  const rate = ppm == null ? "" : ` Prior rewards take ${plain.format(ppm / 10_000)}% of the treasury each epoch.`;
  const check = t.reconciled ? "genesis + inflows − outflows = balance ✓." : "genesis + inflows − outflows does NOT equal the balance.";
  $("op-treasury-summary").textContent =
    `Balance ${formatChoir(t.balance)} (genesis ${formatChoir(t.genesis_balance)}; in ${formatChoir(t.total_in)}, ` +
    `out ${formatChoir(t.total_out)}): ${check}${rate}`;
  $("op-inflows").replaceChildren(...flowRows(t.inflows));
  $("op-outflows").replaceChildren(...flowRows(t.outflows));
  $("op-recent").replaceChildren(
    ...t.recent.map((r) =>
      el(
        "tr",
        {},
        el("td", {}, when(r.at)),
        el("td", {}, r.kind),
        el("td", { class: "mono" }, r.debit),
        el("td", { class: "mono" }, r.credit),
        el("td", { class: "num" }, formatChoir(r.amount, { unit: false })),
      ),
    ),
  );
}

async function getJson(path, init) {
  const response = await fetch(path, { headers: { Accept: "application/json" }, ...init });
  const body = await response.json().catch(() => ({}));
  if (!response.ok) throw new Error(body.message || `${path}: HTTP ${response.status}`);
  return body;
}

async function refresh() {
  const status = $("op-status");
  status.textContent = "loading…";
  try {
    const [stats, treasury] = await Promise.all([getJson("/api/stats"), getJson("/api/treasury")]);
    renderTotals(stats.totals);
    renderActivity(stats.days);
    renderRewards(stats.epochs);
    renderThreads(stats.threads);
    renderCited(stats.top_cited);
    renderTreasury(treasury);
    status.textContent = `as of ${when(stats.generated_at)} UTC`;
  } catch (error) {
    status.textContent = `could not load: ${error.message}`;
  }
}

async function runAudit() {
  const button = $("op-audit");
  const out = $("op-audit-result");
  button.disabled = true;
  out.replaceChildren("running…");
  try {
    const report = await getJson("/api/audit", { method: "POST" });
    const checked = Object.entries(report.checked).map(([k, n]) => `${n} ${k}`).join(", ");
    const head = report.ok
      ? el("p", { class: "ok" }, `Audit passed (${checked}).`)
      : el("p", { class: "bad" }, `Audit FAILED (${checked}).`);
    const findings = report.findings.map((f) => el("li", {}, `${f.kind}: ${f.detail}`));
    const more = Object.entries(report.suppressed).map(([k, n]) => el("li", {}, `${k}: ${n} more not listed`));
    out.replaceChildren(head, ...(findings.length + more.length ? [el("ul", {}, ...findings, ...more)] : []));
  } catch (error) {
    out.replaceChildren(el("p", { class: "bad" }, error.message));
  } finally {
    button.disabled = false;
  }
}

$("op-refresh").addEventListener("click", refresh);
$("op-audit").addEventListener("click", runAudit);
refresh();
setInterval(refresh, REFRESH_MS);
