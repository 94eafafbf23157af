// Diffuse's web page: talks to `diffuse serve`'s JSON API on the same origin (/v1/...).
// Plain JavaScript, no dependencies. Progress comes from the job's server-sent events read
// with fetch (so that a bearer token can be sent), falling back to polling the job.
"use strict";

const $ = (sel, root = document) => root.querySelector(sel);
const el = (tag, props = {}, ...children) => {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(props)) {
    if (v == null || v === false) continue;
    if (k === "class") e.className = v;
    else if (k === "text") e.textContent = v;
    else if (k === "style") e.style.cssText = v;
    else if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
    else if (k in e && typeof v !== "string") e[k] = v;
    else e.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children.flat()) if (c != null) e.append(c);
  return e;
};

const SAMPLER_NAMES = {
  "ddpm": "DDPM", "ddim": "DDIM", "dpm++1": "DPM++ 1", "dpm++2m": "DPM++ 2M", "dpm++3m": "DPM++ 3M",
  "dpm++2m-sde": "DPM++ 2M SDE", "euler": "Euler", "euler-a": "Euler ancestral", "heun": "Heun", "pndm": "PNDM (PLMS)",
};
const KIND_NAMES = {
  unconditional: "unconditional", class: "class-conditional", text: "text-to-image",
  inpaint: "inpainting", upscale: "super-resolution",
};
// Fashion-MNIST's labels, for class-conditional models trained on it (the API gives a count).
const TERMINAL = new Set(["done", "failed", "cancelled"]);
const SCALE = 10;  // mask canvas pixels per image pixel

const state = {
  token: localStorage.getItem("diffuse.token") || "",
  models: [],
  model: null,
  job: null,          // { id, abort: AbortController, state }
  jobs: [],
  details: new Map(),  // job id -> the job with its request (kept once the job has ended)
  objectURLs: new Map(),
  init: null,         // { source: ImageBitmap|HTMLImageElement, data: ImageData }
  low: null,
  inpaint: null,      // { source, data }
  mask: null,         // Uint8Array (1 = generate)
  erase: false,
  cursor: null,       // [x, y] in image pixels
  pollTimer: 0,
};

// ---------------------------------------------------------------- API

class ApiError extends Error {
  constructor(status, body) {
    const message = body && typeof body === "object" && body.error ? body.error
      : typeof body === "string" && body.trim() ? body.trim()
      : `HTTP ${status}`;
    super(message);
    this.status = status;
    this.field = body && typeof body === "object" ? body.field || null : null;
  }
  get friendly() {
    if (this.status === 401 || this.status === 403) {
      return `${this.message}. The server wants an access token: enter it under Settings.`;
    }
    if (this.status === 429) return `The server's queue is full: try again when a job has finished. (${this.message})`;
    return this.message;
  }
}

function authHeaders(extra = {}) {
  const h = { ...extra };
  if (state.token) h["Authorization"] = `Bearer ${state.token}`;
  return h;
}

async function api(path, { method = "GET", json, signal } = {}) {
  const init = { method, headers: authHeaders({ Accept: "application/json" }), signal };
  if (json !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(json);
  }
  let response;
  try {
    response = await fetch(path, init);
  } catch (e) {
    if (e.name === "AbortError") throw e;
    throw new ApiError(0, "Cannot reach the server: is `diffuse serve` still running?");
  }
  const text = await response.text();
  let body = null;
  try { body = text ? JSON.parse(text) : null; } catch { body = text; }
  if (!response.ok) throw new ApiError(response.status, body);
  return body;
}

const listOf = (body, key) => Array.isArray(body) ? body : (body && Array.isArray(body[key]) ? body[key] : []);

// Images: plain URLs without a token; with one, fetched with the header into object URLs.
async function imageURL(url) {
  if (!url || url.startsWith("data:") || !state.token) return url;
  if (state.objectURLs.has(url)) return state.objectURLs.get(url);
  const response = await fetch(url, { headers: authHeaders() });
  if (!response.ok) throw new ApiError(response.status, null);
  const objectURL = URL.createObjectURL(await response.blob());
  state.objectURLs.set(url, objectURL);
  return objectURL;
}

function setImage(img, url, link) {
  imageURL(url).then(src => {
    img.src = src;
    if (link) link.href = src;
  }).catch(() => { img.alt = "image not available"; });
}

// ---------------------------------------------------------------- messages

function showBanner(message) {
  $("#banner-text").textContent = message;
  $("#banner").hidden = false;
}
$("#banner-close").addEventListener("click", () => { $("#banner").hidden = true; });

const FIELD_INPUTS = {
  model: "#model", steps: "#steps", batch: "#batch", seed: "#seed", guidance: "#guidance",
  sampler: "#sampler", prompts: "#prompt", prompt: "#prompt", class_labels: "#class",
};

function clearFormError() {
  $("#form-error").hidden = true;
  for (const e of document.querySelectorAll(".invalid")) { e.classList.remove("invalid"); e.removeAttribute("aria-invalid"); }
}

