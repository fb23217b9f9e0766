// The Licensing tab's banner: the alerts placed on it, each with its severity in words and an
// icon (never colour alone), its message in the page's formats, and a note saying what ends it.
// Alerts cannot be dismissed, so there is no close button.

import { localize } from "./format.js";

const SEVERITIES = {
  CRITICAL: { word: "Critical", icon: "✖", css: "alert-critical" },
  WARNING: { word: "Warning", icon: "⚠", css: "alert-warning" },
  INFO: { word: "Notice", icon: "ℹ", css: "alert-info" },
};

// What ends each kind of alert, in the product's words.
const UNTIL = {
  LICENSES_LOW:
    "This alert stays until licenses are added or the active count drops below your threshold.",
  LICENSE_LIMIT_REACHED:
    "This alert stays until licenses are added or students who have left are disabled.",
  OVER_LIMIT:
    "This alert stays until you are back within your licensed seats: purchase licenses, or disable students who have left.",
  RENEWAL_DUE:
    "This reminder stays until your license is renewed; after renewal, select Force License Update.",
  EXPIRED:
    "This alert stays until your license is renewed; after renewal, select Force License Update.",
  INACTIVE: "This alert stays until Manage1to1 Support reactivates your license.",
  SYNC_FAILING: "This alert stays until the source syncs again.",
};
const UNTIL_OTHER = "This alert stays while its condition holds.";

let shownKey = null;

/** Show these alerts in the banner element; an unchanged list is not re-announced. */
export function renderBanner(banner, alerts) {
  const key = JSON.stringify(alerts.map((alert) => [alert.id, alert.kind, alert.severity, alert.message]));
  if (key === shownKey) return;
  shownKey = key;
  banner.replaceChildren(...alerts.map(alertBox));
}

/** Forget what was shown (after signing out), so the next sign-in shows its alerts afresh. */
export function resetBanner(banner) {
  shownKey = null;
  banner.replaceChildren();
}

function alertBox(alert) {
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
  message.append(word, document.createTextNode(localize(alert.message)));
  const note = document.createElement("p");
  note.className = "alert-note";
  note.textContent = UNTIL[alert.kind] || UNTIL_OTHER;
  text.append(message, note);
  box.append(icon, text);
  return box;
}
