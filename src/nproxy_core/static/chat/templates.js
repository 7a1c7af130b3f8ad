// Templates (DESIGN 4.17): the gallery (in the empty thread and behind the Templates button),
// and a picked template's fields as a small form in place of the prompt. The prompt itself is
// built on the server from `{template, inputs}`; image fields use the ordinary upload path.
import { api, uploadImage } from "./api.js";
import { budgetProblem, leaveTemplateControls, saveDraft, useTemplateControls } from "./composer.js";
import { el } from "./dom.js";
import { gettext } from "./i18n.js";
import { $, describeError, showBanner, ui, uploadProblem } from "./page.js";

const gallery = $("template-gallery");
const starters = $("template-starters");
const dialog = $("templates-dialog");
const dialogList = $("templates-dialog-list");
const button = $("templates-button");
const form = $("template-form");
const formTitle = $("template-form-title");
const fieldsBox = $("template-fields");
const closeButton = $("template-close");

const state = {
  templates: [],
  active: null,  // the template picked, or null: the composer takes a prompt
  // field name -> {uploadId, preview, status: uploading|ready|error, upload?} for image fields
  images: {},
};

export const activeTemplate = () => state.active;

/** A card of the gallery: the example the model made (or the title's initial), title, words. */
function card(template) {
  const picture = template.example_url
    ? el("img", { src: template.example_url, alt: "", loading: "lazy", width: 160, height: 160 })
    : el("span", { class: "template-initial", "aria-hidden": "true" }, template.title.slice(0, 1));
  return el("li", {},
    el("button", { type: "button", class: "template-card", "data-template": template.slug,
      onclick: () => { if (dialog.open) dialog.close(); pick(template.slug); } },
    picture,
    el("span", { class: "template-title" }, template.title),
    el("span", { class: "template-description" }, template.description)));
}

export async function loadTemplates() {
  try {
    state.templates = (await api("GET", "/api/v1/templates"))?.templates || [];
  } catch {
    state.templates = []; // the gallery is a shortcut: the prompt still works without it
  }
  gallery.replaceChildren(...state.templates.map(card));
  dialogList.replaceChildren(...state.templates.map(card));
  starters.hidden = !state.templates.length;
  button.hidden = !state.templates.length;
}

// --- the form ------------------------------------------------------------------------------

const fieldId = (name) => `tf-${name}`;

function fieldError(name, message) {
  const input = $(fieldId(name));
  const error = $(`${fieldId(name)}-error`);
  if (!input || !error) return false;
  error.textContent = message || "";
  error.hidden = !message;
  if (message) input.setAttribute("aria-invalid", "true");
  else input.removeAttribute("aria-invalid");
  return true;
}

function imageSlot(field, saved) {
  const id = fieldId(field.name);
  const status = el("span", { class: "slot-status small", id: `${id}-status` });
  const preview = el("span", { class: "slot-preview", "aria-hidden": "true" });
  const input = el("input", { type: "file", id, class: "visually-hidden",
    accept: ui.fileInput.accept, "aria-describedby": `${id}-status ${id}-error`,
    ...(field.required ? { "aria-required": "true" } : {}) });
  const remove = el("button", { type: "button", class: "link slot-remove", hidden: true,
    "aria-label": gettext("Remove %(name)s", { name: field.label }) }, gettext("Remove"));
  const slot = el("div", { class: "image-slot", "data-state": "empty" },
    el("label", { for: id, class: "slot-pick" }, preview,
      el("span", { class: "slot-label" }, field.label,
        field.required ? "" : el("span", { class: "muted" }, " (optional)")),
      el("span", { class: "slot-action small" }, gettext("Choose a photo"))),
    input, status, remove);
  const show = (entry) => {
    slot.dataset.state = entry ? entry.status : "empty";
    preview.replaceChildren(entry?.preview ? el("img", { src: entry.preview, alt: "" }) : "");
    status.textContent = !entry ? "" : entry.status === "uploading" ? gettext("Uploading…")
      : entry.status === "ready" ? gettext("Ready.") : "";
    remove.hidden = !entry;
  };
  input.addEventListener("change", () => {
    const file = input.files[0];
    input.value = "";
    if (!file) return;
    state.images[field.name]?.upload?.abort();
    const problem = uploadProblem(file);
    if (problem) { delete state.images[field.name]; show(null); fieldError(field.name, problem); return; }
    fieldError(field.name, "");
    const entry = { status: "uploading", preview: URL.createObjectURL(file) };
    state.images[field.name] = entry;
    show(entry);
    entry.upload = uploadImage(file, () => {});
    entry.upload.done.then((data) => {
      entry.status = "ready";
      entry.uploadId = data.id;
      show(entry);
      saveDraft();
    }, (error) => {
      if (error.code === "aborted") return;
      delete state.images[field.name];
      show(null);
      fieldError(field.name, error.message);
    });
  });
  remove.addEventListener("click", () => {
    state.images[field.name]?.upload?.abort();
    delete state.images[field.name];
    show(null);
    saveDraft();
    input.focus();
  });
  if (saved?.uploadId) {
    state.images[field.name] = { status: "ready", uploadId: saved.uploadId, preview: saved.preview };
    show(state.images[field.name]);
  }
  return slot;
}

