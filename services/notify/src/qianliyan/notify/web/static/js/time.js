// Times as a dispatcher reads them: "12 分钟前" for how old, "02:10" (or "3月5日 02:10" on
// another day) for when, and the full date and time on hover.

import { locale } from "./i18n.js";

const MINUTE = 60_000;
const HOUR = 60 * MINUTE;
const DAY = 24 * HOUR;

/** "3 分钟前" / "3 min ago"; "刚刚" / "now" under a minute. */
export function relative(iso, now = Date.now()) {
  if (!iso) return "—";
  const ms = Date.parse(iso) - now;
  const format = new Intl.RelativeTimeFormat(locale(), { numeric: "auto", style: "short" });
  const abs = Math.abs(ms);
  if (abs < MINUTE) return format.format(0, "second");
  if (abs < HOUR) return format.format(Math.round(ms / MINUTE), "minute");
  if (abs < DAY) return format.format(Math.round(ms / HOUR), "hour");
  return format.format(Math.round(ms / DAY), "day");
}

/** "02:10" today, "3月5日 02:10" / "5 Mar, 02:10" on another day. */
export function clock(iso, now = new Date()) {
  if (!iso) return "—";
  const date = new Date(iso);
  const sameDay = date.toDateString() === now.toDateString();
  const options = { hour: "2-digit", minute: "2-digit", hourCycle: "h23" };
  if (!sameDay) Object.assign(options, { month: "short", day: "numeric" });
  return new Intl.DateTimeFormat(locale(), options).format(date);
}

/** The full local date and time with seconds, for a tooltip or an audit line. */
export function full(iso) {
  if (!iso) return "";
  return new Intl.DateTimeFormat(locale(), {
    dateStyle: "medium",
    timeStyle: "medium",
    hourCycle: "h23",
  }).format(new Date(iso));
}

/** "6 小时 5 分钟" / "6 hr, 5 min": how long between two times, two units at most. */
export function duration(ms) {
  const parts = [];
  let rest = Math.abs(ms);
  for (const [unit, size] of [
    ["day", DAY],
    ["hour", HOUR],
    ["minute", MINUTE],
  ]) {
    const n = Math.floor(rest / size);
    if (n > 0 || (unit === "minute" && parts.length === 0)) parts.push([unit, n]);
    rest -= n * size;
    if (parts.length === 2) break;
  }
  return parts
    .map(([unit, n]) =>
      new Intl.NumberFormat(locale(), { style: "unit", unit, unitDisplay: "short" }).format(n),
    )
    .join(" ");
}
