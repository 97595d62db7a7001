// The API docs page (/schema): Swagger UI over the document Tessera serves, nothing from elsewhere.
// A file of its own, not an inline script: the page's Content-Security-Policy allows scripts from 'self' only.
"use strict";

window.ui = SwaggerUIBundle({
  url: "/schema/openapi.json",
  dom_id: "#swagger-ui",
  deepLinking: true,
  showExtensions: true,
  showCommonExtensions: true,
  presets: [SwaggerUIBundle.presets.apis],
  layout: "BaseLayout",
  validatorUrl: null, // the validator badge would send the document to validator.swagger.io
});
