// The console's only script: switch a run between its tree and its timeline, focus an opened
// span panel, ask for confirmation before a paused run is resumed, and refresh a page while
// a run on it is running. Everything else is plain HTML.
document.addEventListener("click", (event) => {
  const toggle = event.target.closest("button.toggle");
  if (!toggle) return;
  for (const view of document.querySelectorAll(".view")) view.hidden = view.id !== toggle.dataset.show;
});
document.addEventListener("submit", (event) => {
  const form = event.target.closest("form.resume");
  if (!form) return;
  const box = form.querySelector("input[name=confirm]");
  if (!box.checked || !window.confirm(`Resume run ${form.dataset.run}? Its graph runs again from its last checkpoint.`)) {
    event.preventDefault();
    box.checked = false;
  }
});
// A span's detail panel opened (?span=ID): move the keyboard focus into it.
document.addEventListener("DOMContentLoaded", () => {
  const panel = document.getElementById("span-detail");
  if (panel) panel.focus({ preventScroll: false });
});
// Live updates: a region marked data-live-every (a running run, or a list with one) is fetched
// again every so often and swapped in, until the server stops marking it. Not while the
// keyboard is inside it (a focused link would be lost), nor while the tab is hidden.
document.addEventListener("DOMContentLoaded", () => {
  const every = Number(document.getElementById("live-region")?.dataset.liveEvery || 0);
  if (!every) return;
  const timer = setInterval(async () => {
    const region = document.getElementById("live-region");
    if (document.hidden || region.contains(document.activeElement) && document.activeElement !== document.body) return;
    let fresh;
    try {
      const reply = await fetch(location.href, { headers: { "Accept": "text/html" }, credentials: "same-origin" });
      if (!reply.ok) return;
      fresh = new DOMParser().parseFromString(await reply.text(), "text/html").getElementById("live-region");
    } catch { return; }
    if (!fresh) return;
    const shown = [...region.querySelectorAll(".view")].find((v) => !v.hidden)?.id;
    region.replaceChildren(...fresh.childNodes);
    for (const view of region.querySelectorAll(".view")) if (shown) view.hidden = view.id !== shown;
    if (!fresh.dataset.liveEvery) {
      delete region.dataset.liveEvery;
      clearInterval(timer);
    }
  }, every);
});
