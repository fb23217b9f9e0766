// Small DOM helpers shared by the tab's modules.

export const $ = (id) => document.getElementById(id);

export function show(element, visible) {
  element.hidden = !visible;
}

/** Put text in a message element with an icon before it (the icon is not read out: the words
 * carry the meaning). `about` names the figures the message refers to: clearStale() removes the
 * message once they change. */
export function setMessage(element, { kind = "", icon = "", text = "", about = "" } = {}) {
  element.classList.remove("good", "warn", "bad");
  if (kind) element.classList.add(kind);
  element.replaceChildren();
  if (about) element.dataset.about = about;
  else delete element.dataset.about;
  if (!text) return;
  if (icon) {
    const mark = document.createElement("span");
    mark.className = "icon";
    mark.setAttribute("aria-hidden", "true");
    mark.textContent = icon;
    element.append(mark);
  }
  element.append(document.createTextNode(text));
}

/** Clear every message that refers to figures other than `about` (they changed since). */
export function clearStale(about) {
  for (const element of document.querySelectorAll("[data-about]")) {
    if (element.dataset.about !== about) setMessage(element);
  }
}

/** Move focus to an element that shows a result or an error, so keyboard and screen reader
 * users land on it. */
export function focusOn(element) {
  if (!element.hasAttribute("tabindex") && !element.matches("input, button, select, textarea, a")) {
    element.setAttribute("tabindex", "-1");
  }
  element.focus();
}

// What each panel last drew, as JSON: see redraw().
const drawnFrom = new WeakMap();

/** Fill `target` with `build()` unless it already shows the same `data`. A panel is read again
 * after every live update and every action, mostly unchanged: drawing it anew would take the
 * focus, or an open confirmation, from an administrator working in it. When `data` did change
 * and the focus was in the panel, it moves to the control of the same name in the new content. */
export function redraw(target, data, build) {
  const drawn = JSON.stringify(data);
  if (drawnFrom.get(target) === drawn) return;
  const active = target.contains(document.activeElement) ? document.activeElement : null;
  target.replaceChildren(...build());
  drawnFrom.set(target, drawn);
  if (!active || target.contains(active)) return;
  const name = controlName(active);
  const same = [...target.querySelectorAll(active.tagName)].find((node) => controlName(node) === name);
  if (same) same.focus();
}

function controlName(node) {
  return node.id || `${node.getAttribute("aria-label") || ""}|${node.value || ""}|${node.textContent.trim()}`;
}
