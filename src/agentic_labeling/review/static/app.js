// The review page. User data (class names, sources, attributes) is only ever set as text
// (textContent, setAttribute, .value): never through innerHTML.
"use strict";

const TOKEN = document.querySelector('meta[name="review-token"]').content;
const SVG = "http://www.w3.org/2000/svg";
const REJECT_DELAY_MS = 2500; // a reject (a delete) waits this long: undo can still cancel it
const RETRY_MS = 2000;

const state = {
  cards: [],         // the queue, in order
  current: 0,
  nextPageToken: "",
  undo: [],          // {card, inverse} of the decisions made
  outbox: [],        // decisions not yet acknowledged by the registry, oldest first
  sending: false,
  similarOf: null,
  frame: null,       // the image view's data
  selectedBox: null, // {card, rect, bbox}
};

function el(tag, attrs = {}, text) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
  if (text !== undefined) node.textContent = text;
  return node;
}

function svgEl(tag, attrs = {}, text) {
  const node = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, String(v));
  if (text !== undefined) node.textContent = text;
  return node;
}

function banner(text, ok) {
  const b = document.getElementById("banner");
  b.hidden = !text;
  b.textContent = text || "";
  b.classList.toggle("ok", !!ok);
}

// GET JSON; a registry that is down is retried until it answers, saying so on the page.
async function getJSON(url) {
  for (;;) {
    let reply;
    try {
      reply = await fetch(url, { headers: { Accept: "application/json" } });
    } catch (e) {
      reply = null;
    }
    if (reply && reply.status !== 503 && reply.status !== 502) {
      const body = await reply.json();
      if (!reply.ok) throw new Error(body.error || reply.statusText);
      if (!state.outbox.length) banner("");
      return body;
    }
    banner("The registry is unavailable: retrying…");
    await new Promise((r) => setTimeout(r, RETRY_MS));
  }
}

// ---- queue ---------------------------------------------------------------------------------

function queryString(extra = {}) {
  const p = new URLSearchParams({
    filter: document.getElementById("filter").value,
    order_by: document.getElementById("order").value,
    ...extra,
  });
  return p.toString();
}

function thumbURL(c) {
  return `/thumb/${encodeURIComponent(c.id)}?s=160&v=${encodeURIComponent(c.version)}`;
}

function renderCard(c, { selectable = false } = {}) {
  const node = el("div", { class: "card", "data-name": c.name });
  if (selectable) node.append(el("input", { type: "checkbox", class: "pick", "aria-label": "select" }));
  // Not lazy: the next cards are ready before the keyboard reaches them.
  const img = el("img", { src: thumbURL(c), alt: "", width: 160, height: 160 });
  node.append(img);
  node.append(el("div", { class: "label" }, c.category_name));
  const score = c.score !== undefined ? ` · similarity ${c.score.toFixed(2)}` : "";
  node.append(el("div", { class: "meta" }, `confidence ${c.confidence.toFixed(2)}${score}`));
  node.append(el("div", { class: "meta" }, `${c.source} #${c.frame_index} · ${c.detection_model}`));
  node.append(el("div", { class: "status meta" }, c.is_validated ? `validated by ${c.validated_by}` : ""));
  node.append(el("div", { class: "error" }));
  node.classList.toggle("accepted", c.is_validated);
  c.node = node;
  return node;
}

function refreshCard(c) {
  c.node.querySelector(".label").textContent = c.category_name;
  c.node.querySelector(".status").textContent = c.rejected ? "rejected" : c.is_validated ? `validated by ${c.validated_by || "you"}` : "";
  c.node.classList.toggle("accepted", !!c.is_validated && !c.rejected);
  c.node.classList.toggle("rejected", !!c.rejected);
}

async function loadQueue(append = false) {
  const q = document.getElementById("queue");
  if (!append) { q.replaceChildren(); state.cards = []; state.current = 0; state.nextPageToken = ""; }
  const extra = { page_size: "100" };
  if (append && state.nextPageToken) extra.page_token = state.nextPageToken;
  let page;
  try {
    page = await getJSON(`/api/objects?${queryString(extra)}`);
  } catch (e) {
    banner(`Filter refused: ${e.message}`);
    return;
  }
  for (const c of page.objects) { state.cards.push(c); q.append(renderCard(c)); }
  state.nextPageToken = page.next_page_token;
  document.getElementById("more").hidden = !page.next_page_token;
  document.getElementById("counts").textContent = `${page.total_size} objects`;
  document.body.dataset.loaded = String(state.cards.length);
  highlight();
}

