/* The candidate page: "Measure now" on a predicted candidate (POST /api/v1/candidates/ID/measure/), then reload. */
"use strict";

(() => {
  const button = document.getElementById("measure-candidate");
  if (!button) return;
  button.addEventListener("click", async () => {
    const errorBox = document.getElementById("measure-error");
    errorBox.textContent = "";
    button.disabled = true;
    const response = await LTS.api("POST", button.dataset.url);
    if (!response.ok) {
      button.disabled = false;
      errorBox.textContent = (response.data && response.data.detail) || `measure failed (HTTP ${response.status})`;
      return;
    }
    window.location.reload();
  });
})();
