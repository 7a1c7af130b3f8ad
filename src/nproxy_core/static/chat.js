// The chat page's entry point: wires the modules of static/chat/ to the page and starts it.
// Plain ES modules loaded as they are, no framework and no build step: the surface is small
// enough that a few modules of helpers are clearer than a library (API: DESIGN section 6).
import { gettext } from "./chat/i18n.js";
import { whenSessionEnds } from "./chat/api.js";
import {
  fillPrompt, loadModels, restoreDraft, useAsInput, wireComposer,
} from "./chat/composer.js";
import { openConversation, regenerate, send } from "./chat/conversation.js";
import { el } from "./chat/dom.js";
import { wireLightbox } from "./chat/lightbox.js";
import { current, showBanner, ui, urls } from "./chat/page.js";
import {
  loadConversations, refreshQuota, whenConversationDeleted, wireDrawer,
} from "./chat/sidebar.js";
import { loadTemplates, wireTemplates } from "./chat/templates.js";
import { setResultActions, startElapsedClock, stopPolling } from "./chat/thread.js";

function showSessionEnded() {
  // Back to this conversation after logging in; what was typed waits there as its draft.
  const next = encodeURIComponent(location.pathname);
  showBanner(gettext("Your session has ended."), " ",
    el("a", { href: `${urls.login}?next=${next}` }, gettext("Log in again")), " ", gettext("to keep going."));
  ui.send.disabled = true;
  stopPolling();
}

/** The conversation id in the address bar, or null on the bare chat page. */
function conversationInAddress() {
  const match = location.pathname.slice(urls.chat.length).match(/^\/([^/]+)/);
  return match ? decodeURIComponent(match[1]) : null;
}

whenSessionEnds(showSessionEnded);
wireComposer(send);
wireTemplates();
wireDrawer();
wireLightbox();
startElapsedClock();
setResultActions({ use: useAsInput, regenerate });
whenConversationDeleted(() => openConversation(null, { push: true }));

ui.newChat.addEventListener("click", () => {
  ui.banner.hidden = true;
  openConversation(null, { push: true });
});
// The sidebar's links are real addresses; a plain click opens the thread in place instead.
ui.list.addEventListener("click", (event) => {
  const link = event.target.closest("a[data-id]");
  if (!link || event.metaKey || event.ctrlKey || event.shiftKey || event.button !== 0) return;
  event.preventDefault();
  ui.banner.hidden = true;
  openConversation(link.dataset.id, { push: true });
});
window.addEventListener("popstate", () => openConversation(conversationInAddress()));

/** A prompt handed over in the address (`/chat?prompt=…`, the landing page's examples). */
function promptInAddress() {
  const params = new URLSearchParams(location.search);
  const prompt = (params.get("prompt") || "").trim().slice(0, 4000);
  if (params.has("prompt")) history.replaceState(history.state, "", location.pathname);
  return prompt;
}

// Start: models, quota and templates first (the composer needs them), then the thread.
const handedOver = promptInAddress();
const addressed = current.conversationId;
Promise.all([loadModels(), refreshQuota(), loadConversations(), loadTemplates()]).then(() => {
  // A send or a click made while these loaded has already chosen the thread: opening the
  // addressed one now would clear the turn just sent (and stop watching it).
  if (current.conversationId !== addressed || ui.messages.querySelector(".turn")) return;
  if (current.conversationId) openConversation(current.conversationId, { initial: true });
  else {
    restoreDraft(null, { initial: true });
    if (handedOver) fillPrompt(handedOver);
    ui.prompt.focus();
  }
});
