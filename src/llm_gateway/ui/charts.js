// llm-gateway admin page: the dashboard's hourly charts, drawn with the vendored uPlot
// (vendor/uplot-*/, MIT). Small multiples, one measure per chart on the same hour axis, so a
// count is never read against a token scale. Uses h(), fmt() and money() from app.js.
"use strict";

const CHART_HEIGHT = 170;
const HOUR = 3600;
const compactNumber = new Intl.NumberFormat(undefined, { notation: "compact", maximumFractionDigits: 1 });
// A spend axis: "$0.015" below a dollar, "$1.2K" above.
const moneyTick = (value) =>
  (value !== 0 && Math.abs(value) < 1 ? `$${Number(value.toPrecision(2))}` : `$${compactNumber.format(value)}`);
// Tick steps for whole counts: 1, 2, 5, 10, 20, 50, ... (never 0.2 requests).
const WHOLE_STEPS = [];
for (let power = 1; power <= 1e12; power *= 10) WHOLE_STEPS.push(power, 2 * power, 5 * power);

const cssColor = (name) => getComputedStyle(document.documentElement).getPropertyValue(name).trim();
// "#rrggbb" at an opacity, for bar fills (canvas takes rgba, not every CSS colour function).
const translucent = (hex, alpha) => {
  const match = /^#([0-9a-f]{2})([0-9a-f]{2})([0-9a-f]{2})$/i.exec(hex);
  if (!match) return hex;
  const [r, g, b] = match.slice(1).map((part) => parseInt(part, 16));
  return `rgba(${r}, ${g}, ${b}, ${alpha})`;
};
const hourLabel = (seconds) =>
  new Date(seconds * 1000).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
const hourSpan = (seconds) => {
  const day = new Date(seconds * 1000).toLocaleDateString([], { month: "short", day: "numeric" });
  return `${day}, ${hourLabel(seconds)}–${hourLabel(seconds + HOUR)}`;
};

// A number, or a decimal the API sent as a string of digits (costs); else null.
const asNumber = (value) => {
  if (typeof value === "number") return Number.isFinite(value) ? value : null;
  if (typeof value === "string" && value.trim() !== "" && Number.isFinite(Number(value))) return Number(value);
  return null;
};

// The first numeric field of `names` present in the hourly rows (spend may not exist).
function numericField(rows, names) {
  return names.find((name) => rows.some((row) => asNumber(row[name]) !== null)) || null;
}

// Chart specifications for the hourly rows of /admin/stats.
function hourlySpecs(hours) {
  const column = (name) => hours.map((row) => asNumber(row[name]));
  // An hour without requests has no latency (not 0 ms): a gap in the line.
  const latency = hours.map((row) => (row.requests ? row.avg_latency ?? null : null));
  const specs = [
    { id: "requests", title: "Requests per hour", whole: true, series: [
      { label: "requests", values: column("requests"), color: "--bar", bars: true },
      { label: "failed", values: column("errors"), color: "--bar-err", bars: true },
    ] },
    { id: "tokens", title: "Tokens per hour", whole: true, series: [
      { label: "tokens", values: column("tokens"), color: "--tokens", bars: true },
    ] },
    { id: "latency", title: "Average latency per hour", unit: "ms", series: [
      { label: "avg latency", values: latency, color: "--latency", bars: false },
    ] },
  ];
  const spend = numericField(hours, ["cost_usd", "cost", "spend_usd"]);
  if (spend) {
    specs.push({ id: "spend", title: "Spend per hour", money: true, series: [
      { label: "spend", values: column(spend), color: "--spend", bars: true },
    ] });
  }
  return specs;
}

// One card per chart; `mount` (called once the cards are in the page) draws them.
function hourlyCharts(hours) {
  const xs = hours.map((row) => Date.parse(row.hour) / 1000);
  const cards = [];
  const mounts = [];
  for (const spec of hourlySpecs(hours)) {
    const plot = h("div", { class: "plot", "data-testid": `chart-${spec.id}` });
    cards.push(h("div", { class: "card chart" }, h("h2", {}, spec.title), plot));
    mounts.push(() => drawChart(plot, spec, xs));
  }
  const grid = h("div", { class: "charts" }, cards);
  return { element: grid, mount: () => mounts.map((draw) => draw()) };
}

function drawChart(plot, spec, xs) {
  if (typeof uPlot === "undefined") {
    plot.append(h("p", { class: "muted" }, "The chart library did not load."));
    return () => {};
  }
  const muted = cssColor("--muted");
  const line = cssColor("--line");
  const format = (value, bars) => {
    if (value === null || value === undefined) return bars ? format(0) : "—";
    if (spec.money) return money(value);
    return spec.unit ? `${fmt(Math.round(value))} ${spec.unit}` : fmt(value);
  };
  const tick = (value) => (spec.money ? moneyTick(value) : compactNumber.format(value));
  const bars = uPlot.paths.bars({ size: [0.7, 28], align: 0 });
  const options = {
    width: Math.max(200, plot.clientWidth),
    height: CHART_HEIGHT,
    cursor: { y: false, drag: { x: false, y: false }, points: { size: 6 } },
    legend: { live: true },
    // Away from the chart, the legend shows the current hour.
    hooks: { setLegend: [(u) => { if (u.legend.idx === null || u.legend.idx === undefined) u.setLegend({ idx: xs.length - 1 }, false); }] },
    scales: {
      x: { time: true, range: (u, min, max) => [min - HOUR / 2, max + HOUR / 2] },
      y: { range: (u, min, max) => [0, max > 0 ? max * 1.08 : 1] },
    },
    axes: [
      { stroke: muted, grid: { stroke: line, width: 1 }, ticks: { stroke: line, width: 1 },
        space: 48, values: (u, splits) => splits.map(hourLabel) },
      { stroke: muted, grid: { stroke: line, width: 1 }, ticks: { show: false }, size: 52,
        incrs: spec.whole ? WHOLE_STEPS : undefined, values: (u, splits) => splits.map(tick) },
    ],
    series: [
      { label: "hour", value: (u, seconds) => (seconds === null || seconds === undefined ? "—" : hourSpan(seconds)) },
      ...spec.series.map((series) => {
        const color = cssColor(series.color);
        return {
          label: series.label,
          stroke: color,
          width: series.bars ? 1 : 2,
          fill: series.bars ? translucent(color, 0.75) : undefined,
          paths: series.bars ? bars : undefined,
          points: { show: !series.bars, size: 4 },
          value: (u, value, sidx, idx) => (idx === null || idx === undefined ? "—" : format(value, series.bars)),
        };
      }),
    ],
  };
  // A bar of zero is left out (not a line along the axis); its legend value still reads 0.
  const data = spec.series.map((series) => (series.bars ? series.values.map((v) => v || null) : series.values));
  const chart = new uPlot(options, [xs, ...data], plot);
  chart.setLegend({ idx: xs.length - 1 }, false);
  const observer = new ResizeObserver(() => {
    const width = Math.max(200, plot.clientWidth);
    if (width !== chart.width) chart.setSize({ width, height: CHART_HEIGHT });
  });
  observer.observe(plot);
  return () => { observer.disconnect(); chart.destroy(); };
}
