// The SaliencyService page: one model, one input, its predictions, and its saliency maps, all
// through the service's own /v1 API. No framework and no CDN, so it works offline behind a gateway.

const $ = (id) => document.getElementById(id);
const state = { models: [], methods: [], file: null, busy: null, last: null };

// ---- talking to the service ------------------------------------------------------------------

/** Calls the API with the page's API key; a problem+json answer becomes an Error with its detail. */
async function api(path, options = {}) {
  const headers = new Headers(options.headers || {});
  const key = $("api-key").value.trim();
  if (key) headers.set("X-Api-Key", key);
  const response = await fetch(path, { ...options, headers });
  if (!response.ok) {
    let detail = `${response.status} ${response.statusText}`;
    try {
      const problem = await response.json();
      detail = problem.detail || problem.title || problem.error || detail;
    } catch { /* not JSON */ }
    throw new Error(detail);
  }
  return response;
}

function showError(error) {
  if (error && error.name === "AbortError") return;
  const alert = $("alert");
  alert.textContent = error instanceof Error ? error.message : String(error);
  alert.hidden = false;
}

function clearError() {
  $("alert").hidden = true;
  $("alert").textContent = "";
}

function status(text) {
  $("status").textContent = text;
}

/** Runs an action from the UI: one error path, no unhandled rejection, no console error. */
function act(action) {
  return async (event) => {
    event?.preventDefault?.();
    try {
      await action(event);
    } catch (error) {
      showError(error);
    }
  };
}

// ---- models ---------------------------------------------------------------------------------

const model = () => state.models.find((m) => m.name === $("model").value);

async function loadModels(select) {
  state.models = await (await api("/v1/models")).json();
  const picker = $("model");
  const previous = select || picker.value;
  picker.replaceChildren(...state.models.map((m) => new Option(m.name, m.name)));
  if (state.models.some((m) => m.name === previous)) picker.value = previous;
  showModel();
}

function showModel() {
  const m = model();
  const facts = $("model-facts");
  facts.replaceChildren();
  const fact = (term, value) => facts.append(Object.assign(document.createElement("dt"), { textContent: term }),
    Object.assign(document.createElement("dd"), { textContent: value }));
  if (!m) {
    fact("Models", "none served; import one below");
    return;
  }
  const p = m.preprocessing;
  fact("Input", `${m.inputs.length > 1 ? `${p.input}: ` : ""}${p.width}×${p.height} ${p.channels}, ${p.layout}`);
  fact("Values", valuesFormula(p));
  if (m.outputs.length > 1) fact("Scores", p.output ? `output ${p.output} (of ${m.outputs.length})` : "no real-valued output");
  fact("Labels", m.labels?.length ? `${m.labels.length}: ${m.labels.slice(0, 4).join(", ")}${m.labels.length > 4 ? ", …" : ""}` : "none (class indices)");
  if (m.graphOptimization && m.graphOptimization !== "all") fact("Runtime", `ONNX Runtime's graph optimizations up to "${m.graphOptimization}" (all of them crashed on this model)`);
  fact("Explainable", m.explain.supported ? `yes, gradients on ${m.explain.gradientEngine}` : `no: ${m.explain.reason}`);
  $("layer").replaceChildren(...(m.explain.layers || []).map((l) => {
    const option = new Option(`${l.name} [${l.shape.join("×")}]`, l.name);
    option.selected = l.name === m.explain.defaultLayer;
    return option;
  }));
  drawPreview();
}

/** What the model is fed for a pixel of 0–255, as a formula: "(pixel ÷ 255 − [0.485, …]) ÷ [0.229, …]". */
function valuesFormula(p) {
  const number = (x) => String(Number(x.toPrecision(6)));
  const perChannel = (values) => new Set(values).size === 1 ? number(values[0]) : `[${values.map(number).join(", ")}]`;
  const divisor = 1 / p.scale;
  let value = p.scale === 1 ? "pixel"
    : Number.isFinite(divisor) && Math.abs(divisor * 1000 - Math.round(divisor * 1000)) < 1e-6 ? `pixel ÷ ${number(divisor)}`
    : `pixel × ${number(p.scale)}`;
  if (p.mean.some((m) => m !== 0)) value = `(${value} − ${perChannel(p.mean)})`;
  if (p.std.some((s) => s !== 1)) value = `${value} ÷ ${perChannel(p.std)}`;
  return value;
}

