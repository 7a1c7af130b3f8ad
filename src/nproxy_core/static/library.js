// The library page: every image of the person, newest first, a page at a time as they scroll
// (GET /api/v1/images, keyset cursor), as thumbnails; searched by prompt and filtered to
// favourites; each tile with its quick tools (favourite, vary, share, delete) and opening in
// the lightbox with all of them and a way back to the conversation it was made in.
import { api, whenSessionEnds } from "./chat/api.js";
import { el, icon } from "./chat/dom.js";
import { gettext } from "./chat/i18n.js";
import { confirmDeleteImage, openLightbox, openShare, toggleFavorite, wireLightbox } from "./chat/lightbox.js";

const $ = (id) => document.getElementById(id);
const root = $("library");
const grid = $("library-grid");
const status = $("library-status");
const search = $("library-q");
const favorites = $("library-favorites");
const chatUrl = root.dataset.chatUrl;

const state = { images: [], next: undefined, loading: null, failed: false, query: "", favorite: false, generation: 0 };

const hasMore = () => state.next !== null && !state.failed;
const filtered = () => Boolean(state.query || state.favorite);

function showFavorite(button, on) {
  button.setAttribute("aria-pressed", on ? "true" : "false");
  button.querySelector(".star").textContent = on ? "★" : "☆";
}

function toolButton(label, glyph, onclick, extra = {}) {
  return el("button", { type: "button", class: "tile-action", "aria-label": label, title: label, onclick, ...extra },
    typeof glyph === "string" ? el("span", { "aria-hidden": "true" }, glyph) : glyph);
}

/** Tiles load their thumbnail only once they are near the screen: a cold library loads about a
 * screenful (the browser's own lazy loading fetches more than a thousand pixels ahead). */
const nearby = new IntersectionObserver((entries) => {
  for (const entry of entries) {
    if (!entry.isIntersecting) continue;
    entry.target.src = entry.target.dataset.src;
    nearby.unobserve(entry.target);
  }
}, { rootMargin: "100px 0px" });

function tile(image) {
  const short = image.prompt.slice(0, 80);
  const open = el("button", { type: "button", class: "tile-open", "aria-label": gettext("Enlarge: %(prompt)s", { prompt: short }),
    onclick: () => show(state.images.indexOf(image)) }, el("img", { "data-src": image.thumb_url || image.url,
    alt: gettext("Image for “%(prompt)s”", { prompt: short }), decoding: "async", width: image.width, height: image.height }));
  nearby.observe(open.firstChild);
  const star = toolButton(gettext("Favourite: %(prompt)s", { prompt: short }), image.favorite ? "★" : "☆", async () => {
    try {
      const on = await toggleFavorite(image);
      star.setAttribute("aria-pressed", on ? "true" : "false");
      star.firstChild.textContent = on ? "★" : "☆";
      if (state.favorite && !on) removeTile(image);
    } catch (error) {
      status.textContent = error.message;
    }
  }, { "aria-pressed": image.favorite ? "true" : "false", "data-tool": "favourite" });
  const vary = toolButton(gettext("Vary: %(prompt)s", { prompt: short }), "↻", async () => {
    try {
      status.textContent = gettext("Starting a variation…");
      const answer = await api("POST", `/api/v1/images/${encodeURIComponent(image.id)}/vary`);
      location.href = `${chatUrl}/${encodeURIComponent(answer.conversation_id)}`;
    } catch (error) {
      status.textContent = error.message;
    }
  });
  const shareButton = toolButton(gettext("Share: %(prompt)s", { prompt: short }), "⤴", () => openShare(image));
  const remove = toolButton(gettext("Delete: %(prompt)s", { prompt: short }), icon("trash"), () => confirmDeleteImage(image, removeTile));
  const item = el("li", { class: "tile library-tile" }, open,
    el("div", { class: "tile-actions" }, star, vary, shareButton, remove));
  image.tile = item;
  return item;
}

function removeTile(image) {
  const at = state.images.indexOf(image);
  if (at >= 0) state.images.splice(at, 1);
  image.tile?.remove();
  status.textContent = gettext("Image deleted.");
  showEmpty();
}

function showEmpty() {
  const none = state.images.length === 0 && !hasMore();
  $("library-empty").hidden = !(none && !filtered());
  $("library-none").hidden = !(none && filtered());
}

function query() {
  const params = new URLSearchParams();
  if (state.next) params.set("before", state.next);
  if (state.query) params.set("q", state.query);
  if (state.favorite) params.set("favorite", "true");
  const text = params.toString();
  return text ? `?${text}` : "";
}

