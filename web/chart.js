// The "Usage over time" section: daily active students, the licensed total, the alert threshold
// band and the forecast with its uncertainty, drawn as inline SVG. Plain ES module, no dependency.
// The page runs under a Content-Security-Policy without 'unsafe-inline': geometry goes in SVG
// attributes, every colour and font in licensing.css (the .chart-* classes). Each series differs
// by line style or pattern and by its words, never by colour alone. A "Show as table" button opens
// the same figures as a table, and the SVG's aria-label says in a sentence what the chart shows.
// loadUsageChart() reads its figures (USAGE_CHART in operations.js) when the tab opens and after
// each change the page hears of; the read is a conditional GET, so an unchanged one is a 304.

import { ApiError, graphql } from "./api.js";
import { $, show } from "./dom.js";
import { LOCALE, day as formatDay, districtTimeZone, number as formatNumber } from "./format.js";
import { describeFailure } from "./messages.js";
import { USAGE_CHART } from "./operations.js";

const SVG_NS = "http://www.w3.org/2000/svg";
const DAY_MS = 86_400_000;
const RANGES = [
  { days: 90, label: "90 days", forecastDays: 45 },
  { days: 365, label: "1 year", forecastDays: 180 },
];
const FORECAST_TABLE_STEP = 7; // forecast rows in the table: one a week
const MIN_HISTORY_DAYS = 2; // fewer daily counts draw no line
let chartCount = 0;

/**
 * Mount the chart in `container`; returns {update(data)} to draw new figures.
 *
 * data: {
 *   history: [{day: "YYYY-MM-DD", activeStudents, total|null}] oldest first,
 *   forecast: null | {limitReachedOn, limitReachedEarliest, limitReachedLatest, alreadyAtLimit,
 *              projection: [{day, low, expected, high}]} (projection[0] is the district's today),
 *   total: the licensed total now, or null,
 *   threshold: "students remaining" that raises the alert, or null when not known,
 * }
 * Which day is today (when there is no forecast to say it) is the district's: format.js's zone.
 */
function mountUsageChart(container, { range = 365 } = {}) {
  chartCount += 1;
  const ids = {
    table: `usage-table-${chartCount}`,
    summary: `usage-summary-${chartCount}`,
  };
  const format = formatters();
  let data = null;
  let selected = RANGES.find((option) => option.days === range) || RANGES[RANGES.length - 1];

  container.replaceChildren();
  container.classList.add("usage-chart");

  const empty = element("p", { class: "chart-empty", hidden: "" });
  const body = element("div", { class: "chart-body" });
  const controls = element("div", { class: "chart-controls", role: "group", "aria-label": "Time range" });
  const rangeButtons = RANGES.map((option) => {
    const button = element("button", { type: "button", class: "button button-quiet chart-range" });
    button.textContent = option.label;
    button.addEventListener("click", () => {
      selected = option;
      draw();
    });
    controls.append(button);
    return button;
  });
  const summary = element("p", { class: "chart-summary", id: ids.summary });
  const frame = element("div", { class: "chart-frame" });
  const legend = element("ul", { class: "chart-legend", "aria-label": "Legend" });
  const toggle = element("button", {
    type: "button",
    class: "button button-quiet chart-table-toggle",
    "aria-expanded": "false",
    "aria-controls": ids.table,
  });
  toggle.textContent = "Show as table";
  const tableWrap = element("div", {
    class: "chart-table-wrap",
    id: ids.table,
    role: "region",
    "aria-label": "Usage over time as a table",
    tabindex: "0",
    hidden: "",
  });
  toggle.addEventListener("click", () => {
    const open = tableWrap.hidden;
    tableWrap.hidden = !open;
    toggle.setAttribute("aria-expanded", String(open));
    toggle.textContent = open ? "Hide table" : "Show as table";
  });
  body.append(controls, summary, frame, legend, toggle, tableWrap);
  container.append(empty, body);

  // Redraw at the new width (the SVG is drawn in CSS pixels, so its text stays readable).
  let lastWidth = 0;
  const observer = new ResizeObserver(() => {
    const width = Math.round(frame.clientWidth);
    if (data && width && width !== lastWidth) draw();
  });
  observer.observe(frame);

  function draw() {
    if (!data) return;
    for (const [index, button] of rangeButtons.entries()) {
      button.setAttribute("aria-pressed", String(RANGES[index] === selected));
    }
    const view = prepare(data, selected, districtTimeZone());
    const enough = data.history.length >= MIN_HISTORY_DAYS;
    empty.hidden = enough;
    body.hidden = !enough;
    if (!enough) {
      empty.textContent =
        "Not enough history yet: the chart appears once daily counts have been recorded for a " +
        "few days (one is taken each day).";
      return;
    }
    lastWidth = Math.round(frame.clientWidth) || 640;
    const sentence = describe(view, format);
    summary.textContent = sentence;
    frame.replaceChildren(drawSvg(view, lastWidth, format, sentence));
    legend.replaceChildren(...legendItems(view));
    tableWrap.replaceChildren(drawTable(view, format));
  }

  return {
    update(next) {
      data = next;
      draw();
    },
  };
}