async function importModel() {
  const form = new FormData();
  const file = $("import-file").files[0];
  if (!file) throw new Error("Choose an .onnx file to import.");
  form.append("file", file, file.name);
  if ($("import-name").value.trim()) form.append("name", $("import-name").value.trim());
  const manifest = importManifest();
  if (Object.keys(manifest).length) form.append("manifest", JSON.stringify(manifest));
  status("Importing… (the model is checked before it is served)");
  const replace = $("import-replace").checked ? "?replace=true" : "";
  const descriptor = await (await api(`/v1/models${replace}`, { method: "POST", body: form })).json();
  clearError();
  status(`Imported ${descriptor.name}.`);
  await loadModels(descriptor.name);
  await predict();
}

/** The manifest the import form describes; an empty field leaves the model's own default. */
function importManifest() {
  const text = (id) => $(id).value.trim();
  const numbers = (id, what) => text(id).split(/[\s,;]+/).filter(Boolean).map((t) => typedNumber(t, what));
  const manifest = {};
  if (text("import-input")) manifest.input = text("import-input");
  if (text("import-output")) manifest.output = text("import-output");
  if ($("import-layout").value) manifest.layout = $("import-layout").value;
  if ($("import-channels").value) manifest.channels = $("import-channels").value;
  if (text("import-size")) {
    const size = /^(\d+)(?:\s*[×xX*,\s]\s*(\d+))?$/.exec(text("import-size"));
    if (!size) throw new Error(`Height × width: '${text("import-size")}' is not a size (write 224×224, or 224 for a square).`);
    manifest.height = Number(size[1]);
    manifest.width = Number(size[2] ?? size[1]);
  }
  if (text("import-scale")) manifest.scale = typedNumber(text("import-scale"), "Pixel scale");
  if (text("import-mean")) manifest.mean = numbers("import-mean", "Mean");
  if (text("import-std")) manifest.std = numbers("import-std", "Std");
  const labels = $("import-labels").value.split("\n").map((l) => l.trim()).filter(Boolean);
  if (labels.length) manifest.labels = labels;
  return manifest;
}

/** A number as typed in a form: a decimal, or a fraction such as 1/255. */
function typedNumber(text, what) {
  const fraction = /^(.+)\/(.+)$/.exec(text);
  const value = fraction ? Number(fraction[1]) / Number(fraction[2]) : Number(text);
  if (!Number.isFinite(value)) throw new Error(`${what}: '${text}' is not a number (write 0.5, or a fraction such as 1/255).`);
  return value;
}

async function deleteModel() {
  const m = model();
  if (!m || !confirm(`Delete the model '${m.name}'?`)) return;
  await api(`/v1/models/${encodeURIComponent(m.name)}`, { method: "DELETE" });
  clearError();
  await loadModels();
  status(`Deleted ${m.name}.`); // once the picker no longer offers it
}

// ---- input ----------------------------------------------------------------------------------

async function useFile(file) {
  state.file = file;
  state.last = null;
  $("result").hidden = true;
  $("downloads").hidden = true;
  $("gallery").replaceChildren();
  $("target").value = "";
  await drawPreview();
  await predict();
}

/** The image as the model sees it: resized to its input, drawn at that size (and scaled up by CSS). */
async function drawPreview() {
  const m = model();
  const canvas = $("preview");
  if (!state.file || !m) return;
  const { width, height } = m.preprocessing;
  try {
    const bitmap = await createImageBitmap(state.file);
    canvas.width = width;
    canvas.height = height;
    const context = canvas.getContext("2d");
    context.drawImage(bitmap, 0, 0, width, height);
    if (m.preprocessing.channels === "GRAY") {
      const pixels = context.getImageData(0, 0, width, height);
      for (let i = 0; i < pixels.data.length; i += 4) {
        const y = 0.299 * pixels.data[i] + 0.587 * pixels.data[i + 1] + 0.114 * pixels.data[i + 2];
        pixels.data[i] = pixels.data[i + 1] = pixels.data[i + 2] = y;
      }
      context.putImageData(pixels, 0, 0);
    }
    canvas.hidden = false;
    $("preview-caption").textContent = `${state.file.name || "image"} as ${m.name} sees it: ${width}×${height}`;
  } catch {
    canvas.hidden = true;
    $("preview-caption").textContent = `${state.file.name || "This file"} cannot be shown as an image.`;
  }
}

function imageForm() {
  if (!state.file) throw new Error("Choose an image first.");
  const form = new FormData();
  form.append("image", state.file, state.file.name || "image.png");
  return form;
}

// ---- predictions ----------------------------------------------------------------------------