/** Load the next page (once at a time); resolves when it is on the page. */
function loadMore() {
  if (!hasMore()) return Promise.resolve();
  const generation = state.generation;
  state.loading ||= (async () => {
    status.textContent = gettext("Loading more images…");
    try {
      const page = await api("GET", `/api/v1/images${query()}`);
      if (generation !== state.generation) return; // the search changed meanwhile
      const start = state.images.length;
      state.images.push(...page.images);
      state.next = page.next;
      grid.append(...page.images.map((image) => tile(image)));
      // "The end" is news only after scrolling through more than one page.
      status.textContent = !state.next && start > 0 ? gettext("That is everything.") : "";
      showEmpty();
    } catch (error) {
      if (generation !== state.generation) return;
      state.failed = true;
      status.replaceChildren(`${gettext("Could not load your images: %(reason)s", { reason: error.message })} `,
        el("button", { type: "button", class: "link", onclick: () => { state.failed = false; loadMore(); } },
          gettext("Try again")));
    } finally {
      if (generation === state.generation) state.loading = null;
    }
    // A tall screen may still show the end of the grid: the observer will not fire again.
    if (hasMore() && $("library-more").getBoundingClientRect().top < innerHeight + 600) {
      setTimeout(loadMore, 0);
    }
  })();
  return state.loading;
}

/** Start again from the newest image with the current search and filter. */
function restart() {
  state.generation += 1;
  state.images = [];
  state.next = undefined;
  state.failed = false;
  state.loading = null;
  grid.replaceChildren();
  $("library-empty").hidden = true;
  $("library-none").hidden = true;
  const params = new URLSearchParams();
  if (state.query) params.set("q", state.query);
  if (state.favorite) params.set("favorite", "true");
  history.replaceState(null, "", `${location.pathname}${params.size ? `?${params}` : ""}`);
  return loadMore();
}

/** Start a new chat with the image as its input: the new chat's draft, then the chat. */
function useInNewChat(item) {
  try {
    localStorage.setItem("nproxy.chat.draft.new", JSON.stringify({
      prompt: "", mode: "image_to_image",
      inputs: [{ imageId: item.id, preview: item.thumb_url || item.url, name: "generated image" }],
    }));
  } catch { /* private mode: the chat opens without it */ }
  location.href = chatUrl;
}

function show(index) {
  openLightbox(() => state.images.map((image) => Object.assign(image, {
    createdAt: image.created_at, generationId: image.generation_id,
  })), index, {
    openUrl: (item) => `${chatUrl}/${encodeURIComponent(item.conversation_id)}`,
    use: useInNewChat,
    more: loadMore,
    hasMore,
    deleted: removeTile,
    changed: (item) => {
      const star = item.tile?.querySelector("[data-tool=favourite]");
      if (star) {
        star.setAttribute("aria-pressed", item.favorite ? "true" : "false");
        star.firstChild.textContent = item.favorite ? "★" : "☆";
      }
    },
  });
}

function wireFilters() {
  const params = new URLSearchParams(location.search);
  state.query = (params.get("q") || "").trim();
  state.favorite = params.get("favorite") === "true";
  search.value = state.query;
  showFavorite(favorites, state.favorite);
  let timer = null;
  search.addEventListener("input", () => {
    clearTimeout(timer);
    timer = setTimeout(() => {
      const text = search.value.trim();
      if (text === state.query) return;
      state.query = text;
      restart();
    }, 300);
  });
  $("library-filters").addEventListener("submit", (event) => {
    event.preventDefault();
    clearTimeout(timer);
    state.query = search.value.trim();
    restart();
  });
  favorites.addEventListener("click", () => {
    state.favorite = !state.favorite;
    showFavorite(favorites, state.favorite);
    restart();
  });
  $("library-clear").addEventListener("click", () => {
    state.query = "";
    state.favorite = false;
    search.value = "";
    showFavorite(favorites, false);
    restart();
  });
}

whenSessionEnds(() => { location.href = `/login?next=${encodeURIComponent(location.pathname)}`; });
wireLightbox();
wireFilters();
// Infinite scroll: the next page loads as the end of the grid comes near.
new IntersectionObserver((entries) => {
  if (entries.some((entry) => entry.isIntersecting)) loadMore();
}, { rootMargin: "600px 0px" }).observe($("library-more"));
loadMore();
