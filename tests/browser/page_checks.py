"""What a person sees of the dashboard, measured in the page: geometry (is each row one line, does a header
wrap, is every button inside the table and its cell, does anything stick out sideways) and contrast (the WCAG
ratio of every piece of text against the colour actually painted behind it).

Everything is computed from the rendered page: ``getBoundingClientRect``, ``Range.getClientRects`` (how many
line boxes a text occupies), ``getComputedStyle`` colours, and ``document.elementsFromPoint`` at points on the
text to find what is painted behind it (the first non-transparent background below the text, compositing
semi-transparent ones, as deep as needed). Class names are only used to find the table and its rows.

The JavaScript is installed once per page as ``window.__jmChecks``; the Python functions return plain dicts
and lists, which the tests turn into assertions with the measured figures in their messages.
"""

from __future__ import annotations

from typing import Any

AA = 4.5
"""WCAG 2 level AA for normal text (the dashboard's text is all small)."""

ONE_LINE = 1.6
"""A row is one line when its height is at most this many line units (see :func:`geometry`)."""

_JS = r"""
(() => {
  if (window.__jmChecks) return;
  const canvas = document.createElement('canvas');
  canvas.width = canvas.height = 1;
  const ctx = canvas.getContext('2d', {willReadFrequently: true});

  function parseColor(text) {
    let m = text.match(/^rgba?\(\s*([\d.]+)[,\s]+([\d.]+)[,\s]+([\d.]+)(?:\s*[,/]\s*([\d.]+)(%?))?\s*\)$/);
    if (m) {
      const a = m[4] === undefined ? 1 : parseFloat(m[4]) / (m[5] ? 100 : 1);
      return [+m[1], +m[2], +m[3], a];
    }
    m = text.match(/^color\(srgb\s+([-\d.e]+)\s+([-\d.e]+)\s+([-\d.e]+)(?:\s*\/\s*([\d.]+)(%?))?\s*\)$/);
    if (m) {
      const a = m[4] === undefined ? 1 : parseFloat(m[4]) / (m[5] ? 100 : 1);
      return [m[1] * 255, m[2] * 255, m[3] * 255, a];
    }
    // anything else (oklch(), lab(), color-mix() ...): let a canvas paint it and read the pixel
    ctx.clearRect(0, 0, 1, 1);
    ctx.fillStyle = '#000';
    ctx.fillStyle = text;
    ctx.fillRect(0, 0, 1, 1);
    const d = ctx.getImageData(0, 0, 1, 1).data;
    return [d[0], d[1], d[2], d[3] / 255];
  }

  function over(top, bottom) {  // source-over compositing of two non-premultiplied colours
    const a = top[3] + bottom[3] * (1 - top[3]);
    if (a <= 0) return [0, 0, 0, 0];
    const c = [0, 1, 2].map(i => (top[i] * top[3] + bottom[i] * bottom[3] * (1 - top[3])) / a);
    return [...c, a];
  }

  function luminance(c) {
    const [r, g, b] = c.slice(0, 3).map(v => {
      const s = v / 255;
      return s <= 0.04045 ? s / 12.92 : Math.pow((s + 0.055) / 1.055, 2.4);
    });
    return 0.2126 * r + 0.7152 * g + 0.0722 * b;
  }

  function ratio(a, b) {
    const [l1, l2] = [luminance(a), luminance(b)].sort((x, y) => y - x);
    return (l1 + 0.05) / (l2 + 0.05);
  }

  const hex = c => '#' + c.slice(0, 3).map(v => Math.round(v).toString(16).padStart(2, '0')).join('')
    + (c[3] < 0.999 ? '/' + c[3].toFixed(2) : '');

  function opacityOf(el) {
    let o = 1;
    for (let e = el; e && e.nodeType === 1; e = e.parentElement) o *= parseFloat(getComputedStyle(e).opacity);
    return o;
  }

  function describe(el) {  // a short path of class names, for messages
    const parts = [];
    for (let e = el; e && e.nodeType === 1 && parts.length < 4; e = e.parentElement) {
      const jm = [...e.classList].filter(c => c.startsWith('jm-'));
      const cls = jm.length ? jm : [...e.classList].slice(0, 2);
      parts.unshift(e.tagName.toLowerCase() + (cls.length ? '.' + cls.join('.') : ''));
      if (jm.some(c => c === 'jm-row' || c === 'jm-table' || c === 'jm-header')) break;
    }
    return parts.join(' > ');
  }

  function visible(el) {
    if (!el.checkVisibility({visibilityProperty: true, opacityProperty: true})) return false;
    const r = el.getBoundingClientRect();
    return r.width > 0 && r.height > 0;
  }

  function intersect(a, b) {
    const left = Math.max(a.left, b.left), right = Math.min(a.right, b.right);
    const top = Math.max(a.top, b.top), bottom = Math.min(a.bottom, b.bottom);
    return {left, right, top, bottom, width: Math.max(0, right - left), height: Math.max(0, bottom - top)};
  }

  // el's box as cut by the ancestors (up to, not including, `stop`) that clip their overflow
  function visibleRect(el, stop) {
    let r = el.getBoundingClientRect();
    r = {left: r.left, right: r.right, top: r.top, bottom: r.bottom, width: r.width, height: r.height};
    for (let e = el.parentElement; e && e !== stop; e = e.parentElement) {
      if (e === document.body || e === document.documentElement) break;  // their overflow is the viewport's
      const cs = getComputedStyle(e);
      if (cs.overflowX !== 'visible' || cs.overflowY !== 'visible') r = intersect(r, e.getBoundingClientRect());
    }
    return r;
  }

  function lineHeight(el) {
    const cs = getComputedStyle(el);
    const lh = parseFloat(cs.lineHeight);
    return Number.isFinite(lh) ? lh : 1.2 * parseFloat(cs.fontSize);
  }

  function pseudoText(el, pseudo) {
    const cs = getComputedStyle(el, pseudo);
    const content = cs.content;
    if (!content || content === 'none' || content === 'normal' || cs.display === 'none') return null;
    if (cs.visibility === 'hidden') return null;
    let text = '';
    const re = /"((?:[^"\\]|\\.)*)"|attr\(\s*([\w-]+)\s*\)/g;
    let m;
    while ((m = re.exec(content))) {
      text += m[1] !== undefined ? m[1].replace(/\\(.)/g, '$1') : (el.getAttribute(m[2]) || '');
    }
    return text.trim() ? {text, cs} : null;
  }

  // Every visible piece of text under root: elements with their own non-blank text nodes, and ::before /
  // ::after content. Each item: el, text, its line boxes as the page shows them (rects: empty when scrolled
  // away) and as its boxes up to root show them (inRects), how many lines, `cut` (the percentage of its width
  // shown, when its boxes cut it off), colour and font facts.
  function textItems(root) {
    const items = [];
    const byEl = new Map();
    const walker = document.createTreeWalker(root, NodeFilter.SHOW_TEXT);
    while (walker.nextNode()) {
      const node = walker.currentNode;
      if (!node.textContent.trim()) continue;
      const el = node.parentElement;
      if (!el || el.closest('style, script')) continue;
      if (!byEl.has(el)) byEl.set(el, []);
      byEl.get(el).push(node);
    }
    const range = document.createRange();
    for (const [el, nodes] of byEl) {
      if (!visible(el)) continue;
      const clip = visibleRect(el, null);  // what the page shows of it (the notebook scrolls)
      const within = visibleRect(el, root);  // what its own boxes show of it, up to root
      const rects = [], inRects = [];
      const tops = new Set();
      let full = 0, shown = 0;
      for (const node of nodes) {
        range.selectNodeContents(node);
        for (const r of range.getClientRects()) {
          if (r.width < 0.5 || r.height < 0.5) continue;
          tops.add(Math.round(r.top / 3));  // line boxes of one line share a top (to within a few px)
          full += r.width;
          const w = intersect(r, within);
          shown += w.height > 0.5 ? w.width : 0;
          if (w.width > 0.5 && w.height > 0.5) inRects.push(w);
          const v = intersect(r, clip);
          if (v.width > 0.5 && v.height > 0.5) rects.push(v);
        }
      }
      if (!full) continue;
      const cs = getComputedStyle(el);
      // cut off: some of the text's width lies outside what its box and the boxes around it (in root) show
      const cut = full - shown > 1.5 ? Math.round(100 * shown / full) : null;
      items.push({el, pseudo: null, text: nodes.map(n => n.textContent).join('').trim(), rects, inRects,
                  lines: tops.size, cut,
                  color: cs.color, fontSize: parseFloat(cs.fontSize), fontWeight: cs.fontWeight,
                  lineHeight: lineHeight(el)});
    }
    for (const el of [root, ...root.querySelectorAll('*')]) {
      if (el.closest('style, script')) continue;
      for (const pseudo of ['::before', '::after']) {
        const found = pseudoText(el, pseudo);
        if (!found || !visible(el)) continue;
        const {text, cs} = found;
        const box = visibleRect(el, null);
        ctx.font = cs.font;
        const w = Math.min(ctx.measureText(text).width, box.width);
        let left = box.left;
        if (cs.textAlign === 'center') left = box.left + (box.width - w) / 2;
        else if (cs.textAlign === 'right' || cs.textAlign === 'end') left = box.right - w;
        const r = {left, right: left + w, top: box.top, bottom: box.bottom, width: w, height: box.height};
        if (r.width < 0.5 || r.height < 0.5) continue;
        items.push({el, pseudo, text, rects: [r], inRects: [r], lines: 1, cut: null, color: cs.color,
                    fontSize: parseFloat(cs.fontSize), fontWeight: cs.fontWeight,
                    lineHeight: parseFloat(cs.lineHeight) || 1.2 * parseFloat(cs.fontSize)});
      }
    }
    return items;
  }

  // The colour painted behind point (x, y) of el's text: the backgrounds below el (or, for pseudo-element
  // text, below the topmost descendant of el there), composited until an opaque one; white (the canvas)
  // under all.
  function backgroundAt(el, x, y, pseudo) {
    const stack = document.elementsFromPoint(x, y);
    let i = stack.indexOf(el);
    if (i < 0) {  // not hit-testable (pointer-events: none): el and its ancestors
      stack.length = 0;
      for (let e = el; e; e = e.parentElement) stack.push(e);
      i = 0;
    } else if (pseudo) {
      for (let j = 0; j < i; j++) if (el.contains(stack[j])) { i = j; break; }
    }
    const layers = [];
    let image = false;
    for (let k = i; k < stack.length; k++) {
      const cs = getComputedStyle(stack[k]);
      if (cs.backgroundImage && cs.backgroundImage !== 'none') image = true;
      const c = parseColor(cs.backgroundColor);
      if (c[3] <= 0) continue;
      c[3] *= opacityOf(stack[k]);
      layers.push({c, el: stack[k]});
      if (c[3] >= 0.999) break;
    }
    let bg = [255, 255, 255, 1];
    for (let k = layers.length - 1; k >= 0; k--) bg = over(layers[k].c, bg);
    return {bg, from: layers.length ? describe(layers[0].el) : 'canvas', image};
  }

  function inViewport(x, y) {
    return x >= 0 && y >= 0 && x < window.innerWidth && y < window.innerHeight;
  }

  // The contrast of every piece of text under root; the worst of a few points across each line box.
  function contrast(root) {
    const results = [];
    for (const item of textItems(root)) {
      if (!item.rects.length) continue;
      const fg0 = parseColor(item.color);
      fg0[3] *= opacityOf(item.el);
      if (fg0[3] <= 0.01) continue;  // transparent text is not shown
      let worst = null;
      for (const r of item.rects) {
        for (const fx of [0.1, 0.5, 0.9]) {
          const x = r.left + r.width * fx, y = r.top + r.height / 2;
          if (!inViewport(x, y)) continue;
          const {bg, from, image} = backgroundAt(item.el, x, y, item.pseudo);
          const fg = over(fg0, bg);
          const value = ratio(fg, bg);
          if (!worst || value < worst.ratio) worst = {ratio: value, fg: hex(fg0), bg: hex(bg), bgFrom: from, image};
        }
      }
      if (!worst) continue;  // off screen: the caller scrolls rows into view
      results.push({text: item.text.slice(0, 60), where: describe(item.el) + (item.pseudo || ''),
                    fontSize: item.fontSize, bold: parseInt(item.fontWeight, 10) >= 600, ...worst,
                    ratio: worst.ratio});
    }
    return results;
  }

  const round = r => ({left: Math.round(r.left * 10) / 10, top: Math.round(r.top * 10) / 10,
                       width: Math.round(r.width * 10) / 10, height: Math.round(r.height * 10) / 10});

  // One row (or the header): its texts' line boxes and its buttons (outside `exclude`). They are on one
  // line when some horizontal band crosses all of them (`band` > 0: the lowest bottom minus the highest
  // top); `extent` is their total height and `unit` the line unit, the taller of the texts' line-height
  // and the buttons' height; `wrapped` lists the texts that take more than one line box.
  function lineFacts(box, exclude) {
    const outside = e => !(exclude && e.closest(exclude));
    const texts = textItems(box).filter(t => outside(t.el) && t.inRects.length);
    const buttons = [...box.querySelectorAll('button')].filter(b => outside(b) && visible(b));
    let top = Infinity, bottom = -Infinity, maxTop = -Infinity, minBottom = Infinity, unit = 0;
    let highest = null, lowest = null;
    const take = (r, what) => {
      top = Math.min(top, r.top); bottom = Math.max(bottom, r.bottom);
      if (r.top > maxTop) { maxTop = r.top; lowest = what; }
      if (r.bottom < minBottom) { minBottom = r.bottom; highest = what; }
    };
    for (const t of texts) {
      for (const r of t.inRects) take(r, t.text.slice(0, 30));
      unit = Math.max(unit, t.lineHeight);
    }
    for (const b of buttons) {
      const r = b.getBoundingClientRect();
      take(r, 'button ' + b.textContent.trim());
      unit = Math.max(unit, r.height);
    }
    const wrapped = texts.filter(t => t.lines > 1).map(t => `${t.text.slice(0, 40)} (${t.lines} lines)`);
    const box_ = box.getBoundingClientRect();
    const r1 = v => Math.round(v * 10) / 10;
    return {extent: r1(bottom - top), band: r1(minBottom - maxTop), unit: r1(unit), height: r1(box_.height),
            wrapped, texts: texts.length, buttons: buttons.length,
            below: minBottom <= maxTop ? `"${lowest}" starts below the end of "${highest}"` : ''};
  }

  function rowName(row) {
    const c = [...row.classList].find(c => c.startsWith('jm-row-'));
    return c ? c.slice('jm-row-'.length) : '?';
  }

  function inside(r, box, tol = 0.5) {
    return r.left >= box.left - tol && r.right <= box.right + tol
      && r.top >= box.top - tol && r.bottom <= box.bottom + tol;
  }

  function geometry(table, detailSelector, clippable) {
    const T = table.getBoundingClientRect();
    const out = {table: round(T), rows: [], header: null, buttons: [], overflow: [], cut: []};
    for (const t of textItems(table)) {
      if (t.cut === null || t.cut === undefined) continue;
      const row = t.el.closest('.jm-row, .jm-header, .jm-summary');
      const name = !row ? '?' : row.classList.contains('jm-row') ? rowName(row)
        : row.classList.contains('jm-header') ? 'header' : 'summary';
      out.cut.push({text: t.text.slice(0, 60), shown: t.cut, where: describe(t.el), row: name,
                    allowed: t.el.closest(clippable) !== null});
    }
    const header = table.querySelector('.jm-header');
    if (header && visible(header)) out.header = {name: 'header', ...lineFacts(header, null)};
    for (const row of table.querySelectorAll('.jm-row')) {
      if (!visible(row)) continue;
      const expanded = !!row.querySelector(detailSelector) && visible(row.querySelector(detailSelector));
      out.rows.push({name: rowName(row), expanded, ...lineFacts(row, detailSelector)});
    }
    for (const b of table.querySelectorAll('button')) {
      if (!visible(b)) continue;
      const r = b.getBoundingClientRect();
      const cell = b.parentElement.getBoundingClientRect();
      const row = b.closest('.jm-row, .jm-header');
      const v = visibleRect(b, table);
      out.buttons.push({text: b.textContent.trim() || b.title, row: row ? rowName(row) : '?', rect: round(r),
                        inTable: inside(r, T), inCell: inside(r, cell), cell: round(cell),
                        inRow: row ? inside(r, row.getBoundingClientRect()) : false,
                        clipped: v.width * v.height < 0.95 * r.width * r.height, onTop: null, el: b});
    }
    if (table.scrollWidth > table.clientWidth + 1) {
      out.overflow.push(`the table scrolls sideways: scrollWidth ${table.scrollWidth}`
                        + ` > clientWidth ${table.clientWidth}`);
    }
    const area = table.closest('.jp-OutputArea-output');
    if (area) {
      if (area.scrollWidth > area.clientWidth + 1) {
        out.overflow.push(`the output area scrolls sideways: scrollWidth ${area.scrollWidth}`
                          + ` > clientWidth ${area.clientWidth}`);
      }
      const A = area.getBoundingClientRect();
      if (T.right > A.right + 1 || T.left < A.left - 1) {
        out.overflow.push(`the table (x ${Math.round(T.left)}..${Math.round(T.right)}) sticks out of`
                          + ` the output area (x ${Math.round(A.left)}..${Math.round(A.right)})`);
      }
    }
    for (const e of table.querySelectorAll('*')) {
      if (e.closest('style') || !visible(e)) continue;
      const v = visibleRect(e, table);
      if (v.width <= 0 || v.height <= 0) continue;
      if (v.right > T.right + 1 || v.left < T.left - 1) {
        out.overflow.push(`${describe(e)} "${e.textContent.trim().slice(0, 30)}" spans`
                          + ` x ${Math.round(v.left)}..${Math.round(v.right)},`
                          + ` the table x ${Math.round(T.left)}..${Math.round(T.right)}`);
      }
    }
    // last, as it scrolls: each button on top at its centre, once scrolled into the notebook's view (a
    // scrolled-away button is covered by the toolbar, which says nothing about the table)
    for (const facts of out.buttons) {
      const b = facts.el;
      delete facts.el;
      const r = b.getBoundingClientRect();
      const seen = visibleRect(b, null);
      if (seen.width * seen.height < 0.99 * r.width * r.height || !inViewport(r.left, r.top)
          || !inViewport(r.right - 1, r.bottom - 1)) {
        b.scrollIntoView({block: 'center', inline: 'nearest'});
      }
      const now = b.getBoundingClientRect();
      const top = document.elementFromPoint(now.left + now.width / 2, now.top + now.height / 2);
      facts.onTop = !!top && (b === top || b.contains(top));
    }
    return out;
  }

  // How each button stands out from what is behind it (WCAG 1.4.11 asks 3:1 of what identifies a control):
  // its fill against the background behind the button, and its border (when at least 1 px wide) against
  // the same. The button must be in the viewport.
  function affordance(root) {
    const out = [];
    for (const b of root.matches('button') ? [root] : root.querySelectorAll('button')) {
      if (!visible(b)) continue;
      const r = b.getBoundingClientRect();
      const x = r.left + 2, y = r.top + r.height / 2;
      if (!inViewport(x, y)) continue;
      const stack = document.elementsFromPoint(x, y);
      const i = stack.indexOf(b);
      if (i < 0) continue;
      const behind = backgroundAt(stack[i + 1] || b.parentElement, x, y, null).bg;
      const cs = getComputedStyle(b);
      const fillColor = parseColor(cs.backgroundColor);
      fillColor[3] *= opacityOf(b);
      const fill = over(fillColor, behind);
      const widths = [cs.borderTopWidth, cs.borderRightWidth, cs.borderBottomWidth, cs.borderLeftWidth].map(parseFloat);
      let edge = 1;
      if (Math.min(...widths) >= 1 && cs.borderTopStyle !== 'none') {
        const e = parseColor(cs.borderTopColor);
        e[3] *= opacityOf(b);
        edge = ratio(over(e, behind), behind);
      }
      const shadow = cs.boxShadow && cs.boxShadow !== 'none';
      const row = b.closest('.jm-row');
      out.push({text: b.textContent.trim() || b.title, row: row ? rowName(row) : '?', fill: ratio(fill, behind),
                edge, shadow, fillColor: hex(fill), behind: hex(behind), toggle: b.classList.contains('jm-toggle')});
    }
    return out;
  }

  window.__jmChecks = {contrast, geometry, textItems, parseColor, ratio, luminance, affordance};
})();
"""


