// The audit log (Manage Settings): every settings change, license update, sync, student switch
// and token change, newest first, filtered by kind and by the district's days, a page at a time.

import { graphql } from "./api.js";
import { $, focusOn, setMessage } from "./dom.js";
import { day, moment, number } from "./format.js";
import { describe, describeFailure } from "./messages.js";
import { AUDIT_LOG } from "./operations.js";

const PAGE_SIZE = 10;

export const ACTION_WORDS = {
  SET_THRESHOLD: "Alert threshold saved",
  FORCE_LICENSE_UPDATE: "Force License Update",
  LICENSE_REFRESH: "Scheduled license refresh",
  ROSTER_SYNC: "Roster sync",
  ROSTER_IMPORT: "Roster import",
  ROSTER_SYNC_CONFIRM: "Held sync applied",
  ROSTER_SYNC_DISCARD: "Held sync discarded",
  DEACTIVATE_STUDENTS: "Students deactivated",
  REACTIVATE_STUDENTS: "Students reactivated",
  TOKEN_CREATED: "API token created",
  TOKEN_REVOKED: "API token revoked",
};

const OUTCOME_WORDS = {
  CHANGED: ["✓", "Changed"],
  REJECTED: ["✖", "Refused, nothing changed"],
  LOWERED: ["⚠", "Lowered to fit the license"],
  UPDATED: ["✓", "Updated"],
  UNCHANGED: ["✓", "No change"],
  THROTTLED: ["⚠", "Asked again too soon"],
  FAILED: ["✖", "Failed"],
  APPLIED: ["✓", "Applied"],
  HELD: ["⚠", "Held for confirmation"],
  SUPERSEDED: ["⚠", "Replaced by a newer sync"],
  DISCARDED: ["✓", "Discarded, nothing changed"],
  CREATED: ["✓", "Created"],
  REVOKED: ["✓", "Revoked"],
};

const KEY_WORDS = {
  used: "active students",
  total: "licenses",
  source_active: "active in the source",
  students_remaining: "threshold",
  expires_at: "expires",
  status: "status",
};

// What is shown now: the filter, and the page's cursors.
const view = { filter: {}, page: null, onSignedOut: () => {} };

/** Fill the kind list once, and wire the filter and paging. */
export function setUpAuditLog({ onSignedOut }) {
  view.onSignedOut = onSignedOut;
  const kinds = $("audit-kind");
  for (const [value, words] of Object.entries(ACTION_WORDS)) {
    const option = document.createElement("option");
    option.value = value;
    option.textContent = words;
    kinds.append(option);
  }
  $("audit-filter").addEventListener("submit", (event) => {
    event.preventDefault();
    applyFilter();
  });
  $("audit-newer").addEventListener("click", () => loadAuditLog({ before: view.page?.startCursor, focus: true }));
  $("audit-older").addEventListener("click", () => loadAuditLog({ after: view.page?.endCursor, focus: true }));
}

function applyFilter() {
  const since = $("audit-since").value;
  const until = $("audit-until").value;
  const error = $("audit-filter-error");
  for (const id of ["audit-since", "audit-until"]) $(id).setAttribute("aria-invalid", "false");
  if (since && until && until < since) {
    error.textContent = "The “to” day is before the “from” day. Choose a “to” day on or after it.";
    $("audit-until").setAttribute("aria-invalid", "true");
    focusOn($("audit-until"));
    return;
  }
  error.textContent = "";
  const kind = $("audit-kind").value;
  view.filter = { actions: kind ? [kind] : null, since: since || null, until: until || null };
  loadAuditLog({ focus: true });
}

