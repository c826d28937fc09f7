// Plexus console: live updates without reloading the page. The server sends
// Server-Sent Events naming what changed (incidents, flags, config); the page
// then fetches the affected fragments, rendered and escaped by the server
// with the user's own rights. No inline script, no outside resources.
(() => {
  'use strict';
  if (document.body.dataset.page === 'login') return;
  const live = document.getElementById('live');

  async function refresh(path, id) {
    const el = document.getElementById(id);
    if (!el) return;
    // Never pull a form out from under someone typing in it.
    if (el.contains(document.activeElement) && document.activeElement !== document.body) return;
    let r;
    try {
      r = await fetch(path, { credentials: 'same-origin', headers: { Accept: 'text/html' } });
    } catch (_) {
      return; // a network hiccup: the next event or tick retries
    }
    if (r.status === 401) {
      location.href = '/console/login?expired=1&next=' + encodeURIComponent(location.pathname);
      return;
    }
    if (!r.ok) return;
    const tpl = document.createElement('template');
    tpl.innerHTML = await r.text();
    el.replaceChildren(tpl.content);
  }

  const events = new EventSource('/console/events');
  events.addEventListener('open', () => { if (live) live.hidden = false; });
  events.addEventListener('error', () => { if (live) live.hidden = true; });
  events.addEventListener('incidents', () => {
    refresh('/console/fragments/banner', 'banner');
    refresh('/console/fragments/open-incidents', 'open-incidents');
    refresh('/console/fragments/incidents', 'incident-list');
  });
  events.addEventListener('flags', () => refresh('/console/fragments/flags', 'flag-table'));
  // The registry's pages show every shared document, the flags and the
  // incidents included.
  const doc = document.getElementById('config-doc');
  for (const kind of ['config', 'flags', 'incidents']) {
    events.addEventListener(kind, () => {
      refresh('/console/fragments/config', 'config-list');
      if (doc) refresh('/console/fragments/config-doc?name=' + encodeURIComponent(doc.dataset.name), 'config-doc');
    });
  }
  window.addEventListener('pagehide', () => events.close());

  if (document.getElementById('figures')) {
    setInterval(() => refresh('/console/fragments/figures', 'figures'), 5000);
  }
})();
