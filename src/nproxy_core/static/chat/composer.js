// The composer: prompt, mode and model controls, and input images (pick, drop, paste, upload).
import { api, hasSessionEnded, uploadImage } from "./api.js";
import { el, plural, pretty } from "./dom.js";
import { $, describeError, showBanner, ui } from "./page.js";

const ACCEPTED = new Set(["image/png", "image/jpeg", "image/webp"]);
const PREFS_KEY = "nproxy.chat.controls";

const state = {
  models: [],
  model: null,  // the capabilities of the chosen provider's model
  inputs: [],   // {file, preview, node, status: uploading|ready|error, upload, uploadId}
};

// --- models and controls -----------------------------------------------------------------

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

export async function loadModels() {
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
      showBanner(`You can use up to ${plural(max, "input image")}.`);
      break;
    }
    const entry = { file, preview: URL.createObjectURL(file), status: "uploading" };
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
  }, (error) => {
    if (error.code === "aborted") return; // removed while uploading: nothing left to show
    failInput(entry, error.status === 401 ? "Log in again to upload." : error.message);
  });
}

function removeInput(entry) {
  entry.upload?.abort();
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
    body.input_upload_ids = readyInputs().map((i) => i.uploadId);
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

/** Empty the composer once its request is on its way. */
export function clearComposer() {
  ui.prompt.value = "";
  autosize();
  clearInputs();
}

// --- wiring ------------------------------------------------------------------------------

export function wireComposer(send) {
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
}
