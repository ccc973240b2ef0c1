// The console's only script: switch a run between its tree and its timeline, focus an opened
// span panel, and ask for confirmation before a paused run is resumed. Everything else is plain HTML.
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