// ---------------------------------------------------------------- the figures

function dayNumber(isoDay) {
  return Math.round(Date.parse(`${isoDay}T00:00:00Z`) / DAY_MS);
}

function todayIn(timeZone) {
  // en-CA formats a date as YYYY-MM-DD.
  return new Intl.DateTimeFormat("en-CA", { timeZone }).format(new Date());
}

function prepare(data, range, timeZone) {
  const projection = data.forecast?.projection || [];
  const today = dayNumber(projection.length ? projection[0].day : todayIn(timeZone));
  const first = today - range.days + 1;
  const history = data.history
    .map((row) => ({ ...row, x: dayNumber(row.day) }))
    .filter((row) => row.x >= first && row.x <= today);
  const forecast = projection
    .map((row) => ({ ...row, x: dayNumber(row.day) }))
    .filter((row) => row.x <= today + range.forecastDays);
  const last = forecast.length ? forecast[forecast.length - 1].x : today;
  // The licensed total, day by day: as recorded, then today's total into the forecast.
  const totals = history.filter((row) => row.total !== null).map((row) => ({ x: row.x, total: row.total }));
  if (data.total !== null && data.total !== undefined) {
    totals.push({ x: Math.max(today, totals.length ? totals[totals.length - 1].x : today), total: data.total });
  }
  return {
    range,
    first,
    today,
    last,
    history,
    forecast,
    totals,
    threshold: data.threshold ?? null,
    total: data.total ?? null,
    outlook: data.forecast,
  };
}

function formatters() {
  // Numbers and days as everywhere on the page (format.js); the axis's short forms here. The
  // API's days are calendar days in the district's time zone: formatted from UTC midnight in
  // UTC, they stay the same calendar day whatever the browser's own zone is.
  const utc = { timeZone: "UTC" };
  return {
    number: (value) => formatNumber(Math.round(value)),
    day: { format: (when) => formatDay(when.toISOString()) },
    shortDay: new Intl.DateTimeFormat(LOCALE, { ...utc, month: "short", day: "numeric" }),
    month: new Intl.DateTimeFormat(LOCALE, { ...utc, month: "short" }),
    monthYear: new Intl.DateTimeFormat(LOCALE, { ...utc, month: "short", year: "numeric" }),
    date: (isoDay) => new Date(`${isoDay}T00:00:00Z`),
  };
}