function fieldNode(field, values, images) {
  const id = fieldId(field.name);
  const error = el("p", { class: "field-error small", id: `${id}-error`, role: "alert", hidden: true });
  if (field.kind === "image") {
    return el("div", { class: "tfield image" }, imageSlot(field, images[field.name]), error);
  }
  const label = el("label", { for: id }, field.label,
    field.required ? "" : el("span", { class: "muted" }, " ", gettext("(optional)")));
  let input;
  if (field.kind === "select") {
    input = el("select", { id, name: field.name, "aria-describedby": `${id}-error`,
      ...(field.required ? { required: true } : {}) },
    el("option", { value: "" }, field.required ? gettext("Choose…") : gettext("None")),
    // The value sent is the English option; what the reader sees is its translation.
    (field.options || []).map((o, i) => el("option", { value: o }, field.option_labels?.[i] || o)));
  } else {
    input = el("input", { id, name: field.name, maxlength: 300, autocomplete: "off",
      "aria-describedby": `${id}-error`, ...(field.required ? { required: true } : {}) });
  }
  input.value = values[field.name] || "";
  input.addEventListener("input", () => { fieldError(field.name, ""); saveDraft(); });
  input.addEventListener("change", () => saveDraft());
  return el("div", { class: `tfield ${field.kind}` }, label, input, error);
}

/** Use template `slug` in the composer, with `values` and uploaded `images` already given. */
export function pick(slug, { values = {}, images = {}, focus = true } = {}) {
  const template = state.templates.find((t) => t.slug === slug);
  if (!template) return false;
  leave({ quiet: true });
  state.active = template;
  formTitle.textContent = template.title;
  fieldsBox.replaceChildren(...template.fields.map((f) => fieldNode(f, values, images)));
  form.hidden = false;
  ui.composer.classList.add("template-mode");
  useTemplateControls(template);
  if (focus) fieldsBox.querySelector("input, select")?.focus();
  saveDraft();
  return true;
}

/** Back to the prompt. */
export function leave({ quiet = false } = {}) {
  if (!state.active) return;
  Object.values(state.images).forEach((entry) => entry.upload?.abort());
  state.active = null;
  state.images = {};
  form.hidden = true;
  fieldsBox.replaceChildren();
  ui.composer.classList.remove("template-mode");
  leaveTemplateControls();
  if (!quiet) { saveDraft(); ui.prompt.focus(); }
}

function values() {
  const out = {};
  for (const field of state.active?.fields || []) {
    if (field.kind === "image") continue;
    const input = $(fieldId(field.name));
    if (input?.value.trim()) out[field.name] = input.value.trim();
  }
  return out;
}

/** What the draft keeps of the template: its slug, the typed values, the uploaded images. */
export function templateSnapshot() {
  if (!state.active) return null;
  const images = {};
  for (const [name, entry] of Object.entries(state.images)) {
    if (entry.status === "ready") {
      images[name] = { uploadId: entry.uploadId, preview: `/media/${encodeURIComponent(entry.uploadId)}` };
    }
  }
  return { slug: state.active.slug, values: values(), images };
}

/** Put a draft's template back (or leave template mode when the draft has none). */
export function restoreTemplate(saved, { focus = false } = {}) {
  if (!saved?.slug || !pick(saved.slug, { values: saved.values || {}, images: saved.images || {}, focus })) {
    leave({ quiet: true });
  }
}

/**
 * The template request as `{body, label, previews}`, or null after each missing field has
 * said so (the first one focused).
 */
export function takeTemplateRequest() {
  const template = state.active;
  const inputs = values();
  let first = null;
  for (const field of template.fields) {
    let problem = "";
    if (field.kind === "image") {
      const entry = state.images[field.name];
      if (entry?.status === "uploading") problem = gettext("Wait for the upload to finish.");
      else if (entry?.status === "ready") inputs[field.name] = entry.uploadId;
      else if (field.required) problem = gettext("%(field)s is required: choose a photo.", { field: field.label });
    } else if (field.required && !inputs[field.name]) {
      problem = gettext("%(field)s is required.", { field: field.label });
    }
    fieldError(field.name, problem);
    if (problem && !first) first = field.name;
  }
  if (first) { $(fieldId(first))?.focus(); return null; }
  const batch = Number(ui.batch.value) || 1;
  const budget = budgetProblem(batch);
  if (budget) { ui.hint.textContent = budget; return null; }
  const label = [template.title, ...template.fields
    .filter((f) => f.kind !== "image" && inputs[f.name]).map((f) => shownValue(f, inputs[f.name]))]
    .join(" · ");
  const previews = template.fields.filter((f) => f.kind === "image" && state.images[f.name])
    .map((f) => state.images[f.name].preview);
  return { body: { template: template.slug, inputs, batch_size: batch }, label, previews };
}

/** An input as the reader knows it: a select's option by its translated label. */
function shownValue(field, value) {
  const at = field.kind === "select" ? (field.options || []).indexOf(value) : -1;
  return at >= 0 ? field.option_labels?.[at] || value : value;
}

/** A refused template submission: the field the server names is marked, else the banner. */
export function showTemplateError(error) {
  const field = Object.keys(error?.fields || {}).find((k) => k.startsWith("inputs."));
  if (field && fieldError(field.slice("inputs.".length), error.message)) {
    $(fieldId(field.slice("inputs.".length)))?.focus();
    return true;
  }
  showBanner(...describeError(error));
  return false;
}

export function wireTemplates() {
  button.addEventListener("click", () => dialog.showModal());
  closeButton.addEventListener("click", () => leave());
  // A click on the backdrop closes the dialog, as Escape does.
  dialog.addEventListener("click", (event) => { if (event.target === dialog) dialog.close(); });
}
