// Force License Update: asks the licensing server now, and says what came of it.

import { graphql } from "./api.js";
import { $, focusOn, setMessage } from "./dom.js";
import { plural } from "./format.js";
import { describe, describeFailure } from "./messages.js";
import { FORCE_UPDATE } from "./operations.js";

/** Press Force License Update. `showLicense` draws a license, `after` re-reads the tab, and
 * `about` gives the key of the figures now (for clearing the message once they change). */
export async function forceUpdate({ showLicense, after, about, onSignedOut, canManage }) {
  const button = $("force-update");
  const result = $("force-result");
  const label = button.textContent;
  button.disabled = true;
  button.setAttribute("aria-busy", "true");
  button.textContent = "Updating license…";
  setMessage(result, { icon: "…", text: "Contacting the Manage1to1 licensing server…" });
  let outcome;
  try {
    const { data, errors, requestId } = await graphql(FORCE_UPDATE);
    const payload = data?.forceLicenseUpdate;
    if (payload?.license) showLicense(payload.license);
    await after();
    if (!payload) {
      outcome = { kind: "bad", icon: "✖", text: describe(errors[0]?.extensions?.code, requestId) };
    } else if (payload.throttled) {
      const seconds = payload.retryAfterSeconds ?? 0;
      outcome = {
        kind: "warn",
        icon: "⚠",
        text:
          `A license update was just requested. Try again in ${plural(seconds, "second")}; ` +
          "licenses also refresh automatically.",
      };
    } else if (payload.inProgress) {
      outcome = {
        kind: "warn",
        icon: "…",
        text:
          "The licensing server is slow to answer; the update goes on in the background and " +
          "this page shows the result when it arrives.",
      };
    } else if (payload.errors.length) {
      outcome = { kind: "bad", icon: "✖", text: describe(payload.errors[0].code, requestId) };
    } else if (payload.updated) {
      const total = payload.license ? ` You now have ${plural(payload.license.total, "license")}.` : "";
      // The new license has fewer seats than the alert threshold was: it was lowered to fit.
      const lowered = payload.notices.some((notice) => notice.code === "THRESHOLD_LOWERED")
        ? " Your alert threshold was lowered to fit the new license; check it under Licensing Settings."
        : "";
      outcome = {
        kind: "good",
        icon: "✓",
        text: `License updated from the licensing server.${total}${lowered}`,
      };
    } else {
      outcome = { kind: "good", icon: "✓", text: "Your license is already up to date." };
    }
  } catch (failure) {
    if (failure?.status === 401) {
      onSignedOut();
      return;
    }
    outcome = { kind: "bad", icon: "✖", text: `The update failed: ${describeFailure(failure)}` };
  } finally {
    button.textContent = label;
    button.removeAttribute("aria-busy");
    button.disabled = !canManage;
  }
  setMessage(result, { ...outcome, about: about() });
  focusOn(result);
}
