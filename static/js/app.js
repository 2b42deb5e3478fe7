// Small keyboard helpers. Everything works without this file; it only adds shortcuts.
(function () {
  "use strict";
  document.addEventListener("keydown", function (event) {
    const target = event.target;
    const typing = target && (target.tagName === "INPUT" || target.tagName === "TEXTAREA" || target.tagName === "SELECT" || target.isContentEditable);
    if (typing || event.ctrlKey || event.metaKey || event.altKey) return;
    const field = document.querySelector('[data-hotkey="' + event.key + '"]');
    if (field) {
      event.preventDefault();
      field.focus();
      if (field.select) field.select();
    }
  });
  // <select data-autosubmit> submits its form when changed (no inline handlers: see the CSP).
  document.addEventListener("change", function (event) {
    const field = event.target;
    if (field.matches && field.matches("select[data-autosubmit]") && field.form) field.form.submit();
  });
  // "Select all" boxes tick every box of the same form.
  document.addEventListener("change", function (event) {
    const box = event.target;
    if (!box.matches || !box.matches("input[data-select-all]")) return;
    box.form.querySelectorAll('input[type="checkbox"][name="' + box.dataset.selectAll + '"]').forEach(function (b) {
      b.checked = box.checked;
    });
  });
})();