def install(page: Any) -> None:
    page.evaluate(_JS)


CLIPPABLE = ".jm-c-name, .jm-c-schedule, .jm-c-kind, .jm-hint, .jm-prog, .jm-skipped, .jm-where, .jm-detail"
"""Where a text may end in an ellipsis: free text with the whole of it in a tooltip (names, schedules, kinds,
hints, progress captions, where a remote run runs), the skipped-runs count after the run count, and the expanded
part. Numbers and state words (badges, the state's words, run counts, last and next run, tags, headers, buttons)
never."""


def geometry(page: Any, table: Any, detail: str = ".jm-detail") -> dict[str, Any]:
    """Facts about the table's layout (see the JavaScript above): ``rows`` and ``header`` (for each: the
    height of its line of texts and buttons, ``extent``; the line ``unit``, the taller of the text's
    line-height and the buttons' height; the box ``height``; and the texts that wrap), ``buttons`` (each
    one's box, whether it is inside the table, its cell and its row, clipped, and on top at its centre) and
    ``overflow`` (what sticks out sideways) and ``cut`` (texts cut off by their box, each with ``allowed``:
    whether it is in a :data:`CLIPPABLE` place, and ``shown``: the percentage of its width shown)."""
    install(page)
    result: dict[str, Any] = table.evaluate(
        "(el, [detail, clippable]) => window.__jmChecks.geometry(el, detail, clippable)", [detail, CLIPPABLE]
    )
    return result


