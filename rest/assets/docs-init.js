// Starts Swagger UI on /api/docs. Kept out of the HTML so the page runs under a strict CSP.
window.addEventListener("load", function () {
  window.ui = SwaggerUIBundle({
    url: "/api/openapi.json",
    dom_id: "#swagger-ui",
    persistAuthorization: true,
    validatorUrl: null, // no calls to the public validator (the CSP would block them anyway)
  });
});
