// The thread: each prompt with its answer, its progress, and polling a generation until terminal.
import { api } from "./api.js";
import { modelName, presetAspect, presetLabel } from "./composer.js";
import { countImages, el } from "./dom.js";
import { gettext } from "./i18n.js";
import { openLightbox } from "./lightbox.js";
import { announce, describeError, ui } from "./page.js";
import { refreshQuota } from "./sidebar.js";

const TERMINAL = new Set(["succeeded", "failed", "partial"]);

/** What a result offers (set by the page's wiring): `use(image)`, `regenerate(view)`. */
const actions = { use: () => {}, regenerate: () => {} };
export function setResultActions(handlers) { Object.assign(actions, handlers); }

let views = []; // the turns of the thread shown, in order: the lightbox browses their images

/** Every image of the thread, oldest first, with what made it. */
function threadImages() {
  return views.flatMap((view) => (view.images || []).map((image) => ({
    ...image, prompt: view.prompt, resolution: view.resolution, mode: view.mode,
    createdAt: view.createdAt, generationId: view.generationId, view,
  })));
}

function openImage(imageId) {
  const items = threadImages();
  openLightbox(() => items, Math.max(0, items.findIndex((i) => i.id === imageId)), {
    use: (item) => actions.use(item),
    regenerate: (item) => actions.regenerate(item.view),
  });
}

/** Arrow keys move between a turn's images: the images of a turn are one Tab stop. */
function roveImages(event) {
  const keys = { ArrowRight: 1, ArrowDown: 1, ArrowLeft: -1, ArrowUp: -1 };
  if (!(event.key in keys) && event.key !== "Home" && event.key !== "End") return;
  const buttons = [...event.currentTarget.closest(".results").querySelectorAll(".tile-open")];
  const at = buttons.indexOf(event.currentTarget);
  let next = at + (keys[event.key] || 0);
  if (event.key === "Home") next = 0;
  if (event.key === "End") next = buttons.length - 1;
  next = Math.max(0, Math.min(buttons.length - 1, next));
  event.preventDefault();
  buttons.forEach((b, i) => b.setAttribute("tabindex", i === next ? "0" : "-1"));
  buttons[next].focus();
}

async function copyPrompt(view, button) {
  try {
    await navigator.clipboard.writeText(view.prompt);
  } catch {
    // Without clipboard access (an insecure origin, a denied permission), select-and-copy.
    const area = el("textarea", { class: "visually-hidden", "aria-hidden": "true" }, view.prompt);
    document.body.append(area);
    area.select();
    document.execCommand("copy");
    area.remove();
  }
  button.textContent = gettext("Copied");
  announce(gettext("Prompt copied."));
  setTimeout(() => { button.textContent = gettext("Copy prompt"); }, 1600);
}

/** The row under a finished turn: regenerate (or try again) and copy the prompt. */
function turnActions(view, status) {
  const again = status === "succeeded" ? gettext("Regenerate") : gettext("Try again");
  const copy = el("button", { type: "button", class: "chip-button" }, gettext("Copy prompt"));
  copy.addEventListener("click", () => copyPrompt(view, copy));
  return el("div", { class: "turn-actions" },
    view.generationId
      ? el("button", { type: "button", class: "chip-button",
        onclick: () => actions.regenerate(view) },
      el("span", { "aria-hidden": "true" }, "↻ "), again)
      : null,
    copy);
}

const watchers = new Map(); // generation id -> {timer, controller}, so switching threads stops them
let epoch = 0;              // bumped on every thread switch: answers for the old thread are dropped

/** Placeholder tiles take the shape of the requested preset so the layout does not jump. */
function aspect(resolution) {
  const known = presetAspect(resolution);
  if (known) return known;
  const ratio = /(\d+(?:\.\d+)?)\s*[:x]\s*(\d+(?:\.\d+)?)/.exec(resolution || "");
  if (ratio) return `${ratio[1]} / ${ratio[2]}`;
  return { portrait: "3 / 4", landscape: "4 / 3", tall: "9 / 16", wide: "16 / 9" }[resolution] || "1 / 1";
}

