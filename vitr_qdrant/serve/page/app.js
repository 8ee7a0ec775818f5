// The search page of `vitr serve`: plain DOM code, no build step, nothing fetched from elsewhere.
"use strict";

const PALETTE = ["#e6194b", "#3cb44b", "#4363d8", "#f58231", "#911eb4", "#42d4f4", "#f032e6", "#9a6324"];
const LABELS = { vitr: "VITR", late: "late interaction (MaxSim)", global: "global (CLIP baseline)" };
const STAGES = ["global", "late", "vitr"];   // the order the stages run in
const $ = (id) => document.getElementById(id);
let thumbUrls = [];   // object URLs of the shown thumbnails, released on the next search

function el(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(props)) {
    if (k === "dataset") Object.assign(node.dataset, v);
    else node[k] = v;
  }
  node.append(...children);
  return node;
}

function headers() {
  const key = sessionStorage.getItem("vitr-key");
  return key ? { "X-API-Key": key } : {};
}

class ServiceError extends Error {
  constructor(status, message) { super(message); this.status = status; }
}

async function call(path, body) {
  const init = body === undefined ? { headers: headers() }
    : { method: "POST", headers: { ...headers(), "Content-Type": "application/json" }, body: JSON.stringify(body) };
  let response;
  try {
    response = await fetch(path, init);
  } catch (err) {
    throw new ServiceError(0, `cannot reach the service (${err.message})`);
  }
  const text = await response.text();
  let data = null;
  try { data = JSON.parse(text); } catch (_) { /* not JSON: reported below */ }
  if (!response.ok) {
    const message = (data && (data.message || data.detail)) || text || response.statusText;
    throw new ServiceError(response.status, `${response.status}: ${typeof message === "string" ? message : JSON.stringify(message)}`);
  }
  return data;
}

function showError(message, status = 0) {
  $("error").textContent = message;
  $("error").hidden = !message;
  if (status === 401) $("key-row").hidden = false;   // the service wants its API key
}

function readForm() {
  const filterText = $("filter").value.trim();
  let filter = null;
  if (filterText) {
    try { filter = JSON.parse(filterText); } catch (err) { throw new ServiceError(0, `the filter is not JSON: ${err.message}`); }
  }
  const number = (id) => Number($(id).value);
  return { text: $("q").value.trim(), limit: number("limit"), filter, mode: $("mode").value,
           prefetch: number("prefetch"), candidates: number("candidates") };
}

function wordColors(hits) {
  const colors = new Map();
  for (const hit of hits) for (const g of hit.grounding) {
    if (!colors.has(g.word)) colors.set(g.word, PALETTE[colors.size % PALETTE.length]);
  }
  return colors;
}

function wordChip(word, colors, targets) {
  const chip = el("span", { className: "word", textContent: word, dataset: { word } });
  chip.style.setProperty("--c", colors.get(word) || "#999");
  const toggle = (on) => {
    chip.classList.toggle("on", on);
    for (const box of targets().querySelectorAll(".box")) if (box.dataset.word === word) box.classList.toggle("on", on);
  };
  chip.addEventListener("mouseenter", () => toggle(true));
  chip.addEventListener("mouseleave", () => toggle(false));
  return chip;
}

async function thumbnail(hit, thumb) {
  // Every thumbnail comes from this service (the page's CSP allows no other image source), by typed id.
  const idType = typeof hit.id === "number" ? "int" : "str";
  try {
    const response = await fetch(`items/${encodeURIComponent(hit.id)}/image?size=256&id_type=${idType}`,
                                 { headers: headers() });
    if (!response.ok) throw new Error(response.status === 404 ? "no stored image"
      : response.status === 409 ? "the file changed since it was indexed" : `image: ${response.status}`);
    const url = URL.createObjectURL(await response.blob());
    thumbUrls.push(url);
    return el("img", { src: url, alt: "" });
  } catch (err) {
    thumb.append(el("span", { className: "missing", textContent: err.message }));
    return null;
  }
}

