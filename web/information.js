// The Licensing Information section: status, licensed to, count, dates, and the notes about the
// figures (no license yet, stale license, roster sources not synced).

import { $, show } from "./dom.js";
import { day, moment, number, plural, usedOfTotal } from "./format.js";

const RENEWAL_WINDOW_DAYS = 90;
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

/** A short key of the license figures that other messages refer to (see dom.js clearStale). */
export function licenseKey(license) {
  if (!license) return "none";
  return [license.total, license.used, license.status, license.expiresAt].join("|");
}

function badge(element, { word, icon, css }) {
  element.className = `badge ${css}`;
  const mark = document.createElement("span");
  mark.setAttribute("aria-hidden", "true");
  mark.textContent = icon;
  element.replaceChildren(mark, document.createTextNode(word));
}

/** No license has been received yet (`reason`: licenseUnavailable.reason): say so, and what to
 * do, instead of empty figures. */
export function renderNoLicense(canManage, reason) {
  const note = $("no-license");
  note.replaceChildren();
  const title = document.createElement("strong");
  title.textContent = "No license yet. ";
  note.append(
    title,
    document.createTextNode(
      "Manage1to1 has not sent a license for your district yet, so there is no license count or " +
        "expiry date to show. " +
        // The reason's own message can carry the license source's error text: not shown.
        (reason === "UPDATE_FAILED"
          ? "The last request to the Manage1to1 licensing server failed; it is tried again " +
            "automatically. "
          : "") +
        (canManage
          ? "Once Manage1to1 Sales confirms your license, select Force License Update to bring it in."
          : "Once Manage1to1 has issued it, the figures appear here by themselves."),
    ),
  );
  show(note, true);
  show($("facts"), false);
  show($("stale-note"), false);
}

export function renderLicense(license) {
  show($("no-license"), false);
  show($("facts"), true);
  const status = STATUSES[license.status] || STATUSES.INACTIVE;
  badge($("status-badge"), status);
  $("status-guidance").textContent = status.guidance;
  show($("status-guidance"), Boolean(status.guidance));

  const restricted = license.accessLevel === "RESTRICTED";
  $("restricted-note").textContent = restricted
    ? "System access is restricted for your district" +
      (license.status === "ACTIVE"
        ? ": it is further over its licensed seats than your license allows. Purchase additional " +
          "licenses, or disable students who have left the district."
        : " until the license is resolved. Contact Manage1to1 Support.")
    : "";
  show($("restricted-note"), restricted);

  $("licensed-to").textContent = license.licensedTo;
  const legal = license.legalEntityName;
  const showLegal = Boolean(legal) && legal !== license.licensedTo;
  $("legal-entity").textContent = showLegal ? `Legal entity: ${legal}` : "";
  show($("legal-entity"), showLegal);

  const known = license.rosterStatus?.countsKnown !== false;
  $("license-count").textContent = usedOfTotal(known ? license.used : null, license.total);
  const level = known ? LEVELS[license.level] || LEVELS.RED : UNKNOWN_LEVEL;
  const bar = $("usage-bar");
  bar.className = `usage-bar ${level.css}`;
  const percent = license.total > 0 ? Math.min(100, (license.used / license.total) * 100) : 100;
  $("usage-fill").style.width = `${known ? percent : 0}%`;
  bar.setAttribute("aria-valuemax", String(license.total));
  bar.setAttribute("aria-valuenow", String(Math.min(license.used, license.total)));
  bar.setAttribute(
    "aria-valuetext",
    `${number(license.used)} of ${number(license.total)} licenses used: ${level.word}`,
  );
  $("usage-level").className = `usage-level ${level.css}`;
  $("usage-level-icon").textContent = level.icon;
  $("usage-level-text").textContent = level.word;
  $("license-remaining").textContent = !known
    ? "Licenses remaining are not known until every roster source has synced."
    : license.remaining >= 0
      ? `${plural(license.remaining, "license")} remaining`
      : `Over the limit by ${plural(license.overage, "license")}: purchase additional licenses promptly.`;

  $("created-at").textContent = day(license.createdAt);
  $("expires-at").textContent = day(license.expiresAt);
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
  stale.textContent = license.stale
    ? "The licensing server could not be reached at the last automatic refresh, so these are " +
      "the last figures it confirmed" +
      (license.lastSyncedAt ? ` (${moment(license.lastSyncedAt)})` : "") +
      ". The page keeps them until a refresh works; if this lasts more than a day, contact " +
      "Manage1to1 Support."
    : "";
  show(stale, license.stale);
}

/** A note for a roster whose last sync did not apply: never synced, failed or held. */
export function renderRoster(roster) {
  const note = $("roster-note");
  const source = roster?.source ? `“${roster.source}”` : "";
  const since = roster?.since ? moment(roster.since) : "";
  let text = "";
  if (roster?.state === "NEVER_SYNCED") {
    text =
      `Student counts are not known yet: the roster source ${source} has not completed a sync. ` +
      "The license count leaves out its students until it does. Check that your SIS delivers its " +
      "export, or ask your Manage1to1 administrator.";
  } else if (roster?.state === "FAILED" && !roster.countsKnown) {
    text =
      `Student counts are not known: the roster source ${source} has never synced ` +
      `successfully (failing since ${since}). Its students are not counted until it does. ` +
      "Check the connection to your SIS, or contact Manage1to1 Support.";
  } else if (roster?.state === "FAILED") {
    text =
      `The last sync of the roster source ${source} failed (failing since ${since}); the ` +
      "figures are from its last good sync. It is tried again automatically.";
  } else if (roster?.state === "HELD") {
    text =
      `The latest sync of the roster source ${source} is held for an administrator's ` +
      `confirmation (since ${since}) because it would remove many active students at once; ` +
      "the figures are from before it. An administrator can confirm or discard it.";
  }
  note.textContent = text;
  note.className = `notice ${roster?.countsKnown === false ? "notice-bad" : "notice-warn"}`;
  show(note, Boolean(text));
}

export function renderUsage(usage) {
  $("usage-breakdown").textContent =
    `In your district now: ${plural(usage.activeStudents, "active student")} (counted); ` +
    `not counted: ${plural(usage.inactiveStudents, "inactive student")}, ` +
    `${plural(usage.staff, "staff user")}, ${plural(usage.devices, "device")}.`;
}
