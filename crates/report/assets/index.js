// covfleet index: search, filters, sorting, expandable rows, deduplicated totals.
// All text goes through textContent: names in the data are never parsed as HTML.
(function () {
  'use strict';
  var data = JSON.parse(document.getElementById('covfleet-data').textContent);
  var rows = data.rows;
  rows.forEach(function (r, i) {
    r.i = i;
    r.pct = r.t ? (100 * r.c) / r.t : 0;
    r.tier = tier(r.pct);
    r.hay = [r.ns, r.ty, r.ow, r.bin].concat(r.pods, r.hosts, r.images, r.ctrs).join('\n').toLowerCase();
  });
  // Phases: each row's cumulative numbers are kept; a phase replaces them
  // with what the row ran during that phase (0 when it did not run).
  data.phases = data.phases || [];
  data.times = data.times || [];
  rows.forEach(function (r) { r.t0 = r.t; r.c0 = r.c; });
  function applyPhase(name) {
    var ph = null;
    data.phases.forEach(function (p) { if (p.name === name) ph = p; });
    rows.forEach(function (r) {
      var v = ph ? ph.rows[r.i] : null;
      if (r.page0 === undefined) r.page0 = r.page;
      // A phase's rows open their page in the phase's own site.
      r.page = ph ? ((ph.pages || {})[r.i] || null) : r.page0;
      r.t = ph ? (v ? v[0] : r.t0) : r.t0;
      r.c = ph ? (v ? v[1] : 0) : r.c0;
      r.pct = r.t ? (100 * r.c) / r.t : 0;
      r.tier = tier(r.pct);
    });
    return ph ? ph.name : '';
  }
  var rowsOfKey = {};
  rows.forEach(function (r) { rowsOfKey[r.key] = (rowsOfKey[r.key] || 0) + 1; });
  data.bins = data.bins || {};
  var state = { q: '', ns: '', ty: '', tier: '', phase: '', key: 'pct', dir: 1, open: {} };
  var $ = function (id) { return document.getElementById(id); };

  function tier(p) { return p < 25 ? 'red' : p < 50 ? 'orange' : p < 75 ? 'yellow' : 'green'; }
  function el(tag, cls, text) {
    var e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined && text !== null) e.textContent = String(text);
    return e;
  }
  function fmtPct(p) { return p.toFixed(1) + '%'; }
  function fmtNum(n) { return Number(n).toLocaleString('en-US'); }
  function bar(p) {
    var b = el('span', 'bar'), i = el('i', 'tier-' + tier(p));
    i.style.width = Math.max(0, Math.min(100, p)).toFixed(1) + '%';
    b.appendChild(i);
    return b;
  }

  function fillSelect(sel, values) {
    values.forEach(function (v) { var o = el('option', null, v || '(none)'); o.value = v; sel.appendChild(o); });
  }
  function uniq(key) {
    var s = {};
    rows.forEach(function (r) { s[r[key]] = 1; });
    return Object.keys(s).sort();
  }
  fillSelect($('f-ns'), uniq('ns'));
  fillSelect($('f-type'), uniq('ty'));
  if (data.phases.length) {
    fillSelect($('f-phase'), data.phases.map(function (p) { return p.name; }));
    Array.prototype.forEach.call($('f-phase').options, function (o) { if (o.value) o.textContent = 'Phase: ' + o.value; });
    $('f-phase').hidden = false;
  }

  // The run history strip: collection times and phases in time order, when
  // there is more than one; a phase's chip switches the index to it.
  function short(t) { return t ? String(t).replace('T', ' ').slice(0, 16) : 'open'; }
  function phasePct(p) {
    var bins = {};
    Object.keys(p.rows).forEach(function (i) {
      var r = rows[i], v = p.rows[i], b = bins[r.key];
      if (!b) b = bins[r.key] = { t: 0, c: 0 };
      b.t = Math.max(b.t, v[0]); b.c = Math.max(b.c, v[1]);
    });
    var t = 0, c = 0;
    Object.keys(bins).forEach(function (k) { t += bins[k].t; c += bins[k].c; });
    return t ? (100 * c) / t : 0;
  }
  function historyStrip() {
    var box = $('history');
    var items = data.times.map(function (x) { return { at: x[0], time: x }; })
      .concat(data.phases.map(function (p) { return { at: p.from, phase: p }; }));
    if (items.length < 2) { box.hidden = true; return; }
    items.sort(function (a, b) { return String(a.at).localeCompare(String(b.at)); });
    box.textContent = '';
    box.appendChild(el('span', 'h-title', 'Run history'));
    var all = el('button', 'chip all' + (state.phase ? '' : ' on'), 'All time');
    all.type = 'button';
    all.addEventListener('click', function () { setPhase(''); });
    items.forEach(function (it) {
      var c;
      if (it.time) {
        c = el('span', 'chip time', short(it.time[0]) + ' · ' + it.time[1] + (it.time[1] === 1 ? ' report' : ' reports'));
        c.title = 'latest snapshots collected then';
      } else {
        var p = it.phase;
        c = el('button', 'chip phase' + (state.phase === p.name ? ' on' : ''));
        c.type = 'button';
        c.dataset.phase = p.name;
        c.appendChild(el('b', null, p.name));
        c.appendChild(document.createTextNode(' ' + short(p.from) + ' → ' + short(p.to) + ' · '));
        var pp = phasePct(p);
        c.appendChild(el('span', 'pct tier-' + tier(pp), fmtPct(pp)));
        c.title = 'Show what ran during phase ' + p.name;
        c.addEventListener('click', function () { setPhase(p.name); });
      }
      box.appendChild(c);
    });
    box.appendChild(all);
    box.hidden = false;
  }
  function setPhase(name) {
    state.phase = applyPhase(name);
    $('f-phase').value = state.phase;
    draw();
  }

  // Filters and sort survive reloads and can be linked: #q=…&ns=…&ty=…&tier=…&sort=key:dir
  function readHash() {
    var h = new URLSearchParams(location.hash.replace(/^#/, ''));
    state.q = h.get('q') || ''; state.ns = h.get('ns') || ''; state.ty = h.get('ty') || '';
    state.tier = h.get('tier') || '';
    state.phase = applyPhase(h.get('phase') || '');
    $('f-phase').value = state.phase;
    var s = (h.get('sort') || '').split(':');
    if (s[0]) { state.key = s[0]; state.dir = s[1] === 'asc' ? 1 : -1; }
    $('q').value = state.q; $('f-ns').value = state.ns; $('f-type').value = state.ty; $('f-tier').value = state.tier;
  }
  function writeHash() {
    var h = new URLSearchParams();
    if (state.q) h.set('q', state.q);
    if (state.ns) h.set('ns', state.ns);
    if (state.ty) h.set('ty', state.ty);
    if (state.tier) h.set('tier', state.tier);
    if (state.phase) h.set('phase', state.phase);
    h.set('sort', state.key + ':' + (state.dir > 0 ? 'asc' : 'desc'));
    history.replaceState(null, '', '#' + h.toString());
  }

  function visible() {
    var q = state.q.toLowerCase().trim().split(/\s+/).filter(Boolean);
    return rows.filter(function (r) {
      if (state.ns && r.ns !== state.ns) return false;
      if (state.ty && r.ty !== state.ty) return false;
      if (state.tier && r.tier !== state.tier) return false;
      for (var k = 0; k < q.length; k++) if (r.hay.indexOf(q[k]) < 0) return false;
      return true;
    });
  }
  function sortKey(r) {
    switch (state.key) {
      case 'pods': return r.pods.length || r.hosts.length;
      default: return r[state.key];
    }
  }
  function compare(a, b) {
    var x = sortKey(a), y = sortKey(b), d;
    if (typeof x === 'number' || typeof y === 'number') d = (x || 0) - (y || 0);
    else d = String(x).localeCompare(String(y));
    if (d === 0) d = a.i - b.i;
    return d * state.dir;
  }

  function cards(list) {
    // Statements count once per binary: several owners may run the same
    // binary. When all its rows are shown, what they ran together (computed
    // from their blocks); else the best of the rows shown.
    var bins = {};
    list.forEach(function (r) {
      var b = bins[r.key];
      if (!b) b = bins[r.key] = { t: r.t, c: r.c, n: 0 };
      else { b.t = Math.max(b.t, r.t); b.c = Math.max(b.c, r.c); }
      b.n++;
    });
    Object.keys(bins).forEach(function (k) {
      if (!state.phase && bins[k].n === rowsOfKey[k] && data.bins[k] !== undefined) bins[k].c = data.bins[k];
    });
    var t = 0, c = 0, n = 0, pods = {};
    Object.keys(bins).forEach(function (k) { t += bins[k].t; c += bins[k].c; n++; });
    // Count what the Pods column counts: pods, and hosts for host processes (rows without pods).
    var hosts = {};
    list.forEach(function (r) {
      if (r.pods.length) r.pods.forEach(function (p) { pods[r.ns + '/' + p] = 1; });
      else r.hosts.forEach(function (h) { hosts[h] = 1; });
    });
    var np = Object.keys(pods).length, nh = Object.keys(hosts).length;
    var procs = !nh ? [fmtNum(np), 'pods'] : !np ? [fmtNum(nh), 'hosts'] : [fmtNum(np) + ' + ' + fmtNum(nh), 'pods + hosts'];
    var box = $('cards');
    box.textContent = '';
    [[fmtPct(t ? (100 * c) / t : 0), state.phase ? 'coverage in phase ' + state.phase : 'coverage (by binary)'], [fmtNum(c) + ' / ' + fmtNum(t), 'statements run'],
     [fmtNum(n), 'binaries'], [fmtNum(list.length), 'owners'], procs]
      .forEach(function (x) {
        var d = el('div', 'card'); d.appendChild(el('div', 'v', x[0])); d.appendChild(el('div', 'l', x[1])); box.appendChild(d);
      });
  }

  function detail(r) {
    var tr = el('tr', 'detail'), td = el('td');
    td.colSpan = 9;
    var dl = el('dl');
    [['Pods', r.pods], ['Hosts', r.hosts], ['Containers', r.ctrs], ['Images', r.images],
     ['Source', r.src ? [r.src + (r.commit ? ' @ ' + r.commit : '')] : []]].forEach(function (x) {
      dl.appendChild(el('dt', null, x[0] + ' (' + x[1].length + ')'));
      var dd = el('dd');
      if (!x[1].length) dd.textContent = '—';
      x[1].forEach(function (v, k) { if (k) dd.appendChild(document.createElement('br')); dd.appendChild(document.createTextNode(v)); });
      dl.appendChild(dd);
    });
    td.appendChild(dl);
    tr.appendChild(td);
    return tr;
  }

  function draw() {
    var list = visible().sort(compare);
    var tb = $('rows').tBodies[0];
    var frag = document.createDocumentFragment();
    list.forEach(function (r) {
      var tr = el('tr', 'row tier-' + r.tier);
      tr.dataset.i = r.i;
      var tdx = el('td'), b = el('button', 'tog', state.open[r.i] ? '▾' : '▸');
      b.type = 'button';
      b.title = 'Pods, hosts and images';
      b.setAttribute('aria-expanded', state.open[r.i] ? 'true' : 'false');
      b.addEventListener('click', function () { state.open[r.i] = !state.open[r.i]; draw(); });
      tdx.appendChild(b);
      tr.appendChild(tdx);
      tr.appendChild(el('td', null, r.ns));
      tr.appendChild(el('td', null, r.ty));
      var tdo = el('td');
      if (r.page) { var a = el('a', 'open', r.ow); a.href = r.page; tdo.appendChild(a); }
      else { tdo.appendChild(el('span', 'nopage', r.ow)); tdo.title = state.phase ? 'did not run during phase ' + state.phase : 'page could not be rendered'; }
      tr.appendChild(tdo);
      tr.appendChild(el('td', null, r.bin));
      var tdn = el('td', 'num', r.pods.length || r.hosts.length);
      tdn.title = r.pods.length ? r.pods.length + ' pods' : r.hosts.length + ' hosts';
      tr.appendChild(tdn);
      var tdp = el('td', 'num');
      tdp.appendChild(bar(r.pct));
      tdp.appendChild(el('span', 'pct tier-' + r.tier, fmtPct(r.pct)));
      tr.appendChild(tdp);
      tr.appendChild(el('td', 'num', fmtNum(r.c)));
      tr.appendChild(el('td', 'num', fmtNum(r.t)));
      frag.appendChild(tr);
      if (state.open[r.i]) frag.appendChild(detail(r));
    });
    tb.textContent = '';
    tb.appendChild(frag);
    $('count').textContent = list.length + ' of ' + rows.length + ' rows';
    Array.prototype.forEach.call(document.querySelectorAll('#rows th[data-key]'), function (th) {
      if (th.dataset.key === state.key) th.setAttribute('aria-sort', state.dir > 0 ? 'ascending' : 'descending');
      else th.removeAttribute('aria-sort');
    });
    cards(list);
    historyStrip();
    writeHash();
  }

  $('q').addEventListener('input', function (e) { state.q = e.target.value; draw(); });
  $('f-ns').addEventListener('change', function (e) { state.ns = e.target.value; draw(); });
  $('f-type').addEventListener('change', function (e) { state.ty = e.target.value; draw(); });
  $('f-tier').addEventListener('change', function (e) { state.tier = e.target.value; draw(); });
  $('f-phase').addEventListener('change', function (e) { setPhase(e.target.value); });
  Array.prototype.forEach.call(document.querySelectorAll('#rows th[data-key]'), function (th) {
    th.tabIndex = 0;
    th.addEventListener('keydown', function (e) { if (e.key === 'Enter' || e.key === ' ') { e.preventDefault(); th.click(); } });
    th.addEventListener('click', function () {
      var k = th.dataset.key;
      if (state.key === k) state.dir = -state.dir;
      else { state.key = k; state.dir = th.dataset.num ? -1 : 1; }
      draw();
    });
  });
  state.dir = -1;
  readHash();
  draw();
})();
