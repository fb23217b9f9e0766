// The Licensing tab: sign-in, the license figures, settings, Force License Update and alerts.
// Plain ES module, no build step. Live numbers: polled every 30 s, backing off on errors.

import { ApiError, currentSession, graphql, signIn, signOut } from "./api.js";
import { mountUsageChart } from "./chart.js";

const POLL_MS = 30_000;
const MAX_BACKOFF_MS = 5 * 60_000;
const RENEWAL_WINDOW_DAYS = 90;

const LICENSE_FIELDS = `
  status licensedTo legalEntityName used total remaining overage display level accessLevel
  createdAt expiresAt daysUntilExpiration lastSyncedAt stale lastSyncError
  rosterStatus { countsKnown }`;
const SETTINGS_FIELDS = `
  studentsRemainingThreshold recommendedThresholdMin recommendedThresholdMax maximumThreshold`;
const TAB_QUERY = `query LicensingTab($manage: Boolean!) {
  license { ${LICENSE_FIELDS} }
  usage {
    activeStudents inactiveStudents staff devices
    rosterStatus { state countsKnown source since reason }
  }
  alerts(placement: LICENSE_BANNER) { id kind severity message }
  licenseSettings @include(if: $manage) { ${SETTINGS_FIELDS} }
}`;
const SET_THRESHOLD = `mutation SetThreshold($value: Int!) {
  setThreshold(studentsRemaining: $value) {
    licenseSettings { ${SETTINGS_FIELDS} }
    errors { field code message }
  }
}`;
const FORCE_UPDATE = `mutation ForceLicenseUpdate {
  forceLicenseUpdate {
    updated throttled retryAfterSeconds inProgress
    license { ${LICENSE_FIELDS} }
    errors { field code message }
    notices { code message }
  }
}`;

const LEVELS = {
  GREEN: { word: "Well below limit", icon: "✓", css: "level-green" },
  YELLOW: { word: "Approaching threshold", icon: "⚠", css: "level-yellow" },
  RED: { word: "At or over limit", icon: "✖", css: "level-red" },
};
// While a roster source has never completed a sync, the count leaves its students out: no colour.
const UNKNOWN_LEVEL = { word: "Count not known yet", icon: "?", css: "level-unknown" };
const STATUSES = {
  ACTIVE: { word: "Active", icon: "✓", css: "badge-active", guidance: "" },
  EXPIRED: {
    word: "Expired",
    icon: "✖",
    css: "badge-expired",
    guidance:
      "Your license expiration date has passed. Contact Manage1to1 Support immediately to renew " +
      "or resolve licensing issues: an expired license may restrict system access. After renewal, " +
      "select Force License Update.",
  },
  INACTIVE: {
    word: "Inactive",
    icon: "⊘",
    css: "badge-inactive",
    guidance:
      "Your license has been deactivated. Contact Manage1to1 Support immediately to resolve " +
      "licensing issues: system access may be restricted until it is resolved.",
  },
};
const SEVERITIES = {
  CRITICAL: { word: "Critical", icon: "✖", css: "alert-critical" },
  WARNING: { word: "Warning", icon: "⚠", css: "alert-warning" },
  INFO: { word: "Notice", icon: "ℹ", css: "alert-info" },
};

const $ = (id) => document.getElementById(id);
const numbers = new Intl.NumberFormat("en-US");
const dates = new Intl.DateTimeFormat("en-US", { dateStyle: "long", timeZone: "UTC" });
const times = new Intl.DateTimeFormat("en-US", { timeStyle: "medium" });
const moments = new Intl.DateTimeFormat("en-US", { dateStyle: "medium", timeStyle: "short" });

const state = {
  session: null, // {district, tokenName, permissions}
  canManage: false,
  timer: null,
  failures: 0,
  bannerKey: "",
  loading: false,
};

// ---------------------------------------------------------------- helpers

function formatDay(isoDay) {
  return dates.format(new Date(`${isoDay}T00:00:00Z`));
}

function plural(count, one, many = `${one}s`) {
  return `${numbers.format(count)} ${Math.abs(count) === 1 ? one : many}`;
}

function setResult(element, kind, icon, text) {
  element.className = `result ${kind}`;
  element.replaceChildren();
  if (!text) return;
  const mark = document.createElement("span");
  mark.className = "icon";
  mark.setAttribute("aria-hidden", "true");
  mark.textContent = icon;
  element.append(mark, document.createTextNode(text));
}

function show(element, visible) {
  element.hidden = !visible;
}

// ---------------------------------------------------------------- sign-in

