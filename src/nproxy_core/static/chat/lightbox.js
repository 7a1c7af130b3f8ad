// The lightbox: one image enlarged, browsing a list of images with ←/→ (a conversation's, or
// the library's), with what made it (prompt, size, mode, date) and what to do with it next.
// Shared by the chat and the library: it needs only templates/chat/_lightbox.html on the page.
import { formatDate, pretty } from "./dom.js";

const $ = (id) => document.getElementById(id);
const box = {
  dialog: $("lightbox"), image: $("lightbox-image"), prompt: $("lightbox-prompt"),
  meta: $("lightbox-meta"), download: $("lightbox-download"), use: $("lightbox-use"),
  regenerate: $("lightbox-regenerate"), open: $("lightbox-open"), close: $("lightbox-close"),
  prev: $("lightbox-prev"), next: $("lightbox-next"), position: $("lightbox-position"),
};

const shown = { items: () => [], index: 0, actions: {} };

const MODES = { text_to_image: "Text → image", image_to_image: "Image → image" };

function render() {
  const items = shown.items();
  const item = items[shown.index];
  if (!item) { box.dialog.close(); return; }
  box.image.src = item.url;
  box.image.alt = `Image for “${item.prompt.slice(0, 120)}”`;
  box.prompt.textContent = item.prompt;
  box.meta.textContent = [pretty(item.resolution || ""), MODES[item.mode] || "",
    item.createdAt ? formatDate(item.createdAt) : ""].filter(Boolean).join(" · ");
  box.download.href = item.url;
  box.download.download = `nproxy-${item.generationId || "image"}-${item.id}`;
  box.use.hidden = !shown.actions.use;
  box.regenerate.hidden = !shown.actions.regenerate;
  box.open.hidden = !shown.actions.openUrl;
  if (shown.actions.openUrl) box.open.href = shown.actions.openUrl(item);
  box.prev.disabled = shown.index <= 0;
  // The library may still load more: "next" stays possible at its end while it can.
  const more = Boolean(shown.actions.hasMore?.());
  box.next.disabled = shown.index >= items.length - 1 && !more;
  box.position.textContent = `${shown.index + 1} of ${items.length}${more ? "+" : ""}`;
}

async function step(delta) {
  const items = shown.items();
  const wanted = shown.index + delta;
  if (wanted >= items.length && shown.actions.hasMore?.()) await shown.actions.more();
  if (wanted < 0 || wanted >= shown.items().length) return;
  shown.index = wanted;
  render();
}

/**
 * Show `items()[index]`. `items` is a function, so a list that grows while the lightbox is open
 * (the library scrolling on) is seen whole. `actions`: `use(item)`, `regenerate(item)`,
 * `openUrl(item)` (a link to the item's conversation), and `more()` with `hasMore()` (load
 * further items at the end); each left out hides its button.
 */
export function openLightbox(items, index, actions = {}) {
  shown.items = items;
  shown.index = index;
  shown.actions = actions;
  render();
  if (!box.dialog.open) box.dialog.showModal();
  box.close.focus();
}

export function wireLightbox() {
  box.close.addEventListener("click", () => box.dialog.close());
  box.prev.addEventListener("click", () => step(-1));
  box.next.addEventListener("click", () => step(1));
  box.use.addEventListener("click", () => {
    const item = shown.items()[shown.index];
    box.dialog.close();
    shown.actions.use?.(item);
  });
  box.regenerate.addEventListener("click", () => {
    const item = shown.items()[shown.index];
    box.dialog.close();
    shown.actions.regenerate?.(item);
  });
  box.dialog.addEventListener("keydown", (event) => {
    if (event.key === "ArrowLeft") { event.preventDefault(); step(-1); }
    if (event.key === "ArrowRight") { event.preventDefault(); step(1); }
  });
  box.dialog.addEventListener("click", (event) => {
    if (event.target === box.dialog) box.dialog.close(); // a click on the backdrop
  });
}