function describe(view, format) {
  const parts = [];
  const { history, outlook, total } = view;
  const firstRow = history[0];
  const lastRow = history[history.length - 1];
  const span = view.range.days === 365 ? "over the year" : `over the last ${view.range.days} days`;
  if (firstRow && lastRow && firstRow !== lastRow) {
    const from = format.number(firstRow.activeStudents);
    const to = format.number(lastRow.activeStudents);
    const trend =
      lastRow.activeStudents > firstRow.activeStudents
        ? `rose from ${from} to ${to}`
        : lastRow.activeStudents < firstRow.activeStudents
          ? `fell from ${from} to ${to}`
          : `stayed at ${to}`;
    parts.push(`Active students ${trend} ${span}`);
  } else if (lastRow) {
    parts.push(`${format.number(lastRow.activeStudents)} active students`);
  }
  const day = (iso) => format.day.format(format.date(iso));
  if (total !== null && outlook) {
    const licenses = `all ${format.number(total)} licenses`;
    if (outlook.alreadyAtLimit) {
      parts.push(`${licenses} are in use now`);
    } else if (outlook.limitReachedOn) {
      let when = `at this rate ${licenses} are in use around ${day(outlook.limitReachedOn)}`;
      if (outlook.limitReachedEarliest && outlook.limitReachedLatest) {
        if (outlook.limitReachedEarliest !== outlook.limitReachedLatest) {
          when += ` (likely between ${day(outlook.limitReachedEarliest)} and ${day(outlook.limitReachedLatest)})`;
        }
      } else if (outlook.limitReachedEarliest) {
        when += ` (possibly as early as ${day(outlook.limitReachedEarliest)}; growth is too uneven to say how late)`;
      }
      parts.push(when);
    } else {
      parts.push(`at this rate the ${format.number(total)} licenses are not used up`);
    }
  }
  if (view.threshold !== null && total !== null) {
    parts.push(`alerts begin at ${format.number(Math.max(total - view.threshold, 0))} active students`);
  }
  return parts.length ? `${parts.join("; ")}.` : "No usage recorded yet.";
}

// ---------------------------------------------------------------- the SVG

function element(name, attributes = {}) {
  const node = document.createElement(name);
  for (const [key, value] of Object.entries(attributes)) node.setAttribute(key, value);
  return node;
}

function svg(name, attributes = {}) {
  const node = document.createElementNS(SVG_NS, name);
  for (const [key, value] of Object.entries(attributes)) node.setAttribute(key, String(value));
  return node;
}

function niceStep(span, count) {
  const raw = span / Math.max(count, 1);
  const power = 10 ** Math.floor(Math.log10(raw));
  for (const multiple of [1, 2, 2.5, 5, 10]) {
    if (raw <= multiple * power) return multiple * power;
  }
  return 10 * power;
}

function valueDomain(view) {
  const values = [];
  for (const row of view.history) values.push(row.activeStudents);
  for (const row of view.forecast) values.push(row.low, row.high);
  for (const row of view.totals) {
    values.push(row.total);
    if (view.threshold !== null) values.push(row.total - view.threshold);
  }
  let low = Math.min(...values);
  let high = Math.max(...values);
  if (low === high) {
    low -= 10;
    high += 10;
  }
  const pad = (high - low) * 0.08;
  return [Math.max(0, low - pad), high + pad];
}

function dayTicks(first, last, width, format) {
  const span = last - first;
  const most = Math.max(2, Math.floor(width / 80));
  const ticks = [];
  if (span > 120) {
    // Month starts, every n-th month so they fit.
    const months = [];
    const start = new Date(first * DAY_MS);
    const cursor = new Date(Date.UTC(start.getUTCFullYear(), start.getUTCMonth() + 1, 1));
    while (cursor.getTime() / DAY_MS <= last) {
      months.push(new Date(cursor));
      cursor.setUTCMonth(cursor.getUTCMonth() + 1);
    }
    const every = Math.ceil(months.length / most);
    let shownYear = null;
    months.forEach((month, index) => {
      if (index % every !== 0) return;
      // The year on the first tick and wherever it changes.
      const label = month.getUTCFullYear() !== shownYear ? format.monthYear : format.month;
      shownYear = month.getUTCFullYear();
      ticks.push({ x: Math.round(month.getTime() / DAY_MS), label: label.format(month) });
    });
  } else {
    const step = Math.max(7, Math.ceil(span / most / 7) * 7);
    for (let x = first; x <= last; x += step) {
      ticks.push({ x, label: format.shortDay.format(new Date(x * DAY_MS)) });
    }
  }
  return ticks;
}