function highlight() {
  state.cards.forEach((c, i) => c.node.classList.toggle("current", i === state.current));
  const c = state.cards[state.current];
  if (c) c.node.scrollIntoView({ block: "nearest" });
}

function move(step) {
  if (!state.cards.length) return;
  state.current = Math.max(0, Math.min(state.cards.length - 1, state.current + step));
  highlight();
}

// ---- decisions -----------------------------------------------------------------------------

// Queue a decision; it is sent in order and kept until the registry acknowledges it.
function submit(decision, cards, { delayMs = 0 } = {}) {
  const item = { decision, cards, notBefore: Date.now() + delayMs, cancelled: false };
  for (const c of cards) { c.node.classList.add("pending"); c.node.querySelector(".error").textContent = ""; }
  state.outbox.push(item);
  pump();
  if (delayMs) setTimeout(pump, delayMs + 10);
  return item;
}

async function pump() {
  if (state.sending) return;
  state.sending = true;
  try {
    while (state.outbox.length) {
      const item = state.outbox[0];
      if (item.cancelled) { state.outbox.shift(); continue; }
      const wait = item.notBefore - Date.now();
      if (wait > 0) { setTimeout(pump, wait + 10); break; }
      const outcome = await post(item.decision);
      if (outcome === "retry") {
        banner(`The registry is unavailable: ${state.outbox.length} decision(s) kept, retrying…`);
        await new Promise((r) => setTimeout(r, RETRY_MS));
        continue;
      }
      state.outbox.shift();
      for (const c of item.cards) c.node.classList.remove("pending");
      if (outcome.error) {
        for (const c of item.cards) { c.node.classList.add("failed"); c.node.querySelector(".error").textContent = outcome.error; }
      } else {
        for (const o of outcome.objects || []) {
          const c = item.cards.find((x) => x.name === o.name);
          if (c) Object.assign(c, o, { node: c.node });
        }
        item.cards.forEach(refreshCard);
      }
      if (!state.outbox.length) banner("");
    }
  } finally {
    state.sending = false;
  }
  document.body.dataset.outbox = String(state.outbox.length);
}

async function post(decision) {
  let reply;
  try {
    reply = await fetch("/api/decisions", {
      method: "POST",
      headers: { "Content-Type": "application/json", "X-Review-Token": TOKEN },
      body: JSON.stringify(decision),
    });
  } catch (e) {
    return "retry";
  }
  let body = {};
  try { body = await reply.json(); } catch (e) { /* not JSON: a proxy's page */ }
  if (reply.ok) return body;
  if (body.retry || reply.status >= 500) return "retry";
  return { error: body.error || reply.statusText };
}

function accept(c) {
  if (!c || c.rejected) return;
  const was = c.is_validated;
  c.is_validated = true;
  refreshCard(c);
  submit({ action: "accept", names: [c.name] }, [c]);
  state.undo.push({ cards: [c], undo: () => {
    c.is_validated = was; refreshCard(c);
    if (!was) submit({ action: "unaccept", names: [c.name] }, [c]);
  } });
}

function reject(c) {
  if (!c || c.rejected) return;
  c.rejected = true;
  refreshCard(c);
  const item = submit({ action: "reject", names: [c.name] }, [c], { delayMs: REJECT_DELAY_MS });
  state.undo.push({ cards: [c], undo: () => {
    if (state.outbox.includes(item) && Date.now() < item.notBefore) {
      item.cancelled = true; c.rejected = false; c.node.classList.remove("pending"); refreshCard(c);
    } else {
      c.node.querySelector(".error").textContent = "already deleted: cannot undo";
    }
  } });
}

function relabel(cards, categoryName) {
  cards = cards.filter((c) => !c.rejected);
  if (!cards.length || !categoryName) return;
  const before = cards.map((c) => ({ c, name: c.category_name, validated: c.is_validated }));
  for (const c of cards) { c.category_name = categoryName; c.is_validated = true; refreshCard(c); }
  submit({ action: "relabel", names: cards.map((c) => c.name), category_name: categoryName }, cards);
  state.undo.push({ cards, undo: () => {
    for (const b of before) {
      b.c.category_name = b.name; b.c.is_validated = b.validated; refreshCard(b.c);
      submit({ action: "restore", names: [b.c.name], category_name: b.name, validated: b.validated }, [b.c]);
    }
  } });
}

