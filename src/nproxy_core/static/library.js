// The library page: every image of the person, newest first, a page at a time as they scroll
// (GET /api/v1/images, keyset cursor), each opening in the lightbox with a way back to the
// conversation it was made in.
import { api, whenSessionEnds } from "./chat/api.js";
import { el } from "./chat/dom.js";
import { openLightbox, wireLightbox } from "./chat/lightbox.js";

const $ = (id) => document.getElementById(id);
const root = $("library");
const grid = $("library-grid");
const status = $("library-status");
const chatUrl = root.dataset.chatUrl;

const state = { images: [], next: undefined, loading: null, failed: false };

const hasMore = () => state.next !== null && !state.failed;

function tile(image, index) {
  const alt = `Image for “${image.prompt.slice(0, 80)}”`;
  const button = el("button", { type: "button", class: "tile-open", "aria-label": `Enlarge: ${image.prompt.slice(0, 80)}`,
    onclick: () => show(index) }, el("img", { src: image.url, alt, loading: "lazy",
    width: image.width, height: image.height }));
  return el("li", { class: "tile library-tile" }, button);
}

/** Load the next page (once at a time); resolves when it is on the page. */
function loadMore() {
  if (!hasMore()) return Promise.resolve();
  state.loading ||= (async () => {
    status.textContent = "Loading more images…";
    const query = state.next ? `?before=${encodeURIComponent(state.next)}` : "";
    try {
      const page = await api("GET", `/api/v1/images${query}`);
      const start = state.images.length;
      state.images.push(...page.images);
      state.next = page.next;
      grid.append(...page.images.map((image, i) => tile(image, start + i)));
      // "The end" is news only after scrolling through more than one page.
      status.textContent = !state.next && start > 0 ? "That is everything." : "";
      $("library-empty").hidden = state.images.length > 0;
    } catch (error) {
      state.failed = true;
      status.replaceChildren(`Could not load your images: ${error.message} `,
        el("button", { type: "button", class: "link", onclick: () => { state.failed = false; loadMore(); } },
          "Try again"));
    } finally {
      state.loading = null;
    }
    // A tall screen may still show the end of the grid: the observer will not fire again.
    if (hasMore() && $("library-more").getBoundingClientRect().top < innerHeight + 600) {
      setTimeout(loadMore, 0);
    }
  })();
  return state.loading;
}

/** Start a new chat with the image as its input: the new chat's draft, then the chat. */
function useInNewChat(item) {
  try {
    localStorage.setItem("nproxy.chat.draft.new", JSON.stringify({
      prompt: "", mode: "image_to_image",
      inputs: [{ imageId: item.id, preview: item.url, name: "generated image" }],
    }));
  } catch { /* private mode: the chat opens without it */ }
  location.href = chatUrl;
}

function show(index) {
  openLightbox(() => state.images.map((image) => ({
    ...image, createdAt: image.created_at, generationId: image.generation_id,
  })), index, {
    openUrl: (item) => `${chatUrl}/${encodeURIComponent(item.conversation_id)}`,
    use: useInNewChat,
    more: loadMore,
    hasMore,
  });
}

whenSessionEnds(() => { location.href = `/login?next=${encodeURIComponent(location.pathname)}`; });
wireLightbox();
// Infinite scroll: the next page loads as the end of the grid comes near.
new IntersectionObserver((entries) => {
  if (entries.some((entry) => entry.isIntersecting)) loadMore();
}, { rootMargin: "600px 0px" }).observe($("library-more"));
loadMore();