function pathOf(points) {
  return points.map(([x, y], index) => `${index ? "L" : "M"}${x.toFixed(1)},${y.toFixed(1)}`).join("");
}

// A step line's corners: each value holds until the next one's day.
function stepVertices(points) {
  const corners = [];
  points.forEach(([x, y], index) => {
    if (index) corners.push([x, points[index - 1][1]]);
    corners.push([x, y]);
  });
  return corners;
}

function drawSvg(view, width, format, sentence) {
  const phone = width < 560;
  const height = phone ? 300 : 360;
  const margin = { top: 28, right: phone ? 10 : 18, bottom: 36, left: phone ? 46 : 58 };
  const plotWidth = width - margin.left - margin.right;
  const plotHeight = height - margin.top - margin.bottom;
  const [low, high] = valueDomain(view);
  const xOf = (x) => margin.left + ((x - view.first) / Math.max(view.last - view.first, 1)) * plotWidth;
  const yOf = (value) => margin.top + (1 - (value - low) / (high - low)) * plotHeight;

  const root = svg("svg", {
    class: "chart-svg",
    viewBox: `0 0 ${width} ${height}`,
    width: "100%",
    height,
    role: "img",
    "aria-label": sentence,
    preserveAspectRatio: "xMidYMid meet",
  });
  const defs = svg("defs");
  const hatch = svg("pattern", {
    id: `threshold-hatch-${chartCount}`,
    width: 8,
    height: 8,
    patternUnits: "userSpaceOnUse",
    patternTransform: "rotate(45)",
  });
  hatch.append(svg("rect", { width: 8, height: 8, class: "chart-hatch-bg" }));
  hatch.append(svg("line", { x1: 0, y1: 0, x2: 0, y2: 8, class: "chart-hatch-line", "stroke-width": 1.5 }));
  defs.append(hatch);
  root.append(defs);

  // Grid and the value axis.
  const yStep = niceStep(high - low, phone ? 4 : 6);
  const grid = svg("g", { class: "chart-grid" });
  for (let value = Math.ceil(low / yStep) * yStep; value <= high; value += yStep) {
    const y = yOf(value);
    grid.append(svg("line", { x1: margin.left, x2: width - margin.right, y1: y, y2: y }));
    const label = svg("text", { x: margin.left - 6, y: y + 4, "text-anchor": "end", class: "chart-tick" });
    label.textContent = format.number(value);
    grid.append(label);
  }
  for (const tick of dayTicks(view.first, view.last, plotWidth, format)) {
    const x = xOf(tick.x);
    grid.append(svg("line", { x1: x, x2: x, y1: margin.top + plotHeight, y2: margin.top + plotHeight + 5 }));
    const label = svg("text", { x, y: height - margin.bottom + 20, "text-anchor": "middle", class: "chart-tick" });
    label.textContent = tick.label;
    grid.append(label);
  }
  grid.append(
    svg("line", {
      class: "chart-axis",
      x1: margin.left,
      x2: width - margin.right,
      y1: margin.top + plotHeight,
      y2: margin.top + plotHeight,
    }),
  );
  root.append(grid);

  // The licensed total as a step line, and the threshold band below it.
  const totalPoints = view.totals.map((row) => [xOf(row.x), yOf(row.total)]);
  if (totalPoints.length) totalPoints.push([xOf(view.last), totalPoints[totalPoints.length - 1][1]]);
  if (view.threshold !== null && view.totals.length) {
    const bottom = view.totals.map((row) => [xOf(row.x), yOf(Math.max(row.total - view.threshold, 0))]);
    bottom.push([xOf(view.last), bottom[bottom.length - 1][1]]);
    const outline = [...stepVertices(totalPoints), ...stepVertices(bottom).reverse()];
    root.append(
      svg("path", { d: `${pathOf(outline)}Z`, class: "chart-threshold", fill: `url(#threshold-hatch-${chartCount})` }),
    );
  }

  // The forecast's band, then its expected line (dashed).
  if (view.forecast.length > 1) {
    const upper = view.forecast.map((row) => [xOf(row.x), yOf(row.high)]);
    const lower = view.forecast.map((row) => [xOf(row.x), yOf(row.low)]).reverse();
    root.append(svg("path", { d: `${pathOf(upper)}${pathOf(lower).replace(/^M/, "L")}Z`, class: "chart-band" }));
    root.append(svg("path", { d: pathOf(upper), class: "chart-band-edge", "stroke-dasharray": "1 3" }));
    root.append(svg("path", { d: pathOf([...lower].reverse()), class: "chart-band-edge", "stroke-dasharray": "1 3" }));
    root.append(
      svg("path", {
        d: pathOf(view.forecast.map((row) => [xOf(row.x), yOf(row.expected)])),
        class: "chart-forecast",
        "stroke-dasharray": "8 5",
      }),
    );
  }
  if (totalPoints.length) {
    root.append(svg("path", { d: pathOf(stepVertices(totalPoints)), class: "chart-total", "stroke-dasharray": "16 4 2 4" }));
  }
  // Daily active students: the one solid line.
  root.append(
    svg("path", {
      d: pathOf(view.history.map((row) => [xOf(row.x), yOf(row.activeStudents)])),
      class: "chart-active",
    }),
  );

  // Today.
  const todayX = xOf(view.today);
  root.append(svg("line", { class: "chart-today", x1: todayX, x2: todayX, y1: margin.top, y2: margin.top + plotHeight }));
  const todayLabel = svg("text", {
    x: todayX,
    y: margin.top - 8,
    "text-anchor": todayX > width - 40 ? "end" : "middle",
    class: "chart-label",
  });
  todayLabel.textContent = "Today";
  root.append(todayLabel);

  // Direct labels, beside what they name (the legend repeats them).
  if (view.total !== null && totalPoints.length) {
    const label = svg("text", {
      x: margin.left + 6,
      y: totalPoints[0][1] - 6,
      class: "chart-label chart-label-halo",
    });
    label.textContent = `Licensed total: ${format.number(view.total)}`;
    root.append(label);
    if (view.threshold !== null) {
      // Inside the band, under the total line, when the band is tall enough; else under it.
      const bandTop = totalPoints[0][1];
      const bandBottom = yOf(Math.max(view.totals[0].total - view.threshold, 0));
      const bandLabel = svg("text", {
        x: margin.left + 6,
        y: bandBottom - bandTop >= 22 ? bandTop + 16 : bandBottom + 16,
        class: "chart-label chart-label-halo",
      });
      const alertsAt = `alerts begin at ${format.number(Math.max(view.total - view.threshold, 0))}`;
      bandLabel.textContent = phone ? `Threshold: ${alertsAt}` : `Alert threshold band: ${alertsAt}`;
      root.append(bandLabel);
    }
  }
  return root;
}

