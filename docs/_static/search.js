// sparseface docs: search-as-you-type over search.json (built by tools/build_docs.py), plus the mobile nav toggle.
(function () {
  'use strict';
  var root = document.body.getAttribute('data-root') || '';
  var input = document.getElementById('search-input');
  var list = document.getElementById('search-results');
  var index = null, loading = null, active = -1;

  var toggle = document.querySelector('.nav-toggle');
  if (toggle) toggle.addEventListener('click', function () { document.body.classList.toggle('nav-open'); });
  if (!input || !list) return;

  function load() {
    if (index) return Promise.resolve(index);
    if (!loading) {
      loading = fetch(root + 'search.json')
        .then(function (r) { if (!r.ok) throw new Error('search.json: HTTP ' + r.status); return r.json(); })
        .then(function (data) {
          index = data.map(function (e) {
            return { e: e, p: e.p.toLowerCase(), s: e.s.toLowerCase(), t: e.t.toLowerCase() };
          });
          return index;
        })
        .catch(function (err) { loading = null; throw err; });
    }
    return loading;
  }

  function score(it, q, terms) {
    var sc = 0;
    for (var i = 0; i < terms.length; i++) {
      var w = terms[i], hit = false;
      if (it.s.indexOf(w) >= 0) { sc += 20; hit = true; }
      if (it.p.indexOf(w) >= 0) { sc += 8; hit = true; }
      if (it.t.indexOf(w) >= 0) { sc += 1 + Math.min(4, it.t.split(w).length - 1); hit = true; }
      if (!hit) return 0;
    }
    if (it.s === q) sc += 100;
    else if (it.s.indexOf(q) === 0) sc += 30;
    if (!it.s && it.p === q) sc += 60;
    return sc;
  }

  function highlighted(text, terms) {
    // Build a DocumentFragment with <mark> around matches (no innerHTML: search text is data).
    var frag = document.createDocumentFragment(), low = text.toLowerCase(), pos = 0;
    while (pos < text.length) {
      var best = -1, len = 0;
      for (var i = 0; i < terms.length; i++) {
        var j = low.indexOf(terms[i], pos);
        if (j >= 0 && (best < 0 || j < best)) { best = j; len = terms[i].length; }
      }
      if (best < 0) { frag.appendChild(document.createTextNode(text.slice(pos))); break; }
      if (best > pos) frag.appendChild(document.createTextNode(text.slice(pos, best)));
      var m = document.createElement('mark'); m.textContent = text.slice(best, best + len); frag.appendChild(m);
      pos = best + len;
    }
    return frag;
  }

  function snippet(text, terms) {
    var low = text.toLowerCase(), at = -1;
    for (var i = 0; i < terms.length && at < 0; i++) at = low.indexOf(terms[i]);
    var start = Math.max(0, at - 40);
    return (start > 0 ? '…' : '') + text.slice(start, start + 160);
  }

  function setActive(i) {
    var links = list.querySelectorAll('a');
    if (!links.length) { active = -1; return; }
    active = (i + links.length) % links.length;
    links.forEach(function (a, k) { a.classList.toggle('active', k === active); });
    links[active].scrollIntoView({ block: 'nearest' });
  }

  function render(q) {
    q = q.trim().toLowerCase();
    list.textContent = '';
    active = -1;
    if (!q) { list.hidden = true; return; }
    var terms = q.split(/\s+/).filter(Boolean);
    var res = [];
    index.forEach(function (it, k) { var s = score(it, q, terms); if (s > 0) res.push([s, k, it.e]); });
    res.sort(function (a, b) { return b[0] - a[0] || a[1] - b[1]; });
    res = res.slice(0, 15);
    if (!res.length) {
      var li = document.createElement('li'); li.className = 'empty'; li.textContent = 'No results for “' + q + '”';
      list.appendChild(li);
    }
    res.forEach(function (r) {
      var e = r[2], li = document.createElement('li'), a = document.createElement('a');
      a.href = root + e.u;
      var t = document.createElement('span'); t.className = 'r-title'; t.appendChild(highlighted(e.s || e.p, terms));
      a.appendChild(t);
      if (e.s) { var pg = document.createElement('span'); pg.className = 'r-page'; pg.textContent = ' — ' + e.p; a.appendChild(pg); }
      if (e.t) { var sn = document.createElement('span'); sn.className = 'r-snip'; sn.appendChild(highlighted(snippet(e.t, terms), terms)); a.appendChild(sn); }
      li.appendChild(a);
      list.appendChild(li);
    });
    list.hidden = false;
  }

  function update() {
    var q = input.value;
    load().then(function () { if (input.value === q) render(q); }, function (err) {
      list.textContent = '';
      var li = document.createElement('li'); li.className = 'empty'; li.textContent = 'Search is unavailable (' + err.message + ')';
      list.appendChild(li); list.hidden = false;
    });
  }

  input.addEventListener('focus', function () { load().catch(function () {}); if (input.value) update(); });
  input.addEventListener('input', update);
  input.addEventListener('keydown', function (ev) {
    if (ev.key === 'ArrowDown') { ev.preventDefault(); setActive(active + 1); }
    else if (ev.key === 'ArrowUp') { ev.preventDefault(); setActive(active - 1); }
    else if (ev.key === 'Enter') {
      var links = list.querySelectorAll('a');
      if (links.length) { ev.preventDefault(); window.location.href = links[Math.max(active, 0)].href; }
    } else if (ev.key === 'Escape') { list.hidden = true; input.blur(); }
  });
  document.addEventListener('click', function (ev) {
    if (!list.contains(ev.target) && ev.target !== input) list.hidden = true;
  });
  document.addEventListener('keydown', function (ev) {
    if (ev.key === '/' && document.activeElement !== input && !/^(INPUT|TEXTAREA|SELECT)$/.test(document.activeElement.tagName)) {
      ev.preventDefault(); input.focus();
    }
  });
})();