async function start() {
  const fragment = new URLSearchParams(window.location.hash.replace(/^#/, ""));
  const linkToken = fragment.get("token");
  if (linkToken) {
    // A one-time sign-in link: take the token out of the address bar and history first.
    history.replaceState(null, "", window.location.pathname + window.location.search);
    try {
      await enter(await signIn(linkToken));
      return;
    } catch (error) {
      showSignIn(`The sign-in link did not work: ${error.message} Paste a token instead.`);
      return;
    }
  }
  try {
    await enter(await currentSession());
  } catch (error) {
    if (error instanceof ApiError && error.status === 401) {
      showSignIn("");
    } else {
      showSignIn(error.message);
    }
  }
}

function showSignIn(message) {
  stopPolling();
  state.session = null;
  show($("tab"), false);
  show($("account"), false);
  show($("sign-in"), true);
  $("sign-in-error").textContent = message;
  $("token-input").setAttribute("aria-invalid", message ? "true" : "false");
  $("page-status").textContent = "";
}

async function onSignIn(event) {
  event.preventDefault();
  const input = $("token-input");
  const token = input.value.trim();
  if (!token) {
    $("sign-in-error").textContent = "Enter your API token.";
    input.setAttribute("aria-invalid", "true");
    input.focus();
    return;
  }
  const button = $("sign-in-button");
  button.disabled = true;
  try {
    const session = await signIn(token);
    input.value = "";
    await enter(session);
  } catch (error) {
    $("sign-in-error").textContent = error.message;
    input.setAttribute("aria-invalid", "true");
    input.focus();
  } finally {
    button.disabled = false;
  }
}

async function onSignOut() {
  try {
    await signOut();
  } catch {
    // The cookie may already be gone; the page signs out regardless.
  }
  state.bannerKey = "";
  $("alert-banner").replaceChildren();
  showSignIn("");
  $("page-status").textContent = "Signed out.";
  $("token-input").focus();
}

async function enter(session) {
  state.session = session;
  state.canManage = session.permissions.includes("MANAGE_SETTINGS");
  show($("sign-in"), false);
  show($("account"), true);
  $("account-label").textContent =
    `District: ${session.district}` + (state.canManage ? "" : " (read-only)");
  applyPermissions();
  show($("tab"), true);
  await refresh();
  await loadUsageChart();
}

function applyPermissions() {
  const readOnly = !state.canManage;
  show($("read-only-note"), readOnly);
  for (const id of ["threshold-input", "save-settings", "force-update"]) {
    const control = $(id);
    control.disabled = readOnly;
    const described = (control.getAttribute("aria-describedby") || "")
      .split(/\s+/)
      .filter((part) => part && part !== "read-only-reason");
    if (readOnly) described.push("read-only-reason");
    control.setAttribute("aria-describedby", described.join(" "));
    if (readOnly) control.title = "Needs the Manage Settings permission";
    else control.removeAttribute("title");
  }
  if (readOnly) {
    $("threshold-input").value = "";
    $("threshold-input").placeholder = "—";
    $("threshold-recommended").textContent =
      "Only users with the Manage Settings permission can see and change this setting.";
  }
}

// ---------------------------------------------------------------- reading the tab

async function refresh() {
  if (!state.session || state.loading) return;
  state.loading = true;
  try {
    const { data, errors } = await graphql(TAB_QUERY, { manage: state.canManage });
    const noLicense = errors.find((error) => error.extensions?.code === "NO_LICENSE");
    if (!data && !noLicense) {
      throw new ApiError(errors[0]?.message || "The license could not be read.");
    }
    show($("no-license"), Boolean(noLicense));
    if (noLicense) $("no-license").textContent = noLicense.message;
    if (data?.license) renderLicense(data.license);
    if (data?.usage) renderUsage(data.usage);
    if (data?.usage) renderRoster(data.usage.rosterStatus);
    if (data?.alerts) renderAlerts(data.alerts);
    if (data?.licenseSettings) renderSettings(data.licenseSettings);
    state.failures = 0;
    document.body.dataset.refreshes = String(Number(document.body.dataset.refreshes || 0) + 1);
    $("page-status").textContent = "";
    $("last-updated").textContent =
      `Updated at ${times.format(new Date())}. The figures refresh every 30 seconds.`;
  } catch (error) {
    if (error instanceof ApiError && error.status === 401) {
      showSignIn("Your session has ended. Sign in again.");
      return;
    }
    state.failures += 1;
    $("page-status").textContent =
      `Could not refresh the license figures: ${error.message} Retrying in ${Math.round(delay() / 1000)} seconds.`;
  } finally {
    state.loading = false;
  }
  schedule();
}

function delay() {
  if (state.failures === 0) return POLL_MS;
  return Math.min(POLL_MS * 2 ** state.failures, MAX_BACKOFF_MS);
}

function schedule() {
  stopPolling();
  if (state.session) state.timer = window.setTimeout(refresh, delay());
}

function stopPolling() {
  if (state.timer !== null) window.clearTimeout(state.timer);
  state.timer = null;
}

function renderLicense(license) {
  const status = STATUSES[license.status] || STATUSES.INACTIVE;
  const badge = $("status-badge");
  badge.className = `badge ${status.css}`;
  badge.replaceChildren();
  const icon = document.createElement("span");
  icon.setAttribute("aria-hidden", "true");
  icon.textContent = status.icon;
  badge.append(icon, document.createTextNode(status.word));
  let guidance = status.guidance;
  if (license.accessLevel === "RESTRICTED") {
    guidance += (guidance ? " " : "") + "System access is currently restricted.";
  }
  $("status-guidance").textContent = guidance;
  show($("status-guidance"), Boolean(guidance));

  $("licensed-to").textContent = license.licensedTo;
  const legal = license.legalEntityName;
  const showLegal = Boolean(legal) && legal !== license.licensedTo;
  $("legal-entity").textContent = showLegal ? `Legal entity: ${legal}` : "";
  show($("legal-entity"), showLegal);

  $("license-count").textContent = license.display;
  const known = license.rosterStatus?.countsKnown !== false;
  const level = known ? LEVELS[license.level] || LEVELS.RED : UNKNOWN_LEVEL;
  const bar = $("usage-bar");
  bar.className = `usage-bar ${level.css}`;
  const percent = license.total > 0 ? Math.min(100, (license.used / license.total) * 100) : 100;
  $("usage-fill").style.width = `${percent}%`;
  bar.setAttribute("aria-valuemax", String(license.total));
  bar.setAttribute("aria-valuenow", String(Math.min(license.used, license.total)));
  bar.setAttribute(
    "aria-valuetext",
    `${numbers.format(license.used)} of ${numbers.format(license.total)} licenses used: ${level.word}`,
  );
  $("usage-level").className = `usage-level ${level.css}`;
  $("usage-level-icon").textContent = level.icon;
  $("usage-level-text").textContent = level.word;
  $("license-remaining").textContent = !known
    ? "Licenses remaining are not known until every roster source has synced."
    : license.remaining >= 0
      ? `${plural(license.remaining, "license")} remaining`
      : `Over the limit by ${plural(license.overage, "license")}: purchase additional licenses promptly.`;

  $("created-at").textContent = formatDay(license.createdAt);
  $("expires-at").textContent = formatDay(license.expiresAt);
  const days = license.daysUntilExpiration;
  $("days-left").textContent =
    days > 0
      ? ` — ${plural(days, "day")} left`
      : days === 0
        ? " — expires today"
        : ` — expired ${plural(-days, "day")} ago`;
  let renewal = "";
  if (days < 0 || license.status === "EXPIRED") {
    renewal = "Renewing requires a contract, not a click: contact Manage1to1 Support to renew.";
  } else if (days <= RENEWAL_WINDOW_DAYS) {
    renewal =
      `Your license expires in ${plural(days, "day")}. Start the renewal conversation with ` +
      "Manage1to1 Sales or Support now: 60–90 days ahead leaves time for budget approval and " +
      "contract processing.";
  }
  $("renewal-guidance").textContent = renewal;
  show($("renewal-guidance"), Boolean(renewal));

  const stale = $("stale-note");
  if (license.stale) {
    stale.textContent =
      "The last license refresh failed, so these are the last good figures" +
      (license.lastSyncError ? `: ${license.lastSyncError}` : ".");
  }
  show(stale, license.stale);
}

// A banner line for a roster whose last sync did not apply: never synced, failed or held.
function renderRoster(roster) {
  const note = $("roster-note");
  const source = roster?.source ? `“${roster.source}”` : "";
  const since = roster?.since ? moments.format(new Date(roster.since)) : "";
  let text = "";
  if (roster?.state === "NEVER_SYNCED") {
    text =
      `Student counts are not known yet: the roster source ${source} has not completed a sync. ` +
      "The license count leaves out its students until it does.";
  } else if (roster?.state === "FAILED" && !roster.countsKnown) {
    text =
      `Student counts are not known: the roster source ${source} has never synced ` +
      `successfully (failing since ${since}). Its students are not counted until it does.`;
  } else if (roster?.state === "FAILED") {
    text =
      `The last sync of the roster source ${source} failed (failing since ${since}); the ` +
      "figures are from its last good sync.";
  } else if (roster?.state === "HELD") {
    text =
      `The latest sync of the roster source ${source} is held for an administrator's ` +
      `confirmation (since ${since}); the figures are from before it.`;
  }
  note.textContent = text;
  note.className = `notice ${roster?.countsKnown === false ? "notice-bad" : "notice-warn"}`;
  show(note, Boolean(text));
}

function renderUsage(usage) {
  $("usage-breakdown").textContent =
    `In your district now: ${plural(usage.activeStudents, "active student")} (counted); ` +
    `not counted: ${plural(usage.inactiveStudents, "inactive student")}, ` +
    `${plural(usage.staff, "staff user")}, ${plural(usage.devices, "device")}.`;
}

function renderAlerts(alerts) {
  const key = JSON.stringify(alerts.map((alert) => [alert.id, alert.severity, alert.message]));
  if (key === state.bannerKey) return; // unchanged: do not re-announce the live region
  state.bannerKey = key;
  const banner = $("alert-banner");
  banner.replaceChildren(
    ...alerts.map((alert) => {
      const severity = SEVERITIES[alert.severity] || SEVERITIES.WARNING;
      const box = document.createElement("div");
      box.className = `alert ${severity.css}`;
      box.dataset.kind = alert.kind;
      const icon = document.createElement("span");
      icon.className = "icon";
      icon.setAttribute("aria-hidden", "true");
      icon.textContent = severity.icon;
      const text = document.createElement("div");
      const message = document.createElement("p");
      const word = document.createElement("strong");
      word.textContent = `${severity.word}: `;
      message.append(word, document.createTextNode(alert.message));
      const note = document.createElement("p");
      note.className = "alert-note";
      note.textContent =
        alert.kind === "SYNC_FAILING"
          ? "This alert stays until the source syncs again."
          : "This alert stays until licenses are added or the active count drops below your threshold.";
      text.append(message, note);
      box.append(icon, text);
      return box;
    }),
  );
}

function renderSettings(settings) {
  const input = $("threshold-input");
  input.max = String(settings.maximumThreshold);
  // A poll does not overwrite what the administrator is typing (or has not saved yet).
  if (!input.dataset.dirty) input.value = String(settings.studentsRemainingThreshold);
  $("threshold-recommended").textContent =
    `Recommended for your district's size: ${numbers.format(settings.recommendedThresholdMin)}–` +
    `${numbers.format(settings.recommendedThresholdMax)} remaining ` +
    `(small districts under 500 students: 25–50; medium, 500–2,000: 50–100; large, over 2,000: ` +
    `100–200). Allowed: 0 to ${numbers.format(settings.maximumThreshold)}.`;
}

// ---------------------------------------------------------------- usage over time (chart.js)
// Loaded when the tab opens, not on every poll: the history changes once a day.

const USAGE_HISTORY_QUERY = `query UsageHistory($manage: Boolean!) {
  usageHistory(days: 365) { day activeStudents total }
  licenseSettings @include(if: $manage) { studentsRemainingThreshold }
}`;
const USAGE_FORECAST_QUERY = `query UsageForecast {
  license { total }
  forecast {
    alreadyAtLimit limitReachedOn limitReachedEarliest limitReachedLatest
    projection(days: 180) { day low expected high }
  }
}`;
// The district's time zone; "UTC" until the API tells the page (the days it sends are already
// the district's calendar days).
const DISTRICT_TIME_ZONE = "UTC";
let usageChart = null;

async function loadUsageChart() {
  const failure = $("usage-chart-error");
  try {
    // Two requests: without a license the forecast fails, and the history still shows.
    const [history, outlook] = await Promise.all([
      graphql(USAGE_HISTORY_QUERY, { manage: state.canManage }),
      graphql(USAGE_FORECAST_QUERY),
    ]);
    if (!history.data) throw new ApiError(history.errors[0]?.message || "The history could not be read.");
    usageChart ||= mountUsageChart($("usage-chart"), { timeZone: DISTRICT_TIME_ZONE, locale: "en-US" });
    usageChart.update({
      history: history.data.usageHistory,
      threshold: history.data.licenseSettings?.studentsRemainingThreshold ?? null,
      total: outlook.data?.license.total ?? null,
      forecast: outlook.data?.forecast ?? null,
    });
    show(failure, false);
  } catch (error) {
    if (error instanceof ApiError && error.status === 401) return; // the poll signs out
    failure.textContent = `Could not load the usage history: ${error.message}`;
    show(failure, true);
  }
}

// ---------------------------------------------------------------- actions

async function onSaveSettings(event) {
  event.preventDefault();
  if (!state.canManage) return;
  const input = $("threshold-input");
  const error = $("threshold-error");
  const result = $("settings-result");
  const button = $("save-settings");
  setResult(result, "", "", "");
  const raw = input.value.trim();
  const value = Number(raw);
  if (raw === "" || !Number.isInteger(value)) {
    error.textContent = "Enter a whole number of students, such as 50.";
    input.setAttribute("aria-invalid", "true");
    input.focus();
    return;
  }
  button.disabled = true;
  button.setAttribute("aria-busy", "true");
  try {
    const { data, errors } = await graphql(SET_THRESHOLD, { value });
    const payload = data?.setThreshold;
    const problems = payload ? payload.errors : errors;
    if (!payload || problems.length) {
      error.textContent = problems.map((problem) => problem.message).join(" ") || "Not saved.";
      input.setAttribute("aria-invalid", "true");
      input.focus();
      return;
    }
    error.textContent = "";
    input.setAttribute("aria-invalid", "false");
    delete input.dataset.dirty;
    renderSettings(payload.licenseSettings);
    setResult(
      result,
      "good",
      "✓",
      `Settings saved. Alerts begin when ${plural(payload.licenseSettings.studentsRemainingThreshold, "license")} or fewer remain.`,
    );
    await refresh();
  } catch (failure) {
    if (failure instanceof ApiError && failure.status === 401) {
      showSignIn("Your session has ended. Sign in again.");
      return;
    }
    error.textContent = `Not saved: ${failure.message}`;
  } finally {
    button.disabled = !state.canManage;
    button.removeAttribute("aria-busy");
  }
}

async function onForceUpdate() {
  if (!state.canManage) return;
  const button = $("force-update");
  const result = $("force-result");
  const label = button.textContent;
  button.disabled = true;
  button.setAttribute("aria-busy", "true");
  button.textContent = "Updating license…";
  setResult(result, "", "…", "Contacting the Manage1to1 licensing server…");
  try {
    const { data, errors } = await graphql(FORCE_UPDATE);
    const payload = data?.forceLicenseUpdate;
    if (!payload) {
      setResult(result, "bad", "✖", errors[0]?.message || "The update failed.");
    } else if (payload.throttled) {
      const seconds = payload.retryAfterSeconds ?? 0;
      setResult(
        result,
        "warn",
        "⚠",
        `A license update was just requested. Try again in ${plural(seconds, "second")}; ` +
          "licenses also refresh automatically.",
      );
    } else if (payload.inProgress) {
      setResult(
        result,
        "warn",
        "…",
        "The licensing server is slow to answer; the update goes on in the background and " +
          "this page shows the result when it arrives.",
      );
    } else if (payload.errors.length) {
      setResult(result, "bad", "✖", `The update failed: ${payload.errors.map((e) => e.message).join(" ")}`);
    } else if (payload.updated) {
      const total = payload.license ? ` You now have ${plural(payload.license.total, "license")}.` : "";
      const notices = payload.notices.map((notice) => ` ${notice.message}`).join("");
      setResult(result, "good", "✓", `License updated from the licensing server.${total}${notices}`);
    } else {
      setResult(result, "good", "✓", "Your license is already up to date.");
    }
    if (payload?.license) renderLicense(payload.license);
    await refresh();
  } catch (failure) {
    if (failure instanceof ApiError && failure.status === 401) {
      showSignIn("Your session has ended. Sign in again.");
      return;
    }
    setResult(result, "bad", "✖", `The update failed: ${failure.message}`);
  } finally {
    button.textContent = label;
    button.removeAttribute("aria-busy");
    button.disabled = !state.canManage;
  }
}

// ---------------------------------------------------------------- wiring

$("sign-in-form").addEventListener("submit", onSignIn);
$("sign-out").addEventListener("click", onSignOut);
$("settings-form").addEventListener("submit", onSaveSettings);
$("force-update").addEventListener("click", onForceUpdate);
$("refresh-now").addEventListener("click", () => refresh());
$("threshold-input").addEventListener("input", (event) => {
  event.target.dataset.dirty = "1";
  $("threshold-error").textContent = "";
  event.target.setAttribute("aria-invalid", "false");
});
document.addEventListener("visibilitychange", () => {
  if (document.visibilityState === "visible" && state.session && state.failures === 0) refresh();
});

start();
