// The count review (Manage Settings): groups of counted students worth a look, each with the
// licenses fixing it would free and a sample; the CSV of active students; the local roster's
// deactivated students (reactivated from here, also after a reload); and deactivating
// local-roster students, ticked in a sample or typed by id. Every change goes through an inline
// confirmation that states the new count.

import { graphql } from "./api.js";
import { $, focusOn, redraw, setMessage } from "./dom.js";
import { number, plural } from "./format.js";
import { describe, describeFailure } from "./messages.js";
import {
  COUNT_REVIEW,
  DEACTIVATED_STUDENTS,
  DEACTIVATE_STUDENTS,
  REACTIVATE_STUDENTS,
} from "./operations.js";

const LOCAL = "local:";
// Deactivated students shown at first, and added by each "Show more".
const DEACTIVATED_PAGE = 20;
// The most one read of the list returns (the server's page limit).
const DEACTIVATED_MAX = 100;
// The most ids one change takes (the server's limit).
const MAX_IDS = 1000;

// Why a deactivated student would not count again once reactivated.
const NOT_COUNTED = {
  PRE_REGISTERED: "pre-registered",
  INACTIVE: "inactive",
  TRANSFERRED: "transferred",
  GRADUATED: "graduated",
  WITHDRAWN: "withdrawn",
  DELETED: "deleted",
};

const REASONS = {
  GRADUATION_YEAR_PASSED: "Graduation year has passed",
  GRADE_BEYOND_LAST: "Grade above the district's last grade",
  NOT_MODIFIED_RECENTLY: "Not changed in their source for over a year",
  TEST_ACCOUNT: "Looks like a test account",
  DUPLICATE_PERSON: "The same person under two ids (already counted once)",
  CLOSED_SCHOOL: "Only school is a closed school",
  QUARANTINED_ROWS: "Rows a source could not classify (not counted)",
  INTAKE_WARNINGS: "Rows a sync read past with a warning",
  ENROLLMENT_ENDED: "Every enrollment has ended",
};

const SWITCH_PROBLEMS = {
  OWNED_BY_SOURCE:
    "One of these students comes from a roster source (your SIS), so nothing was changed. Make them inactive in the source; its next sync updates the count.",
  NOT_FOUND: "One of these students no longer exists, so nothing was changed. The review is refreshed.",
  SYNC_HELD:
    "This would stop counting many students at once, so it is held for confirmation under Sync status. Nothing was changed yet.",
  COSTLY_OPERATION_RUNNING: "The review is still being prepared. Wait a few seconds, then try again.",
  TOO_MANY_IDS: "At most 1,000 students can be changed at once. Split the ids into smaller groups.",
  NO_IDS: "Enter at least one student id.",
};


let reading = null;
// The students ticked for deactivation in a sample: still ticked when the review is redrawn.
const chosen = new Set();
// The deactivated students shown, and those ticked for reactivation (kept across redraws).
const deactivated = { nodes: [], total: 0, hasNextPage: false, endCursor: null };
const toReactivate = new Set();
// The district's active students, as last read: the confirmations state the count after.
let activeNow = 0;
let panelActions = null;

function element(tag, { className = "", text = "" } = {}) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text) node.textContent = text;
  return node;
}

function button(text, className = "button") {
  const node = element("button", { className, text });
  node.type = "button";
  return node;
}

/** Read the review and the deactivated students, and draw them. One read at a time: the review
 * scans the whole roster, and the server runs one such query per token at a time. */
export function loadCountReview(actions) {
  panelActions = actions;
  setUpDeactivateById();
  if (!reading) {
    reading = Promise.all([read(actions), readDeactivated(actions)]).finally(() => {
      reading = null;
    });
  }
  return reading;
}

