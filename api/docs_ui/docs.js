// The API's documentation: Swagger UI (vendored under swagger-ui/) over /openapi.json.
window.ui = SwaggerUIBundle({
  url: "/openapi.json",
  dom_id: "#swagger-ui",
  deepLinking: true,
  // The team key entered under Authorize is kept in this browser, like the dashboard's.
  persistAuthorization: true,
  // Swagger UI would otherwise ask validator.swagger.io for a badge: no other host.
  validatorUrl: null,
  presets: [SwaggerUIBundle.presets.apis],
  layout: "BaseLayout",
});