function showFormError(message, field) {
  const box = $("#form-error");
  box.replaceChildren();
  if (field) box.append(el("span", { class: "field-name", text: `${field}: ` }));
  box.append(message);
  box.hidden = false;
  const key = field ? field.split(/[.[]/)[0] : null;
  let input = key && FIELD_INPUTS[key] ? $(FIELD_INPUTS[key]) : null;
  if (!input && key === "images") input = imageInputFor(state.model && state.model.kind);
  if (input) {
    input.classList.add("invalid");
    input.setAttribute("aria-invalid", "true");
    input.focus();
  }
}

function imageInputFor(kind) {
  return kind === "inpaint" ? $("#inpaint-file") : kind === "upscale" ? $("#low-file") : $("#init-file");
}

// ---------------------------------------------------------------- settings (token)

$("#settings-toggle").addEventListener("click", () => {
  const box = $("#settings");
  box.hidden = !box.hidden;
  $("#settings-toggle").setAttribute("aria-expanded", String(!box.hidden));
  if (!box.hidden) $("#token").focus();
});
$("#token").value = state.token;
$("#token-save").addEventListener("click", () => {
  state.token = $("#token").value.trim();
  if (state.token) localStorage.setItem("diffuse.token", state.token); else localStorage.removeItem("diffuse.token");
  start();
});
$("#token").addEventListener("keydown", e => { if (e.key === "Enter") { e.preventDefault(); $("#token-save").click(); } });
$("#token-clear").addEventListener("click", () => {
  $("#token").value = "";
  $("#token-save").click();
});

// ---------------------------------------------------------------- models and the form

function fillModels(models) {
  state.models = models;
  const select = $("#model");
  const previous = select.value || localStorage.getItem("diffuse.model");
  select.replaceChildren(...models.map(m => el("option", { value: m.name, text: `${m.name} — ${KIND_NAMES[m.kind] || m.kind}` })));
  if (models.some(m => m.name === previous)) select.value = previous;
  selectModel(select.value);
}

// The class names of a class-conditional model: the server's (from the model's id2label), or
// numbers for the classes it counts (the null class guidance contrasts with is not one of them).
function classNames(model) {
  if (!model) return [];
  if (Array.isArray(model.class_names)) return model.class_names.map(String);
  const count = Number(model.classes) || 0;
  return Array.from({ length: count }, (_, i) => `class ${i}`);
}

function sampleSize(model) {
  const shape = model && Array.isArray(model.sample_shape) ? model.sample_shape : [1, 28, 28];
  return { channels: shape[0] || 1, height: shape[1] || 28, width: shape[2] || 28 };
}

function selectModel(name) {
  const model = state.models.find(m => m.name === name) || null;
  state.model = model;
  if (!model) return;
  localStorage.setItem("diffuse.model", name);
  const kind = model.kind;
  for (const f of document.querySelectorAll("[data-kinds]")) f.hidden = !f.dataset.kinds.split(" ").includes(kind);
  $("#negative-field").hidden = !model.negative_prompts;
  $("#precision-field").hidden = !(Array.isArray(model.precisions) && model.precisions.includes("bfloat16"));
  const { channels, height, width } = sampleSize(model);
  const sampler = model.default_sampler ? SAMPLER_NAMES[model.default_sampler] || model.default_sampler : null;
  $("#model-info").textContent = `${KIND_NAMES[kind] || kind}, ${width}×${height} ${channels === 1 ? "grayscale" : channels + "-channel"}`
    + (sampler ? `, default sampler ${sampler}` : "");
  $("#sampler").options[0].textContent = sampler ? `Model default (${sampler})` : "Model default";
  if (kind === "class") {
    const classes = classNames(model);
    const select = $("#class");
    const previous = select.value;
    select.replaceChildren(...classes.map((c, i) => el("option", { value: String(i), text: /^class \d+$/.test(c) ? c : `${i} · ${c}` })));
    if (previous && previous < classes.length) select.value = previous;
  }
  if (kind === "inpaint") setupPainter();
  if (kind === "upscale") updateLowHint();
  // Images decoded for another model's size are redrawn at this one's.
  if (state.init) state.init = loadInto(state.init.source, width, height, "#init-preview");
  if (state.inpaint) state.inpaint = loadInto(state.inpaint.source, width, height, null);
  if (state.low) loadLow(state.low.source);
  clearFormError();
}

$("#model").addEventListener("change", e => selectModel(e.target.value));

$("#seed-random").addEventListener("click", () => {
  $("#seed").value = String(Math.floor(Math.random() * 2 ** 32));
});

$("#strength").addEventListener("input", e => { $("#strength-out").textContent = Number(e.target.value).toFixed(2); });

// ---------------------------------------------------------------- images

async function readImage(file) {
  if (!file.type.startsWith("image/")) throw new Error(`${file.name} is not an image`);
  const url = URL.createObjectURL(file);
  try {
    const img = new Image();
    img.src = url;
    await img.decode();
    return img;
  } catch {
    throw new Error(`${file.name}: cannot read the image`);
  } finally {
    setTimeout(() => URL.revokeObjectURL(url), 0);
  }
}

async function imageFromURL(url) {
  const img = new Image();
  img.src = await imageURL(url);
  await img.decode();
  return img;
}

// Draws `source` at width x height (nearest-neighbour when it only scales up by an integer,
// smooth otherwise), as opaque grayscale; shows it in `previewSel` when given.
function loadInto(source, width, height, previewSel) {
  const canvas = el("canvas", { width, height });
  const ctx = canvas.getContext("2d", { willReadFrequently: true });
  ctx.fillStyle = "#000";
  ctx.fillRect(0, 0, width, height);
  const sw = source.naturalWidth || source.width, sh = source.naturalHeight || source.height;
  ctx.imageSmoothingEnabled = !(width % sw === 0 && height % sh === 0);
  ctx.imageSmoothingQuality = "high";
  ctx.drawImage(source, 0, 0, width, height);
  const data = ctx.getImageData(0, 0, width, height);
  for (let i = 0; i < data.data.length; i += 4) {
    const [r, g, b] = [data.data[i], data.data[i + 1], data.data[i + 2]];
    const y = Math.round(0.299 * r + 0.587 * g + 0.114 * b);
    data.data[i] = data.data[i + 1] = data.data[i + 2] = y;
    data.data[i + 3] = 255;
  }
  if (previewSel) {
    const preview = $(previewSel);
    preview.width = width; preview.height = height;
    preview.getContext("2d").putImageData(data, 0, 0);
    preview.hidden = false;
  }
  return { source, data, resized: sw !== width || sh !== height, originalSize: `${sw}×${sh}` };
}

// Base64 PNG bytes of an ImageData (what the API takes).
function pngBase64(data) {
  const canvas = el("canvas", { width: data.width, height: data.height });
  canvas.getContext("2d").putImageData(data, 0, 0);
  return canvas.toDataURL("image/png").split(",")[1];
}

function imageError(e) { showFormError(e.message || String(e), null); }

$("#init-file").addEventListener("change", async e => {
  const file = e.target.files[0];
  if (!file) return;
  try {
    const { width, height } = sampleSize(state.model);
    state.init = loadInto(await readImage(file), width, height, "#init-preview");
    $("#init-clear").hidden = false;
    $("#strength-row").hidden = false;
    clearFormError();
  } catch (err) { imageError(err); }
});
$("#init-clear").addEventListener("click", () => {
  state.init = null;
  $("#init-file").value = "";
  $("#init-preview").hidden = true;
  $("#init-clear").hidden = true;
  $("#strength-row").hidden = true;
  $("#init-file").focus();
});

function lowSize() {
  const { width, height } = sampleSize(state.model);
  const factor = Number($("#factor").value);
  return { width: Math.max(1, Math.round(width / factor)), height: Math.max(1, Math.round(height / factor)), factor };
}
function updateLowHint() {
  const { width, height, factor } = lowSize();
  const note = state.low && state.low.resized ? ` Your ${state.low.originalSize} image was resized to fit.` : "";
  $("#low-hint").textContent = `A ${width}×${height} image, made ${factor}× larger.${note}`;
}
function loadLow(source) {
  const { width, height } = lowSize();
  state.low = loadInto(source, width, height, "#low-preview");
  updateLowHint();
}
$("#low-file").addEventListener("change", async e => {
  const file = e.target.files[0];
  if (!file) return;
  try { loadLow(await readImage(file)); clearFormError(); } catch (err) { imageError(err); }
});
$("#factor").addEventListener("change", () => { if (state.low) loadLow(state.low.source); else updateLowHint(); });

// ---------------------------------------------------------------- mask painter

function setupPainter() {
  const { width, height } = sampleSize(state.model);
  const canvas = $("#mask-canvas");
  if (canvas.width !== width * SCALE || canvas.height !== height * SCALE) {
    canvas.width = width * SCALE;
    canvas.height = height * SCALE;
  }
  if (!state.mask || state.mask.length !== width * height) state.mask = new Uint8Array(width * height);
  drawPainter();
}

function drawPainter() {
  const canvas = $("#mask-canvas");
  const { width, height } = sampleSize(state.model);
  const ctx = canvas.getContext("2d");
  ctx.imageSmoothingEnabled = false;
  ctx.fillStyle = "#000";
  ctx.fillRect(0, 0, canvas.width, canvas.height);
  if (state.inpaint) {
    const small = el("canvas", { width, height });
    small.getContext("2d").putImageData(state.inpaint.data, 0, 0);
    ctx.drawImage(small, 0, 0, canvas.width, canvas.height);
  } else {
    ctx.fillStyle = "#8a8f98";
    ctx.font = `${Math.round(canvas.width / 18)}px system-ui, sans-serif`;
    ctx.textAlign = "center";
    ctx.fillText("Choose an image to inpaint", canvas.width / 2, canvas.height / 2);
  }
  const accent = getComputedStyle(document.documentElement).getPropertyValue("--accent").trim() || "#4f46e5";
  ctx.fillStyle = accent;
  ctx.globalAlpha = 0.6;
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) if (state.mask[y * width + x]) ctx.fillRect(x * SCALE, y * SCALE, SCALE, SCALE);
  }
  ctx.globalAlpha = 1;
  // Faint grid: one cell per image pixel.
  ctx.strokeStyle = "rgba(255,255,255,0.06)";
  ctx.lineWidth = 1;
  ctx.beginPath();
  for (let i = 1; i < width; i++) { ctx.moveTo(i * SCALE + 0.5, 0); ctx.lineTo(i * SCALE + 0.5, canvas.height); }
  for (let i = 1; i < height; i++) { ctx.moveTo(0, i * SCALE + 0.5); ctx.lineTo(canvas.width, i * SCALE + 0.5); }
  ctx.stroke();
  if (state.cursor) {
    const r = brushSize() / 2;
    ctx.strokeStyle = "#fff";
    ctx.lineWidth = 1.5;
    ctx.beginPath();
    ctx.arc(state.cursor[0] * SCALE, state.cursor[1] * SCALE, Math.max(r, 0.5) * SCALE, 0, Math.PI * 2);
    ctx.stroke();
  }
}

