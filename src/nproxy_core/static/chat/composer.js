// The composer: prompt, mode and model controls, what a send costs in units (DESIGN 4.12), and
// input images (pick, drop, paste, upload).
import { api, hasSessionEnded, uploadImage } from "./api.js";
import { countImages, countUnits, el, pretty } from "./dom.js";
import { gettext, ngettext } from "./i18n.js";
import { $, current, describeError, showBanner, ui, uploadProblem } from "./page.js";
import { activeTemplate, leave, restoreTemplate, templateSnapshot } from "./templates.js";

const ACCEPTED = new Set(["image/png", "image/jpeg", "image/webp"]);
const PREFS_KEY = "nproxy.chat.controls";
const DRAFT_KEY = "nproxy.chat.draft.";

const state = {
  models: [],
  model: null,      // the capabilities of the chosen provider's model
  // {name, file?, preview, node, status: uploading|ready|error, upload?, uploadId?, imageId?}:
  // an input is an upload of the person's, or one of their generated images.
  inputs: [],
  // What /api/v1/me says can be spent now, in units (exact only when less than a full batch
  // is left); null until known, and then nothing is refused here: the server has the last word.
  maxUnitsNow: null,
  canGenerate: false, // an active plan, or a pack to draw on (pay as you go)
};

// --- models and controls -----------------------------------------------------------------

function savedPrefs() {
  try { return JSON.parse(localStorage.getItem(PREFS_KEY)) || {}; } catch { return {}; }
}

function savePrefs() {
  try {
    localStorage.setItem(PREFS_KEY, JSON.stringify({
      // The mode is not kept here: a new conversation starts in text → image, and a
      // conversation's own mode lives in its draft.
      model: ui.model.value, resolution: ui.resolution.value,
      batch: ui.batch.value, strength: ui.strength.value,
    }));
  } catch { /* private mode: preferences are a nicety */ }
}

const currentMode = () => ui.composer.querySelector('input[name="mode"]:checked').value;

const WRITE_A_PROMPT = gettext("Write a prompt first.");
const notEnoughFor = (batch) => ngettext("Not enough units left for %(num)s image — try fewer.",
  "Not enough units left for %(num)s images — try fewer.", batch);
const modelKey = (m) => `${m.provider}/${m.model}`;

let modelsAnswered = Promise.resolve();

/** Ask for the models the person may use; a send made before they are known waits for the
 * answer (`whenModelsKnown`) instead of doing nothing. */
export function loadModels() {
  modelsAnswered = fetchModels();
  return modelsAnswered;
}

/** Settles once the models asked for at start-up are known (or could not be loaded). */
export function whenModelsKnown() {
  return modelsAnswered;
}

async function fetchModels() {
  try {
    const data = await api("GET", "/api/v1/models");
    state.models = data?.models || [];
  } catch (error) {
    if (error.status !== 401) showBanner(gettext("Could not load the image models."), " ", describeError(error));
    return;
  }
  if (!state.models.length) {
    ui.hint.textContent = gettext("No image model is available at the moment.");
    ui.send.disabled = true;
    return;
  }
  // A choice of model only appears when there is a choice to make. A model the plan leaves out
  // is shown, disabled, so that people learn a bigger plan (or a pack) has it.
  ui.modelControl.hidden = state.models.length < 2;
  ui.model.replaceChildren(...state.models.map((m) => el("option",
    { value: modelKey(m), disabled: !isAllowed(m), title: abilities(m) },
    isAllowed(m) ? modelSummary(m) : `${modelSummary(m)} — ${gettext("Not in your plan")}`)));
  const prefs = savedPrefs();
  const usable = state.models.filter(isAllowed);
  applyModel(usable.find((m) => modelKey(m) === prefs.model) || usable[0] || state.models[0],
    { ...prefs, mode: "text_to_image" });
}

/** Older answers lack `allowed` and `label`: every model allowed, named by its id. */
const isAllowed = (m) => m.allowed !== false;
const modelLabel = (m) => m.label || m.model;

/** "Nano Banana Pro · 3–6 units · preview": a model's name, its price range an image, and
 * whether it is a preview, as the picker lists it. */
