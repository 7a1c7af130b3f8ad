// The lightbox: one image enlarged, browsing a list of images with ←/→ or a swipe (a
// conversation's, or the library's), with what made it (prompt, size, mode, date) and what to do
// with it next: vary, upscale to a larger size (with its units), favourite, share (a public
// link, revocable), download as PNG/JPEG/WebP, delete. Shared by the chat and the library: it
// needs only templates/chat/_lightbox.html on the page.
import { api } from "./api.js";
import { countUnits, el, formatDate, pretty } from "./dom.js";
import { gettext } from "./i18n.js";

const $ = (id) => document.getElementById(id);
const box = {
  dialog: $("lightbox"), stage: $("lightbox-stage"), image: $("lightbox-image"),
  prompt: $("lightbox-prompt"), meta: $("lightbox-meta"), download: $("lightbox-download"),
  use: $("lightbox-use"), regenerate: $("lightbox-regenerate"), open: $("lightbox-open"),
  close: $("lightbox-close"), prev: $("lightbox-prev"), next: $("lightbox-next"),
  position: $("lightbox-position"), vary: $("lightbox-vary"), upscales: $("lightbox-upscales"),
  favorite: $("lightbox-favorite"), share: $("lightbox-share"), remove: $("lightbox-delete"),
  status: $("lightbox-status"),
  formats: { png: $("lightbox-download-png"), jpeg: $("lightbox-download-jpeg"), webp: $("lightbox-download-webp") },
};
const share = {
  dialog: $("share-dialog"), row: $("share-link-row"), link: $("share-link"), copy: $("share-copy"),
  showPrompt: $("share-show-prompt"), status: $("share-status"), revoke: $("share-revoke"),
  create: $("share-create"), close: $("share-close"),
};
const confirmDelete = {
  dialog: $("image-delete-dialog"), yes: $("image-delete-confirm"), no: $("image-delete-cancel"),
  status: $("image-delete-status"),
};

const shown = { items: () => [], index: 0, actions: {} };
/** What the image tools know of each image (GET /api/v1/images/{id}), by id. */
const details = new Map();

const MODES = { text_to_image: gettext("Text → image"), image_to_image: gettext("Image → image") };
const shareLabel = (shared) => (shared ? gettext("Shared ✓") : gettext("Share"));
const current = () => shown.items()[shown.index];

function say(text) {
  box.status.textContent = text;
}

/** The image's tools (favourite, share link, larger sizes); fetched once per image. */
async function detail(item) {
  if (!details.has(item.id)) {
    details.set(item.id, api("GET", `/api/v1/images/${encodeURIComponent(item.id)}`).catch((error) => {
      details.delete(item.id);
      throw error;
    }));
  }
  return details.get(item.id);
}

function showFavorite(on) {
  box.favorite.setAttribute("aria-pressed", on ? "true" : "false");
  box.favorite.querySelector(".star").textContent = on ? "★" : "☆";
}

function renderTools(item, tools) {
  if (current() !== item) return; // moved on meanwhile
  box.vary.hidden = !tools.can_vary;
  showFavorite(tools.favorite);
  box.share.textContent = shareLabel(tools.share);
  box.upscales.replaceChildren(...tools.upscales.map((size) => el("button", {
    type: "button", class: "button small ghost",
    onclick: () => upscale(item, size),
  }, gettext("Upscale to %(width)s × %(height)s", { width: size.width, height: size.height }),
  size.units == null ? "" : el("span", { class: "units" }, ` · ${countUnits(size.units)}`))));
}

