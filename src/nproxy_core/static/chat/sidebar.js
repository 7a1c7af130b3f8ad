// The sidebar: the list of conversations, the quota meter, and the drawer it becomes on a phone.
import { api } from "./api.js";
import { setQuota } from "./composer.js";
import { countUnits, daysLeft, el, formatDate, formatDay, icon } from "./dom.js";
import { gettext } from "./i18n.js";
import { announce, current, describeError, root, showBanner, ui, urls } from "./page.js";

let conversations = [];
let onDeleted = () => {};

/** What to do once the conversation shown was deleted (the wiring opens a new chat). */
export function whenConversationDeleted(handler) { onDeleted = handler; }

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

/** Take a conversation off the list (deleted elsewhere, or never really started). */
export function forgetConversation(id) {
  conversations = conversations.filter((c) => String(c.id) !== String(id));
  renderConversations();
}

/** Plain links: a click on one is the wiring's business (it opens the thread in place). */
function renderConversations() {
  ui.list.replaceChildren(...conversations.map(conversationRow));
  ui.listEmpty.hidden = conversations.length > 0;
  highlightConversation();
}

function conversationRow(c) {
  const title = c.title || gettext("Untitled");
  return el("li", { class: "conversation", "data-id": c.id },
    el("a", { href: `${urls.chat}/${encodeURIComponent(c.id)}`, "data-id": c.id, title }, title),
    el("button", { type: "button", class: "row-action", "aria-label": gettext("Rename “%(title)s”", { title }),
      title: gettext("Rename"), onclick: (event) => startRename(c, event.currentTarget.closest("li")) }, icon("pencil")),
    el("button", { type: "button", class: "row-action", "aria-label": gettext("Delete “%(title)s”", { title }),
      title: gettext("Delete"), onclick: () => confirmDelete(c) }, icon("trash")));
}

/** Rename in place: Enter or leaving the field saves, Escape cancels. */
function startRename(c, row) {
  const input = el("input", { type: "text", class: "rename-input", value: c.title || "",
    maxlength: 200, "aria-label": gettext("New name of the conversation") });
  let done = false;
  const finish = async (save) => {
    if (done) return;
    done = true;
    const title = input.value.trim();
    if (!save || !title || title === c.title) { renderConversations(); return; }
    try {
      const renamed = await api("PATCH", `/api/v1/conversations/${encodeURIComponent(c.id)}`, { title });
      c.title = renamed.title;
      if (String(current.conversationId) === String(c.id)) ui.title.textContent = renamed.title;
      announce(gettext("Renamed to %(title)s.", { title: renamed.title }));
    } catch (error) {
      showBanner(gettext("Could not rename the conversation."), " ", describeError(error));
    }
    renderConversations();
    ui.list.querySelector(`li[data-id="${CSS.escape(c.id)}"] a`)?.focus();
  };
  input.addEventListener("keydown", (event) => {
    if (event.key === "Enter") { event.preventDefault(); finish(true); }
    if (event.key === "Escape") { event.preventDefault(); event.stopPropagation(); finish(false); }
  });
  input.addEventListener("blur", () => finish(true));
  row.replaceChildren(input);
  input.focus();
  input.select();
}

function confirmDelete(c) {
  const dialog = ui.confirmDelete;
  ui.confirmDeleteTitle.textContent = gettext("Delete “%(title)s”?", { title: c.title || gettext("Untitled") });
  dialog.returnValue = "";
  dialog.onclose = async () => {
    if (dialog.returnValue !== "delete") return;
    try {
      await api("DELETE", `/api/v1/conversations/${encodeURIComponent(c.id)}`);
    } catch (error) {
      if (error.status !== 404) {
        showBanner(gettext("Could not delete the conversation."), " ", describeError(error));
        return;
      }
    }
    conversations = conversations.filter((other) => other.id !== c.id);
    try { localStorage.removeItem(`nproxy.chat.draft.${c.id}`); } catch { /* private mode */ }
    renderConversations();
    announce(gettext("Conversation deleted."));
    if (String(current.conversationId) === String(c.id)) onDeleted();
    else ui.newChat.focus();
  };
  dialog.showModal();
  ui.confirmDeleteCancel.focus();
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

/** "Starter pack: 120 units left, expires 7 Dec 2027": packs are the person's exact purchase. */
function packLine(pack) {
  const values = { pack: pack.label || gettext("Pack"), units: countUnits(pack.units_left) };
  return el("li", {}, pack.expires_at
    ? gettext("%(pack)s: %(units)s left, expires %(day)s", { ...values, day: formatDay(pack.expires_at) })
    : gettext("%(pack)s: %(units)s left", values));
}

/** The figures of /api/v1/me, in the sidebar and the composer; after every generation too. */
export async function refreshQuota() {
  let me;
  try { me = await api("GET", "/api/v1/me"); } catch { return; }
  const bucket = Number(me?.quota?.bucket ?? 0);
  const status = me?.subscription?.status || "none";
  const packs = (me?.packs || []).filter((p) => Number(p.units_left) > 0);
  const canGenerate = status === "active" || packs.length > 0;
  ui.quotaMeter.setAttribute("aria-valuenow", String(bucket));
  ui.quotaMeter.setAttribute("aria-valuetext", gettext("About %(bucket)s%% left", { bucket }));
  ui.quotaMeter.dataset.level = bucket <= 20 ? "low" : bucket <= 40 ? "mid" : "high";
  ui.quotaMeter.firstElementChild.style.width = `${bucket}%`;
  // Lay the first level out before turning the transition on, so it is not animated.
  void ui.quotaMeter.offsetWidth;
  ui.quotaMeter.parentElement.dataset.loaded = "";
  ui.quotaText.textContent = status === "active" ? gettext("About %(bucket)s%% left", { bucket }) : gettext("No plan");
  root.dataset.quotaBucket = String(bucket);
  root.dataset.subscription = status;
  root.dataset.canGenerate = String(canGenerate);
  // Units now: max_units_now (DESIGN 4.12); an older answer's max_batch_now is the same
  // figure when every image costs one unit.
  const quota = me?.quota || {};
  const maxUnitsNow = typeof quota.max_units_now === "number" ? quota.max_units_now
    : typeof quota.max_batch_now === "number" ? quota.max_batch_now : null;
  setQuota({ status, canGenerate, maxUnitsNow });
  ui.quotaUsedUp.hidden = !(status === "active" && bucket === 0 && !packs.length);
  ui.packs.replaceChildren(...packs.map(packLine));
  ui.packs.hidden = !packs.length;
  const plan = me?.subscription?.plan?.name;
  if (status === "active") {
    const end = me.subscription.current_period_end;
    const until = end ? gettext("Until %(end)s (%(left)s)", { end: formatDate(end), left: daysLeft(end) })
      : gettext("Plan active");
    ui.quotaNote.replaceChildren(plan ? gettext("%(plan)s plan · %(until)s", { plan, until }) : until);
    if (bucket === 0) {
      ui.quotaText.textContent = gettext("Used up");
      ui.quotaNote.append(". ", el("a", { href: urls.pricing }, packs.length ? gettext("Renew") : gettext("Renew now")));
    }
  } else {
    const why = status === "expired" ? gettext("Your plan has expired.") : gettext("No active plan.");
    ui.quotaNote.replaceChildren(packs.length ? `${why} ${gettext("Drawing on your packs.")} ` : `${why} `,
      el("a", { href: urls.pricing }, status === "expired" ? gettext("Renew") : gettext("Buy a plan")));
  }
}