function modelSummary(m) {
  const prices = Object.values(m.units || {}).map(Number).filter((n) => n > 0);
  const low = Math.min(...prices);
  const high = Math.max(...prices);
  const units = !prices.length ? "" : low === high ? ` · ${countUnits(low)}`
    : ` · ${gettext("%(low)s–%(high)s units", { low, high })}`;
  return `${modelLabel(m)}${units}${m.status === "preview" ? ` · ${gettext("preview")}` : ""}`;
}

/** What a model can do, in words (the picker option's tooltip). */
function abilities(m) {
  const modes = (m.modes || []).includes("image_to_image")
    ? ngettext("text → image and image → image (up to %(num)s reference image)",
      "text → image and image → image (up to %(num)s reference images)", m.max_input_images)
    : gettext("text → image");
  return ngettext("%(model)s: %(modes)s; up to %(num)s image at a time",
    "%(model)s: %(modes)s; up to %(num)s images at a time", m.max_batch, { model: modelLabel(m), modes });
}

/** Units one image of `model` costs at `resolution` (1 where the server does not say). */
export function unitsPerImage(model, resolution) {
  const units = Number(model?.units?.[resolution]);
  return Number.isFinite(units) && units > 0 ? units : 1;
}

/** "4 images × 3 units = 12 units": what a send costs, before it is sent. */
export function costText(batch, units) {
  return `${countImages(batch)} × ${countUnits(units)} = ${countUnits(batch * units)}`;
}

/** Whether a batch of `n` at `units` an image fits what can be spent now. */
const fits = (n, units) => state.maxUnitsNow === null || n * units <= state.maxUnitsNow;

/** Whether one image of any size of any model the person may use fits what is left. */
const somethingFits = () => state.models.some((m) => isAllowed(m)
  && (m.resolutions || []).some((r) => fits(1, unitsPerImage(m, preset(r).id))));

/** Fill the controls from one model's declared capabilities, keeping what still fits. */
function applyModel(model, prefs) {
  state.model = model;
  ui.model.value = modelKey(model);
  const presets = model.resolutions.map(preset);
  // Sizes that cost differently say so in the list; the cost line says it for all.
  const varied = new Set(presets.map((r) => unitsPerImage(model, r.id))).size > 1;
  ui.resolution.replaceChildren(...presets.map((r) => el("option", { value: r.id },
    [r.label, r.ratio, varied ? countUnits(unitsPerImage(model, r.id)) : ""]
      .filter(Boolean).join(" · "))));
  if (presets.some((r) => r.id === prefs.resolution)) ui.resolution.value = prefs.resolution;
  showShape();
  const sizes = Array.from({ length: Math.max(1, model.max_batch || 1) }, (_, i) => i + 1);
  ui.batch.replaceChildren(...sizes.map((n) => el("option", { value: n }, countImages(n))));
  if (sizes.includes(Number(prefs.batch))) ui.batch.value = prefs.batch;
  limitBatch();
  if (prefs.strength) ui.strength.value = prefs.strength;
  for (const radio of ui.composer.querySelectorAll('input[name="mode"]')) {
    radio.disabled = !model.modes.includes(radio.value);
    if (radio.value === prefs.mode && !radio.disabled) radio.checked = true;
  }
  const checked = ui.composer.querySelector('input[name="mode"]:checked');
  if (checked.disabled) ui.composer.querySelector('input[name="mode"]:not(:disabled)').checked = true;
  syncControls();
}

/**
 * A template decides the model and the size: the (hidden) controls take them, so the cost line
 * and the batch limits speak for what the template will cost.
 */
export function useTemplateControls(template) {
  if (!state.models.length) return;
  const named = (m) => m.model === template.model || (m.aliases || []).includes(template.model);
  const model = (template.model && state.models.find(named))
    || state.models.find(isAllowed) || state.models[0];
  const sizes = model.resolutions.map((r) => preset(r).id);
  applyModel(model, {
    resolution: sizes.includes(template.resolution) ? template.resolution : sizes[0],
    batch: ui.batch.value, mode: "text_to_image",
  });
}

