// Building the chat's elements and words: strings always become text, never markup.

/** Build an element; strings become text nodes, so server text can never become markup. */
export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value === null || value === undefined || value === false) continue;
    if (name === "class") node.className = value;
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
