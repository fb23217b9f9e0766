// Every number, date and moment the tab shows, formatted one way (Intl, US English), with
// moments in the district's time zone. Panels import these instead of formatting themselves.

export const LOCALE = "en-US";
let districtZone = "UTC";
let numbers = new Intl.NumberFormat(LOCALE);
// A license's dates are calendar days (no time of day): shown as they are, never shifted by a zone.
const days = new Intl.DateTimeFormat(LOCALE, { dateStyle: "long", timeZone: "UTC" });
let moments = momentFormat("UTC");
let clock = clockFormat("UTC");

function momentFormat(timeZone) {
  return new Intl.DateTimeFormat(LOCALE, {
    dateStyle: "long",
    timeStyle: "short",
    timeZone,
  });
}

function clockFormat(timeZone) {
  return new Intl.DateTimeFormat(LOCALE, { timeStyle: "short", timeZone });
}

function zoneName(timeZone, when) {
  const parts = new Intl.DateTimeFormat(LOCALE, { timeZone, timeZoneName: "short" }).formatToParts(
    when,
  );
  return parts.find((part) => part.type === "timeZoneName")?.value || timeZone;
}

/** Show moments in this IANA time zone from now on (the district's); an unknown one keeps UTC. */
export function useTimeZone(timeZone) {
  try {
    moments = momentFormat(timeZone);
    clock = clockFormat(timeZone);
    districtZone = timeZone;
  } catch {
    moments = momentFormat("UTC");
    clock = clockFormat("UTC");
    districtZone = "UTC";
  }
}

/** The district's IANA time zone, as useTimeZone() set it ("UTC" until then). */
export function districtTimeZone() {
  return districtZone;
}

/** 1234 -> "1,234". */
export function number(value) {
  return numbers.format(value);
}

/** plural(1, "license") -> "1 license"; plural(1200, "license") -> "1,200 licenses". */
export function plural(count, one, many = `${one}s`) {
  return `${number(count)} ${Math.abs(count) === 1 ? one : many}`;
}

/** "960 / 1000" as the page shows it: "960 / 1,000"; an unknown count is "?". */
export function usedOfTotal(used, total) {
  return `${used === null ? "?" : number(used)} / ${number(total)}`;
}

/** "2026-10-31" -> "October 31, 2026". */
export function day(isoDay) {
  return days.format(new Date(`${isoDay.slice(0, 10)}T00:00:00Z`));
}

/** An ISO moment -> "November 27, 2026 at 4:00 AM CST", in the district's time zone. */
export function moment(value) {
  const when = value instanceof Date ? value : new Date(value);
  return `${moments.format(when)} ${zoneName(districtZone, when)}`;
}

/** The time of day now, in the district's time zone: "3:04 PM CST". */
export function timeOfDay(when = new Date()) {
  return `${clock.format(when)} ${zoneName(districtZone, when)}`;
}

const ISO_MOMENT = /\b(\d{4}-\d{2}-\d{2})[ T](\d{2}:\d{2})(?::\d{2})?(?:\.\d+)?(?: ?UTC|Z|[+-]00:?00)\b/g;
const ISO_DAY = /\b\d{4}-\d{2}-\d{2}\b/g;
// Not part of a date, a time, an id or a decimal: "limit of 1000" but not "2026-10-31".
const BARE_NUMBER = /(?<![\w.,:-])\d{4,}(?![\w:-]|[.,]\d)/g;

/** A server-written sentence (an alert's message) in the page's formats: its ISO dates and
 * moments, and its numbers of four or more digits, as everywhere else on the page. */
export function localize(text) {
  // Numbers first: the dates written next contain years, which are not to be grouped.
  return text
    .replace(BARE_NUMBER, (match) => number(Number(match)))
    .replace(ISO_MOMENT, (_match, date, time) => moment(`${date}T${time}:00Z`))
    .replace(ISO_DAY, (match) => day(match));
}