/** Back from a template: the person's own model and size again. */
export function leaveTemplateControls() {
  if (!state.models.length) return;
  const prefs = savedPrefs();
  const usable = state.models.filter(isAllowed);
  applyModel(usable.find((m) => modelKey(m) === prefs.model) || usable[0] || state.models[0],
    { ...prefs, mode: "text_to_image" });
}

/** Why `batch` images of the chosen size cannot be paid for now, or "". */
export function budgetProblem(batch) {
  const units = unitsPerImage(state.model, ui.resolution.value);
  if (!fits(1, units)) return gettext("Not enough units left for this size.");
  if (!fits(batch, units)) return notEnoughFor(batch);
  return "";
}

/** Names of the demo's and similar presets, when the models API gives only an id. */
const NAMED_RATIOS = { square: "1:1", portrait: "3:4", landscape: "4:3", tall: "9:16", wide: "16:9" };

/** A resolution preset as `{id, label, ratio}`, from the API's object or a bare id. */
export function preset(resolution) {
  if (resolution && typeof resolution === "object") {
    return { id: resolution.id, label: resolution.label || pretty(resolution.id),
      ratio: resolution.aspect_ratio || "" };
  }
  const match = /(\d+)\s*[:x]\s*(\d+)/.exec(resolution || "");
  return { id: resolution, label: pretty(resolution),
    ratio: match ? `${match[1]}:${match[2]}` : NAMED_RATIOS[resolution] || "" };
}

/** A preset's shape as CSS aspect-ratio ("4 / 3"), from the models API; null if unknown. */
export function presetAspect(id) {
  for (const model of state.models) {
    const found = (model.resolutions || []).find((r) => typeof r === "object" && r.id === id);
    if (found?.width && found?.height) return `${found.width} / ${found.height}`;
    if (found?.aspect_ratio) return found.aspect_ratio.replace(":", " / ");
  }
  return null;
}

/** A preset's name as the models API gives it ("Square 2K"), else the id made readable. */
export function presetLabel(id) {
  for (const model of state.models) {
    const found = (model.resolutions || []).find((r) => typeof r === "object" && r.id === id);
    if (found?.label) return found.label;
  }
  return pretty(id || "");
}

/** The model that made a turn, by its name, where there is a choice of models; else "". */
export function modelName(provider, model) {
  if (state.models.length < 2 || !model) return "";
  const found = state.models.find((m) => m.model === model && (!provider || m.provider === provider));
  return found ? modelLabel(found) : model;
}

/** The little shape beside the size control: the chosen preset's aspect ratio, drawn. */
function showShape() {
  const chosen = preset((state.model?.resolutions || []).find((r) => preset(r).id === ui.resolution.value));
  const [w, h] = (chosen.ratio || "1:1").split(":").map(Number);
  const scale = 18 / Math.max(w, h);
  ui.shape.style.setProperty("width", `${Math.round(w * scale)}px`);
  ui.shape.style.setProperty("height", `${Math.round(h * scale)}px`);
}

/**
 * Batch sizes that do not fit what is left (or the model's largest batch) are offered, but
 * disabled and said so; the choice moves down to the largest that fits. Then the cost line.
 */
function limitBatch() {
  const units = unitsPerImage(state.model, ui.resolution.value);
  let largest = 0;
  for (const option of ui.batch.options) {
    const n = Number(option.value);
    const tooMany = !fits(n, units);
    option.disabled = tooMany;
    option.textContent = tooMany ? gettext("%(images)s (not enough left)", { images: countImages(n) }) : countImages(n);
    if (!tooMany) largest = Math.max(largest, n);
  }
  if (largest && Number(ui.batch.value) > largest) ui.batch.value = String(largest);
  showCost();
}

/**
 * The cost line, live as the model, size or batch changes; and when not even one image of
 * the chosen size fits, Generate gives way to the way out (the prompt stays as it is).
 */
function showCost() {
  if (!state.model) return;
  const units = unitsPerImage(state.model, ui.resolution.value);
  const batch = Number(ui.batch.value) || 1;
  const nothingFits = state.canGenerate && !fits(1, units);
  let text = costText(batch, units);
  if (nothingFits) {
    text = gettext("%(cost)s: more than you have left.", { cost: costText(1, units) })
      + (somethingFits() ? ` ${gettext("A smaller size or another model fits.")}` : "");
  }
  // Written only when it changes: the line is a polite live region.
  if (ui.cost.textContent !== text) ui.cost.textContent = text;
  ui.cost.hidden = !state.canGenerate;
  ui.composer.classList.toggle("nothing-fits", nothingFits);
  ui.send.hidden = nothingFits;
  ui.renew.hidden = !nothingFits;
}

