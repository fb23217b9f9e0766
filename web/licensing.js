// The Licensing tab: signing in and out, reading the figures, and wiring the sections together.
// Plain ES modules, no build step; each section or concern lives in a module of its own
// (information.js, settings.js, force-update.js, chart.js, banners.js, live.js), so more panels
// can be added the same way: a module that renders from the figures readTab() returns, or, like
// chart.js, reads its own document along with them.

import { loadAuditLog, setUpAuditLog } from "./audit-log.js";
import { ApiError, currentSession, forgetAnswers, signIn, signOut } from "./api.js";
import { renderBanner, resetBanner } from "./banners.js";
import { loadUsageChart } from "./chart.js";
import { loadCountReview } from "./count-review.js";
import { $, clearStale, focusOn, show } from "./dom.js";
import { forceUpdate } from "./force-update.js";
import { timeOfDay, useTimeZone } from "./format.js";
import {
  licenseKey,
  renderLicense,
  renderNoLicense,
  renderRoster,
  renderUsage,
} from "./information.js";
import { LiveFigures } from "./live.js";
import { describeFailure } from "./messages.js";
import { ALERTS_CHANGED, LICENSE_CHANGED } from "./operations.js";
import { renderSettings, saveSettings, setSettingsAvailable } from "./settings.js";
import { loadSyncStatus } from "./sync-status.js";
import { readTab } from "./tab-data.js";

const state = {
  session: null, // {district, districtName, timeZone, tokenName, permissions}
  canManage: false,
  license: null, // the license shown now, or null (none yet)
  live: null,
  loading: null,
};

const BANNER_PLACEMENT = "LICENSE_BANNER";

// ---------------------------------------------------------------- signing in and out