/** One prompt and its results. Returns the handles the polling code updates. */
function renderTurn(turn) {
  ui.empty.hidden = true;
  const chips = [
    turn.mode === "image_to_image" ? gettext("Image → image") : gettext("Text → image"),
    modelName(turn.provider, turn.model),
    presetLabel(turn.resolution),
    countImages(turn.batchSize),
  ];
  if (turn.mode === "image_to_image" && turn.strength !== null && turn.strength !== undefined) {
    chips.push(gettext("Strength %(value)s", { value: Number(turn.strength).toFixed(2) }));
  }
  const inputs = turn.inputs.length
    ? el("ul", { class: "turn-inputs", role: "list" },
      turn.inputs.map((src, i) => el("li", {}, el("img", { src, alt: gettext("Input image %(number)s", { number: i + 1 }) }))))
    : null;
  const status = el("p", { class: "turn-status", "aria-hidden": "true" });
  const results = el("div", { class: "results", style: { "--tile-aspect": aspect(turn.resolution) } });
  const node = el("article", { class: "turn", "data-state": "pending" },
    el("div", { class: "bubble" },
      inputs,
      el("p", { class: "prompt-text" }, turn.prompt),
      el("ul", { class: "chips", role: "list" }, chips.filter(Boolean).map((c) => el("li", {}, c)))),
    el("div", { class: "answer" }, status, results));
  ui.messages.append(node);
  const view = { ...turn, node, status, results };
  views.push(view);
  return view;
}

/** Add a turn to the thread; while pending, its elapsed time ticks (see startElapsedClock). */
export function mountTurn(turn) {
  const view = renderTurn(turn);
  view.node.addEventListener("tick", () => showPending(view, view.lastStatus));
  return view;
}

export function showPending(view, generation) {
  view.node.dataset.state = "pending";
  if (view.results.querySelector(".tile.placeholder") === null) {
    view.results.replaceChildren(...Array.from({ length: view.batchSize }, () =>
      el("div", { class: "tile placeholder" }, el("span", { class: "spinner" }))));
  }
  const seconds = Math.max(0, Math.round((Date.now() - view.startedAt) / 1000));
  const label = generation?.status === "running" ? gettext("Generating…") : gettext("Waiting in line…");
  view.status.replaceChildren(el("span", { class: "dot" }), `${label} ${gettext("%(seconds)s s", { seconds })}`);
}

function showResult(view, generation) {
  const images = generation.images || [];
  const follow = view === views.at(-1) && nearEnd();
  view.node.dataset.state = generation.status;
  view.node.dataset.generationId = generation.id;
  view.generationId = generation.id;
  view.images = images;
  view.createdAt = generation.created_at || view.createdAt;
  const count = images.length;
  view.results.replaceChildren(...images.map((image, i) => {
    const alt = gettext("Image %(number)s for “%(prompt)s”", { number: i + 1, prompt: view.prompt.slice(0, 80) });
    const name = `nproxy-${generation.id}-${i + 1}`;
    return el("figure", { class: "tile" },
      el("button", { type: "button", class: "tile-open", tabindex: i === 0 ? "0" : "-1",
        "aria-label": count > 1
          ? gettext("Enlarge image %(number)s of %(count)s (arrow keys for the others)", { number: i + 1, count })
          : gettext("Enlarge the image"),
        onclick: () => openImage(image.id), onkeydown: roveImages },
      // The tile shows the thumbnail; the lightbox and the download use the original.
      el("img", { src: image.thumb_url || image.url, alt, loading: "lazy" })),
      // Pointer shortcuts; the keyboard finds the same actions in the lightbox.
      el("div", { class: "tile-actions" },
        el("button", { type: "button", class: "tile-action", tabindex: "-1", title: gettext("Use as input"),
          "aria-label": gettext("Use image %(number)s as input", { number: i + 1 }), onclick: () => actions.use({ ...image, prompt: view.prompt }) },
        `⇢ ${gettext("Use")}`),
        el("a", { class: "tile-action", href: image.url, download: name, tabindex: "-1",
          "aria-label": gettext("Download image %(number)s", { number: i + 1 }), title: gettext("Download") }, "↓")));
  }));
  const missing = view.batchSize - images.length;
  const finished = Date.parse(generation.finished_at || "") || Date.now();
  const elapsed = Math.max(1, Math.round((finished - view.startedAt) / 1000));
  view.actions?.remove();
  view.words?.remove();
  if (generation.text) {
    // The model's words beside its picture (a template asked for them, e.g. a character sketch).
    view.words = el("p", { class: "model-text" }, generation.text);
    view.node.querySelector(".answer").append(view.words);
  }
  // A fallback model made some (the one asked for was out of service): say which.
  const others = [...new Set(images.map((image) => image.model)
    .filter((model) => model && view.model && model !== view.model))];
  const madeBy = others.length
    ? ` · ${gettext("made by %(others)s, as %(model)s was unavailable", {
      others: others.map((model) => modelName(null, model) || model).join(", "),
      model: modelName(view.provider, view.model) || view.model })}` : "";
  if (generation.status === "succeeded") {
    view.status.replaceChildren(`${countImages(images.length)} · ${gettext("%(seconds)s s", { seconds: elapsed })}${madeBy}`);
    announce(`${gettext("%(images)s ready", { images: countImages(images.length) })}${madeBy}.`);
  } else {
    const reason = describeError(generation.error);
    const prefix = images.length && missing > 0
      ? `${gettext("%(images)s could not be made.", { images: countImages(missing) })} ` : "";
    view.status.replaceChildren(el("span", { class: "turn-error", role: "note" }, prefix, ...reason));
    announce(`${images.length ? gettext("Generation partly failed.") : gettext("Generation failed.")} ${prefix}${
      reason.map((r) => (typeof r === "string" ? r : r.textContent)).join("")}`);
  }
  view.actions = turnActions(view, generation.status);
  view.node.querySelector(".answer").append(view.actions);
  if (follow) scrollToEnd(); // the action row made the thread taller
}

