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