function undo() {
  const last = state.undo.pop();
  if (last) last.undo();
}

function openRelabel(c) {
  if (!c) return;
  const dialog = document.getElementById("relabel-dialog");
  const input = document.getElementById("relabel-input");
  input.value = "";
  dialog.dataset.target = c.name;
  dialog.showModal();
  input.focus();
}

// ---- categories (autocomplete over names and synonyms) ---------------------------------------

async function loadCategories() {
  const { categories } = await getJSON("/api/categories");
  const list = document.getElementById("category-list");
  list.replaceChildren();
  for (const c of categories) {
    const option = el("option");
    option.value = c.display_name;
    list.append(option);
    for (const s of c.synonyms) {
      const synonym = el("option", {}, c.display_name);
      synonym.value = s;
      list.append(synonym);
    }
  }
  state.categories = categories;
}

// ---- more like this --------------------------------------------------------------------------

async function showSimilar(c) {
  if (!c) return;
  state.similarOf = c;
  const panel = document.getElementById("similar-panel");
  panel.hidden = false;
  document.getElementById("similar-of").textContent = c.category_name;
  const grid = document.getElementById("similar");
  grid.replaceChildren();
  const status = document.getElementById("similar-status");
  status.textContent = "searching…";
  let body;
  try {
    body = await getJSON(`/api/similar?object=${encodeURIComponent(c.name)}&top_k=48`);
  } catch (e) {
    status.textContent = e.message;
    return;
  }
  state.similar = body.results;
  for (const s of body.results) grid.append(renderCard(s, { selectable: true }));
  status.textContent = `${body.results.length} similar`;
  panel.dataset.count = String(body.results.length);
}

function pickedSimilar() {
  return (state.similar || []).filter((s) => s.node.querySelector(".pick").checked);
}

// ---- image view ------------------------------------------------------------------------------

async function showImage(c) {
  if (!c) return;
  switchView("image");
  const data = await getJSON(`/api/frame?object=${encodeURIComponent(c.name)}`);
  state.frame = data;
  // The whole image in view: as wide as the page allows, as tall as 80% of the window.
  const fit = Math.min(960, (0.8 * window.innerHeight * data.source.width) / data.source.height);
  document.getElementById("frame-box").style.width = `${Math.max(200, fit)}px`;
  const img = document.getElementById("frame-img");
  img.src = `/image/${encodeURIComponent(data.source.id)}?frame=${data.frame_index}&v=${encodeURIComponent(data.source.version)}`;
  const svg = document.getElementById("frame-svg");
  svg.setAttribute("viewBox", `0 0 ${data.source.width} ${data.source.height}`);
  svg.setAttribute("preserveAspectRatio", "none");
  svg.replaceChildren();
  const classes = new Map();
  for (const o of data.objects) {
    const g = svgEl("g", { class: "obj", "data-name": o.name, "data-class": o.category_name });
    if (o.has_mask) {
      g.append(svgEl("image", {
        href: `/overlay/${encodeURIComponent(o.id)}?v=${encodeURIComponent(o.version)}`,
        x: 0, y: 0, width: data.source.width, height: data.source.height, preserveAspectRatio: "none",
      }));
    }
    const [x, y, w, h] = o.bbox;
    const rect = svgEl("rect", { class: "box", x, y, width: w, height: h, stroke: o.color, "data-name": o.name });
    rect.addEventListener("pointerdown", (e) => { e.stopPropagation(); selectBox(o, rect); });
    g.append(rect);
    g.append(svgEl("text", { x: x + 2, y: Math.max(y - 3, 10) }, `${o.category_name} ${o.confidence.toFixed(2)}`));
    svg.append(g);
    classes.set(o.category_name, o.color);
  }
  const toggles = document.getElementById("class-toggles");
  toggles.replaceChildren();
  for (const [name] of classes) {
    const box = el("input", { type: "checkbox", "data-class": name });
    box.checked = true;
    box.addEventListener("change", () => {
      for (const g of svg.querySelectorAll("g.obj")) {
        if (g.dataset.class === name) g.style.display = box.checked ? "" : "none";
      }
    });
    const label = el("label");
    label.append(box, document.createTextNode(` ${name}`));
    toggles.append(label);
  }
  const target = data.objects.find((o) => o.name === c.name);
  if (target) selectBox(target, svg.querySelector(`rect[data-name="${CSS.escape(target.name)}"]`));
}

