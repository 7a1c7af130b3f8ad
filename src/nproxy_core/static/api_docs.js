// /docs/api: render the OpenAPI document with the vendored Swagger UI (no CDN, no inline script).
const root = document.getElementById("swagger");
window.SwaggerUIBundle({
  url: root.dataset.spec,
  domNode: root,
  deepLinking: true,
  docExpansion: "list",
  defaultModelsExpandDepth: 0,
  // "Try it out" would send requests with the reader's session cookie: reading only.
  supportedSubmitMethods: [],
});
