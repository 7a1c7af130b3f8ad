// /docs/api: render the OpenAPI document with the vendored Swagger UI (no CDN, no inline script).
const root = document.getElementById("swagger");
window.SwaggerUIBundle({
  url: root.dataset.spec,
  domNode: root,
  // Deep links would put a link inside each operation's toggle button, which screen readers
  // cannot reach as either (axe: nested-interactive).
  deepLinking: false,
  docExpansion: "list",
  defaultModelsExpandDepth: 0,
  // "Try it out" would send requests with the reader's session cookie: reading only.
  supportedSubmitMethods: [],
});

// Swagger UI leaves a few controls without a name and its scrolling code samples out of the
// keyboard's reach; mend each as it renders (it re-renders as sections open).
function mend() {
  for (const select of root.querySelectorAll("select:not([aria-label])")) {
    const row = select.closest("tr");
    const name = row?.querySelector(".parameter__name")?.textContent.trim().replace(/\s*\*$/, "");
    select.setAttribute("aria-label", select.id === "servers" ? "Server" : name || "Value");
  }
  for (const code of root.querySelectorAll("pre.microlight:not([tabindex])")) {
    code.setAttribute("tabindex", "0");
  }
}
new MutationObserver(mend).observe(root, { childList: true, subtree: true });