function selectBox(o, rect) {
  const svg = document.getElementById("frame-svg");
  for (const r of svg.querySelectorAll("rect.selected")) r.classList.remove("selected");
  for (const h of svg.querySelectorAll("circle.handle")) h.remove();
  rect.classList.add("selected");
  state.selectedBox = { o, rect, bbox: o.bbox.slice() };
  const r = Math.max(4, Math.min(o.bbox[2], o.bbox[3]) / 10, state.frame.source.width / 100);
  const corners = ["tl", "tr", "bl", "br"];
  for (const corner of corners) {
    const handle = svgEl("circle", { class: "handle", r, "data-corner": corner });
    handle.addEventListener("pointerdown", (e) => startDrag(e, corner));
    svg.append(handle);
  }
  placeHandles();
  document.getElementById("save-box").disabled = false;
  document.getElementById("box-info").textContent = `${o.category_name}: ${o.bbox.map((v) => v.toFixed(0)).join(", ")}`;
}

function placeHandles() {
  const [x, y, w, h] = state.selectedBox.bbox;
  const spots = { tl: [x, y], tr: [x + w, y], bl: [x, y + h], br: [x + w, y + h] };
  for (const handle of document.querySelectorAll("#frame-svg circle.handle")) {
    const [cx, cy] = spots[handle.dataset.corner];
    handle.setAttribute("cx", cx);
    handle.setAttribute("cy", cy);
  }
  const rect = state.selectedBox.rect;
  rect.setAttribute("x", x); rect.setAttribute("y", y);
  rect.setAttribute("width", w); rect.setAttribute("height", h);
}

function toImage(e) {
  const svg = document.getElementById("frame-svg");
  const box = svg.getBoundingClientRect();
  const { width, height } = state.frame.source;
  return [(e.clientX - box.left) * width / box.width, (e.clientY - box.top) * height / box.height];
}

function startDrag(e, corner) {
  e.preventDefault();
  e.stopPropagation();
  const sel = state.selectedBox;
  const [x0, y0, w0, h0] = sel.bbox;
  let left = x0, top = y0, right = x0 + w0, bottom = y0 + h0;
  const { width, height } = state.frame.source;
  const moveTo = (ev) => {
    const [px, py] = toImage(ev);
    const cx = Math.max(0, Math.min(width, px)), cy = Math.max(0, Math.min(height, py));
    if (corner[1] === "l") left = Math.min(cx, right - 1); else right = Math.max(cx, left + 1);
    if (corner[0] === "t") top = Math.min(cy, bottom - 1); else bottom = Math.max(cy, top + 1);
    sel.bbox = [left, top, right - left, bottom - top];
    placeHandles();
    document.getElementById("box-info").textContent = `${sel.o.category_name}: ${sel.bbox.map((v) => v.toFixed(0)).join(", ")} (not saved)`;
  };
  const stop = () => { window.removeEventListener("pointermove", moveTo); window.removeEventListener("pointerup", stop); };
  window.addEventListener("pointermove", moveTo);
  window.addEventListener("pointerup", stop);
}

function saveBox() {
  const sel = state.selectedBox;
  if (!sel) return;
  const bbox = sel.bbox.map((v) => Math.round(v * 100) / 100);
  const pseudo = { name: sel.o.name, node: el("div") };
  pseudo.node.append(el("div", { class: "label" }), el("div", { class: "status" }), el("div", { class: "error" }));
  submit({ action: "box", names: [sel.o.name], bbox }, [pseudo]);
  sel.o.bbox = bbox;
  document.getElementById("box-info").textContent = `${sel.o.category_name}: ${bbox.map((v) => v.toFixed(0)).join(", ")} saved`;
}

// ---- progress --------------------------------------------------------------------------------

function barChart(title, rows) {
  const width = 520, rowH = 20, labelW = 160;
  const max = Math.max(1, ...rows.map((r) => r.value));
  const svg = svgEl("svg", { width, height: rows.length * rowH + 24, class: "chart", role: "img" });
  svg.append(svgEl("text", { x: 0, y: 14, "font-weight": "bold" }, title));
  rows.forEach((r, i) => {
    const y = 22 + i * rowH;
    svg.append(svgEl("text", { x: 0, y: y + 13 }, r.label));
    svg.append(svgEl("rect", { x: labelW, y, width: ((width - labelW - 60) * r.value) / max, height: rowH - 4, fill: r.color || "#1e88e5" }));
    svg.append(svgEl("text", { x: labelW + ((width - labelW - 60) * r.value) / max + 4, y: y + 13 }, r.text ?? String(r.value)));
  });
  return svg;
}