function swatch(kind) {
  const icon = svg("svg", { width: 36, height: 14, viewBox: "0 0 36 14", "aria-hidden": "true", focusable: "false" });
  if (kind === "threshold") {
    const pattern = svg("pattern", { id: `legend-hatch-${chartCount}`, width: 6, height: 6, patternUnits: "userSpaceOnUse", patternTransform: "rotate(45)" });
    pattern.append(svg("rect", { width: 6, height: 6, class: "chart-hatch-bg" }));
    pattern.append(svg("line", { x1: 0, y1: 0, x2: 0, y2: 6, class: "chart-hatch-line", "stroke-width": 2 }));
    icon.append(pattern, svg("rect", { x: 1, y: 1, width: 34, height: 12, fill: `url(#legend-hatch-${chartCount})`, class: "chart-threshold" }));
  } else if (kind === "band") {
    icon.append(svg("rect", { x: 1, y: 1, width: 34, height: 12, class: "chart-band" }));
    icon.append(svg("path", { d: "M1,1H35M1,13H35", class: "chart-band-edge", "stroke-dasharray": "1 3" }));
    icon.append(svg("line", { x1: 1, x2: 35, y1: 7, y2: 7, class: "chart-forecast", "stroke-dasharray": "8 5" }));
  } else {
    const dash = { active: null, total: "16 4 2 4", forecast: "8 5" }[kind];
    const attributes = { x1: 1, x2: 35, y1: 7, y2: 7, class: `chart-${kind}` };
    if (dash) attributes["stroke-dasharray"] = dash;
    icon.append(svg("line", attributes));
  }
  return icon;
}

