// Tessera's own script: drag a card onto another column to move it. The drop submits the
// card's own move form for that column (the same form its buttons submit), so a drag, a
// click and the keyboard all take one path.
(function () {
  "use strict";
  let dragged = null;
  document.addEventListener("dragstart", function (event) {
    const card = event.target.closest && event.target.closest(".card[data-task]");
    if (!card) return;
    dragged = card;
    event.dataTransfer.effectAllowed = "move";
    event.dataTransfer.setData("text/plain", card.dataset.task);
  });
  document.addEventListener("dragover", function (event) {
    const column = event.target.closest && event.target.closest(".column[data-status]");
    if (column && dragged) {
      event.preventDefault();
      column.classList.add("drop-target");
    }
  });
  document.addEventListener("dragleave", function (event) {
    const column = event.target.closest && event.target.closest(".column[data-status]");
    if (column) column.classList.remove("drop-target");
  });
  document.addEventListener("drop", function (event) {
    const column = event.target.closest && event.target.closest(".column[data-status]");
    if (!column || !dragged) return;
    event.preventDefault();
    column.classList.remove("drop-target");
    const form = dragged.querySelector('form[data-move="' + column.dataset.status + '"]');
    dragged = null;
    if (form) form.requestSubmit();
  });
})();
