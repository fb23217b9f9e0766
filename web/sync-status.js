// Sync status (Manage Settings): when the license was last refreshed and how, and each roster
// source with its state, its warnings and quarantined rows, and a held sync to apply after an
// inline confirmation that states the change.

import { graphql } from "./api.js";
import { $, focusOn, redraw, setMessage } from "./dom.js";
import { moment, number, plural, usedOfTotal } from "./format.js";
import { describe, describeFailure } from "./messages.js";
import { CONFIRM_ROSTER_SYNC, DISCARD_ROSTER_SYNC, SYNC_STATUS } from "./operations.js";

const LICENSE_OUTCOME = {
  UPDATED: { kind: "good", icon: "✓", words: "updated: the licensing server sent changes" },
  UNCHANGED: { kind: "good", icon: "✓", words: "checked: nothing had changed" },
  FAILED: {
    kind: "bad",
    icon: "✖",
    words: "failed: the figures shown are the last confirmed ones. It is retried automatically; select Force License Update to try now",
  },
};

const SOURCE_STATE = {
  CURRENT: { kind: "good", icon: "✓", words: "Up to date" },
  NEVER_SYNCED: {
    kind: "warn",
    icon: "⚠",
    words: "Not synced yet: its students are not counted until its first sync completes",
  },
  FAILED: {
    kind: "bad",
    icon: "✖",
    words: "Last sync failed: the counts are from its last good sync. Check the source's export or connection",
  },
  HELD: {
    kind: "warn",
    icon: "⚠",
    words: "Sync held: it would change the count a lot, so it waits for your confirmation below",
  },
};

const RUN_OUTCOME = {
  RUNNING: "running now",
  APPLIED: "applied",
  HELD: "held for confirmation",
  FAILED: "failed",
  SUPERSEDED: "replaced by a newer sync",
  UNCHANGED: "nothing new",
  DISCARDED: "held, then discarded",
};

const CONFIRM_PROBLEMS = {
  SYNC_SUPERSEDED: "A newer sync of this source came first, so this one no longer waits. Nothing changed.",
  NOT_HELD: "This sync is no longer waiting for confirmation. The figures are refreshed.",
  NOTHING_HELD: "No sync of this source is waiting any more. The figures are refreshed.",
  UNKNOWN_RUN: "This sync is no longer known. The figures are refreshed.",
};

function element(tag, { className = "", text = "" } = {}) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text) node.textContent = text;
  return node;
}

function status(kind, icon, words) {
  const line = element("p", { className: `status-line ${kind}` });
  const mark = element("span", { className: "icon", text: icon });
  mark.setAttribute("aria-hidden", "true");
  line.append(mark, document.createTextNode(words));
  return line;
}

/** Read the sync status and draw it; `after` re-reads the tab after a confirmed sync. */
export async function loadSyncStatus({ after, onSignedOut }) {
  const target = $("sync-status-body");
  try {
    const { data, errors, requestId } = await graphql(SYNC_STATUS);
    if (!data || errors.length) {
      setMessage($("sync-status-error"), {
        kind: "bad",
        icon: "✖",
        text: `The sync status could not be read. ${describe(errors[0]?.extensions?.code, requestId)}`,
      });
      return;
    }
    setMessage($("sync-status-error"));
    redraw(target, data, () => [
      licenseRefresh(data.license),
      ...sources(data.dataSources || [], { after, onSignedOut }),
    ]);
  } catch (failure) {
    if (failure?.status === 401) return onSignedOut();
    setMessage($("sync-status-error"), {
      kind: "bad",
      icon: "✖",
      text: `The sync status could not be read. ${describeFailure(failure)}`,
    });
  }
}

function licenseRefresh(license) {
  const box = element("div", { className: "sync-item" });
  box.append(element("h3", { text: "License refresh" }));
  if (!license || !license.lastSyncedAt) {
    box.append(
      status("warn", "⚠", "No license has been received yet. Select Force License Update once Manage1to1 has issued it."),
    );
    return box;
  }
  const outcome = LICENSE_OUTCOME[license.lastSyncStatus] || LICENSE_OUTCOME.UNCHANGED;
  box.append(
    status(outcome.kind, outcome.icon, `Last refresh ${moment(license.lastSyncedAt)}: ${outcome.words}.`),
  );
  return box;
}

