// vidhash search page: plain JavaScript over the JSON API, no build step, no network
// beyond this server. Text from the index is always set with textContent, never as HTML.
"use strict";

const $ = (id) => document.getElementById(id);
const state = {
  concept: "",
  k: 20,
  exclude: false,
  rerank: true,       // false: the pure Hamming ranking (the "codes only" box)
  file: null,         // the uploaded image while an image query is shown
  keyframe: null,     // the query keyframe id while a keyframe query is shown
  videosOffset: 0,
  seq: 0,             // answers to older requests are dropped
};

async function api(url, options) {
  const response = await fetch(url, options);
  let body = null;
  try {
    body = await response.json();
  } catch (err) {
    body = null;
  }
  if (!response.ok) {
    throw new Error((body && body.error) || `${response.status} ${response.statusText}`);
  }
  return body;
}

function setStatus(text, isError = false) {
  const el = $("status");
  el.textContent = text;
  el.classList.toggle("error", isError);
}

function el(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

// One keyframe (a hit, a strip frame or a video's cover) as a clickable card. A hit shows
// its Hamming distance and, when the index has descriptors, its cosine score.
function card(item, { distance = null, score = null, label = null, current = false } = {}) {
  const fig = el("figure", "card");
  fig.tabIndex = 0;
  fig.dataset.keyframeId = item.keyframe_id;
  fig.dataset.videoId = item.video_id;
  if (distance !== null) fig.dataset.distance = String(distance);
  if (score !== null) fig.dataset.score = String(score);
  if (current) fig.classList.add("current");
  fig.title = `${item.video_path} @ ${item.time}\nclick to search from this keyframe`;
  if (item.thumbnail_url) {
    const img = el("img", "thumb");
    img.loading = "lazy";
    img.alt = `${item.video_name} at ${item.time}`;
    img.src = item.thumbnail_url;
    fig.append(img);
  } else {
    fig.append(el("div", "thumb none", "no image"));
  }
  const caption = el("figcaption");
  caption.append(el("div", "name", item.video_name));
  const meta = el("div", "meta");
  meta.append(el("span", "time", item.time));
  if (distance !== null) {
    if (score !== null) {
      const s = el("span", "score", score.toFixed(3));
      s.title = "descriptor similarity (cosine) with the query";
      meta.append(s);
    }
    const d = el("span", distance === 0 ? "dist exact" : "dist", `d=${distance}`);
    d.title = "Hamming distance between the codes";
    meta.append(d);
  } else if (label) {
    meta.append(el("span", "count", label));
  }
  caption.append(meta);
  if (item.concepts && item.concepts.length) {
    const chips = el("div", "chips");
    for (const name of item.concepts) {
      const chip = el("button", "chip", name);
      chip.type = "button";
      chip.title = `show only keyframes labelled ${name}`;
      chip.addEventListener("click", (event) => {
        event.stopPropagation();
        setConcept(name);
      });
      chips.append(chip);
    }
    caption.append(chips);
  }
  fig.append(caption);
  const go = () => searchKeyframe(item.keyframe_id);
  fig.addEventListener("click", go);
  fig.addEventListener("keydown", (event) => {
    if (event.key === "Enter" || event.key === " ") {
      event.preventDefault();
      go();
    }
  });
  return fig;
}

async function loadStats() {
  try {
    const s = await api("/api/stats");
    const model = s.model_name ? ` · model ${s.model_name}` : "";
    const concepts = s.concepts ? ` · ${s.concepts} concepts` : "";
    const images = s.model_status === "unavailable" ? " · image search unavailable" : "";
    $("stats").textContent =
      `${s.keyframes.toLocaleString()} keyframes · ${s.videos.toLocaleString()} videos` +
      `${concepts} · ${s.code_bits}-bit codes${model}${images}`;
    $("stats").title = s.model_error || "";
    showNote(s.note);
  } catch (err) {
    $("stats").textContent = `cannot read the index: ${err.message}`;
  }
}

async function loadConcepts() {
  const select = $("concept");
  try {
    const data = await api("/api/concepts");
    for (const c of data.concepts) {
      const option = el("option", null, `${c.name} (${c.keyframes})`);
      option.value = c.name;
      select.append(option);
    }
    select.disabled = data.concepts.length === 0;
    if (state.concept) select.value = state.concept;
  } catch (err) {
    select.disabled = true;
  }
}

async function loadVideos(append = false) {
  const seq = ++state.seq;
  const grid = $("grid");
  if (!append) state.videosOffset = 0;
  try {
    const data = await api(`/api/videos?offset=${state.videosOffset}&limit=120`);
    if (seq !== state.seq) return; // a search (or another listing) started meanwhile
    if (!append) grid.replaceChildren();
    grid.dataset.mode = "videos";
    $("grid-title").textContent = `Videos and images (${data.total}) — click one to search`;
    for (const v of data.videos) {
      const label = v.keyframes === 1 ? "1 keyframe" : `${v.keyframes} keyframes`;
      grid.append(card(v.cover, { label }));
    }
    state.videosOffset += data.videos.length;
    $("more").hidden = state.videosOffset >= data.total;
    if (!data.total) grid.append(el("p", "empty", "This index has no keyframes yet."));
  } catch (err) {
    setStatus(err.message, true);
  }
}

// Why results are by codes only (an index without descriptors): one line, shown once.
function showNote(note) {
  $("note").textContent = note || "";
  $("note").hidden = !note;
}

function showHits(data, label) {
  const grid = $("grid");
  grid.dataset.mode = "hits";
  $("more").hidden = true;
  const filter = data.concept ? ` labelled ${data.concept}` : "";
  const others = data.exclude_same_video ? " in other videos" : "";
  $("grid-title").textContent = `${data.hits.length} nearest keyframes${filter}${others}`;
  const cards = data.hits.map((hit) => card(hit, {
    distance: hit.distance, score: hit.score, current: hit.keyframe_id === state.keyframe,
  }));
  grid.replaceChildren(...cards);
  if (!cards.length) grid.append(el("p", "empty", "No keyframe matches this filter."));
  const ranking = data.two_stage ? "re-ranked by descriptor" : "by codes";
  setStatus(`${label}: ${data.hits.length} hits in ${data.took_ms.toFixed(1)} ms, ${ranking}`);
  showNote(data.note);
}

function showQueryKeyframe(query) {
  const img = $("query-image");
  if (query.thumbnail_url) {
    img.src = query.thumbnail_url;
    img.hidden = false;
  } else {
    img.hidden = true;
  }
  const info = $("query-info");
  info.replaceChildren();
  info.append("Query: ", el("strong", null, query.video_name), ` at ${query.time}`);
  info.append(el("br"), el("code", null, query.keyframe_id));
}

async function loadStrip(videoId, keyframeId) {
  const section = $("strip-section");
  try {
    const data = await api(`/api/videos/${videoId}/keyframes`);
    if (state.keyframe !== keyframeId) return;
    $("strip-title").textContent =
      `${data.video.video_name}: ${data.keyframes.length} keyframes`;
    const strip = $("strip");
    strip.replaceChildren(...data.keyframes.map((kf) =>
      card(kf, { current: kf.keyframe_id === keyframeId })));
    section.hidden = false;
    const current = strip.querySelector(".current");
    if (current) current.scrollIntoView({ block: "nearest", inline: "center" });
  } catch (err) {
    section.hidden = true;
  }
}

function searchParams(extra) {
  const params = new URLSearchParams(extra);
  params.set("k", String(state.k));
  if (state.concept) params.set("concept", state.concept);
  if (!state.rerank) params.set("rerank", "false");
  return params;
}

// Keyframe queries live in the address (#keyframe=...), so Back and links work.
function searchKeyframe(id) {
  const params = searchParams({ keyframe: id });
  if (state.exclude) params.set("exclude_same_video", "true");
  const hash = `#${params}`;
  if (location.hash === hash) runKeyframeSearch(id);
  else location.hash = hash;
}

async function runKeyframeSearch(id) {
  const seq = ++state.seq;
  state.keyframe = id;
  state.file = null;
  setStatus("searching…");
  const params = searchParams({ keyframe: id });
  if (state.exclude) params.set("exclude_same_video", "true");
  try {
    const data = await api(`/api/search?${params}`);
    if (seq !== state.seq) return;
    showQueryKeyframe(data.query);
    showHits(data, `${data.query.video_name} at ${data.query.time}`);
    loadStrip(data.query.video_id, id);
  } catch (err) {
    if (seq === state.seq) setStatus(err.message, true);
  }
}

async function searchImage(file) {
  const seq = ++state.seq;
  state.file = file;
  state.keyframe = null;
  if (location.hash) history.pushState(null, "", location.pathname);
  const img = $("query-image");
  if (img.src.startsWith("blob:")) URL.revokeObjectURL(img.src);
  img.src = URL.createObjectURL(file);
  img.hidden = false;
  const info = $("query-info");
  info.replaceChildren("Query: ", el("strong", null, file.name || "dropped image"),
    ` (${Math.max(1, Math.round(file.size / 1024))} KiB)`);
  $("strip-section").hidden = true;
  setStatus("encoding the image with the index's model…");
  const form = new FormData();
  form.append("image", file, file.name || "upload");
  try {
    const data = await api(`/api/search?${searchParams({})}`, { method: "POST", body: form });
    if (seq !== state.seq) return;
    showHits(data, file.name || "image");
  } catch (err) {
    if (seq === state.seq) setStatus(err.message, true);
  }
}

function setConcept(name) {
  state.concept = name;
  $("concept").value = name;
  rerun();
}

function rerun() {
  if (state.keyframe) searchKeyframe(state.keyframe);
  else if (state.file) searchImage(state.file);
}

function fromHash() {
  const params = new URLSearchParams(location.hash.slice(1));
  const id = params.get("keyframe");
  state.k = Number(params.get("k")) || state.k;
  state.concept = params.get("concept") || (id ? "" : state.concept);
  state.exclude = params.get("exclude_same_video") === "true";
  if (id) state.rerank = params.get("rerank") !== "false";
  $("k").value = String(state.k);
  $("concept").value = state.concept;
  $("exclude").checked = state.exclude;
  $("codes-only").checked = !state.rerank;
  if (id) {
    runKeyframeSearch(id);
  } else if (!state.file) {
    state.keyframe = null;
    $("query-image").hidden = true;
    $("query-info").replaceChildren();
    $("strip-section").hidden = true;
    setStatus("");
    loadVideos();
  }
}

function wireDropZone() {
  const drop = $("drop");
  const input = $("file");
  drop.addEventListener("click", (event) => {
    if (event.target !== input) input.click();
  });
  drop.addEventListener("keydown", (event) => {
    if (event.key === "Enter" || event.key === " ") {
      event.preventDefault();
      input.click();
    }
  });
  input.addEventListener("click", (event) => event.stopPropagation());
  input.addEventListener("change", () => {
    if (input.files.length) searchImage(input.files[0]);
    input.value = "";
  });
  for (const name of ["dragenter", "dragover"]) {
    drop.addEventListener(name, (event) => {
      event.preventDefault();
      drop.classList.add("over");
    });
  }
  for (const name of ["dragleave", "drop"]) {
    drop.addEventListener(name, () => drop.classList.remove("over"));
  }
  drop.addEventListener("drop", (event) => {
    event.preventDefault();
    const files = event.dataTransfer && event.dataTransfer.files;
    if (files && files.length) searchImage(files[0]);
  });
  // A file dropped anywhere else must not navigate away from the page.
  window.addEventListener("dragover", (event) => event.preventDefault());
  window.addEventListener("drop", (event) => event.preventDefault());
}

function wireControls() {
  $("k").addEventListener("change", () => {
    state.k = Number($("k").value);
    rerun();
  });
  $("concept").addEventListener("change", () => setConcept($("concept").value));
  $("exclude").addEventListener("change", () => {
    state.exclude = $("exclude").checked;
    if (state.keyframe) searchKeyframe(state.keyframe);
  });
  $("codes-only").addEventListener("change", () => {
    state.rerank = !$("codes-only").checked;
    rerun();
  });
  $("more").addEventListener("click", () => loadVideos(true));
  $("home").addEventListener("click", (event) => {
    event.preventDefault();
    state.file = null;
    state.keyframe = null;
    if (location.hash) history.pushState(null, "", location.pathname);
    fromHash();
  });
}

window.addEventListener("hashchange", fromHash);
document.addEventListener("DOMContentLoaded", async () => {
  wireDropZone();
  wireControls();
  loadStats();
  await loadConcepts();
  fromHash();
});
