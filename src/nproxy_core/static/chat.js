// nproxy chat: conversations, the composer, uploads and polling, over the JSON API
// (DESIGN section 6). No framework and no build step: the page must work from a plain
// static file, and the surface is small enough that a few helpers are clearer than a library.
(() => {
  "use strict";

  const $ = (id) => document.getElementById(id);
  const root = $("chat");
  if (!root) return;

  const urls = {
    chat: root.dataset.chatUrl,
    login: root.dataset.loginUrl,
    pricing: root.dataset.pricingUrl,
  };
  const ui = {
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

  const TERMINAL = new Set(["succeeded", "failed", "partial"]);
  const ACCEPTED = new Set(["image/png", "image/jpeg", "image/webp"]);
  const PREFS_KEY = "nproxy.chat.controls";

  const state = {
    csrf: document.querySelector('meta[name="csrf-token"]')?.content || "",
    models: [],
    model: null,           // the capabilities of the chosen provider's model
    conversationId: root.dataset.conversationId || null,
    conversations: [],
    inputs: [],            // {key, file, preview, status: uploading|ready|error, uploadId, error}
    watchers: new Map(),   // generation id -> poll timer, so switching threads stops them
    epoch: 0,              // bumped on every thread switch: answers for the old thread are dropped
    creating: null,        // the in-flight "create conversation" call, so two sends make one
    expired: false,
  };

  // --- small helpers ----------------------------------------------------------------------

  /** Build an element; strings become text nodes, so server text can never become markup. */
  function el(tag, attrs = {}, ...children) {
    const node = document.createElement(tag);
    for (const [name, value] of Object.entries(attrs)) {
      if (value === null || value === undefined || value === false) continue;
      if (name === "class") node.className = value;
      else if (name.startsWith("on")) node.addEventListener(name.slice(2), value);
      else node.setAttribute(name, value === true ? "" : value);
    }
    for (const child of children.flat()) {
      if (child !== null && child !== undefined && child !== false) node.append(child);
    }
    return node;
  }

  const plural = (n, word) => `${n} ${word}${n === 1 ? "" : "s"}`;
  const announce = (text) => { ui.live.textContent = text; };
  const uuid = () => (crypto.randomUUID ? crypto.randomUUID()
    : `${Date.now().toString(36)}-${Math.random().toString(36).slice(2)}`);

  function pretty(value) {
    const text = String(value).replace(/[_-]+/g, " ");
    return text.charAt(0).toUpperCase() + text.slice(1);
  }

  class ApiError extends Error {
    constructor(status, code, message) {
      super(message || "Something went wrong. Please try again.");
      this.status = status;
      this.code = code || (status ? "error" : "network_error");
    }
  }

  async function request(method, path, body, extraHeaders = {}) {
    const headers = { Accept: "application/json", ...extraHeaders };
    if (method !== "GET") headers["X-CSRF-Token"] = state.csrf;
    let payload;
    if (body instanceof FormData) payload = body;
    else if (body !== undefined) {
      headers["Content-Type"] = "application/json";
      payload = JSON.stringify(body);
    }
    let response;
    try {
      response = await fetch(path, { method, headers, body: payload, credentials: "same-origin" });
    } catch {
      throw new ApiError(0, "network_error", "Could not reach nproxy. Check your connection.");
    }
    let data = null;
    if (response.status !== 204) data = await response.json().catch(() => null);
    if (!response.ok) {
      const error = data?.error || {};
      throw new ApiError(response.status, error.code, error.message);
    }
    return data;
  }

  /** The JSON API, with the two failures every call shares handled once. */
  async function api(method, path, body, { headers = {}, retried = false } = {}) {
    try {
      return await request(method, path, body, headers);
    } catch (error) {
      if (error.status === 401) sessionExpired();
      // The CSRF token changes when the session is renewed (log in in another tab): fetch the
      // current one and try once more rather than failing the user's action.
      if (error.status === 403 && method !== "GET" && !retried && /csrf/i.test(error.message)) {
        const session = await request("GET", "/api/v1/session");
        state.csrf = session.csrf_token;
        return api(method, path, body, { headers, retried: true });
      }
      throw error;
    }
  }

  function showBanner(...content) {
    ui.banner.replaceChildren(...content.flat());
    ui.banner.hidden = false;
  }

  function sessionExpired() {
    if (state.expired) return;
    state.expired = true;
    const next = encodeURIComponent(location.pathname);
    showBanner("Your session has ended. ", el("a", { href: `${urls.login}?next=${next}` }, "Log in again"),
      " to keep going.");
    ui.send.disabled = true;
    state.watchers.forEach((timer) => clearTimeout(timer));
    state.watchers.clear();
  }

  /** A person's words for an error code; 402s link to the pricing page. */
  function describeError(error) {
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
        return [error?.message || "Something went wrong. Please try again."];
    }
  }

  // --- quota ------------------------------------------------------------------------------

  async function refreshQuota() {
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

  // --- models and composer controls -------------------------------------------------------

  function savedPrefs() {
    try { return JSON.parse(localStorage.getItem(PREFS_KEY)) || {}; } catch { return {}; }
  }

  function savePrefs() {
    try {
      localStorage.setItem(PREFS_KEY, JSON.stringify({
        model: ui.model.value, mode: currentMode(), resolution: ui.resolution.value,
        batch: ui.batch.value, strength: ui.strength.value,
      }));
    } catch { /* private mode: preferences are a nicety */ }
  }

  const currentMode = () => ui.composer.querySelector('input[name="mode"]:checked').value;

  const modelKey = (m) => `${m.provider}/${m.model}`;

  async function loadModels() {
    try {
      const data = await api("GET", "/api/v1/models");
      state.models = data?.models || [];
    } catch (error) {
      if (error.status !== 401) showBanner("Could not load the image models. ", describeError(error));
      return;
    }
    if (!state.models.length) {
      ui.hint.textContent = "No image model is available at the moment.";
      ui.send.disabled = true;
      return;
    }
    // A choice of model only appears when there is a choice to make.
    ui.modelControl.hidden = state.models.length < 2;
    ui.model.replaceChildren(...state.models.map((m) => el("option", { value: modelKey(m) }, m.model)));
    const prefs = savedPrefs();
    applyModel(state.models.find((m) => modelKey(m) === prefs.model) || state.models[0], prefs);
  }

  /** Fill the controls from one model's declared capabilities, keeping what still fits. */
  function applyModel(model, prefs) {
    state.model = model;
    ui.model.value = modelKey(model);
    ui.resolution.replaceChildren(...model.resolutions.map((r) => el("option", { value: r }, pretty(r))));
    if (model.resolutions.includes(prefs.resolution)) ui.resolution.value = prefs.resolution;
    const sizes = Array.from({ length: Math.max(1, model.max_batch || 1) }, (_, i) => i + 1);
    ui.batch.replaceChildren(...sizes.map((n) => el("option", { value: n }, plural(n, "image"))));
    if (sizes.includes(Number(prefs.batch))) ui.batch.value = prefs.batch;
    if (prefs.strength) ui.strength.value = prefs.strength;
    for (const radio of ui.composer.querySelectorAll('input[name="mode"]')) {
      radio.disabled = !model.modes.includes(radio.value);
      if (radio.value === prefs.mode && !radio.disabled) radio.checked = true;
    }
    const checked = ui.composer.querySelector('input[name="mode"]:checked');
    if (checked.disabled) ui.composer.querySelector('input[name="mode"]:not(:disabled)').checked = true;
    syncControls();
  }

  /** Show the controls that apply to the chosen mode, and say what is still missing. */
  function syncControls() {
    const imageMode = currentMode() === "image_to_image";
    const max = state.model?.max_input_images || 0;
    ui.strengthControl.hidden = !(imageMode && state.model?.supports_strength);
    ui.strengthValue.textContent = Number(ui.strength.value).toFixed(2);
    ui.inputRow.hidden = !imageMode;
    ui.attach.hidden = state.inputs.length >= max;
    ui.composer.classList.toggle("image-mode", imageMode);
    let hint = "";
    if (imageMode) {
      const ready = state.inputs.filter((i) => i.status === "ready").length;
      if (state.inputs.some((i) => i.status === "uploading")) hint = "Uploading…";
      else if (!ready) hint = `Add up to ${plural(max, "image")} to transform: pick or drop them here.`;
    }
    if (!state.expired && state.model) ui.hint.textContent = hint;
  }

  // --- input images -----------------------------------------------------------------------

  function addFiles(files) {
    if (!state.model) return;
    const max = state.model.max_input_images || 0;
    if (currentMode() !== "image_to_image" && state.model.modes.includes("image_to_image")) {
      // Dropping a picture says what the person wants: switch to image-to-image for them.
      $("mode-i2i").checked = true;
    }
    for (const file of files) {
      if (state.inputs.length >= max) {
        showBanner(`You can use up to ${plural(max, "input image")}.`);
        break;
      }
      const entry = { key: uuid(), file, preview: URL.createObjectURL(file), status: "uploading" };
      state.inputs.push(entry);
      entry.node = renderInput(entry);
      ui.inputs.append(entry.node);
      if (!ACCEPTED.has(file.type)) failInput(entry, "Only PNG, JPEG or WebP images.");
      else upload(entry);
    }
    syncControls();
  }

  function renderInput(entry) {
    const name = entry.file.name || "image";
    // Only images we accept get a preview: anything else would show as a broken image.
    const preview = ACCEPTED.has(entry.file.type) ? entry.preview : null;
    return el("li", { class: "input-thumb", "data-state": entry.status },
      preview ? el("img", { src: preview, alt: `Input image ${name}` }) : null,
      el("div", { class: "thumb-progress", role: "progressbar", "aria-label": `Uploading ${name}`,
        "aria-valuemin": 0, "aria-valuemax": 100, "aria-valuenow": 0 }, el("span")),
      el("p", { class: "thumb-error" }),
      el("button", { type: "button", class: "thumb-remove", "aria-label": `Remove ${name}`,
        onclick: () => removeInput(entry) }, "×"));
  }

  function failInput(entry, message) {
    entry.status = "error";
    entry.node.dataset.state = "error";
    entry.node.querySelector(".thumb-error").textContent = message;
    entry.node.title = message;
    syncControls();
  }

  /** XHR rather than fetch: fetch cannot report upload progress. */
  function upload(entry) {
    const form = new FormData();
    form.append("file", entry.file);
    const xhr = new XMLHttpRequest();
    entry.xhr = xhr;
    const bar = entry.node.querySelector(".thumb-progress");
    xhr.upload.addEventListener("progress", (event) => {
      if (!event.lengthComputable) return;
      const pct = Math.round((event.loaded / event.total) * 100);
      bar.firstElementChild.style.width = `${pct}%`;
      bar.setAttribute("aria-valuenow", String(pct));
    });
    xhr.addEventListener("load", () => {
      let data = null;
      try { data = JSON.parse(xhr.responseText); } catch { /* not JSON: treated as an error */ }
      if (xhr.status === 201 && data?.id) {
        entry.status = "ready";
        entry.uploadId = data.id;
        entry.node.dataset.state = "ready";
        syncControls();
      } else if (xhr.status === 401) {
        sessionExpired();
        failInput(entry, "Log in again to upload.");
      } else {
        failInput(entry, data?.error?.message || "This image could not be uploaded.");
      }
    });
    xhr.addEventListener("error", () => failInput(entry, "Upload failed: check your connection."));
    xhr.open("POST", "/api/v1/uploads");
    xhr.setRequestHeader("X-CSRF-Token", state.csrf);
    xhr.setRequestHeader("Accept", "application/json");
    xhr.send(form);
  }

  function removeInput(entry) {
    entry.xhr?.abort();
    entry.node.remove();
    URL.revokeObjectURL(entry.preview);
    state.inputs = state.inputs.filter((i) => i !== entry);
    syncControls();
    ui.prompt.focus();
  }

  function clearInputs() {
    // The thumbnails now belong to the sent message, so the object URLs stay valid.
    state.inputs.forEach((entry) => entry.node.remove());
    state.inputs = [];
    syncControls();
  }

  // --- the thread -------------------------------------------------------------------------

  /** Placeholder tiles take the shape of the requested preset so the layout does not jump. */
  function aspect(resolution) {
    const ratio = /(\d+(?:\.\d+)?)\s*[:x]\s*(\d+(?:\.\d+)?)/.exec(resolution || "");
    if (ratio) return `${ratio[1]} / ${ratio[2]}`;
    return { portrait: "3 / 4", landscape: "4 / 3", tall: "9 / 16", wide: "16 / 9" }[resolution] || "1 / 1";
  }

  /** One prompt and its results. Returns the handles the polling code updates. */
  function renderTurn(turn) {
    ui.empty.hidden = true;
    const chips = [
      turn.mode === "image_to_image" ? "Image → image" : "Text → image",
      pretty(turn.resolution || ""),
      plural(turn.batchSize, "image"),
    ];
    if (turn.mode === "image_to_image" && turn.strength !== null && turn.strength !== undefined) {
      chips.push(`Strength ${Number(turn.strength).toFixed(2)}`);
    }
    const inputs = turn.inputs.length
      ? el("ul", { class: "turn-inputs", role: "list" },
        turn.inputs.map((src, i) => el("li", {}, el("img", { src, alt: `Input image ${i + 1}` }))))
      : null;
    const status = el("p", { class: "turn-status", "aria-hidden": "true" });
    const results = el("div", { class: "results", style: `--tile-aspect: ${aspect(turn.resolution)}` });
    const node = el("article", { class: "turn", "data-state": "pending" },
      el("div", { class: "bubble" },
        inputs,
        el("p", { class: "prompt-text" }, turn.prompt),
        el("ul", { class: "chips", role: "list" }, chips.filter(Boolean).map((c) => el("li", {}, c)))),
      el("div", { class: "answer" }, status, results));
    ui.messages.append(node);
    return { ...turn, node, status, results };
  }

  function showPending(view, generation) {
    view.node.dataset.state = "pending";
    if (view.results.querySelector(".tile.placeholder") === null) {
      view.results.replaceChildren(...Array.from({ length: view.batchSize }, () =>
        el("div", { class: "tile placeholder" }, el("span", { class: "spinner" }))));
    }
    const seconds = Math.max(0, Math.round((Date.now() - view.startedAt) / 1000));
    const label = generation?.status === "running" ? "Generating" : "Waiting in line";
    view.status.replaceChildren(el("span", { class: "dot" }), `${label}… ${seconds} s`);
  }

  function showResult(view, generation) {
    const images = generation.images || [];
    view.node.dataset.state = generation.status;
    view.node.dataset.generationId = generation.id;
    view.results.replaceChildren(...images.map((image, i) => {
      const alt = `Image ${i + 1} for “${view.prompt.slice(0, 80)}”`;
      const name = `nproxy-${generation.id}-${i + 1}`;
      return el("figure", { class: "tile" },
        el("button", { type: "button", class: "tile-open", "aria-label": `Enlarge image ${i + 1}`,
          onclick: () => openLightbox(image.url, alt, name) },
        el("img", { src: image.url, alt, loading: "lazy" })),
        el("a", { class: "tile-download", href: image.url, download: name,
          "aria-label": `Download image ${i + 1}`, title: "Download" }, "↓"));
    }));
    const missing = view.batchSize - images.length;
    const finished = Date.parse(generation.finished_at || "") || Date.now();
    const elapsed = Math.max(1, Math.round((finished - view.startedAt) / 1000));
    if (generation.status === "succeeded") {
      view.status.replaceChildren(`${plural(images.length, "image")} · ${elapsed} s`);
      announce(`${plural(images.length, "image")} ready.`);
    } else {
      const reason = describeError(generation.error);
      const prefix = images.length && missing > 0
        ? `${plural(missing, "image")} could not be made. ` : "";
      view.status.replaceChildren(el("span", { class: "turn-error", role: "note" }, prefix, ...reason));
      announce(`Generation ${images.length ? "partly " : ""}failed. ${prefix}${
        reason.map((r) => (typeof r === "string" ? r : r.textContent)).join("")}`);
    }
  }

  function showSubmitError(view, error, retry) {
    view.node.dataset.state = "error";
    view.results.replaceChildren();
    view.status.replaceChildren(el("span", { class: "turn-error", role: "note" }, ...describeError(error)),
      ...(retry ? [el("button", { type: "button", class: "link retry", onclick: retry }, "Try again")] : []));
    announce(`Not sent: ${error.message}`);
  }

  /** Poll one generation until it is terminal: every second, backing off to 5 s when slow. */
  function watch(view, generationId) {
    let delay = 1000;
    const epoch = state.epoch;
    const tick = async () => {
      let generation;
      try {
        generation = await api("GET", `/api/v1/generations/${encodeURIComponent(generationId)}`);
        if (epoch !== state.epoch) return; // the thread was switched while this poll was out
      } catch (error) {
        if (epoch !== state.epoch) return;
        if (error.status === 401) return;
        if (error.status === 404) {
          state.watchers.delete(generationId);
          showSubmitError(view, error);
          return;
        }
        delay = Math.min(delay * 2, 10000); // network trouble or a restart: keep trying, slower
        state.watchers.set(generationId, setTimeout(tick, delay));
        return;
      }
      if (TERMINAL.has(generation.status)) {
        state.watchers.delete(generationId);
        showResult(view, generation);
        refreshQuota();
        return;
      }
      view.lastStatus = generation;
      showPending(view, generation);
      if (Date.now() - view.startedAt > 10000) delay = Math.min(delay * 1.5, 5000);
      state.watchers.set(generationId, setTimeout(tick, delay));
    };
    state.watchers.set(generationId, setTimeout(tick, 0));
  }

  function stopWatching() {
    state.epoch += 1;
    state.watchers.forEach((timer) => clearTimeout(timer));
    state.watchers.clear();
  }

  // Elapsed seconds tick on their own, between polls.
  setInterval(() => {
    for (const node of ui.messages.querySelectorAll('.turn[data-state="pending"]')) {
      node.dispatchEvent(new Event("tick"));
    }
  }, 1000);

  function scrollToEnd() {
    ui.messages.scrollTo({ top: ui.messages.scrollHeight, behavior: "smooth" });
  }

  /** A message of GET /api/v1/conversations/{id} in the shape renderTurn wants. */
  function turnFromMessage(message) {
    // A message holds its generations; the latest one is the answer shown.
    const generation = (message.generations || []).at(-1) || null;
    return {
      prompt: message.prompt || "",
      mode: message.mode,
      resolution: message.resolution,
      batchSize: Number(message.batch_size || 1),
      strength: message.strength ?? null,
      inputs: (message.inputs || []).map((i) => i.url).filter(Boolean),
      generation,
      startedAt: Date.parse(generation?.created_at || message.created_at || "") || Date.now(),
    };
  }

  function mountTurn(turn) {
    const view = renderTurn(turn);
    view.node.addEventListener("tick", () => showPending(view, view.lastStatus));
    return view;
  }

  async function openConversation(id, { push = false } = {}) {
    stopWatching();
    state.conversationId = id;
    if (push) history.pushState({ id }, "", id ? `${urls.chat}/${encodeURIComponent(id)}` : urls.chat);
    highlightConversation();
    ui.messages.querySelectorAll(".turn").forEach((n) => n.remove());
    ui.empty.hidden = false;
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
    if (state.conversationId !== id) return; // another thread was opened meanwhile
    ui.title.textContent = conversation.title || "Untitled";
    for (const message of conversation.messages || []) {
      const view = mountTurn(turnFromMessage(message));
      const generation = view.generation;
      if (!generation) {
        showSubmitError(view, { message: "This request was not sent." });
        continue;
      }
      // Resuming: anything not yet terminal is polled exactly as if it had just been sent.
      if (TERMINAL.has(generation.status) && Array.isArray(generation.images)) showResult(view, generation);
      else { view.lastStatus = generation; showPending(view, generation); watch(view, generation.id); }
    }
    ui.messages.scrollTop = ui.messages.scrollHeight;
  }

  // --- sidebar ----------------------------------------------------------------------------

  async function loadConversations() {
    try {
      const data = await api("GET", "/api/v1/conversations");
      state.conversations = Array.isArray(data) ? data : data?.conversations || [];
    } catch { return; }
    renderConversations();
  }

  function renderConversations() {
    ui.list.replaceChildren(...state.conversations.map((c) =>
      el("li", {}, el("a", {
        href: `${urls.chat}/${encodeURIComponent(c.id)}`, "data-id": c.id, title: c.title || "Untitled",
        onclick: (event) => {
          if (event.metaKey || event.ctrlKey || event.shiftKey || event.button !== 0) return;
          event.preventDefault();
          ui.banner.hidden = true;
          openConversation(String(c.id), { push: true });
        },
      }, c.title || "Untitled"))));
    ui.listEmpty.hidden = state.conversations.length > 0;
    highlightConversation();
  }

  function highlightConversation() {
    for (const link of ui.list.querySelectorAll("a")) {
      if (link.dataset.id === String(state.conversationId)) link.setAttribute("aria-current", "page");
      else link.removeAttribute("aria-current");
    }
  }

  function openSidebar() {
    root.classList.add("sidebar-open");
    ui.scrim.hidden = false;
    ui.toggle.setAttribute("aria-expanded", "true");
    ui.newChat.focus();
  }

  function closeSidebar() {
    if (!root.classList.contains("sidebar-open")) return;
    root.classList.remove("sidebar-open");
    ui.scrim.hidden = true;
    ui.toggle.setAttribute("aria-expanded", "false");
  }

  // --- sending ----------------------------------------------------------------------------

  function composeRequest() {
    const mode = currentMode();
    const body = {
      mode,
      prompt: ui.prompt.value.trim(),
      resolution: ui.resolution.value,
      batch_size: Number(ui.batch.value),
      provider: state.model.provider,
      model: state.model.model,
    };
    if (mode === "image_to_image") {
      body.input_upload_ids = state.inputs.filter((i) => i.status === "ready").map((i) => i.uploadId);
      if (state.model.supports_strength) body.strength = Number(ui.strength.value);
    }
    return body;
  }

  /** Why the composer cannot send yet, in words, or "" when it can. */
  function blocker(body) {
    if (!body.prompt) return "Write a prompt first.";
    if (body.mode === "image_to_image") {
      if (state.inputs.some((i) => i.status === "uploading")) return "Wait for the uploads to finish.";
      if (!body.input_upload_ids.length) return "Add at least one input image for image → image.";
      const max = state.model.max_input_images || 0;
      if (body.input_upload_ids.length > max) return `This model takes at most ${plural(max, "input image")}.`;
    }
    return "";
  }

  async function send() {
    if (state.expired || !state.model) return;
    const body = composeRequest();
    const problem = blocker(body);
    if (problem) { ui.hint.textContent = problem; ui.prompt.focus(); return; }
    ui.banner.hidden = true;
    savePrefs();

    const view = mountTurn({
      prompt: body.prompt, mode: body.mode, resolution: body.resolution,
      batchSize: body.batch_size, strength: body.strength ?? null,
      inputs: body.mode === "image_to_image"
        ? state.inputs.filter((i) => i.status === "ready").map((i) => i.preview) : [],
      startedAt: Date.now(),
    });
    showPending(view, null);
    announce(`Sending. ${plural(body.batch_size, "image")} requested.`);
    ui.prompt.value = "";
    autosize();
    clearInputs();
    scrollToEnd();
    await submit(view, body, uuid());
  }

  /** The current conversation's id, creating it (once) on the first send of a new chat. */
  async function ensureConversation(title) {
    if (state.conversationId) return state.conversationId;
    state.creating ||= api("POST", "/api/v1/conversations", { title }).then((created) => {
      const id = String(created.id);
      state.conversationId = id;
      history.pushState({ id }, "", `${urls.chat}/${encodeURIComponent(id)}`);
      ui.title.textContent = title;
      state.conversations.unshift({ id, title });
      renderConversations();
      return id;
    }).finally(() => { state.creating = null; });
    return state.creating;
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

  // --- lightbox ---------------------------------------------------------------------------

  function openLightbox(url, alt, name) {
    ui.lightboxImage.src = url;
    ui.lightboxImage.alt = alt;
    ui.lightboxDownload.href = url;
    ui.lightboxDownload.download = name;
    ui.lightbox.showModal();
    ui.lightboxClose.focus();
  }

  ui.lightboxClose.addEventListener("click", () => ui.lightbox.close());
  ui.lightbox.addEventListener("click", (event) => {
    if (event.target === ui.lightbox) ui.lightbox.close(); // a click on the backdrop
  });

  // --- wiring -----------------------------------------------------------------------------

  function autosize() {
    ui.prompt.style.height = "auto";
    ui.prompt.style.height = `${Math.min(ui.prompt.scrollHeight, 220)}px`;
  }

  ui.composer.addEventListener("submit", (event) => { event.preventDefault(); send(); });
  ui.prompt.addEventListener("keydown", (event) => {
    // Enter sends; Shift+Enter is a new line; never interrupt an IME composition.
    if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
      event.preventDefault();
      send();
    }
  });
  ui.prompt.addEventListener("input", () => {
    autosize();
    if (ui.hint.textContent === "Write a prompt first.") syncControls();
  });
  ui.composer.addEventListener("change", (event) => {
    if (event.target.name === "mode" || event.target === ui.strength) { syncControls(); savePrefs(); }
    if (event.target === ui.model) {
      applyModel(state.models.find((m) => modelKey(m) === ui.model.value), {
        mode: currentMode(), resolution: ui.resolution.value, batch: ui.batch.value,
      });
    }
    if ([ui.resolution, ui.batch, ui.model].includes(event.target)) savePrefs();
  });
  ui.strength.addEventListener("input", () => {
    ui.strengthValue.textContent = Number(ui.strength.value).toFixed(2);
  });
  ui.fileInput.addEventListener("change", () => {
    addFiles([...ui.fileInput.files]);
    ui.fileInput.value = ""; // so choosing the same file again still fires change
  });
  ui.attach.addEventListener("keydown", (event) => {
    if (event.key === "Enter" || event.key === " ") { event.preventDefault(); ui.fileInput.click(); }
  });

  // Drag and drop anywhere on the thread (the composer lights up): a counter, because
  // dragenter/dragleave fire for every child element crossed.
  let dragDepth = 0;
  const hasFiles = (event) => [...(event.dataTransfer?.types || [])].includes("Files");
  const dropZone = ui.composer.closest(".chat-thread");
  dropZone.addEventListener("dragenter", (event) => {
    if (!hasFiles(event)) return;
    event.preventDefault();
    dragDepth += 1;
    ui.composer.classList.add("dragging");
  });
  dropZone.addEventListener("dragover", (event) => { if (hasFiles(event)) event.preventDefault(); });
  dropZone.addEventListener("dragleave", () => {
    dragDepth = Math.max(0, dragDepth - 1);
    if (!dragDepth) ui.composer.classList.remove("dragging");
  });
  // A file dropped just beside the thread must not navigate away from the chat.
  window.addEventListener("dragover", (event) => { if (hasFiles(event)) event.preventDefault(); });
  window.addEventListener("drop", (event) => { if (hasFiles(event)) event.preventDefault(); });
  dropZone.addEventListener("drop", (event) => {
    if (!hasFiles(event)) return;
    event.preventDefault();
    dragDepth = 0;
    ui.composer.classList.remove("dragging");
    addFiles([...event.dataTransfer.files]);
  });
  ui.prompt.addEventListener("paste", (event) => {
    const files = [...(event.clipboardData?.files || [])].filter((f) => f.type.startsWith("image/"));
    if (files.length) { event.preventDefault(); addFiles(files); }
  });

  ui.newChat.addEventListener("click", () => {
    ui.banner.hidden = true;
    openConversation(null, { push: true });
  });
  ui.toggle.addEventListener("click", () => {
    if (root.classList.contains("sidebar-open")) closeSidebar();
    else openSidebar();
  });
  ui.scrim.addEventListener("click", closeSidebar);
  document.addEventListener("keydown", (event) => { if (event.key === "Escape") closeSidebar(); });
  window.addEventListener("popstate", () => {
    const match = location.pathname.slice(urls.chat.length).match(/^\/([^/]+)/);
    openConversation(match ? decodeURIComponent(match[1]) : null);
  });

  // Start: models and quota first (the composer needs them), then the thread.
  Promise.all([loadModels(), refreshQuota(), loadConversations()]).then(() => {
    if (state.conversationId) openConversation(state.conversationId);
    else ui.prompt.focus();
  });
})();