async function read(actions) {
  try {
    const { data, errors, requestId } = await graphql(COUNT_REVIEW);
    if (!data || errors.length) {
      setMessage($("count-review-error"), {
        kind: "bad",
        icon: "✖",
        text: `The count review could not be read. ${describe(errors[0]?.extensions?.code, requestId)}`,
      });
      return;
    }
    setMessage($("count-review-error"));
    activeNow = data.usage.activeStudents;
    const groups = data.countReview || [];
    redraw($("count-review-body"), groups, () => reviewParts(groups, actions));
  } catch (failure) {
    if (failure?.status === 401) return actions.onSignedOut();
    setMessage($("count-review-error"), {
      kind: "bad",
      icon: "✖",
      text: `The count review could not be read. ${describeFailure(failure)}`,
    });
  }
}

function reviewParts(groups, actions) {
  const parts = [];
  if (!groups.length) {
    parts.push(
      element("p", {
        text: "Nothing to review: no counted student looks graduated, left, duplicated or like a test account.",
      }),
    );
  }
  groups.forEach((group, index) => parts.push(groupItem(group, index, actions)));
  return parts;
}

function groupItem(group, index, actions) {
  const box = element("div", { className: "review-group" });
  box.dataset.reason = group.reason;
  const headingId = `review-group-${index}`;
  const heading = element("h3", { text: REASONS[group.reason] || "Students worth a look" });
  heading.id = headingId;
  box.append(heading);
  const counted = group.reason === "QUARANTINED_ROWS" || group.reason === "INTAKE_WARNINGS"
    ? `${plural(group.records, "row")}; they do not change the count.`
    : `${plural(group.students, "student")} (${plural(group.records, "record")}); fixing them frees ${plural(group.licensesFreed, "license")}.`;
  box.append(element("p", { className: "review-figures", text: counted }));
  if (!group.examples.length) return box;
  const local = group.examples.filter((example) => example.startsWith(LOCAL));
  const fieldset = element("fieldset", { className: "sample" });
  const legend = element("legend", {
    text: local.length ? "A sample (local-roster students can be deactivated here)" : "A sample",
  });
  fieldset.append(legend);
  const list = element("ul", { className: "sample-list" });
  for (const example of group.examples) {
    const item = element("li");
    if (example.startsWith(LOCAL)) {
      const id = example.slice(LOCAL.length);
      item.append(checkbox(id, ` ${id} (local roster)`, chosen));
    } else {
      const [source, ...rest] = example.split(":");
      item.textContent = `${rest.join(":")} (from “${source}”: fix it there)`;
    }
    list.append(item);
  }
  fieldset.append(list);
  box.append(fieldset);
  if (local.length) box.append(deactivation(fieldset, actions));
  return box;
}

/** A labelled checkbox for one student id, ticked while the id is in `ticked`. */
function checkbox(id, words, ticked, onChange = () => {}) {
  const label = element("label");
  const box = element("input");
  box.type = "checkbox";
  box.value = id;
  box.checked = ticked.has(id);
  box.addEventListener("change", () => {
    if (box.checked) ticked.add(id);
    else ticked.delete(id);
    onChange();
  });
  label.append(box, document.createTextNode(words));
  return label;
}

/** A button, its inline confirmation, both by keyboard. `question()` answers the confirmation's
 * words, or { problem } when there is nothing to confirm; `run` makes the change. */
function confirmed({ label, question, confirmLabel, run, problemNear = null }) {
  const wrap = element("div", { className: "action" });
  const open = button(label);
  const confirm = element("div", { className: "confirm" });
  confirm.hidden = true;
  confirm.setAttribute("role", "group");
  const text = element("p", { className: "confirm-question" });
  text.id = `confirm-${Math.random().toString(36).slice(2)}`;
  confirm.setAttribute("aria-labelledby", text.id);
  const yes = button(confirmLabel, "button button-primary");
  const no = button("Cancel", "button button-quiet");
  const problem = problemNear || element("p", { className: "field-error" });
  if (!problemNear) problem.setAttribute("role", "alert");
  confirm.append(text, yes, no);
  const close = () => {
    confirm.hidden = true;
    open.hidden = false;
    yes.disabled = false;
    no.disabled = false;
  };
  open.addEventListener("click", () => {
    const asked = question();
    if (asked.problem) {
      problem.textContent = asked.problem;
      focusOn(problem);
      return;
    }
    problem.textContent = "";
    text.textContent = asked.text;
    confirm.hidden = false;
    open.hidden = true;
    focusOn(yes);
  });
  no.addEventListener("click", () => {
    close();
    focusOn(open);
  });
  yes.addEventListener("click", async () => {
    yes.disabled = true;
    no.disabled = true;
    await run();
    close();
  });
  if (problemNear) wrap.append(open, confirm);
  else wrap.append(open, problem, confirm);
  wrap.openButton = open;
  return wrap;
}

