/* Small SVG charts drawn with plain DOM calls: bars, a heatmap, a line, a stacked bar, a
 * reliability diagram.
 * Every chart is an <svg role="img"> with an aria-label summing it up, and a <title> on each
 * mark so a pointer or a screen reader can read the exact figure. */
"use strict";

const CrowdCharts = (() => {
  const NS = "http://www.w3.org/2000/svg";

  function svg(tag, attrs, ...children) {
    const node = document.createElementNS(NS, tag);
    for (const [name, value] of Object.entries(attrs || {})) {
      if (value !== null && value !== undefined) node.setAttribute(name, String(value));
    }
    for (const child of children.flat()) {
      if (child === null || child === undefined) continue;
      node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return node;
  }

  /* An <svg> scaled to its container's width, or drawn at its own size with `natural`. */
  function root(width, height, label, natural) {
    return svg("svg", {
      viewBox: `0 0 ${width} ${height}`, width: natural ? width : "100%", class: "chart-svg",
      role: "img", "aria-label": label, preserveAspectRatio: "xMinYMin meet",
    });
  }

  function title(text) { return svg("title", {}, text); }

  /* A round upper bound for an axis: 1, 2, 5 times a power of ten. */
  function niceMax(value) {
    if (value <= 0) return 1;
    const power = 10 ** Math.floor(Math.log10(value));
    for (const step of [1, 2, 5, 10]) if (step * power >= value) return step * power;
    return 10 * power;
  }

  /* A light-to-dark blue for a share in [0, 1] (a sequential scale). */
  function blue(share) {
    const t = Math.max(0, Math.min(1, share));
    const from = [239, 246, 255];
    const to = [8, 48, 107];
    const mix = from.map((c, i) => Math.round(c + (to[i] - c) * t));
    return `rgb(${mix.join(",")})`;
  }

  /* Vertical bars. items: [{label, value, title}]; opts: {label, xTitle, yTitle}. */
  function bars(items, opts) {
    const width = 520, height = 230;
    const m = { left: 52, right: 10, top: 12, bottom: 46 };
    const plotW = width - m.left - m.right, plotH = height - m.top - m.bottom;
    const top = niceMax(Math.max(0, ...items.map((d) => d.value)));
    const node = root(width, height, opts.label);
    const y = (v) => m.top + plotH - (v / top) * plotH;
    for (const tick of [0, top / 2, top]) {
      node.append(
        svg("line", { x1: m.left, x2: width - m.right, y1: y(tick), y2: y(tick), class: "grid" }),
        svg("text", { x: m.left - 6, y: y(tick) + 4, class: "tick", "text-anchor": "end" },
          Number.isInteger(tick) ? tick.toLocaleString("en") : tick.toFixed(1)));
    }
    const slot = plotW / Math.max(1, items.length);
    const every = Math.ceil(items.length / 12);
    items.forEach((d, i) => {
      const x = m.left + i * slot;
      const h = Math.max(0, m.top + plotH - y(d.value));
      node.append(svg("rect", {
        x: x + slot * 0.1, y: m.top + plotH - h, width: Math.max(1, slot * 0.8), height: h,
        class: "bar", "data-label": d.label, "data-value": d.value,
      }, title(d.title || `${d.label}: ${d.value}`)));
      if (i % every === 0) {
        node.append(svg("text", { x: x + slot / 2, y: height - m.bottom + 16, class: "tick",
          "text-anchor": "middle" }, d.label));
      }
    });
    node.append(
      svg("line", { x1: m.left, x2: width - m.right, y1: m.top + plotH, y2: m.top + plotH, class: "axis" }),
      svg("text", { x: m.left + plotW / 2, y: height - 6, class: "axis-title", "text-anchor": "middle" }, opts.xTitle),
      svg("text", { x: 12, y: m.top + plotH / 2, class: "axis-title", "text-anchor": "middle",
        transform: `rotate(-90 12 ${m.top + plotH / 2})` }, opts.yTitle));
    return node;
  }

  /* A K x K matrix of shares (rows sum to 1) as coloured cells with their values. */
  function heatmap(matrix, labels, opts) {
    const k = labels.length;
    const cell = Math.max(22, Math.min(56, Math.floor(420 / Math.max(1, k))));
    const m = { left: 110, top: 84, right: 10, bottom: 10 };
    const width = m.left + k * cell + m.right, height = m.top + k * cell + m.bottom;
    const node = root(width, height, opts.label, true);
    const short = (s) => (s.length > 14 ? s.slice(0, 13) + "…" : s);
    node.append(
      svg("text", { x: m.left + (k * cell) / 2, y: 14, class: "axis-title", "text-anchor": "middle" }, "answered"),
      svg("text", { x: 14, y: m.top + (k * cell) / 2, class: "axis-title", "text-anchor": "middle",
        transform: `rotate(-90 14 ${m.top + (k * cell) / 2})` }, "true label"));
    labels.forEach((label, j) => {
      const x = m.left + j * cell + cell / 2;
      node.append(svg("text", { x, y: m.top - 8, class: "tick", "text-anchor": "start",
        transform: `rotate(-45 ${x} ${m.top - 8})` }, short(label), title(label)));
      node.append(svg("text", { x: m.left - 8, y: m.top + j * cell + cell / 2 + 4, class: "tick",
        "text-anchor": "end" }, short(label), title(label)));
    });
    matrix.forEach((row, i) => row.forEach((value, j) => {
      const x = m.left + j * cell, y = m.top + i * cell;
      node.append(svg("rect", {
        x, y, width: cell, height: cell, fill: blue(value), class: "cell",
        "data-row": i, "data-col": j,
      }, title(`true ${labels[i]}, answered ${labels[j]}: ${(100 * value).toFixed(1)}%`)));
      if (cell >= 30) {
        node.append(svg("text", { x: x + cell / 2, y: y + cell / 2 + 4, "text-anchor": "middle",
          class: value >= 0.6 ? "cell-text dark" : "cell-text" }, value.toFixed(2)));
      }
    }));
    return node;
  }

  /* A line with dots over ordered points: [{label, value, title, text}], values in [0, 1];
   * a point's `text`, when given, is written above its dot. */
  function line(points, opts) {
    const width = 520, height = 230;
    const m = { left: 52, right: 16, top: 24, bottom: 46 };
    const plotW = width - m.left - m.right, plotH = height - m.top - m.bottom;
    const node = root(width, height, opts.label);
    const y = (v) => m.top + plotH - v * plotH;
    const pad = 30;  // the first and last dots (and their texts) clear the axis labels
    const x = (i) => m.left + (points.length === 1 ? plotW / 2 : pad + (i * (plotW - 2 * pad)) / (points.length - 1));
    for (const tick of [0, 0.5, 1]) {
      node.append(
        svg("line", { x1: m.left, x2: width - m.right, y1: y(tick), y2: y(tick), class: "grid" }),
        svg("text", { x: m.left - 6, y: y(tick) + 4, class: "tick", "text-anchor": "end" }, `${tick * 100}%`));
    }
    const drawn = points.filter((p) => p.value !== null && p.value !== undefined);
    node.append(svg("polyline", {
      points: points.map((p, i) => (p.value === null || p.value === undefined ? null : `${x(i)},${y(p.value)}`))
        .filter(Boolean).join(" "),
      class: "line",
    }));
    points.forEach((p, i) => {
      if (p.value !== null && p.value !== undefined) {
        node.append(svg("circle", { cx: x(i), cy: y(p.value), r: 4.5, class: "dot" }, title(p.title)));
        if (p.text) {
          node.append(svg("text", { x: x(i), y: y(p.value) - 10, class: "value", "text-anchor": "middle" },
            p.text));
        }
      }
      node.append(svg("text", { x: x(i), y: height - m.bottom + 16, class: "tick", "text-anchor": "middle" }, p.label));
    });
    node.append(svg("text", { x: m.left + plotW / 2, y: height - 6, class: "axis-title", "text-anchor": "middle" },
      opts.xTitle), svg("text", { x: 12, y: m.top + plotH / 2, class: "axis-title", "text-anchor": "middle",
      transform: `rotate(-90 12 ${m.top + plotH / 2})` }, opts.yTitle));
    if (!drawn.length) node.append(svg("text", { x: width / 2, y: height / 2, "text-anchor": "middle", class: "tick" }, "no figures yet"));
    return node;
  }

  /* One horizontal bar split into parts: [{label, value, cls}]. */
  function stacked(parts, opts) {
    const width = 520, height = 34;
    const total = parts.reduce((s, p) => s + p.value, 0);
    const node = root(width, height, opts.label);
    let x = 0;
    node.append(svg("rect", { x: 0, y: 4, width, height: 26, class: "track", rx: 4 }));
    for (const p of parts) {
      const w = total ? (p.value / total) * width : 0;
      node.append(svg("rect", { x, y: 4, width: w, height: 26, class: p.cls, rx: 0 },
        title(`${p.label}: ${p.value.toLocaleString("en")}`)));
      x += w;
    }
    return node;
  }

  /* A reliability diagram: for each confidence bucket [{from, to, tasks, confidence,
   * accuracy}], a dot at (mean confidence, accuracy) whose area grows with its tasks, over the
   * diagonal of a perfectly calibrated model. Empty buckets draw no dot. */
  function reliability(buckets, opts) {
    const width = 360, height = 300;
    const m = { left: 52, right: 14, top: 12, bottom: 46 };
    const plotW = width - m.left - m.right, plotH = height - m.top - m.bottom;
    const node = root(width, height, opts.label, true);
    const x = (v) => m.left + v * plotW;
    const y = (v) => m.top + plotH - v * plotH;
    for (const tick of [0, 0.5, 1]) {
      node.append(
        svg("line", { x1: m.left, x2: width - m.right, y1: y(tick), y2: y(tick), class: "grid" }),
        svg("line", { x1: x(tick), x2: x(tick), y1: m.top, y2: m.top + plotH, class: "grid" }),
        svg("text", { x: m.left - 6, y: y(tick) + 4, class: "tick", "text-anchor": "end" }, `${tick * 100}%`),
        svg("text", { x: x(tick), y: m.top + plotH + 16, class: "tick", "text-anchor": "middle" }, `${tick * 100}%`));
    }
    node.append(svg("line", { x1: x(0), y1: y(0), x2: x(1), y2: y(1), class: "diagonal" },
      title("a calibrated model: accuracy equals confidence")));
    const most = Math.max(1, ...buckets.map((b) => b.tasks));
    const shown = buckets.filter((b) => b.tasks > 0);
    node.append(svg("polyline", {
      points: shown.map((b) => `${x(b.confidence)},${y(b.accuracy)}`).join(" "), class: "line",
    }));
    for (const b of shown) {
      node.append(svg("circle", {
        cx: x(b.confidence), cy: y(b.accuracy), r: 3 + 6 * Math.sqrt(b.tasks / most), class: "dot",
        "data-from": b.from, "data-tasks": b.tasks, "data-accuracy": b.accuracy,
      }, title(`confidence ${b.from.toFixed(1)}–${b.to.toFixed(1)}: ${b.tasks} tasks, ` +
        `mean confidence ${(100 * b.confidence).toFixed(1)}%, right ${(100 * b.accuracy).toFixed(1)}%`)));
    }
    node.append(
      svg("text", { x: m.left + plotW / 2, y: height - 6, class: "axis-title", "text-anchor": "middle" },
        opts.xTitle),
      svg("text", { x: 12, y: m.top + plotH / 2, class: "axis-title", "text-anchor": "middle",
        transform: `rotate(-90 12 ${m.top + plotH / 2})` }, opts.yTitle));
    if (!shown.length) {
      node.append(svg("text", { x: m.left + plotW / 2, y: m.top + plotH / 2, "text-anchor": "middle",
        class: "tick" }, "no checked predictions yet"));
    }
    return node;
  }

  return { bars, heatmap, line, stacked, reliability, blue };
})();
