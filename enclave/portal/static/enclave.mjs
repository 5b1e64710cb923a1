// Progressive enhancement only: every page works without JavaScript. GOV.UK Frontend's components
// (the service navigation's menu button, the error summary's focus) start here; no inline script,
// so the Content-Security-Policy can forbid it.
import { initAll } from "./govuk-frontend.min.js";

document.body.classList.add("js-enabled", "govuk-frontend-supported");
initAll();