function legendItems(view) {
  const items = [
    ["active", "Active students, daily (solid line)"],
    ["total", "Licensed total (dash-dot line)"],
  ];
  if (view.threshold !== null) {
    items.push(["threshold", `Alert threshold band: the last ${view.threshold} licenses (hatched)`]);
  }
  if (view.forecast.length > 1) {
    items.push(["forecast", "Forecast at the measured rate (dashed line)"]);
    items.push(["band", "Forecast range, 9 times in 10 (shaded, dotted edges)"]);
  }
  return items.map(([kind, words]) => {
    const item = element("li");
    item.append(swatch(kind), document.createTextNode(words));
    return item;
  });
}

// ---------------------------------------------------------------- the table

function drawTable(view, format) {
  const table = element("table", { class: "chart-table" });
  const caption = element("caption");
  caption.textContent =
    `Usage over time, ${view.range.label}: daily active students and the licensed total, then ` +
    "the forecast a week apart with the range it stays in 9 times in 10.";
  const head = element("thead");
  const headRow = element("tr");
  for (const title of ["Date", "Active students", "Licensed total", "Forecast", "Forecast range"]) {
    const cell = element("th", { scope: "col" });
    cell.textContent = title;
    headRow.append(cell);
  }
  head.append(headRow);
  const rows = element("tbody");
  const day = (iso) => format.day.format(format.date(iso));
  const add = (cells) => {
    const row = element("tr");
    cells.forEach((text, index) => {
      const cell = element(index === 0 ? "th" : "td", index === 0 ? { scope: "row" } : {});
      cell.textContent = text;
      row.append(cell);
    });
    rows.append(row);
  };
  for (const row of view.history) {
    add([day(row.day), format.number(row.activeStudents), row.total === null ? "—" : format.number(row.total), "", ""]);
  }
  const total = view.total === null ? "—" : format.number(view.total);
  view.forecast.forEach((row, index) => {
    if (index === 0 || index % FORECAST_TABLE_STEP !== 0) return; // today is a history row
    add([day(row.day), "", total, format.number(row.expected), `${format.number(row.low)}–${format.number(row.high)}`]);
  });
  table.append(caption, head, rows);
  return table;
}

// ---------------------------------------------------------------- the section

let chart = null;
let drawn = null; // the answer drawn last: a 304 hands back the same one, which is not redrawn

/** Read the chart's figures and draw them; true when it worked. A 401 is left to the tab's own
 * read, which signs out. */
export async function loadUsageChart({ canManage }) {
  const failure = $("usage-chart-error");
  try {
    const { data, errors, requestId } = await graphql(USAGE_CHART, { manage: canManage });
    if (!data?.usageHistory || errors.length) {
      throw new ApiError({ status: 200, code: errors[0]?.extensions?.code || "UNKNOWN", requestId });
    }
    show(failure, false);
    if (data === drawn) return true;
    drawn = data;
    chart ||= mountUsageChart($("usage-chart"));
    chart.update({
      history: data.usageHistory,
      threshold: data.licenseSettings?.studentsRemainingThreshold ?? null,
      total: data.license?.total ?? null,
      forecast: data.forecast ?? null,
    });
    return true;
  } catch (error) {
    if (error?.status === 401) return false;
    failure.textContent = `Could not load the usage history. ${describeFailure(error)}`;
    show(failure, true);
    return false;
  }
}