function selected(fieldset) {
  return [...fieldset.querySelectorAll("input[type=checkbox]:checked")].map((box) => box.value);
}

function deactivationQuestion(count) {
  return `Deactivate ${plural(count, "student")}: ${plural(Math.max(activeNow - count, 0), "active student")} (−${number(count)}).`;
}

function deactivation(fieldset, actions) {
  return confirmed({
    label: "Deactivate selected…",
    confirmLabel: "Deactivate",
    question: () => {
      const ids = selected(fieldset);
      if (!ids.length) return { problem: "Select at least one student first." };
      return { text: deactivationQuestion(ids.length) };
    },
    run: async () => {
      const ids = selected(fieldset);
      const outcome = await switchStudents(ids, { enabled: false, actions });
      if (outcome) showResult(outcome);
    },
  });
}

// ---------------------------------------------------------------- deactivated local students

/** Read the deactivated students again: as many as were shown (a page at least). */
async function readDeactivated(actions) {
  const first = Math.min(Math.max(DEACTIVATED_PAGE, deactivated.nodes.length), DEACTIVATED_MAX);
  try {
    const { data, errors, requestId } = await graphql(DEACTIVATED_STUDENTS, { first });
    const list = data?.deactivatedStudents;
    if (!list || errors.length) {
      showDeactivatedFailure(describe(errors[0]?.extensions?.code, requestId));
      return;
    }
    deactivated.nodes = list.nodes;
    deactivated.total = list.totalCount;
    deactivated.hasNextPage = list.pageInfo.hasNextPage;
    deactivated.endCursor = list.pageInfo.endCursor;
    // Ticks stay only on students still listed.
    const listed = new Set(list.nodes.map((node) => node.sourceId));
    for (const id of [...toReactivate]) if (!listed.has(id)) toReactivate.delete(id);
    drawDeactivated(actions);
  } catch (failure) {
    if (failure?.status === 401) return actions.onSignedOut();
    showDeactivatedFailure(describeFailure(failure));
  }
}

function showDeactivatedFailure(words) {
  const note = element("p", { className: "notice notice-bad" });
  setMessage(note, { kind: "bad", icon: "✖", text: `The deactivated students could not be read. ${words}` });
  redraw($("deactivated-body"), { failure: words }, () => [note]);
}

/** "Ava Lopez (S000003) · North Middle · grade 7", with why they would not count again. */
function describeStudent(node) {
  const name = [node.givenName, node.familyName].filter(Boolean).join(" ");
  const parts = [name ? `${name} (${node.sourceId})` : node.sourceId];
  if (node.school) parts.push(node.school);
  if (node.grade) parts.push(`grade ${node.grade}`);
  const words = parts.join(" · ");
  const why = NOT_COUNTED[node.status];
  return why ? `${words} · ${why}: would not count when reactivated` : words;
}

/** The list as read (its cursor aside: read again unchanged, it is not drawn again). The ticks
 * need no redraw of their own: they change on the page, or with the list. */
function drawDeactivated(actions) {
  const { nodes, total, hasNextPage } = deactivated;
  redraw($("deactivated-body"), { nodes, total, hasNextPage }, () => deactivatedParts(actions));
}