async function predict() {
  const m = model();
  if (!m || !state.file) return;
  const list = $("predictions");
  list.replaceChildren();
  const result = await (await api(`/v1/models/${encodeURIComponent(m.name)}/predict?topK=5`, { method: "POST", body: imageForm() })).json();
  clearError();
  const top = result.predictions[0].top;
  const high = Math.max(...top.map((c) => c.score));
  const low = Math.min(...top.map((c) => c.score));
  for (const c of top) {
    const item = document.createElement("li");
    const button = document.createElement("button");
    button.type = "button";
    button.className = "class";
    button.dataset.index = c.index;
    button.title = `Explain class ${c.index}`;
    const name = Object.assign(document.createElement("span"), { className: "name", textContent: c.label ?? `#${c.index}` });
    const bar = Object.assign(document.createElement("span"), { className: "bar" });
    bar.style.width = `${high > low ? 8 + 92 * (c.score - low) / (high - low) : 100}%`;
    const score = Object.assign(document.createElement("span"), { className: "score", textContent: c.score.toPrecision(4) });
    button.append(name, bar, score);
    button.addEventListener("click", act(async () => {
      $("target").value = String(c.index);
      await explain();
    }));
    item.append(button);
    list.append(item);
  }
  status(`Predicted with ${m.name}.`);
}

// ---- explanations ---------------------------------------------------------------------------

function showParameters() {
  const method = state.methods.find((m) => m.name === $("method").value);
  const used = new Set(method?.parameters || []);
  // SmoothGrad also takes the parameters of the method it smooths.
  if (used.has("base")) {
    const smoothed = state.methods.find((m) => m.name === ($("base").value || "gradient"));
    smoothed?.parameters.forEach((p) => used.add(p));
  }
  document.querySelectorAll("[data-parameter]").forEach((label) => { label.hidden = !used.has(label.dataset.parameter); });
}

/** The explain query for one method: its parameters and the drawing options. */
function query(methodName, format) {
  const method = state.methods.find((m) => m.name === methodName);
  const used = new Set(method?.parameters || []);
  if (used.has("base")) state.methods.find((m) => m.name === ($("base").value || "gradient"))?.parameters.forEach((p) => used.add(p));
  const q = new URLSearchParams({ method: methodName, format });
  const target = $("target").value.trim();
  if (target) q.set("target", target);
  for (const name of ["steps", "samples", "noise", "seed", "base", "layer"])
    if (used.has(name) && $(name).value !== "") q.set(name, $(name).value);
  for (const name of ["view", "colormap", "sign", "clip", "alpha"])
    if ($(name).value !== "") q.set(name, $(name).value);
  return q;
}

async function explainOnce(methodName, signal) {
  const m = model();
  if (!m) throw new Error("Choose a model first.");
  const started = performance.now();
  const response = await api(`/v1/models/${encodeURIComponent(m.name)}/explain?${query(methodName, "json")}`,
    { method: "POST", body: imageForm(), signal });
  const result = await response.json();
  return { result, milliseconds: performance.now() - started, cache: response.headers.get("X-Explain-Cache") };
}

function caption(result, milliseconds, cache) {
  const label = result.label ? ` “${result.label}”` : "";
  return `${result.method}: target ${result.target}${label}, score ${Number(result.score).toPrecision(4)}, ` +
    `${Math.round(milliseconds)} ms${cache === "hit" ? " (cached map, drawn anew)" : ""}`;
}

async function explain() {
  const methodName = $("method").value;
  const controller = begin();
  try {
    status(`Explaining with ${methodName}…`);
    const { result, milliseconds, cache } = await explainOnce(methodName, controller.signal);
    clearError();
    state.last = { method: methodName, result };
    const png = `data:image/png;base64,${result.png}`;
    $("map").src = png;
    $("map").alt = `${methodName} map of class ${result.target}`;
    $("map-caption").textContent = caption(result, milliseconds, cache);
    $("result").hidden = false;
    $("download-png").href = png;
    $("download-png").download = `${result.model}.${methodName}.png`;
    const json = new Blob([JSON.stringify(result, null, 2)], { type: "application/json" });
    URL.revokeObjectURL($("download-json").href);
    $("download-json").href = URL.createObjectURL(json);
    $("download-json").download = `${result.model}.${methodName}.json`;
    $("downloads").hidden = false;
    $("target").placeholder = `top-1 (${result.target})`;
    status(`Explained class ${result.target} with ${methodName}.`);
  } finally {
    end(controller);
  }
}

async function downloadNpy() {
  if (!state.last) return;
  const m = model();
  const q = query(state.last.method, "npy");
  q.set("target", String(state.last.result.target));
  const blob = await (await api(`/v1/models/${encodeURIComponent(m.name)}/explain?${q}`, { method: "POST", body: imageForm() })).blob();
  const link = Object.assign(document.createElement("a"), { href: URL.createObjectURL(blob), download: `${m.name}.${state.last.method}.npy` });
  link.click();
  setTimeout(() => URL.revokeObjectURL(link.href), 10_000);
}