const brushSize = () => Number($("#brush").value);

// Paints (or erases) the cells within the brush around image position (px, py).
function paintAt(px, py) {
  const { width, height } = sampleSize(state.model);
  const r = brushSize() / 2;
  const value = state.erase ? 0 : 1;
  let any = false;
  for (let y = Math.floor(py - r); y <= Math.ceil(py + r); y++) {
    for (let x = Math.floor(px - r); x <= Math.ceil(px + r); x++) {
      if (x < 0 || y < 0 || x >= width || y >= height) continue;
      const dx = x + 0.5 - px, dy = y + 0.5 - py;
      if (dx * dx + dy * dy <= r * r) { state.mask[y * width + x] = value; any = true; }
    }
  }
  const cx = Math.floor(px), cy = Math.floor(py);
  if (!any && cx >= 0 && cy >= 0 && cx < width && cy < height) state.mask[cy * width + cx] = value;
}

function strokeTo(from, to) {
  const steps = Math.max(1, Math.ceil(Math.hypot(to[0] - from[0], to[1] - from[1]) * 2));
  for (let i = 1; i <= steps; i++) {
    paintAt(from[0] + (to[0] - from[0]) * i / steps, from[1] + (to[1] - from[1]) * i / steps);
  }
}

(function wirePainter() {
  const canvas = $("#mask-canvas");
  let last = null;
  const pos = e => {
    const rect = canvas.getBoundingClientRect();
    const { width, height } = sampleSize(state.model);
    return [(e.clientX - rect.left) / rect.width * width, (e.clientY - rect.top) / rect.height * height];
  };
  canvas.addEventListener("pointerdown", e => {
    if (e.button !== 0) return;
    canvas.setPointerCapture(e.pointerId);
    last = pos(e);
    state.cursor = last;
    paintAt(...last);
    drawPainter();
    e.preventDefault();
  });
  canvas.addEventListener("pointermove", e => {
    const p = pos(e);
    state.cursor = p;
    if (last) { strokeTo(last, p); last = p; }
    drawPainter();
  });
  const end = () => { last = null; };
  canvas.addEventListener("pointerup", end);
  canvas.addEventListener("pointercancel", end);
  canvas.addEventListener("pointerleave", () => { if (!last) { state.cursor = null; drawPainter(); } });
  // Keyboard: arrows move the brush (with Shift they paint as they go), space or Enter paints.
  canvas.addEventListener("keydown", e => {
    const { width, height } = sampleSize(state.model);
    const c = state.cursor || [width / 2, height / 2];
    const moves = { ArrowLeft: [-1, 0], ArrowRight: [1, 0], ArrowUp: [0, -1], ArrowDown: [0, 1] };
    if (moves[e.key]) {
      const next = [Math.min(width - 0.5, Math.max(0.5, Math.floor(c[0]) + 0.5 + moves[e.key][0])),
                    Math.min(height - 0.5, Math.max(0.5, Math.floor(c[1]) + 0.5 + moves[e.key][1]))];
      if (e.shiftKey) strokeTo(c, next);
      state.cursor = next;
    } else if (e.key === " " || e.key === "Enter") {
      state.cursor = c;
      paintAt(...c);
    } else return;
    e.preventDefault();
    drawPainter();
  });
  canvas.addEventListener("focus", () => { if (!state.cursor) { const { width, height } = sampleSize(state.model); state.cursor = [width / 2, height / 2]; drawPainter(); } });
  canvas.addEventListener("blur", () => { state.cursor = null; drawPainter(); });
})();