function render() {
  const items = shown.items();
  const item = items[shown.index];
  if (!item) { box.dialog.close(); return; }
  box.image.src = item.url;
  box.image.alt = gettext("Image for “%(prompt)s”", { prompt: item.prompt.slice(0, 120) });
  box.prompt.textContent = item.prompt;
  box.meta.textContent = [pretty(item.resolution || ""), MODES[item.mode] || "",
    item.createdAt ? formatDate(item.createdAt) : ""].filter(Boolean).join(" · ");
  const name = `nproxy-${item.generationId || "image"}-${item.id}`;
  box.download.href = item.url;
  box.download.download = name;
  for (const [format, link] of Object.entries(box.formats)) {
    link.href = `${item.url}?format=${format}`;
    link.download = `${name}.${format === "jpeg" ? "jpg" : format}`;
  }
  box.use.hidden = !shown.actions.use;
  box.regenerate.hidden = !shown.actions.regenerate;
  box.open.hidden = !shown.actions.openUrl;
  if (shown.actions.openUrl) box.open.href = shown.actions.openUrl(item);
  box.prev.disabled = shown.index <= 0;
  // The library may still load more: "next" stays possible at its end while it can.
  const more = Boolean(shown.actions.hasMore?.());
  box.next.disabled = shown.index >= items.length - 1 && !more;
  box.position.textContent = gettext("%(number)s of %(count)s", { number: shown.index + 1, count: `${items.length}${more ? "+" : ""}` });
  say("");
  // Until its tools arrive: what the list already says.
  box.vary.hidden = true;
  box.upscales.replaceChildren();
  showFavorite(Boolean(item.favorite));
  box.share.textContent = shareLabel(item.shared);
  detail(item).then((tools) => renderTools(item, tools), (error) => {
    if (current() === item) say(gettext("Could not load this image's tools: %(reason)s", { reason: error.message }));
  });
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
 * `openUrl(item)` (a link to the item's conversation), `more()` with `hasMore()` (load further
 * items at the end); each left out hides its button. The image tools' outcomes:
 * `submitted(answer, item)` (a vary or upscale was accepted: `{id, status, conversation_id}`;
 * by default the conversation opens), `changed(item, tools)` (favourite or share changed) and
 * `deleted(item)` (by default the page reloads).
 */
export function openLightbox(items, index, actions = {}) {
  shown.items = items;
  shown.index = index;
  shown.actions = actions;
  render();
  if (!box.dialog.open) box.dialog.showModal();
  box.close.focus();
}

// --- the image tools ---------------------------------------------------------------------------

async function busy(button, work, report = say) {
  if (button.disabled) return;
  button.disabled = true;
  try {
    await work();
  } catch (error) {
    report(error.message);
  } finally {
    button.disabled = false;
  }
}

function submitted(answer, item) {
  if (shown.actions.submitted) {
    box.dialog.close();
    shown.actions.submitted(answer, item);
    return;
  }
  location.href = `/chat/${encodeURIComponent(answer.conversation_id)}`;
}

function vary() {
  const item = current();
  return busy(box.vary, async () => {
    say(gettext("Starting a variation…"));
    submitted(await api("POST", `/api/v1/images/${encodeURIComponent(item.id)}/vary`), item);
  });
}

function upscale(item, size) {
  const button = [...box.upscales.querySelectorAll("button")].find((b) => b.textContent.includes(`${size.width} × ${size.height}`));
  return busy(button || box.upscales, async () => {
    say(gettext("Upscaling to %(width)s × %(height)s…", { width: size.width, height: size.height }));
    const answer = await api("POST", `/api/v1/images/${encodeURIComponent(item.id)}/upscale`, { resolution: size.id });
    submitted(answer, item);
  });
}

/** Mark or unmark `item` a favourite; resolves with the new state. Used by library tiles too. */
export async function toggleFavorite(item) {
  const on = !item.favorite;
  const updated = await api("PATCH", `/api/v1/images/${encodeURIComponent(item.id)}`, { favorite: on });
  item.favorite = updated.favorite;
  const known = details.get(item.id);
  if (known) details.set(item.id, known.then((tools) => ({ ...tools, favorite: updated.favorite })));
  return updated.favorite;
}

function favorite() {
  const item = current();
  return busy(box.favorite, async () => {
    showFavorite(await toggleFavorite(item));
    say(item.favorite ? gettext("Added to your favourites.") : gettext("Removed from your favourites."));
    shown.actions.changed?.(item);
  });
}

// --- sharing -------------------------------------------------------------------------------------

let sharing = null; // the item the share dialog is about
const shareSays = (text) => { share.status.textContent = text; };

function showShare(link) {
  share.row.hidden = !link;
  share.link.value = link ? link.url : "";
  share.showPrompt.checked = Boolean(link?.show_prompt);
  share.revoke.hidden = !link;
  share.create.hidden = Boolean(link);
}

function setShared(item, link) {
  item.shared = Boolean(link);
  const known = details.get(item.id);
  if (known) details.set(item.id, known.then((tools) => ({ ...tools, share: link, shared: Boolean(link) })));
  if (current() === item) box.share.textContent = shareLabel(link);
  shown.actions.changed?.(item);
}

/** Open the share dialog of `item` (a link, copy, "show prompt", revoke). Used by tiles too. */
export async function openShare(item) {
  sharing = item;
  share.status.textContent = "";
  showShare(null);
  share.dialog.showModal();
  try {
    showShare((await detail(item)).share);
  } catch (error) {
    share.status.textContent = error.message;
  }
  (share.create.hidden ? share.copy : share.create).focus();
}

async function shareNow() {
  const item = sharing;
  await busy(share.create, async () => {
    const link = await api("POST", `/api/v1/images/${encodeURIComponent(item.id)}/share`,
      { show_prompt: share.showPrompt.checked });
    showShare(link);
    setShared(item, link);
    share.status.textContent = gettext("Link created. Anyone with it can see the image.");
    share.copy.focus();
  }, shareSays);
}

async function changeShowPrompt() {
  const item = sharing;
  if (share.create.hidden === false) return; // not shared yet: the choice goes with "Create link"
  try {
    const link = await api("POST", `/api/v1/images/${encodeURIComponent(item.id)}/share`,
      { show_prompt: share.showPrompt.checked });
    setShared(item, link);
    share.status.textContent = link.show_prompt ? gettext("The page shows the prompt.") : gettext("The page hides the prompt.");
  } catch (error) {
    share.showPrompt.checked = !share.showPrompt.checked;
    share.status.textContent = error.message;
  }
}

async function revoke() {
  const item = sharing;
  await busy(share.revoke, async () => {
    await api("DELETE", `/api/v1/images/${encodeURIComponent(item.id)}/share`);
    showShare(null);
    setShared(item, null);
    share.status.textContent = gettext("Link revoked: it no longer works.");
    share.create.focus();
  }, shareSays);
}

async function copyLink() {
  try {
    await navigator.clipboard.writeText(share.link.value);
    share.status.textContent = gettext("Link copied.");
  } catch {
    // Without clipboard access (an insecure origin, a denied permission): select it to copy.
    share.link.select();
    share.status.textContent = gettext("Press Ctrl+C (⌘C) to copy the selected link.");
  }
}

// --- deleting ------------------------------------------------------------------------------------

let deleting = null;

/** Ask, then delete `item` (its media, its share link); `done(item)` after. Used by tiles too. */
export function confirmDeleteImage(item, done) {
  deleting = { item, done };
  confirmDelete.status.textContent = "";
  confirmDelete.dialog.showModal();
  confirmDelete.no.focus();
}

async function deleteNow() {
  const { item, done } = deleting;
  await busy(confirmDelete.yes, async () => {
    await api("DELETE", `/api/v1/images/${encodeURIComponent(item.id)}`);
    details.delete(item.id);
    confirmDelete.dialog.close();
    done(item);
  }, (text) => { confirmDelete.status.textContent = text; });
}

function deleteCurrent() {
  const item = current();
  confirmDeleteImage(item, (gone) => {
    if (shown.actions.deleted) {
      shown.actions.deleted(gone);
      if (shown.index >= shown.items().length) shown.index = shown.items().length - 1;
      if (shown.items().length) render(); else box.dialog.close();
      say(gettext("Image deleted."));
    } else {
      box.dialog.close();
      location.reload();
    }
  });
}

// --- swipe ---------------------------------------------------------------------------------------

/** A horizontal swipe on the image moves to the next or previous one (touch and pen). */
function wireSwipe() {
  let start = null;
  box.stage.addEventListener("pointerdown", (event) => {
    if (event.pointerType === "mouse" || event.target.closest("button")) return;
    start = { x: event.clientX, y: event.clientY, id: event.pointerId };
  });
  const end = (event) => {
    if (!start || event.pointerId !== start.id) return;
    const dx = event.clientX - start.x;
    const dy = event.clientY - start.y;
    start = null;
    if (Math.abs(dx) >= 40 && Math.abs(dx) > Math.abs(dy) * 1.5) step(dx < 0 ? 1 : -1);
  };
  box.stage.addEventListener("pointerup", end);
  box.stage.addEventListener("pointercancel", () => { start = null; });
}

export function wireLightbox() {
  box.close.addEventListener("click", () => box.dialog.close());
  box.prev.addEventListener("click", () => step(-1));
  box.next.addEventListener("click", () => step(1));
  box.use.addEventListener("click", () => {
    const item = current();
    box.dialog.close();
    shown.actions.use?.(item);
  });
  box.regenerate.addEventListener("click", () => {
    const item = current();
    box.dialog.close();
    shown.actions.regenerate?.(item);
  });
  box.vary.addEventListener("click", vary);
  box.favorite.addEventListener("click", favorite);
  box.share.addEventListener("click", () => openShare(current()));
  box.remove.addEventListener("click", deleteCurrent);
  box.dialog.addEventListener("keydown", (event) => {
    if (event.key === "ArrowLeft") { event.preventDefault(); step(-1); }
    if (event.key === "ArrowRight") { event.preventDefault(); step(1); }
  });
  box.dialog.addEventListener("click", (event) => {
    if (event.target === box.dialog) box.dialog.close(); // a click on the backdrop
  });
  wireSwipe();
  share.create.addEventListener("click", shareNow);
  share.revoke.addEventListener("click", revoke);
  share.copy.addEventListener("click", copyLink);
  share.showPrompt.addEventListener("change", changeShowPrompt);
  share.close.addEventListener("click", () => share.dialog.close());
  confirmDelete.no.addEventListener("click", () => confirmDelete.dialog.close());
  confirmDelete.yes.addEventListener("click", deleteNow);
}
