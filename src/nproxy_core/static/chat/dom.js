// Building the chat's elements and words: strings always become text, never markup.

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

export const plural = (n, word) => `${n} ${word}${n === 1 ? "" : "s"}`;

/** An API identifier as a label: "portrait_hd" -> "Portrait hd". */
export function pretty(value) {
  const text = String(value).replace(/[_-]+/g, " ");
  return text.charAt(0).toUpperCase() + text.slice(1);
}