/** Read a page of the log: the newest (no cursor), older (`after`) or newer (`before`). */
export async function loadAuditLog({ after = null, before = null, focus = false } = {}) {
  const variables = before
    ? { last: PAGE_SIZE, before, ...view.filter }
    : { first: PAGE_SIZE, after, ...view.filter };
  const status = $("audit-status");
  try {
    const { data, errors, requestId } = await graphql(AUDIT_LOG, variables);
    if (!data?.auditLog || errors.length) {
      setMessage(status, {
        kind: "bad",
        icon: "✖",
        text: `The audit log could not be read. ${describe(errors[0]?.extensions?.code, requestId)}`,
      });
      if (focus) focusOn(status);
      return;
    }
    view.page = data.auditLog.pageInfo;
    draw(data.auditLog.nodes);
    const filtered = view.filter.actions || view.filter.since || view.filter.until;
    const count = data.auditLog.nodes.length;
    setMessage(status, {
      text: count
        ? `Showing ${number(count)} ${count === 1 ? "entry" : "entries"}${filtered ? " that match the filter" : ""}, newest first.`
        : filtered
          ? "No entries match this filter. Choose another kind or other days."
          : "Nothing has been recorded yet.",
    });
    if (focus) focusOn(status);
  } catch (failure) {
    if (failure?.status === 401) return view.onSignedOut();
    setMessage(status, { kind: "bad", icon: "✖", text: `The audit log could not be read. ${describeFailure(failure)}` });
    if (focus) focusOn(status);
  }
}

function cell(tag, text) {
  const node = document.createElement(tag);
  node.textContent = text;
  return node;
}

function draw(entries) {
  const rows = entries.map((entry) => {
    const row = document.createElement("tr");
    const [icon, words] = OUTCOME_WORDS[entry.outcome] || ["", "Recorded"];
    const outcome = document.createElement("td");
    const mark = cell("span", icon);
    mark.className = "icon";
    mark.setAttribute("aria-hidden", "true");
    outcome.append(mark, document.createTextNode(` ${words}`));
    row.append(
      cell("td", moment(entry.occurredAt)),
      cell("td", ACTION_WORDS[entry.action] || "Other change"),
      outcome,
      cell("td", change(entry.oldValue, entry.newValue)),
      cell("td", who(entry.actor)),
    );
    // On a phone the rows stack: each cell says which column it is (licensing.css).
    ["When", "What", "Outcome", "Change", "Who"].forEach((label, index) => {
      row.children[index].dataset.label = label;
    });
    return row;
  });
  $("audit-rows").replaceChildren(...rows);
  $("audit-table").hidden = entries.length === 0;
  $("audit-newer").disabled = !view.page?.hasPreviousPage;
  $("audit-older").disabled = !view.page?.hasNextPage;
}

function who(actor) {
  if (actor.startsWith("token:")) return `API token ${actor.slice("token:".length)}`;
  if (actor === "scheduler" || actor === "system") return "Automatic";
  return actor;
}

function value(recorded) {
  if (recorded === null || recorded === undefined) return "—";
  if (typeof recorded === "number") return number(recorded);
  if (typeof recorded === "string") return recorded;
  if (Array.isArray(recorded)) return `${number(recorded.length)} items`;
  if (recorded.truncated) return "(too long to show)";
  // The figures a person follows, when the record has them; every plain field otherwise.
  const known = Object.keys(recorded).filter((key) => KEY_WORDS[key]);
  return Object.entries(recorded)
    .filter(([key, inner]) => (known.length ? KEY_WORDS[key] : inner === null || typeof inner !== "object"))
    .map(([key, inner]) => `${KEY_WORDS[key] || key.replace(/_/g, " ")}: ${plain(inner)}`)
    .join(", ");
}

function plain(inner) {
  if (typeof inner === "number") return number(inner);
  if (typeof inner === "string" && /^\d{4}-\d{2}-\d{2}$/.test(inner)) return day(inner);
  return inner ?? "—";
}

function change(oldValue, newValue) {
  if (oldValue === null && newValue === null) return "—";
  if (oldValue === null) return value(newValue);
  return `${value(oldValue)} → ${value(newValue)}`;
}