/** Every method, one after the other, for the same input and target; cancellable. */
async function compare() {
  const gallery = $("gallery");
  gallery.replaceChildren();
  const controller = begin();
  const progress = $("progress");
  progress.max = state.methods.length;
  progress.value = 0;
  progress.hidden = false;
  try {
    for (const method of state.methods) {
      status(`Comparing: ${method.name} (${progress.value + 1} of ${state.methods.length})…`);
      const { result, milliseconds, cache } = await explainOnce(method.name, controller.signal);
      // A map joins the gallery once it is there: the gallery only ever holds finished maps.
      const figure = document.createElement("figure");
      const image = Object.assign(document.createElement("img"), {
        src: `data:image/png;base64,${result.png}`, alt: `${method.name} map of class ${result.target}`,
      });
      image.dataset.method = method.name;
      figure.append(image, Object.assign(document.createElement("figcaption"), { textContent: caption(result, milliseconds, cache) }));
      gallery.append(figure);
      if (!$("target").value.trim()) $("target").value = String(result.target); // every method explains the same class
      progress.value += 1;
    }
    clearError();
    status(`Compared ${state.methods.length} methods.`);
  } catch (error) {
    if (error.name === "AbortError") status(`Cancelled after ${progress.value} of ${state.methods.length} methods.`);
    else throw error;
  } finally {
    progress.hidden = true;
    end(controller);
  }
}

/** One long action at a time: its abort controller, with the Cancel button shown while it runs. */
function begin() {
  state.busy?.abort();
  const controller = new AbortController();
  state.busy = controller;
  $("cancel").hidden = false;
  document.body.setAttribute("aria-busy", "true");
  return controller;
}

function end(controller) {
  if (state.busy !== controller) return;
  state.busy = null;
  $("cancel").hidden = true;
  document.body.removeAttribute("aria-busy");
}

// ---- start ----------------------------------------------------------------------------------

async function start() {
  $("api-key").value = sessionStorage.getItem("saliency-api-key") || "";
  $("api-key").addEventListener("change", () => sessionStorage.setItem("saliency-api-key", $("api-key").value));

  const info = await (await api("/v1/methods")).json();
  state.methods = info.methods;
  $("method").replaceChildren(...info.methods.map((m) => new Option(m.name, m.name)));
  $("base").replaceChildren(...info.methods.filter((m) => !m.parameters.includes("base")).map((m) => new Option(m.name, m.name)));
  $("base").value = "gradient";
  const fill = (id, values) => $(id).append(...values.map((v) => new Option(v, v)));
  fill("view", info.views);
  fill("colormap", info.colormaps);
  fill("sign", info.signs);
  showParameters();

  const samples = await (await api("/samples")).json();
  $("sample").append(...samples.map((s) => new Option(s, s)));

  $("model").addEventListener("change", act(async () => {
    showModel();
    await predict();
  }));
  $("method").addEventListener("change", showParameters);
  $("base").addEventListener("change", showParameters);
  $("image").addEventListener("change", act(async () => {
    if ($("image").files[0]) await useFile($("image").files[0]);
  }));
  $("sample").addEventListener("change", act(async () => {
    if (!$("sample").value) return;
    const blob = await (await api(`/samples/${encodeURIComponent($("sample").value)}`)).blob();
    await useFile(new File([blob], $("sample").value, { type: blob.type }));
  }));
  const drop = $("drop");
  drop.addEventListener("dragover", (event) => { event.preventDefault(); drop.classList.add("over"); });
  drop.addEventListener("dragleave", () => drop.classList.remove("over"));
  drop.addEventListener("drop", act(async (event) => {
    drop.classList.remove("over");
    const file = event.dataTransfer.files[0];
    if (file) await useFile(file);
  }));
  $("explain-form").addEventListener("submit", act(explain));
  $("compare").addEventListener("click", act(compare));
  $("cancel").addEventListener("click", () => state.busy?.abort());
  $("download-npy").addEventListener("click", act(downloadNpy));
  $("import-form").addEventListener("submit", act(importModel));
  $("delete-model").addEventListener("click", act(deleteModel));
  // Drawing options re-draw the current map: the service keeps computed maps, so only the picture is made anew.
  for (const id of ["view", "colormap", "sign", "clip", "alpha"])
    $(id).addEventListener("change", act(async () => { if (state.last && !state.busy) await explain(); }));

  await loadModels();
  status("Ready. Choose an image.");
}

start().catch(showError);
