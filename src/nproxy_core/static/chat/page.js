// The chat page of templates/chat/chat.html: its elements, addresses, banner and live region.
import { FALLBACK_MESSAGE, tooLargeText } from "./api.js";
import { el } from "./dom.js";
import { gettext } from "./i18n.js";

export const $ = (id) => document.getElementById(id);
export const root = $("chat");

/** The server's upload limits (nproxy.uploads.max_bytes), as the page was given them. */
export const uploadLimits = {
  maxBytes: Number(root.dataset.uploadMaxBytes) || 0,
  types: new Set((root.dataset.uploadTypes || "image/png,image/jpeg,image/webp").split(",")),
};

/** Why the server would refuse `file` as an upload, or "" (checked before it is sent). */
export function uploadProblem(file) {
  if (!uploadLimits.types.has(file.type)) return gettext("Only PNG, JPEG or WebP images.");
  if (uploadLimits.maxBytes && file.size > uploadLimits.maxBytes) return tooLargeText(file.size, uploadLimits.maxBytes);
  return "";
}

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
  send: $("send"), renew: $("renew"), cost: $("cost-line"), hint: $("composer-hint"),
  quotaMeter: $("quota-meter"), quotaText: $("quota-text"), quotaNote: $("quota-note"),
  packs: $("quota-packs"),
  shape: $("resolution-shape"), noPlan: $("no-plan"), noPlanTitle: $("no-plan-title"),
  quotaUsedUp: $("quota-used-up"),
  confirmDelete: $("confirm-delete"), confirmDeleteTitle: $("confirm-delete-title"),
  confirmDeleteCancel: $("confirm-delete-cancel"),
};

/** Which conversation the page shows: null for a new chat, until its first send creates one. */
export const current = { conversationId: root.dataset.conversationId || null };

export function showBanner(...content) {
  ui.banner.replaceChildren(...content.flat());
  ui.banner.hidden = false;
}

export const announce = (text) => { ui.live.textContent = text; };

/**
 * An API or generation error as a person reads it: the server's own message, which is the one
 * copy of the wording, plus a link to the way out where there is one.
 */
export function describeError(error) {
  const message = error?.message || FALLBACK_MESSAGE;
  const pricing = (text) => el("a", { href: urls.pricing }, text);
  switch (error?.code) {
    case "no_active_subscription":
      return [message, " ", pricing(gettext("See plans")), "."];
    case "quota_exhausted":
      // The server's words already say what to do ("renew your plan or buy a credit pack"):
      // the link only leads there, it does not say it again.
      return [message, " ", pricing(gettext("See plans and packs")), "."];
    case "plan_excludes_model":
      return [message, " ", pricing(gettext("See plans and packs")), "."];
    case "not_authenticated":
      return [el("a", { href: urls.login }, message)];
    default:
      return [message];
  }
}
