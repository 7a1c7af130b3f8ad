// The JSON API of DESIGN section 6: calls with the CSRF token, uploads with progress, ApiError.
import { gettext, ngettext } from "./i18n.js";

/** Said only when the server gave no words of its own: a lost connection, a proxy's error page. */
export const FALLBACK_MESSAGE = gettext("Something went wrong. Please try again.");

let csrf = document.querySelector('meta[name="csrf-token"]')?.content || "";
let sessionEnded = false;
let onSessionEnd = () => {};

export class ApiError extends Error {
  constructor(status, code, message, fields = {}) {
    super(message || FALLBACK_MESSAGE);
    this.status = status;
    this.code = code || (status ? "error" : "network_error");
    this.fields = fields || {};
  }
}

/** "30 MB", "512 KB": a size in the words a person uses (as errors.describe_size). */
export function describeSize(bytes) {
  const mb = 1024 * 1024;
  if (bytes >= mb) return gettext("%(size)s MB", { size: Number((bytes / mb).toFixed(bytes % mb ? 1 : 0)) });
  return bytes >= 1024 ? gettext("%(size)s KB", { size: Math.round(bytes / 1024) })
    : ngettext("%(num)s byte", "%(num)s bytes", bytes);
}

/** "Too large: 30 MB, at most 12 MB.": the one message of a too-large upload. */
export const tooLargeText = (bytes, limit) =>
  (limit ? gettext("Too large: %(size)s, at most %(limit)s.", { size: describeSize(bytes), limit: describeSize(limit) })
    : gettext("Too large: %(size)s.", { size: describeSize(bytes) }));

/** A too-large upload, whoever refused it: the app (JSON) or a server in front of it (an HTML
 * 413 page), with the server's limit as the page was given it. */
function tooLarge(file) {
  const limit = Number(document.getElementById("chat")?.dataset.uploadMaxBytes) || 0;
  return new ApiError(413, "payload_too_large", tooLargeText(file.size, limit), { file: "too_large" });
}

/** Run `handler` once, on the first answer that says the person is no longer logged in. */
export function whenSessionEnds(handler) {
  onSessionEnd = handler;
}

export const hasSessionEnded = () => sessionEnded;

function endSession() {
  if (sessionEnded) return;
  sessionEnded = true;
  onSessionEnd();
}

async function request(method, path, body, extraHeaders = {}, signal = undefined) {
  const headers = { Accept: "application/json", ...extraHeaders };
  if (method !== "GET") headers["X-CSRF-Token"] = csrf;
  let payload;
  if (body instanceof FormData) payload = body;
  else if (body !== undefined) {
    headers["Content-Type"] = "application/json";
    payload = JSON.stringify(body);
  }
  let response;
  try {
    response = await fetch(path, { method, headers, body: payload, credentials: "same-origin", signal });
  } catch (error) {
    if (error?.name === "AbortError") throw new ApiError(0, "aborted", gettext("Cancelled."));
    throw new ApiError(0, "network_error", gettext("Could not reach nproxy. Check your connection."));
  }
  let data = null;
  if (response.status !== 204) data = await response.json().catch(() => null);
  if (!response.ok) {
    const error = data?.error || {};
    throw new ApiError(response.status, error.code, error.message, error.fields);
  }
  return data;
}

/** The JSON API, with the two failures every call shares handled once. `signal` aborts it. */
export async function api(method, path, body, { headers = {}, retried = false, signal } = {}) {
  try {
    return await request(method, path, body, headers, signal);
  } catch (error) {
    if (error.status === 401) endSession();
    // The CSRF token changes when the session is renewed (log in in another tab): fetch the
    // current one and try once more rather than failing the user's action.
    if (error.status === 403 && method !== "GET" && !retried && /csrf/i.test(error.message)) {
      const session = await request("GET", "/api/v1/session");
      csrf = session.csrf_token;
      return api(method, path, body, { headers, retried: true, signal });
    }
    throw error;
  }
}

/**
 * POST one file to /api/v1/uploads, reporting progress as a percentage. XHR rather than fetch:
 * fetch cannot report upload progress. `done` settles with the upload or an ApiError (code
 * "aborted" after `abort()`).
 */
export function uploadImage(file, onProgress) {
  const form = new FormData();
  form.append("file", file);
  const xhr = new XMLHttpRequest();
  const done = new Promise((resolve, reject) => {
    xhr.upload.addEventListener("progress", (event) => {
      if (event.lengthComputable) onProgress(Math.round((event.loaded / event.total) * 100));
    });
    xhr.addEventListener("load", () => {
      let data = null;
      try { data = JSON.parse(xhr.responseText); } catch { /* not JSON: treated as an error */ }
      if (xhr.status === 201 && data?.id) { resolve(data); return; }
      if (xhr.status === 401) endSession();
      if (xhr.status === 413 || data?.error?.fields?.file === "too_large") { reject(tooLarge(file)); return; }
      reject(new ApiError(xhr.status, data?.error?.code,
        data?.error?.message || gettext("This image could not be uploaded.")));
    });
    xhr.addEventListener("error", () =>
      reject(new ApiError(0, "network_error", gettext("Upload failed: check your connection."))));
    xhr.addEventListener("abort", () => reject(new ApiError(0, "aborted", gettext("Upload cancelled."))));
  });
  xhr.open("POST", "/api/v1/uploads");
  xhr.setRequestHeader("X-CSRF-Token", csrf);
  xhr.setRequestHeader("Accept", "application/json");
  xhr.send(form);
  return { done, abort: () => xhr.abort() };
}