def contrast(page: Any, root: Any) -> list[dict[str, Any]]:
    """The contrast ratio of each piece of text under ``root`` (which must be in the viewport) against what
    is painted behind it: text, where, ratio, fg, bg, bgFrom."""
    install(page)
    result: list[dict[str, Any]] = root.evaluate("el => window.__jmChecks.contrast(el)")
    return result


def affordance(page: Any, root: Any) -> list[dict[str, Any]]:
    """How each button under ``root`` (in the viewport) stands out from what is behind it: ``fill`` and
    ``edge`` (border) contrast ratios, ``shadow`` (whether it has a box shadow)."""
    install(page)
    result: list[dict[str, Any]] = root.evaluate("el => window.__jmChecks.affordance(el)")
    return result


def one_line_problems(facts: dict[str, Any], *, use_box: bool) -> list[str]:
    """Why a row (or the header) is not one line, or [] when it is: its texts and buttons must share a
    horizontal band, span at most :data:`ONE_LINE` line units (and so must the row's box, with
    ``use_box``), and no text may wrap."""
    problems = []
    limit = ONE_LINE * facts["unit"]
    if facts["band"] <= 0:
        problems.append(f"not one line: {facts['below']}")
    if facts["extent"] > limit + 0.5:
        problems.append(f"its texts and buttons span {facts['extent']} px > {ONE_LINE} x {facts['unit']} px")
    if use_box and facts["height"] > limit + 0.5:
        problems.append(f"it is {facts['height']} px high > {ONE_LINE} x {facts['unit']} px")
    if facts["wrapped"]:
        problems.append("wrapped: " + "; ".join(facts["wrapped"]))
    return [f"{facts['name']}: {p}" for p in problems]


def low_contrast(results: list[dict[str, Any]], minimum: float = AA) -> list[str]:
    return [
        f"{r['ratio']:.3f}:1 {r['text']!r} ({r['where']}, {r['fg']} on {r['bg']} from {r['bgFrom']})"
        for r in sorted(results, key=lambda r: r["ratio"])
        if r["ratio"] < minimum
    ]
