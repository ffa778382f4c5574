// The architect's map of `fig analyze --format html`: plain ES2020, no library, no network.
//
// It reads the report the page embeds (`<script type="application/json" id="fig-report">`, the
// same document as `--format json`) and draws four things from it, all sharing one state (which
// subtrees are open, which module is in focus):
//   - the module tree, opened to the level that fits, where any subtree opens and closes;
//   - the graph of what the tree shows, each edge lifted to the visible modules it joins (weights
//     summed), layered so that dependents sit above their dependencies;
//   - one view per tangle (strongly connected component of the report) with its cut edges and
//     their suggestions;
//   - the dependency matrix, grouped by subtree in levelized order, drawn on a canvas.
// Every module shown carries `data-module="<module id>"`; every graph edge carries `data-from`,
// `data-to` and `data-weight` (what tests and readers check against the JSON).
(() => {
  'use strict';

  // How many modules the map opens at first: the tree is opened level by level while it fits.
  const BUDGET = 60;
  // A graph row wider than this wraps onto the next line.
  const MAX_ROW_WIDTH = 1400;
  const NODE_H = 26;
  const ROW_GAP = 70;
  const CHAR_W = 7.3;
  const SVGNS = 'http://www.w3.org/2000/svg';
  const COLOURS = ['#dbeafe', '#dcfce7', '#fef3c7', '#f3e8ff', '#e0f2fe', '#fce7f3', '#ecfccb',
    '#ffedd5', '#e2e8f0', '#ccfbf1', '#fae8ff', '#fee2e2'];

  const byId = (id) => document.getElementById(id);

  function h(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(attrs || {})) {
      if (value === null || value === undefined || value === false) continue;
      if (key === 'class') node.className = value;
      else if (key.startsWith('on')) node.addEventListener(key.slice(2), value);
      else node.setAttribute(key, value === true ? '' : String(value));
    }
    for (const child of children.flat(Infinity)) {
      if (child === null || child === undefined || child === false) continue;
      node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return node;
  }

  function s(tag, attrs) {
    const node = document.createElementNS(SVGNS, tag);
    for (const [key, value] of Object.entries(attrs || {})) node.setAttribute(key, String(value));
    return node;
  }

  // Prose from the analyzer with `code` between backticks: text nodes and <code> elements, so
  // nothing in it is ever read as HTML.
  function prose(text) {
    const parts = String(text).split('`');
    const paired = parts.length % 2 === 1 ? parts.length : parts.length - 1;
    const res = [];
    parts.forEach((part, idx) => {
      if (idx >= paired) res.push('`' + part);
      else if (idx % 2 === 1) res.push(h('code', null, part));
      else if (part) res.push(part);
    });
    return res;
  }

  const plural = (n, one, many) => `${n} ${n === 1 ? one : (many || one + 's')}`;

  // ---- The graph algorithms the views share ----------------------------------------------------

  // Strongly connected components (Tarjan, iterative). `adj[v]` lists edge indices; `to[e]` is
  // an edge's target.
  function components(n, adj, to) {
    const index = new Int32Array(n).fill(-1);
    const low = new Int32Array(n);
    const comp = new Int32Array(n).fill(-1);
    const onStack = new Uint8Array(n);
    const next = new Int32Array(n);
    const stack = [];
    let counter = 0;
    let nComp = 0;
    for (let start = 0; start < n; start++) {
      if (index[start] !== -1) continue;
      const calls = [start];
      index[start] = low[start] = counter++;
      stack.push(start);
      onStack[start] = 1;
      while (calls.length) {
        const v = calls[calls.length - 1];
        if (next[v] < adj[v].length) {
          const w = to[adj[v][next[v]++]];
          if (index[w] === -1) {
            index[w] = low[w] = counter++;
            stack.push(w);
            onStack[w] = 1;
            calls.push(w);
          } else if (onStack[w]) {
            low[v] = Math.min(low[v], index[w]);
          }
        } else {
          calls.pop();
          if (calls.length) {
            const u = calls[calls.length - 1];
            low[u] = Math.min(low[u], low[v]);
          }
          if (low[v] === index[v]) {
            let w;
            do {
              w = stack.pop();
              onStack[w] = 0;
              comp[w] = nComp;
            } while (w !== v);
            nComp++;
          }
        }
      }
    }
    return { comp, nComp };
  }

  // Layers for `n` nodes and `edges` ({f, t}): dependents above dependencies (higher layer).
  // Inside a component, the edges in `prefer` (the cut list) are set against the layering first,
  // then the back edges of a depth-first search, so the rest is acyclic; the longest path from the
  // bottom gives each node its layer. Returns the layer per node, the component per node and
  // the size of each component.
  function levelize(n, edges, prefer) {
    const adj = Array.from({ length: n }, () => []);
    const to = edges.map((edge) => edge.t);
    edges.forEach((edge, idx) => { if (edge.f !== edge.t) adj[edge.f].push(idx); });
    const { comp, nComp } = components(n, adj, to);
    const size = new Int32Array(nComp);
    for (let v = 0; v < n; v++) size[comp[v]]++;
    const removed = new Uint8Array(edges.length);
    edges.forEach((edge, idx) => {
      if (comp[edge.f] === comp[edge.t] && prefer && prefer(edge)) removed[idx] = 1;
    });
    // Back edges of a DFS over the edges inside components that are left.
    const colour = new Uint8Array(n);
    const next = new Int32Array(n);
    for (let start = 0; start < n; start++) {
      if (colour[start] || size[comp[start]] < 2) continue;
      const calls = [start];
      colour[start] = 1;
      while (calls.length) {
        const v = calls[calls.length - 1];
        if (next[v] < adj[v].length) {
          const idx = adj[v][next[v]++];
          const w = to[idx];
          if (removed[idx] || comp[w] !== comp[v]) continue;
          if (colour[w] === 1) removed[idx] = 1;
          else if (colour[w] === 0) { colour[w] = 1; calls.push(w); }
        } else {
          colour[v] = 2;
          calls.pop();
        }
      }
    }
    // Longest path on what is left (acyclic), by a post-order DFS.
    const layer = new Int32Array(n).fill(-1);
    next.fill(0);
    for (let start = 0; start < n; start++) {
      if (layer[start] !== -1) continue;
      const calls = [start];
      layer[start] = -2;
      while (calls.length) {
        const v = calls[calls.length - 1];
        if (next[v] < adj[v].length) {
          const idx = adj[v][next[v]++];
          const w = to[idx];
          if (removed[idx]) continue;
          if (layer[w] === -1) { layer[w] = -2; calls.push(w); }
        } else {
          let best = 0;
          for (const idx of adj[v]) {
            if (!removed[idx] && layer[to[idx]] >= 0) best = Math.max(best, layer[to[idx]] + 1);
          }
          layer[v] = best;
          calls.pop();
        }
      }
    }
    return { layer, comp, size };
  }

  // ---- The model: the report reshaped for the views --------------------------------------------

  function buildModel(data) {
    const modules = data.modules;
    const n = modules.length;
    const index = new Map(modules.map((module, idx) => [module.id, idx]));
    const parent = new Int32Array(n).fill(-1);
    const children = Array.from({ length: n }, () => []);
    const roots = [];
    modules.forEach((module, idx) => {
      const up = module.parent === null || module.parent === undefined ? undefined : index.get(module.parent);
      if (up === undefined) roots.push(idx);
      else { parent[idx] = up; children[up].push(idx); }
    });
    const depth = new Int32Array(n);
    const pre = new Int32Array(n);
    const size = new Int32Array(n).fill(1);
    // A module is named by its last segment under its parent; a root (a crate, a binary's
    // root) by its whole id.
    const label = modules.map((module, idx) => {
      const cut = module.id.lastIndexOf('::');
      return cut < 0 || parent[idx] < 0 ? module.id : module.id.slice(cut + 2);
    });
    // Pre-order numbers make "is in the subtree of" a range check.
    {
      let counter = 0;
      const order = [];
      const stack = roots.slice().reverse();
      while (stack.length) {
        const v = stack.pop();
        pre[v] = counter++;
        order.push(v);
        for (let k = children[v].length - 1; k >= 0; k--) {
          depth[children[v][k]] = depth[v] + 1;
          stack.push(children[v][k]);
        }
      }
      for (let k = order.length - 1; k >= 0; k--) {
        const v = order[k];
        if (parent[v] >= 0) size[parent[v]] += size[v];
      }
    }
    const within = (v, top) => pre[v] >= pre[top] && pre[v] < pre[top] + size[top];
    // The top-level subsystem (depth 1, or the crate) colours a node.
    const colour = modules.map((_, idx) => {
      let v = idx;
      while (depth[v] > 1) v = parent[v];
      const root = depth[v] === 0 ? v : parent[v];
      const slot = depth[v] === 0 ? roots.indexOf(v) : children[root].indexOf(v) + roots.indexOf(root) * 3;
      return COLOURS[Math.abs(slot) % COLOURS.length];
    });

    const scope = data.scope || {};
    const edges = [];
    for (const edge of data.edges) {
      if (!scope.include_hierarchical && edge.kind.hierarchy !== 'cross') continue;
      if (!scope.include_test_only && edge.kind.test_only) continue;
      const f = index.get(edge.from);
      const t = index.get(edge.to);
      if (f === undefined || t === undefined || f === t) continue;
      edges.push({ f, t, w: edge.weight, json: edge });
    }
    const out = Array.from({ length: n }, () => []);
    const inn = Array.from({ length: n }, () => []);
    for (const edge of edges) { out[edge.f].push(edge); inn[edge.t].push(edge); }

    // Siblings in levelized order: each edge lifted to the two children of its ends' lowest
    // common ancestor; per parent, dependents first.
    const siblingEdges = new Map();
    for (const edge of edges) {
      let a = edge.f;
      let b = edge.t;
      while (depth[a] > depth[b]) a = parent[a];
      while (depth[b] > depth[a]) b = parent[b];
      if (a === b) continue;
      while (parent[a] !== parent[b]) { a = parent[a]; b = parent[b]; }
      const key = parent[a];
      if (!siblingEdges.has(key)) siblingEdges.set(key, []);
      siblingEdges.get(key).push([a, b]);
    }
    const ordered = (list, parentKey) => {
      const pairs = siblingEdges.get(parentKey) || [];
      const local = new Map(list.map((v, k) => [v, k]));
      const lev = levelize(list.length, pairs.map(([a, b]) => ({ f: local.get(a), t: local.get(b) })), null);
      // A tangle's members stay together (a block in the matrix), placed at its highest layer.
      const top = new Map();
      list.forEach((v, k) => top.set(lev.comp[k], Math.max(top.get(lev.comp[k]) ?? 0, lev.layer[k])));
      const rank = (v) => {
        const k = local.get(v);
        return [top.get(lev.comp[k]), lev.comp[k], lev.layer[k]];
      };
      return list.slice().sort((x, y) => {
        const [tx, cx, lx] = rank(x);
        const [ty, cy, ly] = rank(y);
        return (ty - tx) || (cx - cy) || (ly - lx) || (modules[x].id < modules[y].id ? -1 : 1);
      });
    };
    const rootOrder = ordered(roots, -1);
    const childOrder = children.map((list, v) => (list.length > 1 ? ordered(list, v) : list));

    // Cycles (the report's strongly connected components), whose members are module ids at the
    // level where the tangle is (siblings under one parent).
    const cycles = (data.cycles || []).map((cycle, idx) => ({
      idx,
      weight: cycle.weight,
      members: cycle.members.map((id) => index.get(id)).filter((v) => v !== undefined),
    }));
    const cycleOf = new Map();
    cycles.forEach((cycle) => cycle.members.forEach((v) => cycleOf.set(v, cycle.idx)));
    // The cycle a module is in: its own, or that of the ancestor the tangle is drawn at.
    const cycleAt = (v) => {
      for (let u = v; u >= 0; u = parent[u]) if (cycleOf.has(u)) return cycleOf.get(u);
      return -1;
    };
    const cut = (data.cut || []).map((edge) => ({ ...edge, f: index.get(edge.from), t: index.get(edge.to) }))
      .filter((edge) => edge.f !== undefined && edge.t !== undefined);
    const suggestions = data.suggestions || [];
    const suggestionFor = new Map(suggestions.map((sug) => [sug.from + '\u0000' + sug.to, sug]));
    const metrics = new Map(((data.metrics && data.metrics.modules) || []).map((unit) => [unit.id, unit]));
    return {
      data, n, modules, index, parent, children, roots, depth, pre, size, label, colour, within,
      edges, out, inn, rootOrder, childOrder, cycles, cycleOf, cycleAt, cut, suggestions,
      suggestionFor, metrics,
    };
  }

  // ---- State -------------------------------------------------------------------------------------

  const state = { expanded: new Set(), focus: -1, view: 'graph', tangle: 0 };
  let M = null;
  let visibleCache = null;

  function fit() {
    state.expanded.clear();
    let frontier = M.rootOrder;
    let visible = frontier.length;
    for (;;) {
      const open = frontier.filter((v) => M.children[v].length);
      const added = open.reduce((sum, v) => sum + M.children[v].length, 0);
      if (!open.length || (visible > 1 && visible + added > BUDGET)) break;
      open.forEach((v) => state.expanded.add(v));
      visible += added;
      frontier = open.flatMap((v) => M.childOrder[v]);
    }
    visibleCache = null;
  }

  // The visible module standing for each module: itself when all its ancestors are open, else
  // its highest closed ancestor. Visible modules in tree order.
  function visible() {
    if (visibleCache) return visibleCache;
    const rep = new Int32Array(M.n).fill(-1);
    for (const root of M.rootOrder) {
      const stack = [[root, -1]];
      while (stack.length) {
        const [u, up] = stack.pop();
        rep[u] = up >= 0 ? up : u;
        // Children of an open visible module are visible; those of a closed one stand in for it.
        const standIn = up >= 0 ? up : (state.expanded.has(u) ? -1 : u);
        for (const kid of M.childOrder[u]) stack.push([kid, standIn]);
      }
    }
    const order = [];
    const push = (v) => {
      order.push(v);
      if (state.expanded.has(v)) for (const kid of M.childOrder[v]) push(kid);
    };
    for (const root of M.rootOrder) push(root);
    // Edges lifted to visible modules, weights summed.
    const lifted = new Map();
    for (const edge of M.edges) {
      const f = rep[edge.f];
      const t = rep[edge.t];
      if (f === t) continue;
      const key = f * M.n + t;
      let agg = lifted.get(key);
      if (!agg) { agg = { f, t, w: 0, n: 0 }; lifted.set(key, agg); }
      agg.w += edge.w;
      agg.n += 1;
    }
    visibleCache = { rep, rows: order, lifted: [...lifted.values()] };
    return visibleCache;
  }

  function setExpanded(v, open) {
    if (!M.children[v].length) return;
    if (open) state.expanded.add(v); else state.expanded.delete(v);
    visibleCache = null;
    render();
  }

  // Opens every ancestor of `v`, so that it is visible.
  function reveal(v) {
    for (let u = M.parent[v]; u >= 0; u = M.parent[u]) state.expanded.add(u);
    visibleCache = null;
  }

  function focus(v) {
    state.focus = v;
    if (v >= 0) reveal(v);
    if (state.view === 'tangles') state.view = 'graph';
    render();
    saveState();
  }

  // ---- The graph view ------------------------------------------------------------------------------

  // Lays out and draws `nodes` (module indices) and `edges` ({f, t, w, cls, title}) in `host`.
  // `prefer(edge)` picks the edges to set against the layering first (the cut list).
  function drawGraph(host, nodes, edges, options) {
    const local = new Map(nodes.map((v, k) => [v, k]));
    const localEdges = edges.map((edge) => ({ ...edge, f: local.get(edge.f), t: local.get(edge.t) }));
    const lev = levelize(nodes.length, localEdges, options.prefer);
    const nLayers = nodes.length ? Math.max(...lev.layer) + 1 : 0;
    const width = nodes.map((v) => Math.max(60, (options.label ? options.label(v) : M.label[v]).length * CHAR_W + 18));
    // Rows: one per layer (top: highest), in tree order, then barycenter sweeps.
    let rows = Array.from({ length: nLayers }, () => []);
    nodes.forEach((v, k) => rows[nLayers - 1 - lev.layer[k]].push(k));
    rows.forEach((row) => row.sort((a, b) => M.pre[nodes[a]] - M.pre[nodes[b]]));
    const neighbours = Array.from({ length: nodes.length }, () => []);
    for (const edge of localEdges) { neighbours[edge.f].push(edge.t); neighbours[edge.t].push(edge.f); }
    const pos = new Float64Array(nodes.length);
    const place = () => rows.forEach((row) => row.forEach((k, idx) => { pos[k] = (idx + 0.5) / row.length; }));
    place();
    for (let sweep = 0; sweep < 6; sweep++) {
      const order = sweep % 2 === 0 ? rows : rows.slice().reverse();
      for (const row of order) {
        const bary = new Map(row.map((k) => {
          const list = neighbours[k];
          return [k, list.length ? list.reduce((sum, m) => sum + pos[m], 0) / list.length : pos[k]];
        }));
        row.sort((a, b) => bary.get(a) - bary.get(b));
        row.forEach((k, idx) => { pos[k] = (idx + 0.5) / row.length; });
      }
    }
    // Wrap wide rows.
    const lines = [];
    for (const row of rows) {
      let line = [];
      let lineWidth = 0;
      for (const k of row) {
        if (line.length && lineWidth + width[k] > MAX_ROW_WIDTH) { lines.push(line); line = []; lineWidth = 0; }
        line.push(k);
        lineWidth += width[k] + 14;
      }
      if (line.length) lines.push(line);
    }
    const x = new Float64Array(nodes.length);
    const y = new Float64Array(nodes.length);
    const lineWidths = lines.map((line) => line.reduce((sum, k) => sum + width[k] + 14, -14));
    const widest = Math.max(200, ...lineWidths);
    lines.forEach((line, row) => {
      let at = (widest - lineWidths[row]) / 2;
      for (const k of line) {
        x[k] = at;
        y[k] = 20 + row * (NODE_H + ROW_GAP);
        at += width[k] + 14;
      }
    });
    // Pull each node towards the mean of its neighbours, keeping the order and the gaps of its
    // line, so that edges run as straight as the lines allow.
    for (let pass = 0; pass < 4; pass++) {
      const order = pass % 2 === 0 ? lines : lines.slice().reverse();
      for (const line of order) {
        const want = line.map((k) => {
          const list = neighbours[k];
          if (!list.length) return x[k] + width[k] / 2;
          return list.reduce((sum, m) => sum + x[m] + width[m] / 2, 0) / list.length;
        });
        let right = -Infinity;
        line.forEach((k, idx) => {
          x[k] = Math.max(want[idx] - width[k] / 2, right + 14);
          right = x[k] + width[k];
        });
        // Then from the right, so that the line is not pushed off to one side.
        let left = Infinity;
        for (let idx = line.length - 1; idx >= 0; idx--) {
          const k = line[idx];
          const ideal = want[idx] - width[k] / 2;
          x[k] = Math.min(Math.max(x[k] - (x[k] - ideal) / 2, ideal), left - 14 - width[k]);
          left = x[k];
        }
      }
    }
    let minX = Infinity;
    let maxX = -Infinity;
    nodes.forEach((_, k) => { minX = Math.min(minX, x[k]); maxX = Math.max(maxX, x[k] + width[k]); });
    if (!nodes.length) { minX = 0; maxX = 200; }
    nodes.forEach((_, k) => { x[k] += 20 - minX; });
    const totalWidth = Math.max(240, maxX - minX + 40);
    const totalHeight = 40 + lines.length * (NODE_H + ROW_GAP) - ROW_GAP;

    const svg = s('svg', { class: 'map-graph', viewBox: `0 0 ${totalWidth} ${totalHeight}`, role: 'img', 'aria-label': options.aria || 'module graph' });
    const defs = s('defs');
    for (const [id, fill] of [['mg-arrow', '#94a3b8'], ['mg-arrow-red', '#dc2626']]) {
      const marker = s('marker', { id, viewBox: '0 0 10 10', refX: 10, refY: 5, markerWidth: 7, markerHeight: 7, orient: 'auto-start-reverse' });
      marker.append(s('path', { d: 'M0,0 L10,5 L0,10 z', fill }));
      defs.append(marker);
    }
    svg.append(defs);
    const edgeLayer = s('g');
    const labelLayer = s('g');
    const nodeLayer = s('g');
    svg.append(edgeLayer, nodeLayer, labelLayer);

    // Labels go where they overlap no node and no other label, or are left out (the tooltip has
    // the weight): a grid of occupied cells answers "is this free" quickly.
    const CELL = 24;
    const grid = new Map();
    const cellsOf = (x0, y0, x1, y1, fn) => {
      for (let gx = Math.floor(x0 / CELL); gx <= Math.floor(x1 / CELL); gx++) {
        for (let gy = Math.floor(y0 / CELL); gy <= Math.floor(y1 / CELL); gy++) {
          if (fn(gx * 100003 + gy) === false) return false;
        }
      }
      return true;
    };
    const boxes = [];
    const free = (box) => cellsOf(box[0], box[1], box[2], box[3], (key) => {
      const list = grid.get(key);
      if (!list) return true;
      for (const other of list) {
        if (box[0] < other[2] && other[0] < box[2] && box[1] < other[3] && other[1] < box[3]) return false;
      }
      return true;
    });
    const occupy = (box) => {
      boxes.push(box);
      cellsOf(box[0], box[1], box[2], box[3], (key) => {
        if (!grid.has(key)) grid.set(key, []);
        grid.get(key).push(box);
      });
    };
    nodes.forEach((_, k) => occupy([x[k] - 2, y[k] - 2, x[k] + width[k] + 2, y[k] + NODE_H + 2]));

    const bezier = (p, t) => {
      const u = 1 - t;
      return [
        u * u * u * p[0] + 3 * u * u * t * p[2] + 3 * u * t * t * p[4] + t * t * t * p[6],
        u * u * u * p[1] + 3 * u * u * t * p[3] + 3 * u * t * t * p[5] + t * t * t * p[7],
      ];
    };
    const sorted = localEdges.map((edge, idx) => [edge, idx]).sort((a, b) => b[0].w - a[0].w);
    for (const [edge, idx] of sorted) {
      const original = edges[idx];
      const f = edge.f;
      const t = edge.t;
      const up = lev.layer[f] <= lev.layer[t];
      const sameComp = lev.comp[f] === lev.comp[t] && lev.size[lev.comp[f]] > 1;
      const cx1 = x[f] + width[f] / 2;
      const cx2 = x[t] + width[t] / 2;
      let p;
      if (y[t] > y[f]) {
        const dy = (y[t] - y[f]) / 2;
        p = [cx1, y[f] + NODE_H, cx1, y[f] + NODE_H + dy, cx2, y[t] - dy, cx2, y[t]];
      } else if (y[t] < y[f]) {
        // Against the layering: leaves from the top, bends to the side, so that it never lies on
        // the downward edge of a two-way pair.
        const dy = (y[f] - y[t]) / 2;
        const side = cx2 >= cx1 ? 40 : -40;
        p = [cx1 + 6, y[f], cx1 + side, y[f] - dy, cx2 + side, y[t] + NODE_H + dy, cx2 + 6, y[t] + NODE_H];
      } else {
        const lift = 30 + Math.abs(cx2 - cx1) / 8;
        const down = x[t] > x[f];
        const yy = down ? y[f] : y[f] + NODE_H;
        const bend = down ? -lift : lift;
        p = [cx1, yy, cx1, yy + bend, cx2, yy + bend, cx2, yy];
      }
      const cls = ['edge', up ? 'up' : '', sameComp ? 'cyc' : '', original.cls || ''].filter(Boolean).join(' ');
      const group = s('g', { class: cls, 'data-from': M.modules[nodes[f]].id, 'data-to': M.modules[nodes[t]].id, 'data-weight': edge.w });
      const title = s('title');
      title.textContent = original.title || `${M.modules[nodes[f]].id} → ${M.modules[nodes[t]].id}: weight ${edge.w}`;
      group.append(title, s('path', {
        d: `M${p[0].toFixed(1)},${p[1].toFixed(1)} C${p[2].toFixed(1)},${p[3].toFixed(1)} ${p[4].toFixed(1)},${p[5].toFixed(1)} ${p[6].toFixed(1)},${p[7].toFixed(1)}`,
        'marker-end': `url(#${up || original.cls === 'cut' ? 'mg-arrow-red' : 'mg-arrow'})`,
      }));
      edgeLayer.append(group);
      const text = String(edge.w);
      const lw = text.length * 6.6 + 6;
      for (const at of up ? [0.6, 0.4, 0.75, 0.25, 0.5] : [0.5, 0.35, 0.65, 0.2, 0.8]) {
        const [lx, ly] = bezier(p, at);
        const box = [lx - lw / 2, ly - 8, lx + lw / 2, ly + 8];
        if (!free(box)) continue;
        occupy(box);
        const labelGroup = s('g', { class: cls });
        labelGroup.append(s('rect', { class: 'lab', x: box[0].toFixed(1), y: box[1].toFixed(1), width: lw.toFixed(1), height: 16, rx: 3 }));
        const label = s('text', { x: lx.toFixed(1), y: ly.toFixed(1) });
        label.textContent = text;
        labelGroup.append(label);
        labelLayer.append(labelGroup);
        break;
      }
    }
    nodes.forEach((v, k) => {
      const module = M.modules[v];
      const closed = M.children[v].length && !state.expanded.has(v);
      const inCycle = options.inCycle ? options.inCycle(v) : (lev.size[lev.comp[k]] > 1);
      const cls = ['node', inCycle ? 'cyc' : '', v === state.focus ? 'focus' : ''].filter(Boolean).join(' ');
      const group = s('g', { class: cls, 'data-module': module.id, 'data-expanded': closed ? 'false' : 'true' });
      const title = s('title');
      title.textContent = module.id + (closed ? ` (${plural(M.size[v] - 1, 'module')} inside; double-click to open)` : '');
      group.append(title, s('rect', { x: x[k].toFixed(1), y: y[k].toFixed(1), width: width[k].toFixed(1), height: NODE_H, rx: 4, fill: M.colour[v] }));
      const label = s('text', { x: (x[k] + width[k] / 2).toFixed(1), y: (y[k] + NODE_H / 2 + 4).toFixed(1) });
      label.textContent = options.label ? options.label(v) : M.label[v];
      group.append(label);
      if (closed) {
        const more = s('text', { class: 'more', x: (x[k] + width[k] / 2).toFixed(1), y: (y[k] + NODE_H + 11).toFixed(1) });
        more.textContent = `+${M.size[v] - 1}`;
        group.append(more);
      }
      group.addEventListener('click', (event) => { event.stopPropagation(); focus(v); });
      group.addEventListener('dblclick', (event) => { event.stopPropagation(); setExpanded(v, !state.expanded.has(v)); });
      nodeLayer.append(group);
    });
    host.append(svg);
    panZoom(svg, totalWidth, totalHeight, host);
    return svg;
  }

  // Drag to pan, wheel to zoom, on the viewBox. Labels that would be smaller than a few pixels on
  // screen are hidden (`far`), node names last (`farther`); hovering still shows them.
  function panZoom(svg, width, height, host) {
    const box = host.getBoundingClientRect();
    const hostW = Math.max(300, box.width);
    const hostH = Math.max(200, box.height);
    let scale = Math.min(hostW / width, hostH / height, 1.1);
    scale = Math.max(scale, Math.min(0.55, hostW / width * 4));
    let vw = hostW / scale;
    let vh = hostH / scale;
    let vx = (width - vw) / 2;
    let vy = Math.min(0, (height - vh) / 2);
    const apply = () => {
      svg.setAttribute('viewBox', `${vx.toFixed(1)} ${vy.toFixed(1)} ${vw.toFixed(1)} ${vh.toFixed(1)}`);
      const zoom = hostW / vw;
      svg.classList.toggle('far', zoom < 0.6);
      svg.classList.toggle('farther', zoom < 0.35);
    };
    apply();
    svg.addEventListener('wheel', (event) => {
      event.preventDefault();
      const rect = svg.getBoundingClientRect();
      const px = vx + (event.clientX - rect.left) / rect.width * vw;
      const py = vy + (event.clientY - rect.top) / rect.height * vh;
      const factor = Math.exp(event.deltaY * 0.0015);
      const newW = Math.min(Math.max(vw * factor, 80), Math.max(width, height) * 4);
      const ratio = newW / vw;
      vx = px - (px - vx) * ratio;
      vy = py - (py - vy) * ratio;
      vw = newW;
      vh *= ratio;
      apply();
    }, { passive: false });
    let drag = null;
    svg.addEventListener('pointerdown', (event) => {
      if (event.target.closest('.node')) return;
      drag = { x: event.clientX, y: event.clientY, vx, vy };
      svg.setPointerCapture(event.pointerId);
    });
    svg.addEventListener('pointermove', (event) => {
      if (!drag) return;
      const rect = svg.getBoundingClientRect();
      vx = drag.vx - (event.clientX - drag.x) / rect.width * vw;
      vy = drag.vy - (event.clientY - drag.y) / rect.height * vh;
      apply();
    });
    svg.addEventListener('pointerup', () => { drag = null; });
  }

  function renderGraph(host) {
    const vis = visible();
    if (state.focus >= 0) return renderFocusGraph(host, state.focus);
    const connected = new Set();
    for (const edge of vis.lifted) { connected.add(edge.f); connected.add(edge.t); }
    const nodes = vis.rows.filter((v) => connected.has(v));
    const cutKeys = new Set(M.cut.map((edge) => vis.rep[edge.f] * M.n + vis.rep[edge.t]));
    const edges = vis.lifted.map((edge) => ({
      ...edge,
      title: `${M.modules[edge.f].id} → ${M.modules[edge.t].id}: weight ${edge.w} (${plural(edge.n, 'module edge')})`,
    }));
    const isolated = vis.rows.length - nodes.length;
    host.append(h('div', { class: 'viewnote' },
      `${plural(vis.rows.length, 'module')} shown of ${M.n}; ${plural(edges.length, 'edge')}`,
      isolated ? `; ${isolated} without an edge at this level are in the tree` : ''));
    if (!nodes.length) {
      host.append(h('p', { class: 'muted', style: 'margin-top:40px' }, 'No module depends on another at this level (in scope).'));
      return;
    }
    // A node is named by its last two segments (`order::repository`), enough to tell apart the
    // subsystems of different crates; the tooltip has the whole id.
    drawGraph(host, nodes, edges, {
      prefer: (edge) => cutKeys.has(nodes[edge.f] * M.n + nodes[edge.t]),
      label: (v) => (M.parent[v] < 0 ? M.modules[v].id : M.modules[v].id.split('::').slice(-2).join('::')),
    });
  }

  // The focused module and its neighbours: dependents above, dependencies below. A closed
  // subtree brings the edges of everything inside it, lifted to what the map shows.
  function renderFocusGraph(host, v) {
    const vis = visible();
    const closed = M.children[v].length && !state.expanded.has(v);
    const agg = new Map();
    const add = (f, t, edge) => {
      const key = f * M.n + t;
      let entry = agg.get(key);
      if (!entry) { entry = { f, t, w: 0, n: 0 }; agg.set(key, entry); }
      entry.w += edge.w;
      entry.n += 1;
    };
    if (closed) {
      for (const edge of M.edges) {
        const inF = M.within(edge.f, v);
        const inT = M.within(edge.t, v);
        if (inF && !inT) add(v, vis.rep[edge.t], edge);
        else if (inT && !inF) add(vis.rep[edge.f], v, edge);
      }
    } else {
      for (const edge of M.out[v]) add(v, edge.t, edge);
      for (const edge of M.inn[v]) add(edge.f, v, edge);
    }
    const edges = [...agg.values()].map((edge) => ({
      ...edge,
      title: `${M.modules[edge.f].id} → ${M.modules[edge.t].id}: weight ${edge.w}`,
    }));
    const nodes = [...new Set([v, ...edges.flatMap((edge) => [edge.f, edge.t])])];
    host.append(h('div', { class: 'viewnote' }, 'Focus: ', h('code', null, M.modules[v].id),
      closed ? ' (its whole subtree)' : '', ` — ${plural(nodes.length - 1, 'neighbour')}. `,
      h('a', { onclick: () => focus(-1) }, 'Back to the whole map'), ' (Esc)'));
    drawGraph(host, nodes, edges, {
      label: (u) => (u === v ? M.modules[u].id : M.modules[u].id.split('::').slice(-2).join('::')),
      inCycle: (u) => M.cycleOf.has(u),
    });
  }

  // ---- Tangles -----------------------------------------------------------------------------------

  function renderTangles(host) {
    if (!M.cycles.length) {
      host.append(h('p', { style: 'padding:12px' }, 'No tangle: the module graph is acyclic.'));
      return;
    }
    const wrap = h('div', { class: 'tangles' });
    const list = h('ol', { class: 'tangle-list' });
    const sorted = M.cycles.slice().sort((a, b) => b.weight - a.weight || a.idx - b.idx);
    for (const cycle of sorted) {
      const common = commonParent(cycle.members);
      list.append(h('li', {
        class: cycle.idx === state.tangle ? 'on bad' : 'bad',
        'data-cycle': cycle.idx,
        onclick: () => { state.tangle = cycle.idx; render(); saveState(); },
      }, `${plural(cycle.members.length, 'module')} under `, h('code', null, common), ` (weight ${cycle.weight})`));
    }
    const left = h('div', null, h('h4', null, `${plural(M.cycles.length, 'tangle')} (strongly connected components), heaviest first`), list);
    const right = h('div', null);
    wrap.append(left, right);
    host.append(wrap);
    const cycle = M.cycles[state.tangle] || sorted[0];
    renderTangle(right, cycle);
  }

  function commonParent(members) {
    if (!members.length) return '';
    const first = M.modules[members[0]].id;
    const up = M.parent[members[0]];
    return up >= 0 ? M.modules[up].id : first.split('::')[0];
  }

  function renderTangle(host, cycle) {
    const members = cycle.members;
    const memberOf = new Map(members.map((v) => [v, v]));
    const owner = (v) => {
      for (let u = v; u >= 0; u = M.parent[u]) if (memberOf.has(u)) return u;
      return -1;
    };
    const agg = new Map();
    const raw = new Map();
    for (const edge of M.edges) {
      const f = owner(edge.f);
      const t = owner(edge.t);
      if (f < 0 || t < 0 || f === t) continue;
      const key = f * M.n + t;
      if (!agg.has(key)) { agg.set(key, { f, t, w: 0 }); raw.set(key, []); }
      agg.get(key).w += edge.w;
      raw.get(key).push(edge);
    }
    const cutHere = M.cut.filter((edge) => memberOf.has(edge.f) && memberOf.has(edge.t));
    const cutKeys = new Set(cutHere.map((edge) => edge.f * M.n + edge.t));
    const edges = [...agg.entries()].map(([key, edge]) => ({
      ...edge,
      cls: cutKeys.has(key) ? 'cut' : '',
      title: `${M.modules[edge.f].id} → ${M.modules[edge.t].id}: weight ${edge.w}${cutKeys.has(key) ? ' — on the cut list' : ''}`,
    }));
    const graphHost = h('div', { class: 'tangle-graph', 'data-tangle': cycle.idx });
    host.append(graphHost);
    drawGraph(graphHost, members, edges, {
      prefer: (edge) => cutKeys.has(members[edge.f] * M.n + members[edge.t]),
      label: (v) => M.label[v],
      inCycle: () => true,
      aria: 'tangle',
    });
    const info = h('div', { class: 'tangle' });
    info.append(h('h4', null, `Cut ${plural(cutHere.length, 'edge')} (dashed red) and this tangle is gone`));
    for (const edge of cutHere) {
      const sug = M.suggestionFor.get(edge.from + '\u0000' + edge.to);
      const item = h('div', { 'data-cut': `${edge.from} -> ${edge.to}` },
        h('h4', null, h('a', { onclick: () => focus(edge.f) }, h('code', null, edge.from)), ' → ',
          h('a', { onclick: () => focus(edge.t) }, h('code', null, edge.to)), ` (weight ${edge.weight})`));
      if (sug) {
        item.append(h('p', null, 'Extract ', h('code', null, sug.trait_name), ' into ', h('code', null, sug.trait_home), '; ',
          h('code', null, sug.implemented_by), ' implements it.'));
        item.append(h('ol', { class: 'steps' }, sug.steps.map((step) => h('li', null, prose(step)))));
      }
      const lines = (raw.get(edge.f * M.n + edge.t) || []).flatMap((rawEdge) =>
        rawEdge.json.locations.map((loc) => ({ loc, edge: rawEdge })));
      if (lines.length) {
        item.append(h('p', { class: 'muted' }, 'The lines to change:'));
        item.append(h('ul', null, lines.slice(0, 40).map(({ loc, edge: rawEdge }) => h('li', { class: 'loc' },
          `${loc.file}:${loc.line}:${loc.column} `, h('span', { class: 'muted' }, `${rawEdge.json.from} → ${rawEdge.json.to}`)))));
        if (lines.length > 40) item.append(h('p', { class: 'muted' }, `and ${lines.length - 40} more`));
      }
      info.append(item);
    }
    host.append(info);
  }

  // ---- Matrix ------------------------------------------------------------------------------------

  function renderMatrix(host) {
    const vis = visible();
    const rows = vis.rows;
    const n = rows.length;
    const at = new Map(rows.map((v, k) => [v, k]));
    const cell = Math.max(2, Math.min(16, Math.floor(1600 / Math.max(1, n))));
    const labelW = cell >= 9 ? 300 : 0;
    const weights = new Map();
    const edgesLocal = vis.lifted.map((edge) => ({ f: at.get(edge.f), t: at.get(edge.t), w: edge.w }));
    for (const edge of edgesLocal) weights.set(edge.f * n + edge.t, edge.w);
    const lev = levelize(n, edgesLocal, null);
    const maxW = Math.max(1, ...edgesLocal.map((edge) => edge.w));
    const wrap = h('div', { class: 'matrix-wrap' });
    wrap.append(h('div', { class: 'muted', style: 'padding:2px 6px' },
      `${plural(n, 'row')}, grouped by subtree (open blocks outlined), dependents first: a row uses the columns right of the diagonal; `,
      'orange cells, left of it, run against the order; red cells are inside a tangle. Click a row name to open or close it, a cell to focus its row.'));
    const canvas = h('canvas', { class: 'matrix', 'data-rows': n });
    const ratio = window.devicePixelRatio || 1;
    const side = labelW + n * cell + 2;
    canvas.width = Math.ceil(side * ratio);
    canvas.height = Math.ceil((n * cell + 2) * ratio);
    canvas.style.width = `${side}px`;
    canvas.style.height = `${n * cell + 2}px`;
    const ctx = canvas.getContext('2d');
    ctx.scale(ratio, ratio);
    ctx.fillStyle = '#fff';
    ctx.fillRect(0, 0, side, n * cell + 2);
    for (let k = 0; k < n; k++) {
      ctx.fillStyle = '#e5e7eb';
      ctx.fillRect(labelW + k * cell, k * cell, cell, cell);
    }
    for (const edge of edgesLocal) {
      const sameComp = lev.comp[edge.f] === lev.comp[edge.t] && lev.size[lev.comp[edge.f]] > 1;
      const strength = 0.25 + 0.75 * Math.log1p(edge.w) / Math.log1p(maxW);
      ctx.fillStyle = sameComp ? `rgba(220,38,38,${strength})` : edge.t < edge.f ? `rgba(234,88,12,${strength})` : `rgba(37,99,235,${strength})`;
      ctx.fillRect(labelW + edge.t * cell, edge.f * cell, cell, cell);
      if (cell >= 14) {
        ctx.fillStyle = '#fff';
        ctx.font = '9px ui-monospace, monospace';
        ctx.textAlign = 'center';
        ctx.fillText(String(edge.w > 99 ? '99+' : edge.w), labelW + edge.t * cell + cell / 2, edge.f * cell + cell - 4);
      }
    }
    // Blocks of open subtrees.
    ctx.strokeStyle = '#334155';
    ctx.lineWidth = 1;
    rows.forEach((v, k) => {
      if (!state.expanded.has(v)) return;
      let end = k;
      while (end + 1 < n && M.within(rows[end + 1], v)) end++;
      ctx.strokeRect(labelW + k * cell + 0.5, k * cell + 0.5, (end - k + 1) * cell, (end - k + 1) * cell);
    });
    if (labelW) {
      ctx.font = '11px ui-monospace, monospace';
      ctx.textAlign = 'left';
      rows.forEach((v, k) => {
        const open = M.children[v].length ? (state.expanded.has(v) ? '▾ ' : '▸ ') : '  ';
        const text = '  '.repeat(M.depth[v]) + open + M.label[v];
        ctx.fillStyle = M.cycleOf.has(v) ? '#b91c1c' : '#111827';
        ctx.fillText(text.length > 40 ? text.slice(0, 39) + '…' : text, 2, k * cell + cell - 3, labelW - 4);
      });
    }
    const tip = h('div', { class: 'matrix-tip', hidden: true });
    const pick = (event) => {
      const rect = canvas.getBoundingClientRect();
      const px = event.clientX - rect.left;
      const py = event.clientY - rect.top;
      const row = Math.floor(py / cell);
      const col = px < labelW ? -1 : Math.floor((px - labelW) / cell);
      return { row: row >= 0 && row < n ? row : -1, col: col < n ? col : -1 };
    };
    canvas.addEventListener('mousemove', (event) => {
      const { row, col } = pick(event);
      if (row < 0) { tip.hidden = true; return; }
      const w = col >= 0 ? weights.get(row * n + col) : undefined;
      tip.textContent = col < 0 ? M.modules[rows[row]].id
        : `${M.modules[rows[row]].id} → ${M.modules[rows[col]].id}${w ? `: ${w}` : ': none'}`;
      tip.style.left = `${event.clientX + 12}px`;
      tip.style.top = `${event.clientY + 12}px`;
      tip.hidden = false;
    });
    canvas.addEventListener('mouseleave', () => { tip.hidden = true; });
    canvas.addEventListener('click', (event) => {
      const { row, col } = pick(event);
      if (row < 0) return;
      const v = rows[row];
      if (col < 0 && M.children[v].length) setExpanded(v, !state.expanded.has(v));
      else { state.view = 'matrix'; state.focus = v; render(); }
    });
    wrap.append(canvas, tip);
    host.append(wrap);
  }

  // ---- Tree, search, focus panel ---------------------------------------------------------------

  function renderTree() {
    const host = byId('map-tree');
    const scrollTop = host.scrollTop;
    host.textContent = '';
    const build = (list) => {
      const ul = h('ul');
      for (const v of list) {
        const kids = M.childOrder[v];
        const open = state.expanded.has(v);
        const cls = ['row', v === state.focus ? 'focus' : '', M.cycleOf.has(v) ? 'cyc' : ''].filter(Boolean).join(' ');
        const row = h('div', { class: cls, title: M.modules[v].id },
          h('span', {
            class: 'tw',
            onclick: (event) => { event.stopPropagation(); setExpanded(v, !open); },
          }, kids.length ? (open ? '▾' : '▸') : ''),
          h('span', { class: 'nm' }, M.label[v]),
          kids.length ? h('span', { class: 'ct' }, String(M.size[v] - 1)) : null);
        row.addEventListener('click', () => focus(v));
        row.addEventListener('dblclick', () => setExpanded(v, !state.expanded.has(v)));
        const li = h('li', { 'data-module': M.modules[v].id }, row);
        if (open && kids.length) li.append(build(kids));
        ul.append(li);
      }
      return ul;
    };
    host.append(build(M.rootOrder));
    host.scrollTop = scrollTop;
    if (state.focus >= 0) {
      const row = host.querySelector(`li[data-module="${CSS.escape(M.modules[state.focus].id)}"] > .row`);
      if (row) row.scrollIntoView({ block: 'nearest' });
    }
  }

  function search(text) {
    const list = byId('map-results');
    list.textContent = '';
    const query = text.trim().toLowerCase();
    if (!query) { list.hidden = true; return; }
    const found = [];
    for (let v = 0; v < M.n; v++) {
      const id = M.modules[v].id.toLowerCase();
      const at = id.indexOf(query);
      if (at < 0) continue;
      const last = M.label[v].toLowerCase();
      const rank = (last === query ? 0 : last.startsWith(query) ? 1 : id.endsWith(query) ? 2 : 3);
      found.push([rank, id.length, v]);
    }
    found.sort((a, b) => a[0] - b[0] || a[1] - b[1]);
    for (const [, , v] of found.slice(0, 40)) {
      list.append(h('li', { 'data-module': M.modules[v].id, onclick: () => { list.hidden = true; focus(v); } }, M.modules[v].id));
    }
    if (found.length > 40) list.append(h('li', { class: 'muted' }, `and ${found.length - 40} more: type more of the name`));
    if (!found.length) list.append(h('li', { class: 'muted' }, 'no module matches'));
    list.hidden = false;
  }

  function locations(edge) {
    const locs = edge.json.locations;
    const shown = locs.slice(0, 6).map((loc) => `${loc.file}:${loc.line}`);
    return shown.join(', ') + (locs.length > 6 ? ` and ${locs.length - 6} more` : '');
  }

  function edgeList(role, title, list, other) {
    const byModule = new Map();
    for (const edge of list) {
      const v = other(edge);
      if (!byModule.has(v)) byModule.set(v, []);
      byModule.get(v).push(edge);
    }
    const entries = [...byModule.entries()].sort((a, b) =>
      b[1].reduce((sum, e) => sum + e.w, 0) - a[1].reduce((sum, e) => sum + e.w, 0));
    const section = h('div', { 'data-role': role, 'data-count': entries.length });
    section.append(h('h4', null, `${title} (${plural(entries.length, 'module')})`));
    const ul = h('ul');
    for (const [v, edges] of entries.slice(0, 200)) {
      const weight = edges.reduce((sum, e) => sum + e.w, 0);
      const items = [...new Set(edges.flatMap((e) => e.json.items))];
      ul.append(h('li', { 'data-module': M.modules[v].id },
        h('a', { onclick: () => focus(v) }, h('code', null, M.modules[v].id)), ` ${weight}`,
        h('div', null, items.slice(0, 12).map((item, k) => [k ? ', ' : '', h('code', null, item)]), items.length > 12 ? ` and ${items.length - 12} more` : ''),
        h('div', { class: 'loc' }, edges.map(locations).join('; '))));
    }
    if (entries.length > 200) ul.append(h('li', { class: 'muted' }, `and ${entries.length - 200} more`));
    section.append(ul);
    return section;
  }

  function renderFocusPanel() {
    const host = byId('map-focus');
    host.textContent = '';
    const v = state.focus;
    if (v < 0) {
      const vis = visible();
      host.append(h('h3', null, 'The whole workspace'),
        h('p', null, `${plural(M.n, 'module')} in ${plural((M.data.crates || []).length, 'crate')}; the map shows ${vis.rows.length}.`),
        h('p', null, `${plural(M.cycles.length, 'tangle')} (strongly connected components), ${plural((M.data.elementary_cycles || []).length, 'elementary cycle')}${M.data.elementary_cycles_truncated ? ' (capped)' : ''}, ${plural(M.cut.length, 'edge')} to cut.`),
        M.cycles.length ? h('p', null, h('a', { onclick: () => showView('tangles') }, 'Open the tangles')) : null,
        h('p', { class: 'muted' }, 'Click a module (graph, tree, search) to focus it.'));
      return;
    }
    const module = M.modules[v];
    host.append(h('h3', { 'data-focus': module.id }, module.id));
    const buttons = h('p', null, h('button', { type: 'button', onclick: () => focus(-1) }, 'Whole map'));
    if (M.children[v].length) {
      buttons.append(' ', h('button', { type: 'button', onclick: () => setExpanded(v, !state.expanded.has(v)) },
        state.expanded.has(v) ? 'Close its subtree' : `Open its subtree (${M.size[v] - 1})`));
    }
    host.append(buttons);
    host.append(h('p', { class: 'loc' }, `${module.file}:${module.line}`, module.cfg ? ` cfg(${module.cfg})` : ''));
    const unit = M.metrics.get(module.id);
    if (unit) {
      host.append(h('table', null,
        h('tr', null, ['fan-in', 'fan-out', 'I', 'A', 'D', 'lines'].map((name) => h('th', null, name))),
        h('tr', { 'data-role': 'metrics' }, [unit.fan_in, unit.fan_out, unit.instability.toFixed(2), unit.abstractness.toFixed(2),
          unit.distance.toFixed(2), unit.lines_of_code].map((value) => h('td', { class: 'num' }, value)))));
    }
    const cycle = M.cycleAt(v);
    if (cycle >= 0) {
      const c = M.cycles[cycle];
      host.append(h('div', { 'data-role': 'cycles' }, h('h4', { class: 'bad' }, 'In a tangle'),
        h('p', null, `${plural(c.members.length, 'module')}, weight ${c.weight}. `,
          h('a', { onclick: () => { state.tangle = cycle; showView('tangles'); } }, 'Open the tangle'))));
      const paths = (M.data.elementary_cycles || []).filter((path) => path.some((id) => {
        const u = M.index.get(id);
        return u !== undefined && (M.within(v, u) || M.within(u, v));
      }));
      if (paths.length) {
        host.append(h('ul', null, paths.slice(0, 10).map((path) => h('li', null, h('code', null, [...path, path[0]].join(' → '))))));
        if (paths.length > 10) host.append(h('p', { class: 'muted' }, `and ${paths.length - 10} more elementary cycles`));
      }
    }
    const related = (id) => {
      const u = M.index.get(id);
      return u !== undefined && (M.within(v, u) || M.within(u, v));
    };
    const sugs = M.suggestions.filter((sug) => related(sug.from) || related(sug.to));
    if (sugs.length) {
      host.append(h('div', { 'data-role': 'suggestions' }, h('h4', null, plural(sugs.length, 'suggestion')),
        sugs.map((sug) => h('details', null,
          h('summary', null, 'Extract ', h('code', null, sug.trait_name), ': ', h('code', null, sug.from), ' → ', h('code', null, sug.to)),
          h('ol', { class: 'steps' }, sug.steps.map((step) => h('li', null, prose(step))))))));
    }
    host.append(edgeList('uses', 'Uses', M.out[v], (edge) => edge.t));
    host.append(edgeList('used-by', 'Used by', M.inn[v], (edge) => edge.f));
  }

  // ---- Putting it together -----------------------------------------------------------------------

  function showView(view) {
    state.view = view;
    render();
    saveState();
  }

  function render() {
    const view = byId('map-view');
    view.textContent = '';
    document.querySelectorAll('.tabs button').forEach((button) => button.classList.toggle('on', button.dataset.view === state.view));
    if (state.view === 'matrix') renderMatrix(view);
    else if (state.view === 'tangles') renderTangles(view);
    else renderGraph(view);
    renderTree();
    renderFocusPanel();
    byId('map-status').textContent = `${plural(visible().rows.length, 'module')} open of ${M.n}`;
  }

  // The live page keeps what the reader had open across reloads (sessionStorage, this tab only).
  const STATE_KEY = 'fig-map-state';
  function saveState() {
    if (!document.body.dataset.live) return;
    try {
      sessionStorage.setItem(STATE_KEY, JSON.stringify({
        expanded: [...state.expanded].map((v) => M.modules[v].id),
        focus: state.focus >= 0 ? M.modules[state.focus].id : null,
        view: state.view,
        tangle: state.tangle,
        scroll: window.scrollY,
      }));
    } catch (err) {
      // Storage may be off; the page works without it.
    }
  }
  function loadState() {
    if (!document.body.dataset.live) return false;
    let saved = null;
    try { saved = JSON.parse(sessionStorage.getItem(STATE_KEY) || 'null'); } catch (err) { saved = null; }
    if (!saved) return false;
    state.expanded = new Set(saved.expanded.map((id) => M.index.get(id)).filter((v) => v !== undefined));
    const f = saved.focus === null ? undefined : M.index.get(saved.focus);
    state.focus = f === undefined ? -1 : f;
    state.view = saved.view || 'graph';
    state.tangle = Math.min(saved.tangle || 0, Math.max(0, M.cycles.length - 1));
    visibleCache = null;
    requestAnimationFrame(() => window.scrollTo(0, saved.scroll || 0));
    return true;
  }

  // `fig analyze --serve --watch`: ask for a newer analysis (long poll), reload when there is one.
  async function follow() {
    const status = byId('live-status');
    let version = Number(document.body.dataset.version || 0);
    status.hidden = false;
    status.textContent = `live: analysis ${version}`;
    for (;;) {
      try {
        const res = await fetch(`/version?after=${version}`, { cache: 'no-store' });
        const body = await res.json();
        if (body.error) status.textContent = `live: the last analysis failed (${body.error}); showing analysis ${version}`;
        if (body.version > version) {
          saveState();
          window.location.reload();
          return;
        }
      } catch (err) {
        status.textContent = 'live: the server is not answering; retrying';
        await new Promise((resolve) => setTimeout(resolve, 2000));
      }
    }
  }

  // The embedded report: JSON as it is, or, for a large one, gzipped and base64-encoded (the
  // browser inflates it itself).
  async function readReport(source) {
    if (source.dataset.encoding === 'gzip+base64') {
      const bytes = Uint8Array.from(atob(source.textContent.trim()), (c) => c.charCodeAt(0));
      const stream = new Blob([bytes]).stream().pipeThrough(new DecompressionStream('gzip'));
      return JSON.parse(await new Response(stream).text());
    }
    return JSON.parse(source.textContent);
  }

  async function start() {
    const source = byId('fig-report');
    if (!source) return;
    const startedMs = performance.now();
    const data = await readReport(source);
    const parsedMs = performance.now();
    M = buildModel(data);
    const modelMs = performance.now();
    if (!loadState()) fit();
    byId('fig-map').hidden = false;
    const input = byId('map-search');
    input.addEventListener('input', () => search(input.value));
    input.addEventListener('keydown', (event) => {
      if (event.key === 'Enter') {
        const first = byId('map-results').querySelector('li[data-module]');
        if (first) first.click();
      } else if (event.key === 'Escape') {
        input.value = '';
        search('');
      }
    });
    document.addEventListener('keydown', (event) => {
      if (event.key === 'Escape' && event.target !== input) focus(-1);
    });
    byId('map-whole').addEventListener('click', () => { state.view = state.view === 'tangles' ? 'graph' : state.view; focus(-1); });
    byId('map-expand').addEventListener('click', () => {
      const rows = visible().rows;
      const level = Math.min(...rows.filter((v) => M.children[v].length && !state.expanded.has(v)).map((v) => M.depth[v]));
      rows.forEach((v) => { if (M.depth[v] === level && M.children[v].length) state.expanded.add(v); });
      visibleCache = null;
      render();
      saveState();
    });
    byId('map-collapse').addEventListener('click', () => { fit(); render(); saveState(); });
    document.querySelectorAll('.tabs button').forEach((button) => button.addEventListener('click', () => showView(button.dataset.view)));
    document.querySelectorAll('li[data-cycle]').forEach((item) => {
      item.style.cursor = 'pointer';
      item.title = 'Open this tangle on the map';
      item.addEventListener('click', () => {
        state.tangle = Number(item.dataset.cycle);
        showView('tangles');
        byId('map').scrollIntoView();
      });
    });
    render();
    // When the map became usable, in milliseconds since navigation started (the benchmark reads it).
    const readyMs = performance.now();
    document.body.dataset.readyMs = String(Math.round(readyMs));
    // Where the time went: page before the script, JSON.parse, the model, the first drawing.
    document.body.dataset.phasesMs = [startedMs, parsedMs - startedMs, modelMs - parsedMs, readyMs - modelMs]
      .map((ms) => Math.round(ms)).join(' ');
    document.body.dataset.mapReady = 'true';
    if (document.body.dataset.live) follow();
  }

  start().catch((err) => {
    byId('map-status').textContent = `the map could not start: ${err}`;
    throw err;
  });
})();