/**
 * What /api/v1/me says: whether the person can generate (an active plan, or packs to draw
 * on) and how many units fit now. `maxUnitsNow` null: unknown, nothing is limited here.
 */
export function setQuota({ status, canGenerate, maxUnitsNow }) {
  state.maxUnitsNow = Number.isFinite(maxUnitsNow) ? maxUnitsNow : null;
  state.canGenerate = canGenerate;
  const noPlan = !canGenerate;
  ui.composer.classList.toggle("no-plan", noPlan);
  ui.noPlan.hidden = !noPlan;
  ui.noPlanTitle.textContent = status === "expired" ? gettext("Renew your plan to go on") : gettext("Choose a plan to start");
  ui.send.disabled = noPlan;
  // Pay as you go (packs, no plan) has no plan to renew: the way on is another pack.
  ui.renew.textContent = status === "none" ? gettext("Buy a pack") : gettext("Renew");
  limitBatch();
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
    if (state.inputs.some((i) => i.status === "uploading")) hint = gettext("Uploading…");
    else if (!ready) {
      hint = ngettext("Add up to %(num)s image to transform: pick or drop it here.",
        "Add up to %(num)s images to transform: pick or drop them here.", max);
    }
  }
  if (!hasSessionEnded() && state.model) ui.hint.textContent = hint;
}

function autosize() {
  ui.prompt.style.height = "auto";
  ui.prompt.style.height = `${Math.min(ui.prompt.scrollHeight, 220)}px`;
}

// --- input images ------------------------------------------------------------------------

function addFiles(files) {
  if (!state.model) return;
  const max = state.model.max_input_images || 0;
  if (currentMode() !== "image_to_image" && state.model.modes.includes("image_to_image")) {
    // Dropping a picture says what the person wants: switch to image-to-image for them.
    $("mode-i2i").checked = true;
  }
  for (const file of files) {
    if (state.inputs.length >= max) {
      showBanner(ngettext("You can use up to %(num)s input image.", "You can use up to %(num)s input images.", max));
      break;
    }
    const entry = { file, name: file.name || "image", preview: URL.createObjectURL(file), status: "uploading" };
    state.inputs.push(entry);
    entry.node = renderInput(entry);
    ui.inputs.append(entry.node);
    // Checked here against the server's own limits: a file it would refuse is never sent.
    const problem = uploadProblem(file);
    if (problem) failInput(entry, problem);
    else upload(entry);
  }
  syncControls();
}

function renderInput(entry) {
  const name = entry.name;
  // Only images we accept get a preview: anything else would show as a broken image.
  const preview = !entry.file || ACCEPTED.has(entry.file.type) ? entry.preview : null;
  const image = preview ? el("img", { src: preview, alt: gettext("Input image %(name)s", { name }) }) : null;
  image?.addEventListener("error", () => {
    // A picked file the browser cannot show: no broken-image icon while the server decides.
    if (entry.file) image.remove();
    // Logged out, the server shows no one's uploads: the input is still there (a send that
    // the session's end stopped gave it back), and shows again after logging in.
    else if (hasSessionEnded()) image.remove();
    // A remembered input that is gone (an unused upload is cleaned up after a day).
    else failInput(entry, gettext("This image is no longer available."));
  });
  return el("li", { class: "input-thumb", "data-state": entry.status },
    image,
    el("div", { class: "thumb-progress", role: "progressbar", "aria-label": gettext("Uploading %(name)s", { name }),
      "aria-valuemin": 0, "aria-valuemax": 100, "aria-valuenow": 0 }, el("span")),
    el("p", { class: "thumb-error" }),
    el("button", { type: "button", class: "thumb-remove", "aria-label": gettext("Remove %(name)s", { name }),
      onclick: () => removeInput(entry) }, "×"));
}

