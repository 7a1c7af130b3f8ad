// The conversation shown: opening one (resuming its generations), creating it, sending to it.
import { api, hasSessionEnded } from "./api.js";
import {
  clearComposer, draftSnapshot, restoreDraft, restoreSnapshot, saveDraft, takeRequest,
  whenModelsKnown,
} from "./composer.js";
import { countImages, el } from "./dom.js";
import { gettext } from "./i18n.js";
import { announce, current, describeError, root, showBanner, ui, urls } from "./page.js";
import {
  addConversation, closeSidebar, forgetConversation, highlightConversation, refreshQuota,
} from "./sidebar.js";
import {
  clearThread, mountTurn, scrollToEnd, showHistory, showPending, showSubmitError, stopWatching, watch,
} from "./thread.js";
import { activeTemplate, showTemplateError, takeTemplateRequest } from "./templates.js";

let creating = null; // the in-flight "create conversation" call, so two sends make one

const uuid = () => (crypto.randomUUID ? crypto.randomUUID()
  : `${Date.now().toString(36)}-${Math.random().toString(36).slice(2)}`);

export async function openConversation(id, { push = false, initial = false } = {}) {
  stopWatching();
  // What was typed stays with the conversation it was typed in (not on the first load: the
  // composer is still empty then, and would wipe the draft it is about to show).
  if (current.conversationId !== id || ui.prompt.value) saveDraft();
  current.conversationId = id;
  restoreDraft(id, { initial });
  if (push) history.pushState({ id }, "", id ? `${urls.chat}/${encodeURIComponent(id)}` : urls.chat);
  highlightConversation();
  clearThread();
  ui.title.textContent = gettext("New chat");
  closeSidebar();
  if (!id) { ui.prompt.focus(); return; }
  let conversation;
  try {
    conversation = await api("GET", `/api/v1/conversations/${encodeURIComponent(id)}`);
  } catch (error) {
    if (error.status === 404) showBanner(gettext("This conversation does not exist or is not yours."), " ",
      el("a", { href: urls.chat }, gettext("Start a new one")), ".");
    else if (error.status !== 401) showBanner(gettext("Could not load this conversation."), " ", describeError(error));
    return;
  }
  if (current.conversationId !== id) return; // another thread was opened meanwhile
  ui.title.textContent = conversation.title || gettext("Untitled");
  showHistory(conversation.messages || []);
}

export async function send() {
  if (hasSessionEnded()) return;
  // Sent as the page still loads: the request needs the models, so it waits for them.
  await whenModelsKnown();
  if (root.dataset.canGenerate !== "true") {
    // Without a plan or a pack nothing is sent and no conversation is made: the composer
    // shows the "choose a plan" card and keeps what was typed.
    await refreshQuota();
    if (root.dataset.canGenerate !== "true") { saveDraft(); return; }
  }
  const template = activeTemplate();
  const request = template ? takeTemplateRequest() : takeRequest();
  if (!request) return;
  const { body, previews } = request;
  // What the composer held: it comes back if the send does not go through.
  const snapshot = draftSnapshot();
  ui.banner.hidden = true;

  const view = mountTurn({
    prompt: request.label || body.prompt,
    mode: template ? (previews.length ? "image_to_image" : "text_to_image") : body.mode,
    resolution: body.resolution || ui.resolution.value,
    provider: body.provider, model: body.model || template?.model,
    batchSize: body.batch_size, strength: body.strength ?? null,
    inputs: previews,
    startedAt: Date.now(),
  });
  showPending(view, null);
  announce(gettext("Sending. %(images)s requested.", { images: countImages(body.batch_size) }));
  clearComposer();
  scrollToEnd();
  await submit(view, body, uuid(), snapshot);
}

/** Send a turn's prompt and controls again (`POST /generations/{id}/retry`), as a new turn.
 * `idempotencyKey`: the key of a click whose answer was lost, sent again with its retry. */
