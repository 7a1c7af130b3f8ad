// Building the chat's elements and words: strings always become text, never markup.
import { gettext, language, ngettext } from "./i18n.js";

/** Build an element; strings become text nodes, so server text can never become markup. */
export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value === null || value === undefined || value === false) continue;
    if (name === "class") node.className = value;
    // Styles through the CSSOM: a style attribute would be inline style, which the CSP blocks.
    else if (name === "style") {
      for (const [property, setting] of Object.entries(value)) node.style.setProperty(property, setting);
    }
    else if (name.startsWith("on")) node.addEventListener(name.slice(2), value);
    else node.setAttribute(name, value === true ? "" : value);
  }
  for (const child of children.flat()) {
    if (child !== null && child !== undefined && child !== false) node.append(child);
  }
  return node;
}

/** "1 image", "4 images", "4 изображения": a count of images in the reader's language. */
export const countImages = (n) => ngettext("%(num)s image", "%(num)s images", n);

/** "1 unit", "12 units": a count of units in the reader's language. */
export const countUnits = (n) => ngettext("%(num)s unit", "%(num)s units", n);

/** An API identifier as a label: "portrait_hd" -> "Portrait hd". */
export function pretty(value) {
  const text = String(value).replace(/[_-]+/g, " ");
  return text.charAt(0).toUpperCase() + text.slice(1);
}

const MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];

/** "21 дек. 2026 г.": the day in the reader's language, as the browser writes it. */
const localDay = (moment) => new Intl.DateTimeFormat(language, {
  day: "numeric", month: "short", year: "numeric", timeZone: "UTC" }).format(moment);

/** A moment as every page of nproxy writes it: "21 Dec 2026, 13:54 UTC" (templating.py). */
export function formatDate(value) {
  const moment = new Date(value);
  if (Number.isNaN(moment.getTime())) return "";
  const two = (n) => String(n).padStart(2, "0");
  return `${formatDay(moment)}, ${two(moment.getUTCHours())}:${two(moment.getUTCMinutes())} UTC`;
}

/** Only the day (UTC), for what lasts months: "7 Dec 2027". */
export function formatDay(value) {
  const moment = new Date(value);
  if (Number.isNaN(moment.getTime())) return "";
  if (language !== "en") return localDay(moment);
  return `${moment.getUTCDate()} ${MONTHS[moment.getUTCMonth()]} ${moment.getUTCFullYear()}`;
}

/** "3 days left", "1 day left", "less than a day left": whole days until `value`. */
export function daysLeft(value, now = Date.now()) {
  const days = Math.floor((new Date(value).getTime() - now) / 86400000);
  if (days < 1) return gettext("less than a day left");
  return ngettext("%(num)s day left", "%(num)s days left", days);
}

const ICONS = {
  pencil: "M4 20h4L19 9l-4-4L4 16v4zM14 6l4 4",
  trash: "M4 7h16M9 7V4h6v3M6 7l1 13h10l1-13M10 11v6M14 11v6",
};

/** A small line icon (decorative: the button around it carries the words). */
export function icon(name) {
  const ns = "http://www.w3.org/2000/svg";
  const svg = document.createElementNS(ns, "svg");
  for (const [key, value] of Object.entries({ viewBox: "0 0 24 24", width: 16, height: 16, fill: "none",
    stroke: "currentColor", "stroke-width": 1.8, "stroke-linecap": "round", "stroke-linejoin": "round",
    "aria-hidden": "true", focusable: "false" })) svg.setAttribute(key, value);
  const path = document.createElementNS(ns, "path");
  path.setAttribute("d", ICONS[name]);
  svg.append(path);
  return svg;
}