async function start() {
  const fragment = new URLSearchParams(window.location.hash.replace(/^#/, ""));
  const linkToken = fragment.get("token");
  if (linkToken) {
    // A one-time sign-in link: take the token out of the address bar and history first.
    history.replaceState(null, "", window.location.pathname + window.location.search);
    try {
      await enter(await signIn(linkToken));
    } catch (failure) {
      showSignIn(`The sign-in link did not work: ${signInProblem(failure)} Paste a token instead.`);
    }
    return;
  }
  try {
    await enter(await currentSession());
  } catch (failure) {
    showSignIn(failure instanceof ApiError && failure.status === 401 ? "" : describeFailure(failure));
  }
}

function signInProblem(failure) {
  if (failure instanceof ApiError && failure.code === "TOKEN_EXPIRED") return describeFailure(failure);
  if (failure instanceof ApiError && failure.status === 401) {
    return "That API token is not valid or has been revoked.";
  }
  return describeFailure(failure);
}

function showSignIn(message, { status = "" } = {}) {
  state.live?.stop();
  state.live = null;
  state.session = null;
  state.license = null;
  state.auditLogRead = false;
  forgetAnswers();
  document.body.dataset.state = "signed-out";
  show($("tab"), false);
  show($("account"), false);
  $("account-label").textContent = "";
  resetBanner($("alert-banner"));
  show($("sign-in"), true);
  $("sign-in-error").textContent = message;
  $("token-input").setAttribute("aria-invalid", message ? "true" : "false");
  $("page-status").textContent = status;
  $("live-status").textContent = "";
}

function sessionEnded() {
  // A 401 to a request sent before the administrator signed out says nothing new: keep "Signed out."
  if (!state.session) return;
  showSignIn("Your session has ended. Sign in again.");
  focusOn($("token-input"));
}

async function onSignIn(event) {
  event.preventDefault();
  const input = $("token-input");
  const token = input.value.trim();
  if (!token) {
    $("sign-in-error").textContent = "Enter your API token.";
    input.setAttribute("aria-invalid", "true");
    focusOn(input);
    return;
  }
  const button = $("sign-in-button");
  button.disabled = true;
  try {
    const session = await signIn(token);
    input.value = "";
    await enter(session);
    // To the page's content, unless the administrator already moved on into it while it loaded
    // (clicked a field, say): taking focus from them there would lose their place.
    const active = document.activeElement;
    if (!active || active === document.body || $("sign-in").contains(active)) focusOn($("content"));
  } catch (failure) {
    $("sign-in-error").textContent = signInProblem(failure);
    input.setAttribute("aria-invalid", "true");
    focusOn(input);
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
  showSignIn("", { status: "Signed out." });
  focusOn($("token-input"));
}

async function enter(session) {
  state.session = session;
  state.canManage = session.permissions.includes("MANAGE_SETTINGS");
  useTimeZone(session.timeZone || "UTC");
  show($("sign-in"), false);
  $("sign-in-error").textContent = "";
  $("account-label").textContent =
    (session.districtName || session.district) + (state.canManage ? "" : " · read-only");
  show($("account"), true);
  applyPermissions();
  show($("tab"), true);
  await refresh();
  if (!state.session) return;
  state.live = new LiveFigures({
    licenseQuery: LICENSE_CHANGED,
    alertsQuery: ALERTS_CHANGED,
    onLicense: (license) => {
      showLicense(license);
      refreshAfterChange(); // usage, roster notes and settings come with the query
    },
    onAlerts: (alerts) =>
      renderBanner(
        $("alert-banner"),
        alerts.filter((alert) => alert.placements.includes(BANNER_PLACEMENT)),
      ),
    poll: refresh,
    onMode: showLiveMode,
  });
  state.live.start();
}

function applyPermissions() {
  const readOnly = !state.canManage;
  document.body.classList.toggle("read-only", readOnly);
  show($("read-only-note"), readOnly);
  // Sync status, count review and audit log are for Manage Settings only.
  show($("panels"), !readOnly);
  show($("panels-note"), readOnly);
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

// ---------------------------------------------------------------- reading the figures

function showLicense(license) {
  state.license = license;
  renderLicense(license);
  clearStale(licenseKey(license));
}

/** Read everything once; true when it worked. Concurrent calls share one read. The chart is
 * read with the rest: after a change it may have a new day or total, and when nothing changed
 * its conditional GET is a 304. */
function refresh() {
  if (!state.session) return Promise.resolve(false);
  if (!state.loading) {
    const chart = loadUsageChart({ canManage: state.canManage });
    // The panels load beside the figures, not as part of them: the review scans the roster, and
    // the figures (and focus after signing in or an action) should not wait for it.
    if (state.canManage) loadPanels();
    state.loading = Promise.all([readAndRender(), chart]).then(([ok]) => ok).finally(() => {
      state.loading = null;
    });
  }
  return state.loading;
}

/** `read()` begun after a change made here or announced live. A read already under way
 * (`inFlight`) may have left before the change: it is waited out, then `read()` shares only a
 * read begun since. Sharing the older one would draw the figures from before the change. */
async function readAfterChange(inFlight, read) {
  await inFlight?.catch(() => {});
  return read();
}

function refreshAfterChange() {
  return readAfterChange(state.loading, refresh);
}

async function readAndRender() {
  try {
    const figures = await readTab({ canManage: state.canManage });
    if (!state.session) return false;
    document.body.dataset.state = figures.noLicense ? "no-license" : "license";
    if (figures.noLicense) {
      state.license = null;
      renderNoLicense(state.canManage, figures.noLicense);
      clearStale(licenseKey(null));
    } else {
      showLicense(figures.license);
    }
    renderUsage(figures.usage);
    renderRoster(figures.usage.rosterStatus);
    renderBanner($("alert-banner"), figures.alerts);
    if (figures.settings) renderSettings(figures.settings, figures.license?.total ?? 0);
    setSettingsAvailable(!figures.noLicense, state.canManage);
    document.body.dataset.refreshes = String(Number(document.body.dataset.refreshes || 0) + 1);
    $("page-status").textContent = "";
    $("last-updated").textContent = `Updated at ${timeOfDay()}.`;
    return true;
  } catch (failure) {
    if (failure instanceof ApiError && failure.status === 401) {
      sessionEnded();
      return false;
    }
    const retry = state.live?.mode === "polling" ? ` Retrying in ${Math.round(state.live.pollDelay() / 1000)} seconds.` : "";
    $("page-status").textContent = `Could not refresh the license figures. ${describeFailure(failure)}${retry}`;
    return false;
  }
}

function showLiveMode(mode, retryInMs) {
  const note = $("live-status");
  if (mode === "live") {
    note.textContent = "Live: the figures update as soon as they change.";
  } else if (mode === "polling") {
    note.textContent =
      "Live updates are not available right now, so the page checks for changes every " +
      `${Math.round(retryInMs / 1000)} seconds.`;
  } else {
    note.textContent = "";
  }
  note.dataset.mode = mode;
}

// ---------------------------------------------------------------- the Manage Settings panels

// After an action (a panel's, Save Settings, Force License Update) the audit log is read again
// too: it has a new entry. Otherwise it is read once per sign-in, so that a live update does not
// move the reader off the page they are on.
const panelActions = {
  after: async () => {
    await Promise.all([refreshAfterChange(), readAfterChange(state.panelsLoading, loadPanels)]);
    await loadAuditLog();
  },
  onSignedOut: () => sessionEnded(),
};

/** Sync status and count review, read with the other figures (the review after the status:
 * it scans the roster, and the server runs one such read per token at a time). Concurrent
 * calls share one read. */
function loadPanels() {
  if (!state.panelsLoading) {
    state.panelsLoading = readPanels().finally(() => {
      state.panelsLoading = null;
    });
  }
  return state.panelsLoading;
}

async function readPanels() {
  await loadSyncStatus(panelActions);
  await loadCountReview(panelActions);
  if (!state.auditLogRead) {
    state.auditLogRead = true;
    await loadAuditLog();
  }
  document.body.dataset.panelReads = String(Number(document.body.dataset.panelReads || 0) + 1);
}

// ---------------------------------------------------------------- actions

function currentKey() {
  return licenseKey(state.license);
}

setUpAuditLog({ onSignedOut: () => sessionEnded() });
$("sign-in-form").addEventListener("submit", onSignIn);
$("sign-out").addEventListener("click", onSignOut);
$("settings-form").addEventListener("submit", (event) => {
  event.preventDefault();
  if (!state.canManage) return;
  saveSettings({ after: panelActions.after, about: currentKey, onSignedOut: sessionEnded });
});
$("force-update").addEventListener("click", () => {
  if (!state.canManage) return;
  forceUpdate({
    showLicense,
    after: panelActions.after,
    about: currentKey,
    onSignedOut: sessionEnded,
    canManage: state.canManage,
  });
});
$("refresh-now").addEventListener("click", async () => {
  const ok = await refresh();
  state.live?.noteRead(ok);
  if (ok) focusOn($("last-updated"));
});
$("threshold-input").addEventListener("input", (event) => {
  event.target.dataset.dirty = "1";
  $("threshold-error").textContent = "";
  event.target.setAttribute("aria-invalid", "false");
});
document.addEventListener("visibilitychange", () => {
  if (document.visibilityState === "visible" && state.session) refresh();
});

start();