function sources(list, actions) {
  const items = list.map((source) => sourceItem(source, actions));
  if (!list.some((source) => !isLocal(source))) {
    const box = element("div", { className: "sync-item" });
    box.append(
      element("h3", { text: "Roster sources" }),
      element("p", {
        text: "Your district's students are kept in Manage1to1 itself (the local roster): no roster source syncs them, so there is nothing to sync.",
      }),
    );
    items.unshift(box);
  }
  return items;
}

function sourceItem(source, actions) {
  const box = element("div", { className: "sync-item" });
  box.dataset.source = source.name;
  const name = isLocal(source) ? "Local roster (kept in Manage1to1)" : `Roster source “${source.name}”`;
  box.append(element("h3", { text: name }));
  const state = SOURCE_STATE[source.rosterStatus.state] || SOURCE_STATE.CURRENT;
  box.append(status(state.kind, state.icon, `${state.words}.`));
  const facts = [];
  if (source.lastAttemptAt) {
    const outcome = RUN_OUTCOME[source.lastStatus] || "finished";
    facts.push(`Last sync ${moment(source.lastAttemptAt)}: ${outcome}.`);
  }
  if (source.lastSuccessAt) facts.push(`Last applied ${moment(source.lastSuccessAt)}.`);
  if (source.activeStudents !== null && source.activeStudents !== undefined) {
    facts.push(`${plural(source.activeStudents, "active student")} from ${plural(source.records ?? 0, "record")}.`);
  }
  for (const fact of facts) box.append(element("p", { className: "secondary", text: fact }));
  box.append(
    issues(source.warnings, {
      none: "No warnings from its last sync.",
      some: (total) => `${plural(total, "warning")} from its last sync: rows read past without changing the count. Fix them in the source.`,
    }, `${source.name} warnings`),
    issues(source.quarantined, {
      none: "No quarantined rows.",
      some: (total) => `${plural(total, "quarantined row")}: rows without an id or a role, not counted. If they are students, fix them in the source.`,
    }, `${source.name} quarantined`),
  );
  if (source.held && source.heldSync) box.append(heldSync(source, actions));
  return box;
}

// Which lists of warnings or quarantined rows are open: they stay open when the panel is redrawn.
const openLists = new Set();

function issues(found, words, key) {
  if (!found.total) return element("p", { className: "secondary", text: words.none });
  const details = element("details", { className: "issues" });
  details.open = openLists.has(key);
  details.addEventListener("toggle", () => {
    if (details.open) openLists.add(key);
    else openLists.delete(key);
  });
  const summary = element("summary");
  const mark = element("span", { className: "icon", text: "⚠" });
  mark.setAttribute("aria-hidden", "true");
  summary.append(mark, document.createTextNode(words.some(found.total)));
  details.append(summary);
  const list = element("ul");
  for (const issue of found.sample) {
    const where = [
      issue.file,
      issue.line ? `line ${number(issue.line)}` : "",
      issue.column ? `column “${issue.column}”` : "",
      issue.sourceId ? `id ${issue.sourceId}` : "",
    ].filter(Boolean);
    const rows = issue.rows > 1 ? ` (${plural(issue.rows, "row")})` : "";
    list.append(element("li", { text: `${where.join(", ")}${where.length ? ": " : ""}${issue.reason}${rows}` }));
  }
  if (found.total > found.sample.length) {
    list.append(element("li", { className: "secondary", text: `… and ${number(found.total - found.sample.length)} more.` }));
  }
  details.append(list);
  return details;
}

function signed(change) {
  if (change === 0) return "no change";
  return change > 0 ? `+${number(change)}` : `−${number(-change)}`;
}