function failInput(entry, message) {
  entry.status = "error";
  entry.node.dataset.state = "error";
  // A clean error tile: the whole message, and no preview that could show as a broken image.
  entry.node.querySelector("img")?.remove();
  entry.node.querySelector(".thumb-error").textContent = `${entry.name}: ${message}`;
  syncControls();
}

function upload(entry) {
  const bar = entry.node.querySelector(".thumb-progress");
  entry.upload = uploadImage(entry.file, (pct) => {
    bar.firstElementChild.style.width = `${pct}%`;
    bar.setAttribute("aria-valuenow", String(pct));
  });
  entry.upload.done.then((data) => {
    entry.status = "ready";
    entry.uploadId = data.id;
    entry.node.dataset.state = "ready";
    syncControls();
    saveDraft();
  }, (error) => {
    if (error.code === "aborted") return; // removed while uploading: nothing left to show
    failInput(entry, error.status === 401 ? gettext("Log in again to upload.") : error.message);
  });
}

function removeInput(entry) {
  entry.upload?.abort();
  entry.node.remove();
  URL.revokeObjectURL(entry.preview);
  state.inputs = state.inputs.filter((i) => i !== entry);
  syncControls();
  saveDraft();
  ui.prompt.focus();
}

/**
 * Use one of the person's generated images as an input of the next request: the composer
 * switches to image → image and shows it with the other inputs.
 */
export function useAsInput(image) {
  if (!state.model) return;
  if (!state.model.modes.includes("image_to_image")) {
    showBanner(gettext("This model cannot transform images."));
    return;
  }
  $("mode-i2i").checked = true;
  if (!state.inputs.some((i) => i.imageId === image.id)) {
    const max = state.model.max_input_images || 0;
    if (state.inputs.length >= max) {
      showBanner(ngettext("You can use up to %(num)s input image. Remove one first.",
        "You can use up to %(num)s input images. Remove one first.", max));
    } else {
      addReadyInput({ imageId: image.id, preview: image.url, name: "generated image" });
    }
  }
  syncControls();
  saveDraft();
  ui.prompt.focus();
}

function addReadyInput(fields) {
  const entry = { status: "ready", ...fields };
  state.inputs.push(entry);
  entry.node = renderInput(entry);
  ui.inputs.append(entry.node);
  return entry;
}

function clearInputs() {
  // The thumbnails now belong to the sent message, so the object URLs stay valid.
  state.inputs.forEach((entry) => entry.node.remove());
  state.inputs = [];
  syncControls();
}

// --- the request -------------------------------------------------------------------------

const readyInputs = () => state.inputs.filter((i) => i.status === "ready");

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
    body.input_upload_ids = readyInputs().filter((i) => i.uploadId).map((i) => i.uploadId);
    const images = readyInputs().filter((i) => i.imageId).map((i) => i.imageId);
    if (images.length) body.input_image_ids = images;
    if (state.model.supports_strength) body.strength = Number(ui.strength.value);
  }
  return body;
}

/** Why the composer cannot send yet, in words, or "" when it can. */
function blocker(body) {
  if (!body.prompt) return WRITE_A_PROMPT;
  if (body.mode === "image_to_image") {
    if (state.inputs.some((i) => i.status === "uploading")) return gettext("Wait for the uploads to finish.");
    const count = body.input_upload_ids.length + (body.input_image_ids || []).length;
    if (!count) return gettext("Add at least one input image for image → image.");
    const max = state.model.max_input_images || 0;
    if (count > max) {
      return ngettext("This model takes at most %(num)s input image.", "This model takes at most %(num)s input images.", max);
    }
  }
  const units = unitsPerImage(state.model, body.resolution);
  if (!fits(1, units)) return gettext("Not enough units left for this size.");
  if (!fits(body.batch_size, units)) {
    return notEnoughFor(body.batch_size);
  }
  return "";
}

/**
 * The request the composer describes, as `{body, previews}` (previews: the input images' local
 * URLs, for the sent message), or null after the hint has said what is missing.
 */
export function takeRequest() {
  if (!state.model) return null;
  const body = composeRequest();
  const problem = blocker(body);
  if (problem) { ui.hint.textContent = problem; ui.prompt.focus(); return null; }
  savePrefs();
  const previews = body.mode === "image_to_image" ? readyInputs().map((i) => i.preview) : [];
  return { body, previews };
}