async function showProgress() {
  const s = await getJSON(`/api/stats?${new URLSearchParams({ filter: document.getElementById("filter").value })}`);
  const charts = document.getElementById("charts");
  charts.replaceChildren();
  const pct = (100 * s.validated_fraction).toFixed(1);
  charts.append(el("p", { id: "validated-share" }, `${s.object_count} objects in ${s.source_count} sources · ${pct}% validated`));
  charts.append(barChart("Validated share", [{ label: "validated", value: s.validated_fraction, text: `${pct}%`, color: "#2e7d32" }]));
  charts.append(barChart("Objects per class", s.per_category.map((e) => ({ label: e.display_name || e.key, value: e.count }))));
  charts.append(barChart("Confidence histogram", s.confidence_histogram.map((b) => ({ label: `${b.lower.toFixed(1)}–${b.upper.toFixed(1)}`, value: b.count }))));
}

// ---- wiring ----------------------------------------------------------------------------------

function switchView(name) {
  for (const v of ["queue", "image", "progress"]) {
    document.getElementById(`view-${v}`).hidden = v !== name;
    document.getElementById(`tab-${v}`).classList.toggle("active", v === name);
  }
  document.body.dataset.view = name;
  if (name === "progress") showProgress();
}

function typing(e) {
  const t = e.target;
  return t instanceof HTMLInputElement || t instanceof HTMLSelectElement || t instanceof HTMLTextAreaElement;
}

document.addEventListener("keydown", (e) => {
  if (typing(e) || e.ctrlKey || e.metaKey || e.altKey) return;
  if (document.getElementById("relabel-dialog").open) return;
  const c = state.cards[state.current];
  const keys = {
    a: () => { accept(c); move(1); },
    r: () => { reject(c); move(1); },
    c: () => openRelabel(c),
    u: undo,
    j: () => move(1), ArrowRight: () => move(1),
    k: () => move(-1), ArrowLeft: () => move(-1),
    s: () => showSimilar(c),
    i: () => showImage(c),
    q: () => switchView("queue"),
    p: () => switchView("progress"),
    Escape: () => { document.getElementById("similar-panel").hidden = true; switchView("queue"); },
    "/": () => document.getElementById("filter").focus(),
  };
  const action = keys[e.key];
  if (action) { e.preventDefault(); action(); }
});

window.addEventListener("DOMContentLoaded", () => {
  document.getElementById("filter-form").addEventListener("submit", (e) => { e.preventDefault(); loadQueue(); e.target.querySelector("input").blur(); });
  document.getElementById("order").addEventListener("change", () => loadQueue());
  document.getElementById("more").addEventListener("click", () => loadQueue(true));
  for (const tab of document.querySelectorAll(".tab")) tab.addEventListener("click", () => switchView(tab.dataset.view));
  document.getElementById("relabel-form").addEventListener("submit", () => {
    const dialog = document.getElementById("relabel-dialog");
    const c = state.cards.find((x) => x.name === dialog.dataset.target);
    relabel([c], document.getElementById("relabel-input").value.trim());
    move(1);
  });
  document.getElementById("queue").addEventListener("click", (e) => {
    const node = e.target.closest(".card");
    const i = state.cards.findIndex((c) => c.node === node);
    if (i >= 0) { state.current = i; highlight(); }
  });
  document.getElementById("select-all").addEventListener("click", () => {
    for (const box of document.querySelectorAll("#similar .pick")) box.checked = true;
  });
  document.getElementById("bulk-accept").addEventListener("click", () => {
    const picked = pickedSimilar().filter((c) => !c.rejected);
    if (!picked.length) return;
    for (const c of picked) { c.is_validated = true; refreshCard(c); }
    submit({ action: "accept", names: picked.map((c) => c.name) }, picked);
  });
  document.getElementById("bulk-relabel").addEventListener("click", () => {
    relabel(pickedSimilar(), document.getElementById("bulk-category").value.trim());
  });
  document.getElementById("close-similar").addEventListener("click", () => { document.getElementById("similar-panel").hidden = true; });
  document.getElementById("save-box").addEventListener("click", saveBox);
  window.addEventListener("beforeunload", (e) => { if (state.outbox.length) e.preventDefault(); });
  switchView("queue");
  loadCategories().catch((e) => banner(e.message));
  loadQueue();
});