$("#brush").addEventListener("input", e => { $("#brush-out").textContent = e.target.value; drawPainter(); });
$("#mask-erase").addEventListener("click", e => {
  state.erase = !state.erase;
  e.currentTarget.setAttribute("aria-pressed", String(state.erase));
});
$("#mask-clear").addEventListener("click", () => { state.mask.fill(0); drawPainter(); });
$("#mask-invert").addEventListener("click", () => { for (let i = 0; i < state.mask.length; i++) state.mask[i] ^= 1; drawPainter(); });
$("#inpaint-file").addEventListener("change", async e => {
  const file = e.target.files[0];
  if (!file) return;
  try {
    const { width, height } = sampleSize(state.model);
    state.inpaint = loadInto(await readImage(file), width, height, null);
    drawPainter();
    clearFormError();
  } catch (err) { imageError(err); }
});

function maskImageData() {
  const { width, height } = sampleSize(state.model);
  const data = new ImageData(width, height);
  for (let i = 0; i < state.mask.length; i++) {
    const v = state.mask[i] ? 255 : 0;
    data.data[4 * i] = data.data[4 * i + 1] = data.data[4 * i + 2] = v;
    data.data[4 * i + 3] = 255;
  }
  return data;
}

// ---------------------------------------------------------------- the request