export function showSubmitError(view, error, retry) {
  view.node.dataset.state = "error";
  view.results.replaceChildren();
  view.status.replaceChildren(el("span", { class: "turn-error", role: "note" }, ...describeError(error)),
    ...(retry ? [el("button", { type: "button", class: "link retry", onclick: retry }, gettext("Try again"))] : []));
  announce(gettext("Not sent: %(reason)s", { reason: error.message }));
}

/** Empty the thread for another conversation (its polls are stopped by stopWatching). */
export function clearThread() {
  ui.messages.querySelectorAll(".turn").forEach((n) => n.remove());
  views = [];
  ui.empty.hidden = false;
}

/** A message of GET /api/v1/conversations/{id} in the shape renderTurn wants. */
function turnFromMessage(message) {
  // A message holds its generations; the latest one is the answer shown.
  const generation = (message.generations || []).at(-1) || null;
  return {
    prompt: message.prompt || "",
    mode: message.mode,
    provider: message.provider,
    model: message.model,
    resolution: message.resolution,
    batchSize: Number(message.batch_size || 1),
    strength: message.strength ?? null,
    inputs: (message.inputs || []).map((i) => i.url).filter(Boolean),
    generation,
    generationId: generation?.id,
    createdAt: generation?.created_at || message.created_at,
    startedAt: Date.parse(generation?.created_at || message.created_at || "") || Date.now(),
  };
}

/**
 * Show a conversation's messages, as loaded from the API. Turns sent while they loaded stay
 * after them, and a message such a turn already shows is not shown twice.
 */
export function showHistory(messages) {
  const sent = views.splice(0);
  const shown = new Set(sent.map((view) => view.generationId).filter(Boolean));
  for (const message of messages) {
    const turn = turnFromMessage(message);
    if (turn.generationId && shown.has(turn.generationId)) continue;
    const view = mountTurn(turn);
    const generation = view.generation;
    if (!generation) {
      showSubmitError(view, { message: gettext("This request was not sent.") });
      continue;
    }
    // Resuming: anything not yet terminal is polled exactly as if it had just been sent.
    if (TERMINAL.has(generation.status) && Array.isArray(generation.images)) showResult(view, generation);
    else { view.lastStatus = generation; showPending(view, generation); watch(view, generation.id); }
  }
  for (const view of sent) {
    ui.messages.append(view.node);
    views.push(view);
  }
  ui.messages.scrollTop = ui.messages.scrollHeight;
}