function deactivatedParts(actions) {
  if (!deactivated.total) {
    return [element("p", { text: "No local-roster student is deactivated. Students you deactivate are listed here." })];
  }
  const parts = [
    element("p", {
      className: "review-figures",
      text: `${plural(deactivated.total, "deactivated local student")}; they do not count against your license.`,
    }),
  ];
  const fieldset = element("fieldset", { className: "sample" });
  fieldset.append(
    element("legend", {
      text: `Select students to reactivate (showing ${number(deactivated.nodes.length)} of ${number(deactivated.total)})`,
    }),
  );
  const list = element("ul", { className: "sample-list" });
  list.id = "deactivated-list";
  const action = reactivation(actions);
  const relabel = () => {
    const count = toReactivate.size;
    action.openButton.textContent = count ? `Reactivate ${plural(count, "student")}…` : "Reactivate selected…";
  };
  for (const node of deactivated.nodes) {
    const item = element("li");
    item.append(checkbox(node.sourceId, ` ${describeStudent(node)}`, toReactivate, relabel));
    list.append(item);
  }
  fieldset.append(list);
  parts.push(fieldset);
  if (deactivated.hasNextPage) {
    const more = button(
      `Show more (${number(deactivated.total - deactivated.nodes.length)} not shown)`,
      "button button-quiet",
    );
    more.addEventListener("click", () => showMore(more, actions));
    const line = element("p");
    line.append(more);
    parts.push(line);
  }
  parts.push(action);
  relabel();
  return parts;
}

async function showMore(more, actions) {
  more.disabled = true;
  more.setAttribute("aria-busy", "true");
  const shown = deactivated.nodes.length;
  try {
    const { data, errors, requestId } = await graphql(DEACTIVATED_STUDENTS, {
      first: DEACTIVATED_PAGE,
      after: deactivated.endCursor,
    });
    const list = data?.deactivatedStudents;
    if (!list || errors.length) {
      // A change since the list was read gives the records new ids: read it again from its start.
      if (errors[0]?.extensions?.code === "INVALID_ARGUMENT") return await readDeactivated(actions);
      showDeactivatedFailure(describe(errors[0]?.extensions?.code, requestId));
      return;
    }
    deactivated.nodes = [...deactivated.nodes, ...list.nodes];
    deactivated.total = list.totalCount;
    deactivated.hasNextPage = list.pageInfo.hasNextPage;
    deactivated.endCursor = list.pageInfo.endCursor;
    drawDeactivated(actions);
    // Keyboard and screen reader users continue at the first student added.
    const added = $("deactivated-list")?.querySelectorAll("input[type=checkbox]")[shown];
    if (added) added.focus();
  } catch (failure) {
    if (failure?.status === 401) return actions.onSignedOut();
    showDeactivatedFailure(describeFailure(failure));
  }
}

function reactivation(actions) {
  return confirmed({
    label: "Reactivate selected…",
    confirmLabel: "Reactivate",
    question: () => {
      const ids = [...toReactivate];
      if (!ids.length) return { problem: "Select at least one student to reactivate first." };
      const counting = deactivated.nodes.filter(
        (node) => toReactivate.has(node.sourceId) && node.status === "ACTIVE",
      ).length;
      const others = ids.length - counting;
      const note = others
        ? ` ${plural(others, "of them is", "of them are")} not enrolled as active, so ${others === 1 ? "does" : "do"} not count.`
        : "";
      return {
        text: `Reactivate ${plural(ids.length, "student")}: ${plural(activeNow + counting, "active student")} (+${number(counting)}).${note}`,
      };
    },
    run: async () => {
      const outcome = await switchStudents([...toReactivate], { enabled: true, actions });
      if (outcome) showResult(outcome);
    },
  });
}

// ---------------------------------------------------------------- deactivating by typed id

let byIdReady = false;

/** The ids typed in the box: split at commas, spaces and new lines, each once. */
function typedIds() {
  const ids = $("deactivate-ids").value.split(/[\s,]+/).filter(Boolean);
  return [...new Set(ids)];
}

