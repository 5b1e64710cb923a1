// Progressive enhancement only: every page works without JavaScript. GOV.UK Frontend's components
// (the service navigation's menu button, the error summary's focus) start here; no inline script,
// so the Content-Security-Policy can forbid it.
import { initAll } from "./govuk-frontend.min.js";

document.body.classList.add("js-enabled", "govuk-frontend-supported");
initAll();

// An upload form shows how much of a large extract has been sent, then that the server is checking
// it. Without JavaScript the same form posts as usual (the browser shows its own progress).
for (const form of document.querySelectorAll("form[data-enclave-upload]")) {
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const box = form.querySelector(".enclave-upload-progress");
    const bar = form.querySelector("progress");
    const status = form.querySelector("[data-enclave-upload-status]");
    const button = form.querySelector("button[type=submit]");
    box.hidden = false;
    button.disabled = true;
    const request = new XMLHttpRequest();
    request.open("POST", form.action);
    request.upload.addEventListener("progress", (progress) => {
      if (!progress.lengthComputable) return;
      const percent = Math.floor((100 * progress.loaded) / progress.total);
      bar.value = percent;
      status.textContent = `${percent}% sent (${(progress.loaded / 1048576).toFixed(1)} of ${(progress.total / 1048576).toFixed(1)} MiB)`;
    });
    request.upload.addEventListener("load", () => {
      bar.removeAttribute("value");
      status.textContent = "Sent. Checking the extract and publishing it: a large file can take some minutes.";
    });
    request.addEventListener("load", () => {
      const target = new URL(request.responseURL || form.action);
      if (target.pathname !== new URL(form.action).pathname) {
        window.location.assign(target.href);
        return;
      }
      // Refused: show the page's error summary and the form again, as a plain post would.
      const page = new DOMParser().parseFromString(request.responseText, "text/html");
      const main = page.querySelector("main");
      if (main) {
        document.querySelector("main").replaceWith(main);
        initAll({ scope: main });
      }
      const summary = document.querySelector(".govuk-error-summary");
      if (summary) summary.focus();
    });
    request.addEventListener("error", () => {
      button.disabled = false;
      status.textContent = "The upload was interrupted. Nothing was published: check your connection and try again.";
    });
    request.send(new FormData(form));
  });
}
