// Keeps a view fresh by asking the server again and again, but only while someone can
// see it: a background tab asks nothing, and a returning reader gets fresh data at once.

// Runs `round` every `everyMs` while the page is visible, and at once when it becomes
// visible again; rounds never overlap, and a failing one (offline) waits for the next.
// Returns a function that runs a round now.
export function pollWhileVisible(round, everyMs) {
  let timer = 0;
  let busy = false;

  async function refresh() {
    clearTimeout(timer);
    if (busy) return;
    busy = true;
    try {
      await round();
    } catch (_) {
      // Offline for now: the next round tries again.
    } finally {
      busy = false;
    }
    if (!document.hidden) timer = setTimeout(refresh, everyMs);
  }

  document.addEventListener("visibilitychange", () => {
    if (document.hidden) clearTimeout(timer);
    else refresh();
  });
  timer = setTimeout(refresh, everyMs);
  return refresh;
}
