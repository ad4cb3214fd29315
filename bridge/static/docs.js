// The API reference at /docs: Swagger UI (served from the swagger-ui-bundle-v2 package, no CDN) over
// the bridge's own /openapi.json. A file, not an inline script: the page's CSP allows only 'self'.
window.ui = SwaggerUIBundle({
  url: "/openapi.json",
  dom_id: "#swagger-ui",
  deepLinking: true,
  presets: [SwaggerUIBundle.presets.apis],
  layout: "BaseLayout",
});