function hitCard(hit, rank, colors) {
  const p = hit.payload, width = p.width || 1, height = p.height || 1;
  const thumb = el("div", { className: "thumb" });
  thumb.style.aspectRatio = `${width} / ${height}`;
  for (const g of hit.grounding) {
    const [x0, y0, x1, y1] = g.box;
    const box = el("div", { className: "box", title: `${g.word}: region ${g.region}`, dataset: { word: g.word } });
    Object.assign(box.style, { left: `${100 * x0 / width}%`, top: `${100 * y0 / height}%`,
                               width: `${100 * (x1 - x0) / width}%`, height: `${100 * (y1 - y0) / height}%` });
    box.style.setProperty("--c", colors.get(g.word));
    thumb.append(box);
  }
  thumbnail(hit, thumb).then((img) => img && thumb.prepend(img));
  const stages = STAGES.filter((k) => k in hit.scores).map((k) => `${k} ${hit.scores[k].toFixed(3)}`).join(" · ");
  const card = el("li", { className: "hit", dataset: { id: String(hit.id) } }, thumb,
    el("div", { className: "meta" }, `#${rank}  `, el("b", { textContent: hit.score.toFixed(3) }),
       hit.probability == null ? "" : el("span", { className: "prob", textContent: ` p ${hit.probability.toFixed(2)}` }),
       el("span", { className: "stages", textContent: stages }),
       el("span", { className: "id", textContent: p.uri ? p.uri.split("/").pop() : String(hit.id) })));
  if (hit.grounding.length) {
    const seen = new Set(), words = el("div", { className: "grounding" });
    for (const g of hit.grounding) {
      if (!seen.has(g.word)) words.append(wordChip(g.word, colors, () => card), " ");
      seen.add(g.word);
    }
    card.append(words);
  }
  return card;
}

function column(mode, result, ms, colors) {
  const list = el("ol", { className: "hits" });
  // The calibrated line: from the first hit the model gives a probability below one half, it
  // thinks the query does not hold.
  const below = result.hits.findIndex((hit) => hit.probability != null && hit.probability < 0.5);
  result.hits.forEach((hit, i) => {
    if (i === below) list.append(el("li", { className: "threshold",
      textContent: "below this line the model thinks the query does not hold (probability < 0.5)" }));
    list.append(hitCard(hit, i + 1, colors));
  });
  const section = el("section", { className: "column", dataset: { mode } },
    el("h2", {}, LABELS[mode], " ", el("small", { textContent: `${result.hits.length} hits · ${ms} ms` })), list);
  if (!result.hits.length) section.append(el("p", { className: "empty", textContent: "no hits (check the filter)" }));
  return section;
}

function showWords(colors) {
  const bar = $("words");
  bar.replaceChildren();
  const words = [...colors.keys()];
  bar.hidden = !words.length;
  if (words.length) bar.append("query words: ", ...words.map((w) => wordChip(w, colors, () => $("results"))));
}

function showUnknown(words) {
  $("notice").hidden = !words.length;
  $("notice").textContent = words.length
    ? `The model does not know ${words.length === 1 ? "this word" : "these words"}: ${words.join(", ")}. ` +
      "It reads each as one unknown token with no meaning, so the hits cannot reflect them."
    : "";
}

async function runSearch(event) {
  if (event) event.preventDefault();
  showError("");
  let request;
  try { request = readForm(); } catch (err) { showError(err.message); return; }
  if (!request.text) { showError("type a query first"); return; }
  const modes = [request.mode];
  if ($("compare").checked && request.mode !== "global") modes.push("global");
  try {
    const results = await Promise.all(modes.map(async (mode) => {
      const t0 = performance.now();
      const result = await call("search", { ...request, mode });
      return [mode, result, Math.round(performance.now() - t0)];
    }));
    thumbUrls.forEach((url) => URL.revokeObjectURL(url));
    thumbUrls = [];
    const colors = wordColors(results.flatMap(([, r]) => r.hits));
    $("results").replaceChildren(...results.map(([mode, r, ms]) => column(mode, r, ms, colors)));
    showWords(colors);
    showUnknown(results[0][1].unknown_words);
    history.replaceState(null, "", `?q=${encodeURIComponent(request.text)}`);
  } catch (err) {
    showError(err.message, err.status);
  }
}

async function loadInfo() {
  try {
    const info = await call("info");
    const model = info.model || {};
    $("about").textContent = `collection ${info.name}: ${info.images} images · model ${model.name}` +
      (model.head_trained === false ? " (no trained VITR head: vitr mode is refused, late is MaxSim, the default is global)" : "");
    document.title = `${info.name} · vitr-qdrant`;
  } catch (err) {
    showError(err.message, err.status);
  }
}

function start() {
  $("search").addEventListener("submit", runSearch);
  $("key").addEventListener("change", () => { sessionStorage.setItem("vitr-key", $("key").value); loadInfo(); });
  loadInfo();
  const q = new URLSearchParams(location.search).get("q");
  if (q) { $("q").value = q; runSearch(); }
}

start();
