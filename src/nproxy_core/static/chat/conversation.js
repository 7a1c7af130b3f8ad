// The conversation shown: opening one (resuming its generations), creating it, sending to it.
import { api, hasSessionEnded } from "./api.js";
import { clearComposer, takeRequest } from "./composer.js";
import { el, plural } from "./dom.js";
import { announce, current, describeError, showBanner, ui, urls } from "./page.js";
import { addConversation, closeSidebar, highlightConversation, refreshQuota } from "./sidebar.js";
import {
  clearThread, mountTurn, scrollToEnd, showHistory, showPending, showSubmitError, stopWatching, watch,
} from "./thread.js";

let creating = null; // the in-flight "create conversation" call, so two sends make one

const uuid = () => (crypto.randomUUID ? crypto.randomUUID()
  : `${Date.now().toString(36)}-${Math.random().toString(36).slice(2)}`);

export async function openConversation(id, { push = false } = {}) {
  stopWatching();
  current.conversationId = id;
  if (push) history.pushState({ id }, "", id ? `${urls.chat}/${encodeURIComponent(id)}` : urls.chat);
  highlightConversation();
  clearThread();
  ui.title.textContent = "New chat";
  closeSidebar();
  if (!id) { ui.prompt.focus(); return; }
  let conversation;
  try {
    conversation = await api("GET", `/api/v1/conversations/${encodeURIComponent(id)}`);
  } catch (error) {
    if (error.status === 404) showBanner("This conversation does not exist or is not yours. ",
      el("a", { href: urls.chat }, "Start a new one"), ".");
    else if (error.status !== 401) showBanner("Could not load this conversation. ", describeError(error));
    return;
  }
  if (current.conversationId !== id) return; // another thread was opened meanwhile
  ui.title.textContent = conversation.title || "Untitled";
  showHistory(conversation.messages || []);
}

export async function send() {
  if (hasSessionEnded()) return;
  const request = takeRequest();
  if (!request) return;
  const { body, previews } = request;
  ui.banner.hidden = true;

  const view = mountTurn({
    prompt: body.prompt, mode: body.mode, resolution: body.resolution,
    batchSize: body.batch_size, strength: body.strength ?? null,
    inputs: previews,
    startedAt: Date.now(),
  });
  showPending(view, null);
  announce(`Sending. ${plural(body.batch_size, "image")} requested.`);
  clearComposer();
  scrollToEnd();
  await submit(view, body, uuid());
}

/** The current conversation's id, creating it (once) on the first send of a new chat. */
async function ensureConversation(title) {
  if (current.conversationId) return current.conversationId;
  creating ||= api("POST", "/api/v1/conversations", { title }).then((created) => {
    const id = String(created.id);
    current.conversationId = id;
    history.pushState({ id }, "", `${urls.chat}/${encodeURIComponent(id)}`);
    ui.title.textContent = title;
    addConversation({ id, title });
    return id;
  }).finally(() => { creating = null; });
  return creating;
}

async function submit(view, body, idempotencyKey) {
  view.startedAt = Date.now();
  showPending(view, null);
  try {
    // A retry goes to the conversation the message was first sent in.
    view.conversationId ||= await ensureConversation(body.prompt.slice(0, 80));
    const path = `/api/v1/conversations/${encodeURIComponent(view.conversationId)}/generations`;
    const generation = await api("POST", path, body, { headers: { "Idempotency-Key": idempotencyKey } });
    view.node.dataset.generationId = generation.id;
    view.lastStatus = generation;
    watch(view, generation.id);
    refreshQuota(); // the hold lowers what is left as soon as the job is accepted
  } catch (error) {
    // A lost connection may have delivered the submit: the same key returns the same job.
    const key = error.status === 0 ? idempotencyKey : uuid();
    const final = ["no_active_subscription", "quota_exhausted", "not_authenticated"];
    const retryable = !final.includes(error.code);
    showSubmitError(view, error, retryable ? () => submit(view, body, key) : null);
    if (error.status === 402) refreshQuota();
  }
}