function setUpDeactivateById() {
  if (byIdReady) return;
  byIdReady = true;
  const field = $("deactivate-ids");
  const error = $("deactivate-ids-error");
  const action = confirmed({
    label: "Deactivate these students…",
    confirmLabel: "Deactivate",
    problemNear: error,
    question: () => {
      const ids = typedIds();
      const problem = !ids.length
        ? "Enter at least one student id."
        : ids.length > MAX_IDS
          ? `At most ${number(MAX_IDS)} students can be changed at once; ${number(ids.length)} were entered.`
          : "";
      field.setAttribute("aria-invalid", problem ? "true" : "false");
      return problem ? { problem } : { text: deactivationQuestion(ids.length) };
    },
    run: async () => {
      const outcome = await switchStudents(typedIds(), { enabled: false, actions: panelActions });
      if (!outcome) return;
      if (outcome.kind === "good") {
        field.value = "";
        field.setAttribute("aria-invalid", "false");
        error.textContent = "";
        showResult(outcome);
      } else {
        field.setAttribute("aria-invalid", "true");
        error.textContent = outcome.text;
        focusOn(error);
      }
    },
  });
  $("deactivate-by-id-action").replaceChildren(action);
  $("deactivate-by-id").addEventListener("submit", (event) => {
    event.preventDefault();
    action.openButton.click();
  });
  field.addEventListener("input", () => {
    field.setAttribute("aria-invalid", "false");
    error.textContent = "";
  });
}

// ---------------------------------------------------------------- the change itself

/** Ids named in plain words: "S1, S2 and S3". */
function listed(ids) {
  const quoted = ids.map((id) => `“${id}”`);
  if (quoted.length <= 1) return quoted.join("");
  return `${quoted.slice(0, -1).join(", ")} and ${quoted[quoted.length - 1]}`;
}

/** What the refused ids mean, naming each: unknown ones, and those of a roster source. */
function refusal(refused, verb) {
  const unknown = refused.filter((entry) => entry.code === "NOT_FOUND").map((entry) => entry.sourceId);
  const owned = refused.filter((entry) => entry.code === "OWNED_BY_SOURCE");
  const sentences = [`Nothing was ${verb}.`];
  if (unknown.length) {
    sentences.push(
      `${unknown.length === 1 ? "This id is" : "These ids are"} not in the local roster: ${listed(unknown)}. Check for typing mistakes.`,
    );
  }
  const sources = [...new Set(owned.map((entry) => entry.source))];
  for (const source of sources) {
    const ids = owned.filter((entry) => entry.source === source).map((entry) => entry.sourceId);
    sentences.push(
      `${listed(ids)} ${ids.length === 1 ? "comes" : "come"} from “${source}” (your SIS): make them inactive there; its next sync updates the count.`,
    );
  }
  return sentences.join(" ");
}

/** Send the change; then every figure and the audit log are read again. The outcome to show, or
 * null when the session ended. */
async function switchStudents(ids, { enabled, actions }) {
  const verb = enabled ? "reactivated" : "deactivated";
  let outcome;
  try {
    const { data, errors, requestId } = await graphql(enabled ? REACTIVATE_STUDENTS : DEACTIVATE_STUDENTS, { ids });
    const payload = enabled ? data?.reactivateStudents : data?.deactivateStudents;
    if (!payload) {
      outcome = { kind: "bad", icon: "✖", text: describe(errors[0]?.extensions?.code, requestId) };
    } else if (payload.refusedIds?.length) {
      outcome = { kind: "bad", icon: "✖", text: refusal(payload.refusedIds, verb) };
    } else if (payload.errors.length) {
      const code = payload.errors[0].code;
      outcome = { kind: "bad", icon: "✖", text: SWITCH_PROBLEMS[code] || describe(code, requestId) };
    } else {
      for (const id of ids) {
        chosen.delete(id);
        toReactivate.delete(id);
      }
      outcome = {
        kind: "good",
        icon: "✓",
        text: `${plural(payload.changed, "student")} ${verb}. Your district now has ${plural(payload.usage.activeStudents, "active student")}; the change is in the audit log.`,
      };
    }
  } catch (failure) {
    if (failure?.status === 401) {
      actions.onSignedOut();
      return null;
    }
    outcome = { kind: "bad", icon: "✖", text: `Nothing was changed: ${describeFailure(failure)}` };
  }
  await actions.after();
  return outcome;
}

function showResult(outcome) {
  const shown = $("count-review-result");
  setMessage(shown, outcome);
  focusOn(shown);
}