function intField(sel, name, min, max) {
  const input = $(sel);
  const text = input.value.trim();
  const value = Number(text);
  if (text === "" || !Number.isInteger(value) || value < min || (max != null && value > max)) {
    throw Object.assign(new Error(`${name} must be a whole number ${max != null ? `from ${min} to ${max}` : `of at least ${min}`}`), { field: sel });
  }
  return value;
}

function buildRequest() {
  const model = state.model;
  if (!model) throw new Error("no model: the server lists none");
  const request = {
    model: model.name,
    steps: intField("#steps", "Steps", 1, 1000),
    batch: intField("#batch", "Batch", 1, 64),
    seed: intField("#seed", "Seed", 0, Number.MAX_SAFE_INTEGER),
  };
  const sampler = $("#sampler").value;
  if (sampler) request.sampler = sampler;
  if (!$("#precision-field").hidden && $("#bf16").checked) request.precision = "bfloat16";
  const fail = (message, field) => { throw Object.assign(new Error(message), { field }); };
  switch (model.kind) {
    case "text": {
      const prompts = $("#prompt").value.split("\n").map(s => s.trim()).filter(Boolean);
      if (!prompts.length) fail("Write a prompt, for example “a sneaker”", "#prompt");
      request.prompts = prompts;
      const negative = model.negative_prompts ? $("#negative").value.trim() : "";
      if (negative) request.negative_prompts = [negative];
      break;
    }
    case "class":
      if ($("#class").value === "") fail("Choose a class", "#class");
      request.class_labels = [Number($("#class").value)];
      break;
    case "unconditional":
      if (state.init) request.images = { imageToImage: { image: pngBase64(state.init.data), strength: Number($("#strength").value) } };
      break;
    case "inpaint":
      if (!state.inpaint) fail("Choose the image to inpaint", "#inpaint-file");
      if (!state.mask.some(v => v)) fail("Paint the mask: the area to generate", "#mask-canvas");
      request.images = { inpaint: { image: pngBase64(state.inpaint.data), mask: pngBase64(maskImageData()), resampling: { jumpLength: 10, samples: 1 } } };
      break;
    case "upscale":
      if (!state.low) fail("Choose the low-resolution image", "#low-file");
      request.images = { upscale: { image: pngBase64(state.low.data), factor: lowSize().factor } };
      break;
  }
  if (model.kind === "class" || model.kind === "text") {
    const g = Number($("#guidance").value);
    if ($("#guidance").value.trim() === "" || !Number.isFinite(g) || g < 0) fail("Guidance must be a number of at least 0", "#guidance");
    request.guidance = g;
  }
  return request;
}

$("#form").addEventListener("submit", async e => {
  e.preventDefault();
  clearFormError();
  let request;
  try {
    request = buildRequest();
  } catch (err) {
    showFormError(err.message, null);
    if (err.field) { const input = $(err.field); input.classList.add("invalid"); input.setAttribute("aria-invalid", "true"); input.focus(); }
    return;
  }
  const button = $("#generate");
  button.disabled = true;
  try {
    const created = await api("/v1/jobs", { method: "POST", json: request });
    follow(created.id, request);
    refreshGallery();
  } catch (err) {
    if (err instanceof ApiError) showFormError(err.friendly, err.field);
    else showFormError(err.message || String(err), null);
  } finally {
    button.disabled = false;
  }
});

document.addEventListener("keydown", e => {
  if (e.key === "Enter" && (e.ctrlKey || e.metaKey)) { e.preventDefault(); $("#form").requestSubmit(); }
});

// ---------------------------------------------------------------- progress

function setBadge(badge, jobState) {
  badge.textContent = jobState;
  badge.className = `badge ${jobState}`;
  badge.hidden = !jobState;
}

function setProgress(fraction, text) {
  const bar = $("#progressbar");
  bar.classList.toggle("indeterminate", fraction == null);
  $("#bar").style.width = fraction == null ? "" : `${Math.round(fraction * 100)}%`;
  bar.setAttribute("aria-valuenow", fraction == null ? "0" : String(Math.round(fraction * 100)));
  if (text != null) $("#progress-text").textContent = text;
}

function showPreview(urls) {
  const box = $("#preview");
  const list = (Array.isArray(urls) ? urls : [urls]).filter(Boolean);
  if (!list.length) return;
  box.classList.remove("empty");
  const cols = Math.ceil(Math.sqrt(list.length));
  box.style.setProperty("--cols", String(cols));
  const imgs = box.querySelectorAll("img");
  if (imgs.length !== list.length) {
    box.replaceChildren(...list.map((_, i) => el("img", { class: "pixel", alt: `Sample ${i + 1}` })));
  }
  box.querySelectorAll("img").forEach((img, i) => setImage(img, list[i]));
}