/** How long the server may hold a poll (it answers sooner, the moment the job ends). */
const LONG_POLL_SECONDS = 25;
/** Long polls that come back unfinished are sent again no faster than this. */
const MIN_LONG_POLL_INTERVAL_MS = 1000;
/** While the tab is hidden, polls go out no more often than this. */
const HIDDEN_POLL_MS = 15000;

/**
 * Follow one generation until it is terminal. A long poll (`?wait=`) is answered the moment
 * the job ends, so the image shows as soon as it exists. If a held request fails (a proxy
 * that cuts idle connections, a network change, a restart), this generation falls back to
 * plain polling, every second and slower the longer it takes.
 */
export function watch(view, generationId) {
  let longPoll = true;
  let delay = 1000;
  let inFlight = false;
  const watchEpoch = epoch;
  const controller = new AbortController();
  const watcher = { timer: null, controller, wake: () => {} };
  const later = (ms) => {
    clearTimeout(watcher.timer);
    watcher.timer = setTimeout(tick, ms);
    watchers.set(generationId, watcher);
  };
  // Back in view: ask at once rather than at the end of a hidden tab's long pause.
  watcher.wake = () => { if (!inFlight) later(0); };
  const path = `/api/v1/generations/${encodeURIComponent(generationId)}`;
  async function tick() {
    const sentAt = Date.now();
    let generation;
    inFlight = true;
    try {
      generation = await api("GET", longPoll ? `${path}?wait=${LONG_POLL_SECONDS}` : path,
        undefined, { signal: controller.signal });
      if (watchEpoch !== epoch) return; // the thread was switched while this poll was out
    } catch (error) {
      if (watchEpoch !== epoch || error.code === "aborted") return;
      if (error.status === 401) return;
      if (error.status === 404) {
        watchers.delete(generationId);
        showSubmitError(view, error);
        return;
      }
      longPoll = false; // a held request did not come back: plain polls from now on
      delay = Math.min(delay * 2, 10000); // network trouble or a restart: keep trying, slower
      later(document.hidden ? Math.max(delay, HIDDEN_POLL_MS) : delay);
      return;
    } finally {
      inFlight = false;
    }
    if (TERMINAL.has(generation.status)) {
      watchers.delete(generationId);
      showResult(view, generation);
      refreshQuota();
      return;
    }
    view.lastStatus = generation;
    showPending(view, generation);
    if (longPoll) {
      // Held until its deadline (or a server restart): ask again at once, never in a tight
      // loop; a hidden tab asks again only after a pause.
      const pause = document.hidden ? HIDDEN_POLL_MS : MIN_LONG_POLL_INTERVAL_MS;
      later(Math.max(0, pause - (Date.now() - sentAt)));
      return;
    }
    if (Date.now() - view.startedAt > 10000) delay = Math.min(delay * 1.5, 5000);
    later(document.hidden ? Math.max(delay, HIDDEN_POLL_MS) : delay);
  }
  later(0);
}

document.addEventListener("visibilitychange", () => {
  if (!document.hidden) watchers.forEach((watcher) => watcher.wake());
});

/** Cancel the polls: those waiting for their next turn and those held by the server. */
export function stopPolling() {
  watchers.forEach(({ timer, controller }) => { clearTimeout(timer); controller.abort(); });
  watchers.clear();
}

/** Leave the thread: stop its polls, and drop the answers of those already out. */
export function stopWatching() {
  epoch += 1;
  stopPolling();
}

/** Elapsed seconds tick on their own, between polls. */
export function startElapsedClock() {
  setInterval(() => {
    for (const node of ui.messages.querySelectorAll('.turn[data-state="pending"]')) {
      node.dispatchEvent(new Event("tick"));
    }
  }, 1000);
}

export function scrollToEnd() {
  // After the next layout, so the turn just added is counted in the height.
  requestAnimationFrame(() => {
    const smooth = !matchMedia("(prefers-reduced-motion: reduce)").matches;
    ui.messages.scrollTo({ top: ui.messages.scrollHeight, behavior: smooth ? "smooth" : "auto" });
  });
}

/** Near the end of the thread (where a finished turn should stay in sight)? */
const nearEnd = () =>
  ui.messages.scrollHeight - ui.messages.scrollTop - ui.messages.clientHeight < 160;
