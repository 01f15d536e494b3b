/* Behaviour the pages used to write inline (onchange=, onsubmit=), which the Content-Security-Policy refuses:
   <select data-autosubmit> submits its form when changed; <form data-confirm="question"> asks before submitting. */
document.addEventListener("change", (event) => {
  const select = event.target.closest("select[data-autosubmit]");
  if (select && select.form) select.form.submit();
});
document.addEventListener("submit", (event) => {
  const form = event.target.closest("form[data-confirm]");
  if (form && !window.confirm(form.dataset.confirm)) event.preventDefault();
});
