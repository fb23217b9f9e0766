// The count review (Manage Settings): groups of counted students worth a look, each with the
// licenses fixing it would free and a sample; the CSV of active students; and deactivating (or
// reactivating) local-roster students after an inline confirmation that states the new count.

import { graphql } from "./api.js";
import { $, focusOn, setMessage } from "./dom.js";
import { number, plural } from "./format.js";
import { describe, describeFailure } from "./messages.js";
import { COUNT_REVIEW, DEACTIVATE_STUDENTS, REACTIVATE_STUDENTS } from "./operations.js";

const LOCAL = "local:";

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
};

// Students deactivated from this page, offered for reactivation until the page is reloaded.
let deactivated = [];
let reading = null;
// The students ticked for deactivation: still ticked when the review is redrawn.
const chosen = new Set();

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

/** Read the review and draw it. One read at a time: the review scans the whole roster, and the
 * server runs one such query per token at a time. */
export function loadCountReview(actions) {
  if (!reading) {
    reading = read(actions).finally(() => {
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
    draw(data.countReview || [], data.usage.activeStudents, actions);
  } catch (failure) {
    if (failure?.status === 401) return actions.onSignedOut();
    setMessage($("count-review-error"), {
      kind: "bad",
      icon: "✖",
      text: `The count review could not be read. ${describeFailure(failure)}`,
    });
  }
}

function draw(groups, active, actions) {
  const target = $("count-review-body");
  const parts = [];
  if (!groups.length) {
    parts.push(
      element("p", {
        text: "Nothing to review: no counted student looks graduated, left, duplicated or like a test account.",
      }),
    );
  }
  groups.forEach((group, index) => parts.push(groupItem(group, index, active, actions)));
  if (deactivated.length) parts.push(reactivation(active, actions));
  target.replaceChildren(...parts);
}

function groupItem(group, index, active, actions) {
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
      const label = element("label");
      const box = element("input");
      box.type = "checkbox";
      box.value = id;
      box.checked = chosen.has(id);
      box.addEventListener("change", () => {
        if (box.checked) chosen.add(id);
        else chosen.delete(id);
      });
      label.append(box, document.createTextNode(` ${id} (local roster)`));
      item.append(label);
    } else {
      const [source, ...rest] = example.split(":");
      item.textContent = `${rest.join(":")} (from “${source}”: fix it there)`;
    }
    list.append(item);
  }
  fieldset.append(list);
  box.append(fieldset);
  if (local.length) box.append(deactivation(fieldset, active, actions));
  return box;
}

/** A button, its inline confirmation, both by keyboard; `change` runs the mutation. */
function confirmed({ label, question, confirmLabel, run }) {
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
  const problem = element("p", { className: "field-error" });
  problem.setAttribute("role", "alert");
  confirm.append(text, yes, no);
  open.addEventListener("click", () => {
    const asked = question();
    if (!asked) {
      problem.textContent = "Select at least one student first.";
      focusOn(problem);
      return;
    }
    problem.textContent = "";
    text.textContent = asked;
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
    await run();
  });
  wrap.append(open, problem, confirm);
  return wrap;
}

function selected(fieldset) {
  return [...fieldset.querySelectorAll("input[type=checkbox]:checked")].map((box) => box.value);
}

function deactivation(fieldset, active, actions) {
  return confirmed({
    label: "Deactivate selected…",
    confirmLabel: "Deactivate",
    question: () => {
      const ids = selected(fieldset);
      if (!ids.length) return "";
      return `Deactivate ${plural(ids.length, "student")}: ${plural(Math.max(active - ids.length, 0), "active student")} (−${number(ids.length)}).`;
    },
    run: () => switchStudents(selected(fieldset), { enabled: false, actions }),
  });
}

function reactivation(active, actions) {
  const box = element("div", { className: "review-group" });
  box.append(element("h3", { text: "Deactivated from this page" }));
  box.append(element("p", { text: `${deactivated.join(", ")}. Reactivate them if that was a mistake.` }));
  box.append(
    confirmed({
      label: "Reactivate these students…",
      confirmLabel: "Reactivate",
      question: () =>
        `Reactivate ${plural(deactivated.length, "student")}: ${plural(active + deactivated.length, "active student")} (+${number(deactivated.length)}).`,
      run: () => switchStudents([...deactivated], { enabled: true, actions }),
    }),
  );
  return box;
}

async function switchStudents(ids, { enabled, actions }) {
  const verb = enabled ? "reactivated" : "deactivated";
  let outcome;
  try {
    const { data, errors, requestId } = await graphql(enabled ? REACTIVATE_STUDENTS : DEACTIVATE_STUDENTS, { ids });
    const payload = enabled ? data?.reactivateStudents : data?.deactivateStudents;
    if (!payload) {
      outcome = { kind: "bad", icon: "✖", text: describe(errors[0]?.extensions?.code, requestId) };
    } else if (payload.errors.length) {
      const code = payload.errors[0].code;
      outcome = { kind: "bad", icon: "✖", text: SWITCH_PROBLEMS[code] || describe(code, requestId) };
    } else {
      for (const id of ids) chosen.delete(id);
      deactivated = enabled
        ? deactivated.filter((id) => !ids.includes(id))
        : [...new Set([...deactivated, ...ids])];
      outcome = {
        kind: "good",
        icon: "✓",
        text: `${plural(payload.changed, "student")} ${verb}. Your district now has ${plural(payload.usage.activeStudents, "active student")}; the change is in the audit log.`,
      };
    }
  } catch (failure) {
    if (failure?.status === 401) return actions.onSignedOut();
    outcome = { kind: "bad", icon: "✖", text: `Nothing was changed: ${describeFailure(failure)}` };
  }
  await actions.after();
  const shown = $("count-review-result");
  setMessage(shown, outcome);
  focusOn(shown);
}
