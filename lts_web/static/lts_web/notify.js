/* "Notify me when it ends": a browser notification (the Notification API) when the search, training run or proxy
   check of this page ends, asked for on the page and kept while the page is open (a reload included: the request is
   remembered in sessionStorage until it has been shown). The element:
     <button data-notify data-notify-api="/api/v1/..." data-notify-status="running" data-notify-title="..." hidden>
   Its API answer's `status` is polled every 5 s; completed, failed and cancelled end the work. */
(function () {
  const ENDED = ["completed", "failed", "cancelled"];
  const POLL_MS = 5000;
  const key = (el) => "lts-notify:" + el.dataset.notifyApi;

  function notify(el, status) {
    sessionStorage.removeItem(key(el));
    try {
      const shown = new Notification(`${el.dataset.notifyTitle} ${status}`,
                                     {body: "LTS Studio", tag: key(el)});
      shown.onclick = () => { window.focus(); shown.close(); };
    } catch (e) { /* a browser that refuses page notifications: the page itself shows the status */ }
    el.textContent = `It ${status === "completed" ? "completed" : status === "failed" ? "failed" : "was cancelled"}`;
    el.disabled = true;
  }

  function watch(el) {
    sessionStorage.setItem(key(el), "1");
    el.disabled = true;
    el.textContent = "You will be notified when it ends";
    async function poll() {
      try {
        const response = await fetch(el.dataset.notifyApi, {headers: {Accept: "application/json"},
                                                            credentials: "same-origin"});
        if (response.ok) {
          const body = await response.json();
          if (ENDED.includes(body.status)) { notify(el, body.status); return; }
        }
      } catch (e) { /* the next poll retries */ }
      setTimeout(poll, POLL_MS);
    }
    poll();
  }

  for (const el of document.querySelectorAll("[data-notify]")) {
    if (!("Notification" in window)) continue;  // stays hidden: this browser has no notifications
    if (ENDED.includes(el.dataset.notifyStatus)) {  // ended while the page reloaded: tell now, if asked
      if (sessionStorage.getItem(key(el)) && Notification.permission === "granted") notify(el, el.dataset.notifyStatus);
      continue;
    }
    el.hidden = false;
    if (sessionStorage.getItem(key(el)) && Notification.permission === "granted") { watch(el); continue; }
    if (Notification.permission === "denied") {
      el.disabled = true;
      el.title = "Notifications are blocked for this site in the browser's settings";
    }
    el.addEventListener("click", async () => {
      const permission = Notification.permission === "granted" ? "granted" : await Notification.requestPermission();
      if (permission === "granted") { watch(el); return; }
      el.disabled = true;
      el.textContent = "Notifications are blocked in this browser";
      el.title = "Allow notifications for this site in the browser's settings, then reload";
    });
  }
})();
