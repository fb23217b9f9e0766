// The Licensing Settings section: "Number of Students Remaining to Show Alert" and Save Settings.
// The page checks the number itself (a whole number from 0 to the licensed total) before sending.

import { graphql } from "./api.js";
import { $, focusOn, setMessage } from "./dom.js";
import { number, plural } from "./format.js";
import { describeFailure, thresholdProblem } from "./messages.js";
import { SET_THRESHOLD } from "./operations.js";

let current = null; // the last settings read: {studentsRemainingThreshold, ..., maximumThreshold}
let licensedTotal = 0;

/** Fill the form from the server's settings; what the administrator is typing stays. */
export function renderSettings(settings, total) {
  current = settings;
  licensedTotal = total;
  const input = $("threshold-input");
  input.max = String(settings.maximumThreshold);
  if (!input.dataset.dirty) input.value = String(settings.studentsRemainingThreshold);
  $("threshold-recommended").textContent =
    `Recommended for your district's size: ${number(settings.recommendedThresholdMin)}–` +
    `${number(settings.recommendedThresholdMax)} remaining ` +
    "(small districts under 500 students: 25–50; medium, 500–2,000: 50–100; large, over 2,000: " +
    `100–200). Allowed: 0 to ${number(settings.maximumThreshold)}.`;
}

/** Settings can only be saved while there is a license to measure the threshold against. */
export function setSettingsAvailable(available, canManage) {
  const enabled = available && canManage;
  $("threshold-input").disabled = !enabled;
  $("save-settings").disabled = !enabled;
  if (!available && canManage) {
    $("threshold-recommended").textContent =
      "You can set the alert threshold once your district's license has arrived.";
  }
}

/** "1,000" or " 75 " -> the whole number; anything else -> null. */
function wholeNumber(raw) {
  const digits = raw.replace(/[\s,]/g, "");
  return /^\d{1,9}$/.test(digits) ? Number(digits) : null;
}

function refuse(text, about) {
  const input = $("threshold-input");
  setMessage($("threshold-error"), { text, about });
  input.setAttribute("aria-invalid", "true");
  focusOn(input);
}

/** Save Settings. `after` re-reads the tab; `about` gives the key of the figures now. */
export async function saveSettings({ after, about, onSignedOut }) {
  const input = $("threshold-input");
  const button = $("save-settings");
  const result = $("settings-result");
  setMessage(result);
  if (!current) return;
  const maximum = current.maximumThreshold;
  const value = wholeNumber(input.value.trim());
  if (value === null || value > maximum) {
    const range = `Enter a whole number of students from 0 to ${number(maximum)}`;
    refuse(
      value !== null && maximum === licensedTotal
        ? `${range}: the threshold cannot be more than your ${plural(licensedTotal, "licensed seat")}.`
        : `${range}, such as ${number(Math.min(50, maximum))}.`,
      about(),
    );
    return;
  }
  button.disabled = true;
  button.setAttribute("aria-busy", "true");
  try {
    const { data, errors, requestId } = await graphql(SET_THRESHOLD, { value });
    const payload = data?.setThreshold;
    const problems = payload ? payload.errors : errors.map((error) => error.extensions || {});
    if (!payload || problems.length) {
      const limits = { maximum, total: licensedTotal };
      refuse(thresholdProblem(problems[0]?.code || "", limits, requestId), about());
      return;
    }
    setMessage($("threshold-error"));
    input.setAttribute("aria-invalid", "false");
    delete input.dataset.dirty;
    renderSettings(payload.licenseSettings, licensedTotal);
    await after();
    setMessage(result, {
      kind: "good",
      icon: "✓",
      text: `Settings saved. Alerts begin when ${plural(payload.licenseSettings.studentsRemainingThreshold, "license")} or fewer remain.`,
      about: about(),
    });
    focusOn(result);
  } catch (failure) {
    if (failure?.status === 401) {
      onSignedOut();
      return;
    }
    refuse(`Not saved: ${describeFailure(failure)}`, about());
  } finally {
    button.removeAttribute("aria-busy");
    button.disabled = input.disabled;
  }
}