function follow(id, request) {
  if (state.job && state.job.abort) state.job.abort.abort();
  const job = { id, abort: new AbortController(), state: "queued", started: performance.now(), steps: request ? request.steps : null };
  state.job = job;
  showSummary({ request: request || {} });
  $("#cancel").disabled = false;
  setBadge($("#job-state"), "queued");
  setProgress(null, "Queued…");
  const preview = $("#preview");
  preview.classList.add("empty");
  preview.style.removeProperty("--cols");
  preview.replaceChildren(el("span", { class: "placeholder", text: "Waiting for the first step…" }));
  streamEvents(job).catch(() => {}).then(() => { if (state.job === job && !TERMINAL.has(job.state)) poll(job); });
}

function onJobEvent(job, type, data) {
  if (state.job !== job) return;
  const elapsed = ((performance.now() - job.started) / 1000).toFixed(1);
  switch (type) {
    case "queued": {
      const pos = data && data.position != null ? (data.position <= 1 ? " (next)" : ` (position ${data.position} in the queue)`) : "";
      setProgress(null, `Queued${pos}…`);
      break;
    }
    case "started":
      job.state = "running";
      setBadge($("#job-state"), "running");
      setProgress(0, "Starting…");
      break;
    case "step": {
      job.state = "running";
      setBadge($("#job-state"), "running");
      const count = data.count || job.steps || 1;
      const done = Math.min(count, data.index ?? 0);  // evaluations done, 1...count
      setProgress(done / count, `Step ${done} of ${count} · ${elapsed} s`);
      if (data.preview) showPreview(data.preview);
      break;
    }
    case "done":
      finish(job, "done", data);
      break;
    case "failed":
      finish(job, "failed", data);
      break;
    case "cancelled":
      finish(job, "cancelled", data);
      break;
  }
}

function finish(job, final, data) {
  if (TERMINAL.has(job.state) && job.finished) return;
  job.state = final;
  job.finished = true;
  job.abort.abort();
  clearTimeout(state.pollTimer);
  const elapsed = ((performance.now() - job.started) / 1000).toFixed(1);
  setBadge($("#job-state"), final);
  $("#cancel").disabled = true;
  if (final === "done") {
    setProgress(1, `Done in ${elapsed} s`);
    if (data && Array.isArray(data.images) && data.images.length) showPreview(data.images);
  } else if (final === "failed") {
    setProgress(0, "Failed");
    const message = data && data.error ? data.error : "the job failed";
    showBanner(`Job ${job.id} failed: ${message}`);
  } else {
    setProgress(0, `Cancelled after ${elapsed} s`);
  }
  refreshGallery();
}

// Reads the job's server-sent events through fetch (headers allowed, unlike EventSource).
async function streamEvents(job) {
  const response = await fetch(`/v1/jobs/${encodeURIComponent(job.id)}/events`, {
    headers: authHeaders({ Accept: "text/event-stream" }), signal: job.abort.signal, cache: "no-store",
  });
  if (!response.ok || !response.body) throw new ApiError(response.status, null);
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buffer = (buffer + value).replace(/\r\n?/g, "\n");
    let end;
    while ((end = buffer.indexOf("\n\n")) >= 0) {
      const block = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      let type = "message";
      const lines = [];
      for (const line of block.split("\n")) {
        if (line.startsWith(":")) continue;
        const colon = line.indexOf(":");
        const key = colon < 0 ? line : line.slice(0, colon);
        const val = colon < 0 ? "" : line.slice(colon + 1).replace(/^ /, "");
        if (key === "event") type = val;
        else if (key === "data") lines.push(val);
      }
      if (!lines.length && type === "message") continue;
      let data = lines.join("\n");
      try { data = data ? JSON.parse(data) : {}; } catch { /* plain text */ }
      onJobEvent(job, type, data);
      if (TERMINAL.has(job.state)) return;
    }
  }
}

// Fallback when the event stream is unavailable or ends early: poll the job.
async function poll(job) {
  if (state.job !== job || job.finished) return;
  try {
    const j = await api(`/v1/jobs/${encodeURIComponent(job.id)}`);
    if (j.state === "queued") onJobEvent(job, "queued", { position: j.position });
    else if (j.state === "running") onJobEvent(job, j.step ? "step" : "started", { index: j.step, count: j.step_count });
    else if (TERMINAL.has(j.state)) return finish(job, j.state, j);
  } catch (err) {
    if (err instanceof ApiError && err.status === 404) return finish(job, "failed", { error: "the server no longer knows this job" });
  }
  state.pollTimer = setTimeout(() => poll(job), 700);
}

async function cancelJob(id) {
  try {
    await api(`/v1/jobs/${encodeURIComponent(id)}`, { method: "DELETE" });
  } catch (err) {
    showBanner(`Cannot cancel job ${id}: ${err instanceof ApiError ? err.friendly : err.message}`);
  }
  if (!(state.job && state.job.id === id)) refreshGallery();
}

$("#cancel").addEventListener("click", () => {
  const job = state.job;
  if (!job || TERMINAL.has(job.state)) return;
  $("#cancel").disabled = true;
  $("#progress-text").textContent = "Cancelling…";
  cancelJob(job.id).then(() => { if (!job.finished) setTimeout(() => poll(job), 300); });
});

// ---------------------------------------------------------------- gallery