export async function regenerate(source, idempotencyKey = uuid()) {
  if (hasSessionEnded() || !source.generationId) return;
  ui.banner.hidden = true;
  const view = mountTurn({
    prompt: source.prompt, mode: source.mode, resolution: source.resolution,
    provider: source.provider, model: source.model, batchSize: source.batchSize, strength: source.strength ?? null, inputs: source.inputs,
    startedAt: Date.now(),
  });
  showPending(view, null);
  announce(gettext("Regenerating. %(images)s requested.", { images: countImages(source.batchSize) }));
  scrollToEnd();
  try {
    const generation = await api("POST",
      `/api/v1/generations/${encodeURIComponent(source.generationId)}/retry`, undefined,
      { headers: { "Idempotency-Key": idempotencyKey } });
    view.node.dataset.generationId = generation.id;
    view.generationId = generation.id;
    view.lastStatus = generation;
    watch(view, generation.id);
    refreshQuota();
  } catch (error) {
    sendFailed(view, error, idempotencyKey, (key) => {
      view.node.remove();
      regenerate(source, key);
    });
  }
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

async function submit(view, body, idempotencyKey, snapshot = null) {
  view.startedAt = Date.now();
  showPending(view, null);
  const fresh = !view.conversationId && !current.conversationId;
  try {
    // A retry goes to the conversation the message was first sent in.
    view.conversationId ||= await ensureConversation((view.prompt || "").slice(0, 80));
    const path = `/api/v1/conversations/${encodeURIComponent(view.conversationId)}/generations`;
    const generation = await api("POST", path, body, { headers: { "Idempotency-Key": idempotencyKey } });
    view.node.dataset.generationId = generation.id;
    view.generationId = generation.id;
    view.lastStatus = generation;
    watch(view, generation.id);
    refreshQuota(); // the hold lowers what is left as soon as the job is accepted
  } catch (error) {
    if (snapshot && (error.status === 401 || error.code === "quota_exhausted")) {
      // Nothing was sent: the session ended (the banner offers to log in and come back
      // here) or the units ran out (Generate gives way to Renew). What was typed comes back.
      view.node.remove();
      restoreSnapshot(snapshot, view.conversationId || current.conversationId);
      if (error.code === "quota_exhausted") {
        // Used up: the sidebar's notice and the Renew button say so, once. Not enough for
        // this batch: the server's own words, under the composer.
        refreshQuota().then(() => { if (ui.quotaUsedUp.hidden) ui.hint.textContent = error.message; });
      }
      return;
    }
    if (body.template && error.code === "validation_error") {
      // A template's field the server refused: marked on the form, which still holds it.
      view.node.remove();
      showTemplateError(error);
      return;
    }
    if (error.code === "no_active_subscription") {
      // The plan ended under us: nothing was sent. Give the prompt back, drop the empty
      // conversation this send made, and show the way to a plan.
      view.node.remove();
      if (fresh && view.conversationId) {
        api("DELETE", `/api/v1/conversations/${encodeURIComponent(view.conversationId)}`).catch(() => {});
        forgetConversation(view.conversationId);
        current.conversationId = null;
        history.replaceState({ id: null }, "", urls.chat);
      }
      if (snapshot) restoreSnapshot(snapshot);
      else { ui.prompt.value = body.prompt || ""; saveDraft(); }
      refreshQuota();
      return;
    }
    sendFailed(view, error, idempotencyKey, (key) => submit(view, body, key, snapshot));
  }
}

/** Codes a second try cannot change: the turn shows the error without a retry button. */
const FINAL_CODES = [
  "no_active_subscription", "quota_exhausted", "plan_excludes_model", "not_authenticated",
];

/** A send or regenerate that failed: the error on its turn, and `again(key)` behind its retry
 * button. A lost connection may have delivered it: the same key then returns the same job. */
function sendFailed(view, error, idempotencyKey, again) {
  const key = error.status === 0 ? idempotencyKey : uuid();
  showSubmitError(view, error, FINAL_CODES.includes(error.code) ? null : () => again(key));
  if (error.status === 402 || error.code === "plan_excludes_model") refreshQuota();
}
