// covfleet binary page: stat cards, file table (search/filter/sort), and a
// virtualized source viewer: only the lines in view exist in the DOM, so a
// 100,000-line file scrolls as fast as a short one.
// Deep links: #f=<file path>&l=<line>&v=<list|source|split>.
(function () {
  'use strict';
  var data = JSON.parse(document.getElementById('covfleet-data').textContent);
  var files = data.files;
  var ROW = 18, OVERSCAN = 40;
  var $ = function (id) { return document.getElementById(id); };
  var state = { q: '', tier: '', src: '', key: 'p', dir: 1, cur: -1, view: 'split', line: 0 };
  var loaded = {};
  var view = null; // { i, lines, st, n }

  function tier(p) { return p < 25 ? 'red' : p < 50 ? 'orange' : p < 75 ? 'yellow' : 'green'; }
  function el(tag, cls, text) {
    var e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined && text !== null) e.textContent = String(text);
    return e;
  }
  function fmtPct(p) { return p.toFixed(1) + '%'; }
  function fmtNum(n) { return Number(n).toLocaleString('en-US'); }
  files.forEach(function (f, i) { f.i = i; f.pct = f.t ? (100 * f.c) / f.t : 0; f.tier = tier(f.pct); f.lp = f.p.toLowerCase(); });

  // Header and cards.
  var r = data.row;
  var meta = [r.ty + ' ' + r.ow, 'namespace ' + r.ns];
  if (data.source_via) meta.push('source via ' + data.source_via);
  else meta.push('source not found (numbers only)');
  if (r.src) meta.push(r.src + (r.commit ? ' @ ' + r.commit : ''));
  $('meta').textContent = meta.join(' · ');
  (function cards() {
    var t = 0, c = 0, ws = 0;
    files.forEach(function (f) { t += f.t; c += f.c; if (f.s) ws++; });
    var box = $('cards');
    [[fmtPct(t ? (100 * c) / t : 0), 'coverage'], [fmtNum(c) + ' / ' + fmtNum(t), 'statements run'],
     [fmtNum(files.length), 'files'], [fmtNum(ws), 'files with source'],
     r.pods.length || !r.hosts.length ? [fmtNum(r.pods.length), 'pods'] : [fmtNum(r.hosts.length), 'hosts']]
      .forEach(function (x) {
        var d = el('div', 'card'); d.appendChild(el('div', 'v', x[0])); d.appendChild(el('div', 'l', x[1])); box.appendChild(d);
      });
  })();

  // File table.
  function visible() {
    var q = state.q.toLowerCase().trim().split(/\s+/).filter(Boolean);
    return files.filter(function (f) {
      if (state.tier && f.tier !== state.tier) return false;
      if (state.src === '1' && !f.s) return false;
      if (state.src === '0' && f.s) return false;
      for (var k = 0; k < q.length; k++) if (f.lp.indexOf(q[k]) < 0) return false;
      return true;
    });
  }
  function compare(a, b) {
    var x = a[state.key], y = b[state.key], d;
    if (typeof x === 'string') d = x.localeCompare(y); else d = Number(x) - Number(y);
    if (d === 0) d = a.i - b.i;
    return d * state.dir;
  }
  function drawFiles() {
    var list = visible().sort(compare);
    var tb = $('files').tBodies[0], frag = document.createDocumentFragment();
    list.forEach(function (f) {
      var tr = el('tr', 'frow tier-' + f.tier + (f.i === state.cur ? ' sel' : ''));
      tr.dataset.i = f.i;
      tr.appendChild(el('td', 'path', f.p));
      var tdp = el('td', 'num'), b = el('span', 'bar'), bi = el('i', 'tier-' + f.tier);
      bi.style.width = f.pct.toFixed(1) + '%'; b.appendChild(bi); tdp.appendChild(b);
      tdp.appendChild(el('span', 'pct tier-' + f.tier, fmtPct(f.pct)));
      tr.appendChild(tdp);
      tr.appendChild(el('td', 'num', fmtNum(f.c)));
      tr.appendChild(el('td', 'num', fmtNum(f.t)));
      tr.appendChild(el('td', f.s ? 'num' : 'num nosrc', f.s ? fmtNum(f.n) + ' lines' : 'not found'));
      tr.tabIndex = 0;
      tr.addEventListener('click', function () { go(f.i, 0); });
      tr.addEventListener('keydown', function (e) { if (e.key === 'Enter' || e.key === ' ') { e.preventDefault(); go(f.i, 0); } });
      frag.appendChild(tr);
    });
    tb.textContent = ''; tb.appendChild(frag);
    $('count').textContent = list.length + ' of ' + files.length + ' files';
    Array.prototype.forEach.call(document.querySelectorAll('#files th[data-key]'), function (th) {
      if (th.dataset.key === state.key) th.setAttribute('aria-sort', state.dir > 0 ? 'ascending' : 'descending');
      else th.removeAttribute('aria-sort');
    });
  }
  $('q').addEventListener('input', function (e) { state.q = e.target.value; drawFiles(); });
  $('f-tier').addEventListener('change', function (e) { state.tier = e.target.value; drawFiles(); });
  $('f-src').addEventListener('change', function (e) { state.src = e.target.value; drawFiles(); });
  Array.prototype.forEach.call(document.querySelectorAll('#files th[data-key]'), function (th) {
    th.tabIndex = 0;
    th.addEventListener('keydown', function (e) { if (e.key === 'Enter' || e.key === ' ') { e.preventDefault(); th.click(); } });
    th.addEventListener('click', function () {
      var k = th.dataset.key;
      if (state.key === k) state.dir = -state.dir; else { state.key = k; state.dir = th.dataset.num ? -1 : 1; }
      drawFiles();
    });
  });

  // Views.
  function setView(v) {
    if (['list', 'source', 'split'].indexOf(v) < 0) v = 'split';
    state.view = v;
    document.body.classList.remove('view-list', 'view-source', 'view-split');
    document.body.classList.add('view-' + v);
    Array.prototype.forEach.call(document.querySelectorAll('.views button'), function (b) {
      b.classList.toggle('on', b.dataset.view === v);
      b.setAttribute('aria-pressed', b.dataset.view === v ? 'true' : 'false');
    });
    paint();
  }
  Array.prototype.forEach.call(document.querySelectorAll('.views button'), function (b) {
    b.addEventListener('click', function () { setView(b.dataset.view); writeHash(); });
  });

  // Per-file data and shared source texts arrive through <script> tags
  // (works from file://): covfleetFiles(bundle, {file index: data}) and
  // covfleetSources(key, {text hash: text}).
  var texts = {}, pending = {};
  function fetchScript(key, url, cb) {
    if (pending[key]) { pending[key].push(cb); return; }
    pending[key] = [cb];
    var s = document.createElement('script');
    s.src = url;
    s.onerror = function () { delete pending[key]; showNote('Could not load ' + url); };
    document.body.appendChild(s);
  }
  function arrived(key) {
    (pending[key] || []).forEach(function (cb) { cb(); });
    delete pending[key];
  }
  window.covfleetFiles = function (k, map) {
    Object.keys(map).forEach(function (i) { loaded[i] = map[i]; });
    arrived('d' + k);
  };
  window.covfleetSources = function (key, map) {
    Object.keys(map).forEach(function (h) { texts[h] = map[h]; });
    arrived('s' + key);
  };
  function load(i, cb) {
    var f = files[i], need = 1;
    function done() { if (--need === 0) cb(loaded[i], f.h ? texts[f.h] : null); }
    if (f.h && texts[f.h] === undefined) { need++; fetchScript('s' + f.sb, '../src/' + f.sb + '.js', done); }
    if (!loaded[i]) { need++; fetchScript('d' + f.d, data.data_dir + '/' + f.d + '.js', done); }
    done();
  }

  var body = $('vbody'), spacer = $('vspacer');
  function showNote(text) {
    view = null;
    spacer.textContent = ''; spacer.style.height = 'auto';
    spacer.appendChild(el('div', 'note', text));
  }
  function open(i, line) {
    var f = files[i];
    state.cur = i; state.line = line || 0;
    $('vname').textContent = f.p;
    $('vstats').textContent = fmtPct(f.pct) + ' · ' + fmtNum(f.c) + ' / ' + fmtNum(f.t) + ' statements';
    Array.prototype.forEach.call(document.querySelectorAll('#files tr.frow'), function (tr) {
      tr.classList.toggle('sel', Number(tr.dataset.i) === i);
    });
    // Drop the previous file's lines at once (the new ones may take a moment).
    if (!view || view.i !== i) { view = null; spacer.textContent = ''; spacer.style.height = '0px'; }
    load(i, function (d, src) {
      if (state.cur !== i) return;
      if (src === null || src === undefined) { noSource(f, d); return; }
      var lines = src.split('\n');
      if (lines.length && lines[lines.length - 1] === '' ) lines.pop();
      view = { i: i, lines: lines, st: d.st, n: d.n, part: partialBlocks(d) };
      spacer.textContent = '';
      painted.a = -1; // the rows were just removed: always repaint
      spacer.style.height = lines.length * ROW + 'px';
      var target = state.line > 0 ? (state.line - 1) * ROW - body.clientHeight / 3 : 0;
      body.scrollTop = Math.max(0, target);
      paint();
    });
  }
  function noSource(f, d) {
    showNote('Source not found for this file; its coverage blocks:');
    var t = el('table', 'blocks'), h = el('tr');
    ['lines', 'columns', 'statements', 'count'].forEach(function (x) { h.appendChild(el('th', null, x)); });
    t.appendChild(h);
    d.b.slice().sort(function (a, b) { return a[0] - b[0] || a[1] - b[1]; }).forEach(function (b) {
      var tr = el('tr', b[5] > 0 ? 'c' : 'm');
      [b[0] + '–' + b[2], b[1] + '–' + b[3], b[4], b[5]].forEach(function (x) { tr.appendChild(el('td', null, x)); });
      t.appendChild(tr);
    });
    spacer.appendChild(t);
  }
  // Lines where some blocks ran and some did not: which blocks touch them.
  function partialBlocks(d) {
    var part = {};
    d.b.forEach(function (b) {
      for (var l = b[0]; l <= b[2]; l++) {
        if (d.st.charAt(l - 1) === 'p') (part[l] = part[l] || []).push(b);
      }
    });
    return part;
  }
  // A partial line split at block boundaries (Go columns are 1-based bytes;
  // exact for ASCII), each piece coloured by its block.
  function segments(text, line, blocks) {
    var mark = new Array(text.length + 1).join('.').split('');
    blocks.forEach(function (b) {
      var from = b[0] < line ? 0 : b[1] - 1, to = b[2] > line ? text.length : Math.min(text.length, b[3] - 1);
      for (var c = Math.max(0, from); c < to; c++) mark[c] = b[5] > 0 ? 'c' : 'm';
    });
    var code = el('span', 'code'), k = 0;
    while (k < text.length) {
      var j = k;
      while (j < text.length && mark[j] === mark[k]) j++;
      code.appendChild(mark[k] === '.' ? document.createTextNode(text.slice(k, j)) : el('span', 'seg-' + mark[k], text.slice(k, j)));
      k = j;
    }
    return code;
  }
  var painted = { a: -1, b: -1, i: -1 }, raf = 0;
  function paint() {
    raf = 0;
    if (!view) return;
    var top = body.scrollTop, h = body.clientHeight || 600;
    var a = Math.max(0, Math.floor(top / ROW) - OVERSCAN);
    var b = Math.min(view.lines.length, Math.ceil((top + h) / ROW) + OVERSCAN);
    if (painted.a === a && painted.b === b && painted.i === view.i && painted.t === state.line) return;
    painted = { a: a, b: b, i: view.i, t: state.line };
    var frag = document.createDocumentFragment();
    for (var k = a; k < b; k++) {
      var s = view.st.charAt(k), cls = 'ln' + (s && s !== '.' ? ' ' + s : '') + (k + 1 === state.line ? ' target' : '');
      var d = el('div', cls);
      d.style.top = k * ROW + 'px';
      d.dataset.line = k + 1;
      d.appendChild(el('span', 'no', k + 1));
      d.appendChild(el('span', 'hc', s && s !== '.' ? (view.n[k] > 0 ? fmtNum(view.n[k]) + '×' : '0') : ''));
      d.appendChild(s === 'p' && view.part[k + 1] ? segments(view.lines[k], k + 1, view.part[k + 1]) : el('span', 'code', view.lines[k]));
      frag.appendChild(d);
    }
    spacer.textContent = '';
    spacer.appendChild(frag);
  }
  body.addEventListener('scroll', function () { if (!raf) raf = requestAnimationFrame(paint); });
  window.addEventListener('resize', function () { painted.a = -1; paint(); });
  $('next-miss').addEventListener('click', function () {
    if (!view) return;
    var from = Math.floor(body.scrollTop / ROW) + Math.ceil(body.clientHeight / ROW / 3) + 1;
    var k = view.st.indexOf('m', from);
    if (k < 0) k = view.st.indexOf('m');
    if (k < 0) return;
    // Skip to the start of a run of missed lines.
    state.line = k + 1;
    body.scrollTop = Math.max(0, k * ROW - body.clientHeight / 3);
    painted.a = -1; paint();
    writeHash();
  });

  // Deep links.
  function writeHash() {
    var h = new URLSearchParams();
    if (state.cur >= 0) h.set('f', files[state.cur].p);
    if (state.line > 0) h.set('l', String(state.line));
    if (state.view !== 'split') h.set('v', state.view);
    var s = h.toString();
    if (('#' + s) !== location.hash) history.replaceState(null, '', s ? '#' + s : location.pathname);
  }
  function go(i, line) { open(i, line); writeHash(); }
  function readHash() {
    var h = new URLSearchParams(location.hash.replace(/^#/, ''));
    setView(h.get('v') || 'split');
    var p = h.get('f'), line = parseInt(h.get('l') || '0', 10) || 0;
    var found = -1;
    if (p !== null) files.forEach(function (f) { if (f.p === p) found = f.i; });
    if (found >= 0) open(found, line);
    else if (files.length) {
      // Nothing linked: open the least covered file with source.
      var best = -1;
      files.forEach(function (f) { if (f.s && f.t && (best < 0 || f.pct < files[best].pct)) best = f.i; });
      open(best >= 0 ? best : 0, 0);
    } else showNote('No files.');
  }
  window.addEventListener('hashchange', readHash);
  drawFiles();
  readHash();
})();