function describe(job) {
  const r = job.request || {};
  const model = state.models.find(m => m.name === r.model);
  const kind = model ? model.kind : null;
  const images = r.images && typeof r.images === "object" ? Object.keys(r.images)[0] : null;
  if (Array.isArray(r.prompts) && r.prompts.length) return `“${r.prompts.join("”, “")}”`;
  if (Array.isArray(r.class_labels) && r.class_labels.length) {
    const names = classNames(model);
    return r.class_labels.map(k => names[k] || `class ${k}`).join(", ");
  }
  if (images === "inpaint" || kind === "inpaint") return "Inpainting";
  if (images === "upscale" || kind === "upscale") return `Upscale${r.images && r.images.upscale ? ` ×${r.images.upscale.factor}` : ""}`;
  if (images === "imageToImage") return "Image-to-image";
  return "Unconditional";
}

function seconds(job) {
  if (typeof job.run_seconds === "number") return job.run_seconds;
  const t = job.timings;
  return t && typeof t.run_seconds === "number" ? t.run_seconds : null;
}

// The running job's title and settings beside the progress bar.
function showSummary(job) {
  const r = job.request || {};
  const box = $("#job-summary");
  if (!r.model) { box.textContent = "A job started elsewhere"; return; }
  box.replaceChildren(describe(job), el("span", { class: "sub", text: settingsText(r) }));
}

function settingsText(r) {
  return [r.model, r.sampler ? SAMPLER_NAMES[r.sampler] || r.sampler : "default sampler", `${r.steps} steps`,
          r.guidance != null && r.guidance !== 1 ? `guidance ${r.guidance}` : null, `seed ${r.seed ?? 0}`,
          (r.batch || 1) > 1 ? `batch ${r.batch}` : null, r.precision === "bfloat16" ? "bfloat16" : null].filter(Boolean).join(" · ");
}

function renderJob(job) {
  const r = job.request || {};
  const urls = Array.isArray(job.images) ? job.images : [];
  const item = el("li", { class: `job${state.job && state.job.id === job.id ? " current" : ""}`, "data-id": job.id, "data-state": job.state });
  const head = el("div", { class: "job-head" },
    el("span", { class: "job-title", text: describe(job), title: describe(job) }),
    el("span", { class: `badge ${job.state}`, text: job.state }));
  const cols = urls.length <= 1 ? 1 : urls.length <= 4 ? 2 : urls.length <= 9 ? 3 : 4;
  const grid = el("button", { type: "button", class: "job-images", style: `--cols:${cols}`, title: "Reuse these settings",
    "aria-label": `Reuse the settings of job ${job.id}`, onclick: () => reuse(job) });
  if (urls.length) {
    urls.forEach((url, i) => {
      const img = el("img", { class: "pixel", alt: `${describe(job)}, sample ${i + 1}`, loading: "lazy" });
      setImage(img, url);
      grid.append(img);
    });
  } else {
    const label = { queued: job.position != null ? `Queued (#${job.position})` : "Queued", running: job.step_count ? `Step ${job.step || 0} of ${job.step_count}` : "Running",
      failed: "Failed", cancelled: "Cancelled" }[job.state] || job.state;
    grid.append(el("span", { class: "blank", text: label }));
  }
  const meta = el("p", { class: "job-meta" },
    el("span", { text: r.model || "" }),
    el("span", { text: `${r.sampler ? SAMPLER_NAMES[r.sampler] || r.sampler : "default sampler"}` }),
    el("span", { text: `${r.steps} steps` }),
    r.guidance != null && r.guidance !== 1 ? el("span", { text: `guidance ${r.guidance}` }) : null,
    el("span", { text: `seed ${r.seed ?? 0}` }),
    (r.batch || 1) > 1 ? el("span", { text: `batch ${r.batch}` }) : null,
    r.precision === "bfloat16" ? el("span", { text: "bfloat16" }) : null,
    TERMINAL.has(job.state) && seconds(job) != null ? el("span", { text: `${seconds(job).toFixed(1)} s` }) : null);
  const actions = el("div", { class: "job-actions" },
    el("button", { type: "button", class: "ghost small", text: "Reuse", onclick: () => reuse(job) }));
  if (!TERMINAL.has(job.state)) {
    actions.append(el("button", { type: "button", class: "danger small", text: "Cancel", onclick: () => cancelJob(job.id) }));
  }
  if (urls.length) {
    const inpaint = state.models.find(m => m.kind === "inpaint");
    if (inpaint) actions.append(el("button", { type: "button", class: "ghost small", text: "Inpaint", title: "Edit the first image with the inpainting model", onclick: () => editImage(inpaint, urls[0]) }));
    const downloads = el("span", { class: "downloads" }, urls.length > 1 ? "PNG" : null);
    urls.forEach((url, i) => {
      const a = el("a", { href: url, download: `diffuse-${job.id}-${i}.png`, text: urls.length > 1 ? String(i + 1) : "Download PNG",
                          title: `Download image ${i + 1} (PNG)`, "aria-label": `Download image ${i + 1} (PNG)` });
      if (state.token) setImage(new Image(), url, a);
      downloads.append(a);
    });
    actions.append(downloads);
  }
  item.append(grid, head, meta);
  if (job.state === "failed" && job.error) item.append(el("p", { class: "job-error", text: job.error }));
  item.append(actions);
  return item;
}

