// The chat page of templates/chat/chat.html: its elements, addresses, banner and live region.
import { FALLBACK_MESSAGE } from "./api.js";
import { el } from "./dom.js";

export const $ = (id) => document.getElementById(id);
export const root = $("chat");

export const urls = {
  chat: root.dataset.chatUrl,
  login: root.dataset.loginUrl,
  pricing: root.dataset.pricingUrl,
};

export const ui = {
  sidebar: $("chat-sidebar"), scrim: $("sidebar-scrim"), toggle: $("sidebar-toggle"),
  list: $("conversation-list"), listEmpty: $("conversation-empty"), newChat: $("new-chat"),
  title: $("thread-title"), messages: $("messages"), empty: $("empty-thread"), live: $("live"),
  banner: $("banner"), composer: $("composer"), prompt: $("prompt"),
  model: $("model"), modelControl: $("model-control"),
  resolution: $("resolution"), batch: $("batch-size"), strength: $("strength"),
  strengthValue: $("strength-value"), strengthControl: $("strength-control"),
  attach: $("attach"), fileInput: $("file-input"), inputs: $("input-images"), inputRow: $("input-row"),
  send: $("send"), hint: $("composer-hint"),
  quotaMeter: $("quota-meter"), quotaText: $("quota-text"), quotaNote: $("quota-note"),
  lightbox: $("lightbox"), lightboxImage: $("lightbox-image"),
  lightboxDownload: $("lightbox-download"), lightboxClose: $("lightbox-close"),
};

/** Which conversation the page shows: null for a new chat, until its first send creates one. */
export const current = { conversationId: root.dataset.conversationId || null };

export function showBanner(...content) {
  ui.banner.replaceChildren(...content.flat());
  ui.banner.hidden = false;
}

export const announce = (text) => { ui.live.textContent = text; };

/** A person's words for an error code; 402s link to the pricing page. */
export function describeError(error) {
  const code = error?.code;
  const pricing = (text) => el("a", { href: urls.pricing }, text);
  switch (code) {
    case "no_active_subscription":
      return ["You need an active plan to generate images. ", pricing("See plans"), "."];
    case "quota_exhausted":
      return ["You have used this period's requests. ", pricing("Renew your plan"), " to continue."];
    case "content_policy":
      return ["The model declined this request for content-policy reasons. "
        + "Try rewording it. Nothing was charged."];
    case "invalid_input":
      return [`The model could not use this input${error.message ? `: ${error.message}` : "."}`];
    case "provider_unavailable":
      return ["The image service is busy or unavailable right now. "
        + "Nothing was charged; please try again in a few minutes."];
    case "rate_limited":
      return ["You are sending requests too quickly. Wait a moment and try again."];
    case "not_authenticated":
      return ["Your session has ended. ", el("a", { href: urls.login }, "Log in again"), "."];
    default:
      return [error?.message || FALLBACK_MESSAGE];
  }
}
