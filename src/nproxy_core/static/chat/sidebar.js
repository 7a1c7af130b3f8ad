// The sidebar: the list of conversations, the quota meter, and the drawer it becomes on a phone.
import { api } from "./api.js";
import { el } from "./dom.js";
import { current, root, ui, urls } from "./page.js";

let conversations = [];

export async function loadConversations() {
  try {
    const data = await api("GET", "/api/v1/conversations");
    conversations = Array.isArray(data) ? data : data?.conversations || [];
  } catch { return; }
  renderConversations();
}

/** Put a conversation just created at the top of the list. */
export function addConversation(conversation) {
  conversations.unshift(conversation);
  renderConversations();
}

/** Plain links: a click on one is the wiring's business (it opens the thread in place). */
function renderConversations() {
  ui.list.replaceChildren(...conversations.map((c) =>
    el("li", {}, el("a", {
      href: `${urls.chat}/${encodeURIComponent(c.id)}`, "data-id": c.id, title: c.title || "Untitled",
    }, c.title || "Untitled"))));
  ui.listEmpty.hidden = conversations.length > 0;
  highlightConversation();
}

/** Mark the conversation the page shows. */
export function highlightConversation() {
  for (const link of ui.list.querySelectorAll("a")) {
    if (link.dataset.id === String(current.conversationId)) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
}

export function openSidebar() {
  root.classList.add("sidebar-open");
  ui.scrim.hidden = false;
  ui.toggle.setAttribute("aria-expanded", "true");
  ui.newChat.focus();
}

export function closeSidebar() {
  if (!root.classList.contains("sidebar-open")) return;
  root.classList.remove("sidebar-open");
  ui.scrim.hidden = true;
  ui.toggle.setAttribute("aria-expanded", "false");
}

export function wireDrawer() {
  ui.toggle.addEventListener("click", () => {
    if (root.classList.contains("sidebar-open")) closeSidebar();
    else openSidebar();
  });
  ui.scrim.addEventListener("click", closeSidebar);
  document.addEventListener("keydown", (event) => { if (event.key === "Escape") closeSidebar(); });
}

export async function refreshQuota() {
  let me;
  try { me = await api("GET", "/api/v1/me"); } catch { return; }
  const bucket = Number(me?.quota?.bucket ?? 0);
  const status = me?.subscription?.status || "none";
  ui.quotaMeter.setAttribute("aria-valuenow", String(bucket));
  ui.quotaMeter.setAttribute("aria-valuetext", `About ${bucket}% left`);
  ui.quotaMeter.dataset.level = bucket <= 20 ? "low" : bucket <= 40 ? "mid" : "high";
  ui.quotaMeter.firstElementChild.style.width = `${bucket}%`;
  // Lay the first level out before turning the transition on, so it is not animated.
  void ui.quotaMeter.offsetWidth;
  ui.quotaMeter.parentElement.dataset.loaded = "";
  ui.quotaText.textContent = status === "active" ? `About ${bucket}% left` : "No plan";
  root.dataset.quotaBucket = String(bucket);
  root.dataset.subscription = status;
  if (status === "active") {
    const end = me.subscription.current_period_end;
    ui.quotaNote.replaceChildren(
      end ? `Plan active until ${new Date(end).toLocaleDateString()}` : "Plan active");
    if (bucket === 0) ui.quotaNote.append(". ", el("a", { href: urls.pricing }, "Renew"));
  } else {
    ui.quotaNote.replaceChildren(status === "expired" ? "Your plan has expired. " : "No active plan. ",
      el("a", { href: urls.pricing }, status === "expired" ? "Renew" : "Buy a plan"));
  }
}