function heldSync(source, { after, onSignedOut }) {
  const held = source.heldSync;
  const box = element("div", { className: "held" });
  const before = held.activeStudentsBefore ?? 0;
  const afterCount = held.activeStudentsAfter ?? 0;
  const consequence = `${plural(afterCount, "active student")} from “${source.name}” (${signed(afterCount - before)})`;
  box.append(
    element("p", {
      text:
        `A sync held ${held.heldAt ? moment(held.heldAt) : "earlier"} would count ${consequence} instead of ${number(before)}. ` +
        "Apply it if the source is right (for example, students really left). Otherwise discard it and fix the source: its next sync is checked again.",
    }),
  );
  const variables = { source: source.name, runId: held.runId };
  box.append(
    confirmedAction({
      label: "Apply held sync…",
      question: `Apply: ${consequence}. The license count changes at once.`,
      confirmLabel: "Apply",
      send: () => graphql(CONFIRM_ROSTER_SYNC, variables),
      payloadOf: (data) => data?.confirmRosterSync,
      done: (payload) => {
        const count = payload.license ? ` Your license count is now ${usedOfTotal(payload.license.used, payload.license.total)}.` : "";
        return `The held sync of “${source.name}” was applied.${count}`;
      },
      failed: "The sync was not applied",
      after,
      onSignedOut,
    }),
    confirmedAction({
      label: "Discard held sync…",
      question: `Discard: keep ${plural(before, "active student")} from “${source.name}” (no change). The source's next sync is checked again.`,
      confirmLabel: "Discard",
      send: () => graphql(DISCARD_ROSTER_SYNC, variables),
      payloadOf: (data) => data?.discardRosterSync,
      done: (payload) => {
        const count = payload.license ? ` Your license count stays ${usedOfTotal(payload.license.used, payload.license.total)}.` : "";
        return `The held sync of “${source.name}” was discarded.${count}`;
      },
      failed: "The sync was not discarded",
      after,
      onSignedOut,
    }),
  );
  return box;
}

/** A button opening an inline confirmation (the question, then confirm or Cancel), all by
 * keyboard; confirming sends the mutation, re-reads the figures and focuses the result. */
function confirmedAction({ label, question, confirmLabel, send, payloadOf, done, failed, after, onSignedOut }) {
  const wrap = element("div", { className: "action" });
  const open = element("button", { className: "button", text: label });
  open.type = "button";
  const confirm = element("div", { className: "confirm" });
  confirm.hidden = true;
  confirm.setAttribute("role", "group");
  const text = element("p", { className: "confirm-question", text: question });
  text.id = `confirm-${Math.random().toString(36).slice(2)}`;
  confirm.setAttribute("aria-labelledby", text.id);
  const yes = element("button", { className: "button button-primary", text: confirmLabel });
  yes.type = "button";
  const no = element("button", { className: "button button-quiet", text: "Cancel" });
  no.type = "button";
  confirm.append(text, yes, no);
  open.addEventListener("click", () => {
    confirm.hidden = false;
    open.hidden = true;
    focusOn(yes);
  });
  no.addEventListener("click", () => {
    confirm.hidden = true;
    open.hidden = false;
    focusOn(open);
  });
  yes.addEventListener("click", async () => {
    yes.disabled = true;
    no.disabled = true;
    let outcome;
    try {
      const { data, errors, requestId } = await send();
      const payload = payloadOf(data);
      if (!payload) {
        outcome = { kind: "bad", icon: "✖", text: describe(errors[0]?.extensions?.code, requestId) };
      } else if (payload.errors.length) {
        const code = payload.errors[0].code;
        outcome = { kind: "bad", icon: "✖", text: CONFIRM_PROBLEMS[code] || describe(code, requestId) };
      } else {
        outcome = { kind: "good", icon: "✓", text: done(payload) };
      }
    } catch (failure) {
      if (failure?.status === 401) return onSignedOut();
      outcome = { kind: "bad", icon: "✖", text: `${failed}: ${describeFailure(failure)}` };
    }
    await after();
    // The panel was redrawn by after(): the result goes in the panel's own status line.
    const shown = $("sync-status-result");
    setMessage(shown, outcome);
    focusOn(shown);
  });
  wrap.append(open, confirm);
  return wrap;
}

/** The roster kept in Manage1to1 itself (students added here or imported), not a synced source. */
function isLocal(source) {
  return source.name === "local" || source.kind === "local";
}
