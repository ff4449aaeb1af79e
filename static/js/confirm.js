// A yes-or-no question in the page's <dialog> (templates/room.html), asked before an
// action that cannot be undone (remove, ban, leave). The dialog is modal: the focus stays
// in it, Escape cancels, and the focus goes back where it was (or to `fallback` when that
// is gone from the page).

export function makeConfirm({ dialog, title, text, ok, fallback }) {
  return function ask({ heading, body, action }) {
    return new Promise((resolve) => {
      const back = document.activeElement;
      title.textContent = heading;
      text.textContent = body;
      ok.textContent = action;
      dialog.returnValue = "";
      dialog.addEventListener(
        "close",
        () => {
          resolve(dialog.returnValue === "ok");
          // After the caller has acted (the list may be drawn again), not before.
          setTimeout(() => {
            if (back && back.isConnected) back.focus();
            else if (fallback) fallback.focus();
          }, 0);
        },
        { once: true },
      );
      dialog.showModal();
    });
  };
}