/** Empty the composer once its request is on its way (a template keeps its fields: the
 * next try is often the same recipe with one thing changed). */
export function clearComposer() {
  if (activeTemplate()) { saveDraft(); return; }
  ui.prompt.value = "";
  autosize();
  clearInputs();
  saveDraft();
}

/** Put `text` in the prompt (an example, a link from the landing page), ready to send. */
export function fillPrompt(text) {
  leave({ quiet: true });
  ui.prompt.value = text;
  autosize();
  saveDraft();
  ui.prompt.focus();
}

// --- drafts: what was typed and attached, per conversation, across reloads ---------------

const draftKey = (id) => DRAFT_KEY + (id || "new");

/** What the composer holds now, as a draft: the prompt, mode, inputs and template. */
export function draftSnapshot() {
  const inputs = readyInputs().map((i) => ({ uploadId: i.uploadId, imageId: i.imageId,
    preview: i.uploadId ? `/media/${encodeURIComponent(i.uploadId)}` : i.preview, name: i.name }));
  return { prompt: ui.prompt.value, mode: currentMode(), inputs, template: templateSnapshot() };
}

function writeDraft(id, draft) {
  try {
    if (!draft.prompt.trim() && !draft.inputs.length && !draft.template) {
      localStorage.removeItem(draftKey(id));
    } else localStorage.setItem(draftKey(id), JSON.stringify(draft));
  } catch { /* private mode: drafts are a nicety */ }
}

export function saveDraft(id = current.conversationId) {
  writeDraft(id, draftSnapshot());
}

/**
 * A send that did not go through (the session ended, the units ran out): what it held comes
 * back into the composer, and is kept as the draft of the conversation it was written in.
 */
export function restoreSnapshot(snapshot, id = current.conversationId) {
  writeDraft(id, snapshot);
  restoreDraft(id);
}

/**
 * Put a conversation's draft in the composer (a new conversation starts in text → image).
 * On the page's first load (`initial`), what the person already typed, attached or picked
 * while it loaded wins.
 */
export function restoreDraft(id, { initial = false } = {}) {
  if (initial && (ui.prompt.value.trim() || state.inputs.length || activeTemplate())) {
    saveDraft(id);
    return;
  }
  let draft = {};
  try { draft = JSON.parse(localStorage.getItem(draftKey(id))) || {}; } catch { draft = {}; }
  state.inputs.forEach((entry) => { entry.upload?.abort(); entry.node.remove(); });
  state.inputs = [];
  ui.prompt.value = draft.prompt || "";
  autosize();
  const mode = draft.mode === "image_to_image" && state.model?.modes.includes("image_to_image")
    ? "image_to_image" : "text_to_image";
  const radio = ui.composer.querySelector(`input[name="mode"][value="${mode}"]`);
  if (radio && !radio.disabled) radio.checked = true;
  for (const input of draft.inputs || []) {
    if (input.uploadId || input.imageId) addReadyInput({ ...input, name: input.name || "image" });
  }
  restoreTemplate(draft.template);
  syncControls();
}

// --- wiring ------------------------------------------------------------------------------

export function wireComposer(send) {
  ui.composer.addEventListener("submit", (event) => { event.preventDefault(); send(); });
  for (const example of document.querySelectorAll(".example-prompt")) {
    example.addEventListener("click", () => fillPrompt(example.dataset.prompt));
  }
  ui.prompt.addEventListener("keydown", (event) => {
    // Enter sends; Shift+Enter is a new line; never interrupt an IME composition.
    if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
      event.preventDefault();
      send();
    }
  });
  let typing = null;
  ui.prompt.addEventListener("input", () => {
    autosize();
    clearTimeout(typing);
    typing = setTimeout(() => saveDraft(), 300);
    if (ui.hint.textContent === WRITE_A_PROMPT) syncControls();
  });
  ui.composer.addEventListener("change", (event) => {
    if (event.target.name === "mode" || event.target === ui.strength) { syncControls(); savePrefs(); saveDraft(); }
    if (event.target === ui.resolution) { showShape(); limitBatch(); }
    if (event.target === ui.batch) showCost();
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
}
