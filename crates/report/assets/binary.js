// covfleet binary page: stat cards, file table (search/filter/sort), and a
// virtualized source viewer: only the lines in view exist in the DOM, so a
// 100,000-line file scrolls as fast as a short one.
// Deep links: #f=<file path>&l=<line>&v=<list|source|split>&t=<packages|funcs>&pkg=<dir>.
// Lists: files, the package tree (directories nested by import path, each
// with everything below it), and the functions (as `covfleet report --func`
// counts them, loaded on demand), sortable by statements never run.
(function () {
  'use strict';
  var data = JSON.parse(document.getElementById('covfleet-data').textContent);
  var files = data.files;
  var ROW = 18, OVERSCAN = 40;
  var $ = function (id) { return document.getElementById(id); };
  var state = { q: '', tier: '', src: '', key: 'p', dir: 1, cur: -1, view: 'split', line: 0,
    tab: 'files', pkg: null, fkey: 'miss', fdir: -1, fnCur: false, fnAll: false };
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
  files.forEach(function (f, i) {
    f.i = i; f.pct = f.t ? (100 * f.c) / f.t : 0; f.tier = tier(f.pct); f.lp = f.p.toLowerCase();
    var k = f.p.lastIndexOf('/'); f.dir = k < 0 ? '' : f.p.slice(0, k);
  });
  // Paths are shown without the directory every file shares (the full path
  // is the cell's title; search and sort still use it).
  var prefix = (function () {
    if (!files.length) return '';
    var pre = files[0].dir;
    files.forEach(function (f) {
      while (pre && f.dir !== pre && f.dir.indexOf(pre + '/') !== 0) {
        var k = pre.lastIndexOf('/'); pre = k < 0 ? '' : pre.slice(0, k);
      }
    });
    return pre ? pre + '/' : '';
  })();
  // A path in two lines: its directory (muted, one line, cut at the start
  // when too long so the deepest directories stay visible) above its name.
  function pathCell(p, cls) { return pathInto(el('td', cls || 'path'), p); }
  function pathInto(box, p) {
    var rest = p.indexOf(prefix) === 0 ? p.slice(prefix.length) : p;
    box.textContent = '';
    box.title = p;
    // The shared prefix stays in the text (copy, find) but is not shown.
    if (rest !== p) box.appendChild(el('span', 'pre', prefix));
    var k = rest.lastIndexOf('/'), dir = k < 0 ? '' : rest.slice(0, k + 1);
    var two = el('span', dir ? 'pth two' : 'pth');
    if (dir) {
      var d = el('span', 'dir'), b = el('bdi', null, dir);
      b.dir = 'ltr'; d.appendChild(b); two.appendChild(d);
    }
    two.appendChild(el('span', 'base', rest.slice(k + 1)));
    box.appendChild(two);
    return box;
  }
  function inPkg(f) { return state.pkg === null || f.dir === state.pkg || f.dir.indexOf(state.pkg + '/') === 0; }

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
      if (!inPkg(f)) return false;
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
      tr.appendChild(pathCell(f.p));
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
    if (state.tab === 'files') $('count').textContent = list.length + ' of ' + files.length + ' files';
    Array.prototype.forEach.call(document.querySelectorAll('#files th[data-key]'), function (th) {
      if (th.dataset.key === state.key) th.setAttribute('aria-sort', state.dir > 0 ? 'ascending' : 'descending');
      else th.removeAttribute('aria-sort');
    });
  }
  $('q').addEventListener('input', function (e) { state.q = e.target.value; drawLists(); });
  $('f-tier').addEventListener('change', function (e) { state.tier = e.target.value; drawLists(); });
  $('f-src').addEventListener('change', function (e) { state.src = e.target.value; drawLists(); });
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
    pathInto($('vname'), f.p);
    $('vstats').textContent = fmtPct(f.pct) + ' · ' + fmtNum(f.c) + ' / ' + fmtNum(f.t) + ' statements';
    fileFuncsButton();
    if (state.tab === 'funcs' && state.fnCur) drawFuncs();
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
    if (state.tab !== 'files') h.set('t', state.tab);
    if (state.pkg !== null) h.set('pkg', state.pkg);
    var s = h.toString();
    if (('#' + s) !== location.hash) history.replaceState(null, '', s ? '#' + s : location.pathname);
  }
  function go(i, line) { open(i, line); writeHash(); }
  function readHash() {
    var h = new URLSearchParams(location.hash.replace(/^#/, ''));
    setView(h.get('v') || 'split');
    state.pkg = h.get('pkg');
    setTab(h.get('t') || 'files');
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

  // The package tree: a node's children are built when it is first opened.
  var tree = $('packages'), pkgs = data.pk || [];
  function pkgRow(node, depth) {
    var li = el('div', 'node'), row = el('div', 'nrow'), pct = node.t ? (100 * node.c) / node.t : 0, tr = tier(pct);
    li.setAttribute('role', 'treeitem');
    li.dataset.p = node.p;
    row.style.paddingLeft = (depth * 16) + 'px';
    var tog = el('button', 'tog', node.k.length ? '▸' : '');
    tog.type = 'button';
    if (node.k.length) { tog.setAttribute('aria-label', 'Open ' + node.p); li.setAttribute('aria-expanded', 'false'); }
    else tog.disabled = true;
    row.appendChild(tog);
    var name = el('a', 'pname', node.n || '(no directory)');
    name.href = '#'; name.title = node.p + ' — show its files';
    name.addEventListener('click', function (e) { e.preventDefault(); showPackage(node.p); });
    row.appendChild(name);
    var b = el('span', 'bar'), bi = el('i', 'tier-' + tr);
    bi.style.width = pct.toFixed(1) + '%'; b.appendChild(bi);
    var nums = el('span', 'nums');
    nums.appendChild(b);
    nums.appendChild(el('span', 'pct tier-' + tr, fmtPct(pct)));
    nums.appendChild(el('span', 'cov', fmtNum(node.c) + ' / ' + fmtNum(node.t)));
    nums.appendChild(el('span', 'nf', node.f + (node.f === 1 ? ' file' : ' files')));
    row.appendChild(nums);
    li.appendChild(row);
    var kids = null;
    function toggle(open) {
      if (!node.k.length) return;
      if (open && !kids) {
        kids = el('div', 'kids'); kids.setAttribute('role', 'group');
        node.k.forEach(function (k) { kids.appendChild(pkgRow(k, depth + 1)); });
        li.appendChild(kids);
      }
      if (kids) kids.hidden = !open;
      tog.textContent = open ? '▾' : '▸';
      li.setAttribute('aria-expanded', open ? 'true' : 'false');
    }
    tog.addEventListener('click', function () { toggle(li.getAttribute('aria-expanded') !== 'true'); });
    li.toggle = toggle;
    return li;
  }
  function drawTree() {
    if (tree.firstChild) return;
    var frag = document.createDocumentFragment();
    pkgs.forEach(function (n) { var r = pkgRow(n, 0); frag.appendChild(r); r.toggle(true); });
    tree.appendChild(frag);
    if (!pkgs.length) tree.appendChild(el('div', 'note', 'No files.'));
  }
  function countPkgs(list) { var n = 0; list.forEach(function (x) { n += 1 + countPkgs(x.k); }); return n; }
  var npkgs = countPkgs(pkgs);
  function showPackage(p) {
    state.pkg = p;
    setTab('files');
    writeHash();
  }
  $('pkgclear').addEventListener('click', function () { state.pkg = null; drawLists(); writeHash(); });

  // Functions, loaded with funcs.js: [file, line, name, receiver, covered, total].
  var funcs = null, FN_LIMIT = 1000;
  window.covfleetFuncs = function (list) {
    funcs = list.map(function (x, i) {
      var f = files[x[0]], name = x[3] ? x[3] + '.' + x[2] : x[2];
      return { i: i, fi: x[0], line: x[1], name: name, c: x[4], t: x[5], miss: x[5] - x[4],
        pct: x[5] ? (100 * x[4]) / x[5] : 0, loc: f.p + ':' + x[1], lq: (name + ' ' + f.p).toLowerCase(), f: f };
    });
    funcs.forEach(function (x) { x.tier = tier(x.pct); });
    arrived('fn');
  };
  function withFuncs(cb) {
    if (funcs) { cb(); return; }
    if (!data.fn) return;
    fetchScript('fn', data.data_dir + '/funcs.js', cb);
  }
  function drawFuncs() {
    if (!funcs) { withFuncs(drawFuncs); return; }
    var q = state.q.toLowerCase().trim().split(/\s+/).filter(Boolean);
    var list = funcs.filter(function (x) {
      if (state.fnCur && x.fi !== state.cur) return false;
      if (state.tier && x.tier !== state.tier) return false;
      if (!inPkg(x.f)) return false;
      for (var k = 0; k < q.length; k++) if (x.lq.indexOf(q[k]) < 0) return false;
      return true;
    }).sort(function (a, b) {
      var x = a[state.fkey], y = b[state.fkey], d;
      if (typeof x === 'string') d = x.localeCompare(y); else d = Number(x) - Number(y);
      if (d === 0) d = a.i - b.i;
      return d * state.fdir;
    });
    var shown = state.fnAll ? list : list.slice(0, FN_LIMIT);
    var tb = $('funcs').tBodies[0], frag = document.createDocumentFragment();
    shown.forEach(function (x) {
      var tr = el('tr', 'frow fnrow tier-' + x.tier);
      tr.appendChild(el('td', 'fname', x.name));
      var loc = pathCell(x.f.p, 'path loc');
      loc.querySelector('.base').appendChild(el('span', 'lno', ':' + x.line));
      loc.title = x.loc;
      tr.appendChild(loc);
      tr.appendChild(el('td', 'num miss', fmtNum(x.miss)));
      var tdp = el('td', 'num');
      tdp.appendChild(el('span', 'pct tier-' + x.tier, fmtPct(x.pct)));
      tr.appendChild(tdp);
      tr.appendChild(el('td', 'num', fmtNum(x.c) + ' / ' + fmtNum(x.t)));
      tr.tabIndex = 0;
      var openIt = function () { if (state.view === 'list') setView('split'); go(x.fi, x.line); };
      tr.addEventListener('click', openIt);
      tr.addEventListener('keydown', function (e) { if (e.key === 'Enter' || e.key === ' ') { e.preventDefault(); openIt(); } });
      frag.appendChild(tr);
    });
    tb.textContent = ''; tb.appendChild(frag);
    $('fn-more').hidden = shown.length === list.length;
    $('fn-all').textContent = 'Show all ' + fmtNum(list.length) + ' functions';
    if (state.tab === 'funcs') $('count').textContent = list.length + ' of ' + funcs.length + ' functions';
    Array.prototype.forEach.call(document.querySelectorAll('#funcs th[data-key]'), function (th) {
      if (th.dataset.key === state.fkey) th.setAttribute('aria-sort', state.fdir > 0 ? 'ascending' : 'descending');
      else th.removeAttribute('aria-sort');
    });
  }
  $('fn-all').addEventListener('click', function () { state.fnAll = true; drawFuncs(); });
  $('fn-cur').addEventListener('change', function (e) { state.fnCur = e.target.checked; drawFuncs(); });
  Array.prototype.forEach.call(document.querySelectorAll('#funcs th[data-key]'), function (th) {
    th.tabIndex = 0;
    th.addEventListener('keydown', function (e) { if (e.key === 'Enter' || e.key === ' ') { e.preventDefault(); th.click(); } });
    th.addEventListener('click', function () {
      var k = th.dataset.key;
      if (state.fkey === k) state.fdir = -state.fdir; else { state.fkey = k; state.fdir = th.dataset.num ? -1 : 1; }
      drawFuncs();
    });
  });
  // The open file's functions: a button in the viewer's header.
  function fileFuncsButton() {
    var b = $('vfuncs'), fn = files[state.cur] && files[state.cur].fn;
    b.hidden = !fn;
    if (fn) b.textContent = fn[0] + (fn[0] === 1 ? ' function' : ' functions') + (fn[1] ? ' · ' + fmtNum(fn[1]) + ' never run' : '');
  }
  $('vfuncs').addEventListener('click', function () {
    state.fnCur = true; $('fn-cur').checked = true;
    if (state.view === 'source') setView('split');
    setTab('funcs'); writeHash();
  });

  // Tabs.
  if (data.fn) document.querySelector('.tabs [data-tab=funcs]').hidden = false;
  function setTab(t) {
    if (t !== 'packages' && !(t === 'funcs' && data.fn)) t = 'files';
    state.tab = t;
    Array.prototype.forEach.call(document.querySelectorAll('.tabs button'), function (b) {
      b.classList.toggle('on', b.dataset.tab === t);
      b.setAttribute('aria-selected', b.dataset.tab === t ? 'true' : 'false');
    });
    $('files').hidden = t !== 'files';
    $('packages').hidden = t !== 'packages';
    $('funcs').hidden = t !== 'funcs';
    $('fn-only').hidden = t !== 'funcs';
    if (t !== 'funcs') $('fn-more').hidden = true;
    $('f-src').hidden = t !== 'files';
    $('q').placeholder = t === 'funcs' ? 'Search functions…' : 'Search files…';
    drawLists();
  }
  function drawLists() {
    $('pkgbar').hidden = state.pkg === null || state.tab === 'packages';
    $('pkgname').textContent = state.pkg || '';
    $('prefix').hidden = !prefix || state.tab === 'packages';
    $('prefix').textContent = 'Paths under ' + prefix;
    if (state.tab === 'files') drawFiles();
    else if (state.tab === 'funcs') drawFuncs();
    else { drawTree(); $('count').textContent = npkgs + (npkgs === 1 ? ' package' : ' packages'); }
  }
  Array.prototype.forEach.call(document.querySelectorAll('.tabs button'), function (b) {
    b.addEventListener('click', function () { setTab(b.dataset.tab); writeHash(); });
  });

  readHash();
})();