// The jobs, most recent first, each with its request: the list leaves requests out, so
// each job's own record is read (once for an ended job).
async function refreshGallery() {
  try {
    const listed = listOf(await api("/v1/jobs"), "jobs");
    listed.forEach((j, i) => { j.order = i; });
    const jobs = await Promise.all(listed.map(async j => {
      if (j.request) return j;
      const known = state.details.get(j.id);
      if (known && known.state === j.state) return known;
      try {
        const full = await api(`/v1/jobs/${encodeURIComponent(j.id)}`);
        full.order = j.order;
        if (TERMINAL.has(full.state)) state.details.set(j.id, full);
        return full;
      } catch { return j; }
    }));
    jobs.sort((a, b) => jobTime(b) - jobTime(a));
    state.jobs = jobs;
    $("#gallery").replaceChildren(...jobs.map(renderJob));
    $("#gallery-empty").hidden = jobs.length > 0;
    clearTimeout(state.galleryTimer);
    if (jobs.some(j => !TERMINAL.has(j.state))) state.galleryTimer = setTimeout(refreshGallery, 1500);
    return jobs;
  } catch (err) {
    if (err instanceof ApiError) showBanner(`Cannot list the jobs: ${err.friendly}`);
    return [];
  }
}
$("#gallery-refresh").addEventListener("click", refreshGallery);

// Most recent first: the server's creation time when it gives one, else its order.
function jobTime(job) {
  const t = job.created_at;
  if (typeof t === "number") return t;
  if (typeof t === "string") { const ms = Date.parse(t); if (!Number.isNaN(ms)) return ms; }
  return -(job.order || 0);
}

async function reuse(job) {
  const r = job.request || {};
  if (r.model && state.models.some(m => m.name === r.model)) {
    $("#model").value = r.model;
    selectModel(r.model);
  }
  if (r.steps != null) $("#steps").value = r.steps;
  $("#batch").value = r.batch ?? 1;
  $("#seed").value = r.seed ?? 0;
  $("#sampler").value = r.sampler && SAMPLER_NAMES[r.sampler] ? r.sampler : "";
  if (r.guidance != null) $("#guidance").value = r.guidance;
  $("#bf16").checked = r.precision === "bfloat16";
  if (Array.isArray(r.prompts)) $("#prompt").value = r.prompts.join("\n");
  $("#negative").value = Array.isArray(r.negative_prompts) ? r.negative_prompts.join(", ") : "";
  if (Array.isArray(r.class_labels) && r.class_labels.length) $("#class").value = String(r.class_labels[0]);
  const images = r.images && typeof r.images === "object" ? r.images : {};
  try {
    const { width, height } = sampleSize(state.model);
    if (images.imageToImage && images.imageToImage.image) {
      state.init = loadInto(await imageFromURL(`data:image/png;base64,${images.imageToImage.image}`), width, height, "#init-preview");
      $("#strength").value = images.imageToImage.strength;
      $("#strength").dispatchEvent(new Event("input"));
      $("#init-clear").hidden = false;
      $("#strength-row").hidden = false;
    }
    if (images.upscale && images.upscale.image) {
      $("#factor").value = String(images.upscale.factor);
      loadLow(await imageFromURL(`data:image/png;base64,${images.upscale.image}`));
    }
    if (images.inpaint && images.inpaint.image) {
      state.inpaint = loadInto(await imageFromURL(`data:image/png;base64,${images.inpaint.image}`), width, height, null);
      if (images.inpaint.mask) {
        const m = loadInto(await imageFromURL(`data:image/png;base64,${images.inpaint.mask}`), width, height, null);
        for (let i = 0; i < state.mask.length; i++) state.mask[i] = m.data.data[4 * i] >= 128 ? 1 : 0;
      }
      drawPainter();
    }
  } catch { /* settings are restored even when an image is not */ }
  clearFormError();
  $("#form").scrollIntoView({ behavior: "smooth", block: "start" });
  $("#generate").focus({ preventScroll: true });
}

async function editImage(model, url) {
  $("#model").value = model.name;
  selectModel(model.name);
  try {
    const { width, height } = sampleSize(model);
    state.inpaint = loadInto(await imageFromURL(url), width, height, null);
    state.mask.fill(0);
    drawPainter();
    $("#form").scrollIntoView({ behavior: "smooth", block: "start" });
    $("#mask-canvas").focus({ preventScroll: true });
  } catch (err) { showFormError(`Cannot load the image: ${err.message}`, null); }
}

// ---------------------------------------------------------------- start

async function start() {
  const status = $("#server-status");
  $("#banner").hidden = true;
  try {
    fillModels(listOf(await api("/v1/models"), "models"));
    status.textContent = "Connected";
    status.className = "server-status ok";
  } catch (err) {
    status.textContent = "Offline";
    status.className = "server-status bad";
    showBanner(`Cannot load the models: ${err instanceof ApiError ? err.friendly : err.message}`);
    return;
  }
  const jobs = await refreshGallery();
  const active = jobs.find(j => j.state === "running") || jobs.find(j => j.state === "queued");
  if (active && !(state.job && state.job.id === active.id)) follow(active.id, active.request);
}

start();
