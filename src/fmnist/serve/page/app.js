// The page's behaviour: send images to /v1/predict, show what the model saw and its probabilities, fill the
// gallery and the model card. Plain DOM code; nothing is fetched from anywhere but this service.
"use strict";

const $ = (id) => document.getElementById(id);
let classes = [];
// The service's limits (from /v1/model): files are sent in as many requests as these need.
let limits = { max_request_bytes: 10 * 1024 * 1024, max_images: 64, request_timeout_s: 30 };
const FORM_OVERHEAD = 1024; // bytes a file's part adds to a request besides the file itself (headers, boundary)
const LARGEST_SIDE = 2048; // pixels: a file too large to send is scaled down to this (or less) before it goes
const SMALLEST_SIDE = 256; // ... but not below this: the article must still be found in it
const IMAGE_ERRORS = ["bad_image", "image_too_large"]; // codes of an image the server cannot use, not of the request
let queue = Promise.resolve(); // one upload at a time, in the order asked, so that results and status never race

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (key === "class") node.className = value;
    else if (key === "text") node.textContent = value;
    else node.setAttribute(key, value);
  }
  for (const child of children) node.append(child);
  return node;
}

function pct(p) { return (100 * p).toFixed(1) + "%"; }
function plural(n, word) { return `${n} ${word}${n === 1 ? "" : "s"}`; }

function setStatus(message, isError = false) {
  const status = $("status");
  status.textContent = message;
  status.classList.toggle("error", isError);
}

// The JSON body of a response, or an Error that says what came back instead (a proxy's HTML page, a timeout).
async function readJSON(response) {
  const text = await response.text();
  let body;
  try {
    body = JSON.parse(text);
  } catch {
    throw new Error(`the server answered ${response.status} ${response.statusText || ""} without a JSON body`.trim());
  }
  if (!response.ok) {
    const error = new Error(body.error ? body.error.message : `${response.status} ${response.statusText}`);
    error.code = body.error && body.error.code;
    error.status = response.status;
    throw error;
  }
  return body;
}

async function request(path, options = {}) {
  try {
    return await readJSON(await fetch(path, options));
  } catch (error) {
    if (error.name === "TimeoutError" || error.name === "AbortError") {
      throw new Error("the server did not answer in time; try again, or fewer images at once");
    }
    if (error instanceof TypeError) {
      throw new Error("the server cannot be reached (is `fmnist serve` still running?)");
    }
    throw error;
  }
}

// A file whose size alone is over the request limit, redrawn smaller (at most LARGEST_SIDE pixels, halved until it
// fits; JPEG, or PNG where it may be transparent); the file itself where it fits or the browser cannot decode it
// (the server then says why).
async function fitting(file) {
  const fits = (size) => size + FORM_OVERHEAD <= limits.max_request_bytes;
  if (fits(file.size) || typeof createImageBitmap !== "function") return file;
  let bitmap;
  try {
    bitmap = await createImageBitmap(file);
  } catch {
    return file;
  }
  try {
    const opaque = file.type === "image/jpeg";
    const type = opaque ? "image/jpeg" : "image/png";
    const name = (file.name || "image").replace(/\.[^.]*$/, "") + (opaque ? ".jpg" : ".png");
    for (let side = LARGEST_SIDE; side >= SMALLEST_SIDE; side /= 2) {
      const scale = Math.min(1, side / Math.max(bitmap.width, bitmap.height));
      const canvas = el("canvas", { width: Math.round(bitmap.width * scale), height: Math.round(bitmap.height * scale) });
      canvas.getContext("2d").drawImage(bitmap, 0, 0, canvas.width, canvas.height);
      const blob = await new Promise((resolve) => canvas.toBlob(resolve, type, 0.92));
      if (blob && fits(blob.size)) {
        const smaller = new File([blob], name, { type });
        smaller.original = file;
        return smaller;
      }
    }
    return file;
  } finally {
    bitmap.close(); // a phone photo's pixels are tens of MB: one at a time, let go at once
  }
}

// The files in groups that each fit one request: at most max_images, and within max_request_bytes.
function batches(files) {
  const groups = [];
  let group = [], bytes = 0;
  for (const file of files) {
    const size = file.size + FORM_OVERHEAD;
    if (group.length && (group.length >= limits.max_images || bytes + size > limits.max_request_bytes)) {
      groups.push(group);
      group = [];
      bytes = 0;
    }
    group.push(file);
    bytes += size;
  }
  if (group.length) groups.push(group);
  return groups;
}

function predict(files, done = () => {}) {
  const run = queue.then(() => send(files));
  queue = run.catch(() => {}); // a failed upload does not stop the ones asked after it
  return run.finally(done);
}

// The server's answer for one group of files: an item per file, a prediction or {error}. A group whose every image
// fails is answered by the first one's error alone, so such a group of several is sent again file by file.
async function predictGroup(group, mode) {
  const form = new FormData();
  for (const file of group) form.append("image", file, file.name || "image.png");
  const options = { method: "POST", body: form };
  if (typeof AbortSignal.timeout === "function") options.signal = AbortSignal.timeout(1000 * (limits.request_timeout_s + 15));
  try {
    const body = await request(`/v1/predict?return_input=true&top_k=3&preprocess=${encodeURIComponent(mode)}`, options);
    return body.predictions;
  } catch (error) {
    // An image the server cannot use, or a file too large to send, is that file's failure: the others still go.
    // Any other refusal (a proxy's, a bad request) is the upload's.
    const its = IMAGE_ERRORS.includes(error.code) || (group.length === 1 && error.code === "request_too_large");
    if (!its) throw error;
    if (group.length === 1) return [{ error: { message: error.message } }];
    const items = [];
    for (const file of group) items.push(...await predictGroup([file], mode));
    return items;
  }
}

async function send(files) {
  if (!files.length) return;
  const mode = $("mode").value;
  setStatus(`Sending ${plural(files.length, "image")}…`);
  const names = [];
  let failed = 0, sent = 0, ready = [];
  // This upload's results go above the earlier ones, in the order its files were chosen: each before a marker.
  const marker = document.createComment("upload");
  $("results").prepend(marker);
  try {
    for (const file of files) ready.push(await fitting(file)); // one at a time: each decoded image is let go
    for (const group of batches(ready)) {
      const items = await predictGroup(group, mode);
      items.forEach((item, i) => {
        const file = group[i].original || group[i];
        marker.before(item.error ? failureItem(item, file) : resultItem(item, file));
      });
      for (const item of items) if (item.error) failed++; else names.push(item.name);
      sent += group.length;
      if (sent < ready.length) setStatus(`Sent ${sent} of ${ready.length} images…`);
    }
  } catch (error) {
    const partly = sent ? ` (${sent} of ${files.length} were answered)` : "";
    setStatus(`Could not predict: ${error.message}${partly}`, true);
    return;
  } finally {
    marker.remove();
  }
  const shrunk = ready.filter((f) => f.original).length;
  let message = `Predicted ${plural(names.length, "image")}`;
  if (names.length === 1) message += `: ${names[0]}`;
  else if (names.length > 1 && names.length <= 5) message += `: ${names.join(", ")}`;
  message += failed ? `; ${failed} could not be used (see below).` : ".";
  if (shrunk) message += ` ${plural(shrunk, "large image")} scaled down to be sent.`;
  setStatus(message, Boolean(failed));
}

// The user's own file as a picture, or a box that says it cannot be shown (a file that is not an image).
function yours(file) {
  const label = `your image ${file.name || ""}`.trim();
  const original = el("img", { class: "yours", alt: label });
  original.addEventListener("error", () => {
    URL.revokeObjectURL(original.src);
    original.replaceWith(el("div", { class: "yours unshown", role: "img", "aria-label": `${label} (cannot be shown)`,
                                     text: "cannot be shown" }));
  });
  original.src = URL.createObjectURL(file);
  return el("figure", {}, original, el("figcaption", { text: "yours" }));
}

function resultItem(p, file) {
  const seen = el("img", { class: "seen", alt: "the 28x28 image the model saw", src: `data:image/png;base64,${p.input_png}` });
  const views = el("div", { class: "views" }, yours(file),
    el("figure", {}, seen, el("figcaption", { text: `model input (${p.preprocess})` })));
  const badge = el("span", { class: p.confident ? "badge" : "badge unsure",
                              text: p.confident ? "confident" : "not confident" });
  if (!p.confident) badge.title = "Low probability: the image may show none of the classes, or not be prepared like the training images";
  const verdict = el("p", { class: "verdict" }, el("span", { class: "name", text: p.name }), ` ${pct(p.probability)}`, badge);
  const bars = el("ul", { class: "bars", "aria-label": "class probabilities" });
  const order = p.probabilities.map((q, i) => [q, i]).sort((a, b) => b[0] - a[0]);
  for (const [q, i] of order) {
    const bar = el("div", { class: i === p.index ? "bar top" : "bar" });
    bar.style.width = pct(q);
    bars.append(el("li", {}, el("span", { text: classes[i] || String(i) }),
                   el("div", { class: "bar-track", "aria-hidden": "true" }, bar),
                   el("span", { class: "pct", text: pct(q) })));
  }
  return el("li", { class: "result" }, views, el("div", {}, verdict, bars));
}

function failureItem(item, file) {
  const views = el("div", { class: "views" }, yours(file));
  const why = el("p", { class: "verdict" }, el("span", { class: "name", text: "Not predicted" }));
  return el("li", { class: "result" }, views, el("div", {}, why, el("p", { class: "error", text: item.error.message })));
}

function pngFile(base64, name) {
  const bytes = Uint8Array.from(atob(base64), (c) => c.charCodeAt(0));
  return new File([bytes], name, { type: "image/png" });
}

async function loadGallery() {
  const gallery = $("gallery");
  try {
    const { items } = await request("/v1/gallery");
    if (!items.length) {
      gallery.append(el("p", { class: "hint", text: "No test set on this machine: the gallery is empty." }));
      return;
    }
    for (const item of items) {
      const button = el("button", { type: "button", "aria-label": `Try test image ${item.index}: ${item.name}` },
        el("img", { alt: "", src: `data:image/png;base64,${item.png}` }), item.name);
      button.addEventListener("click", () => {
        if (button.getAttribute("aria-busy") === "true") return; // a second click while its answer is on the way
        button.setAttribute("aria-busy", "true");
        predict([pngFile(item.png, `test-${item.index}.png`)], () => button.removeAttribute("aria-busy"));
      });
      gallery.append(button);
    }
  } catch (error) {
    gallery.append(el("p", { class: "hint", text: `Gallery unavailable: ${error.message}` }));
  }
}

// The relative luminance of an sRGB colour given as [r, g, b] in 0..255 (WCAG's formula).
function luminance(rgb) {
  const [r, g, b] = rgb.map((v) => {
    const c = v / 255;
    return c <= 0.03928 ? c / 12.92 : ((c + 0.055) / 1.055) ** 2.4;
  });
  return 0.2126 * r + 0.7152 * g + 0.0722 * b;
}

// A cell's text colour: white or near-black, whichever contrasts more with the cell's shade over white.
function textOn(rgb, alpha) {
  const shade = luminance(rgb.map((v) => alpha * v + (1 - alpha) * 255));
  const dark = luminance([29, 29, 31]);
  return (1.05) / (shade + 0.05) > (shade + 0.05) / (dark + 0.05) ? "#fff" : "#1d1d1f";
}

function showCard(info, card) {
  const facts = [
    ["Recipe", `${info.recipe || "?"}${info.description ? ": " + info.description : ""}`],
    ...(info.changes && info.changes.length ? [["Changed from the recipe", info.changes.join("; ")]] : []),
    ...(info.train_images ? [["Training images", info.train_images.toLocaleString("en")]] : []),
    ["Architecture", info.architecture],
    ["Test accuracy", info.test_accuracy == null ? "not recorded" : `${pct(info.test_accuracy)} (recorded at training)`],
    ["Dataset", info.dataset || "?"],
    ["Classes", info.classes.join(", ")],
    ["Confidence threshold", pct(info.confidence_threshold)],
    ["Backend", info.backend],
    ["Versions", `trained with fmnist ${info.trained_with}, served by ${info.version}`],
  ];
  if (card.accuracy != null && card.accuracy !== info.test_accuracy) facts.splice(3, 0, ["Measured here", `${pct(card.accuracy)} (${card.source})`]);
  const dl = $("card");
  for (const [term, value] of facts) dl.append(el("dt", { text: term }), el("dd", { text: value }));
  if (!card.confusion_matrix) return;
  const m = card.confusion_matrix;
  const max = Math.max(...m.flat());
  // The caption stands above the scrolling box, so that a narrow screen shows it whole.
  $("confusion-caption").textContent = `Confusion matrix (rows: true class, columns: predicted; ${card.source})`;
  const table = el("table", { "aria-labelledby": "confusion-caption" });
  const head = el("tr", {}, el("th", { text: "" }));
  info.classes.forEach((name) => head.append(el("th", { scope: "col", text: name })));
  table.append(head);
  const right = [26, 115, 232], wrong = [179, 38, 30];
  m.forEach((row, i) => {
    const tr = el("tr", {}, el("th", { scope: "row", text: info.classes[i] }));
    row.forEach((count, j) => {
      const td = el("td", { text: String(count) });
      const alpha = max ? Math.sqrt(count / max) : 0;
      const rgb = i === j ? right : wrong;
      td.style.background = `rgba(${rgb.join(",")},${alpha})`;
      td.style.color = textOn(rgb, alpha);
      tr.append(td);
    });
    table.append(tr);
  });
  $("confusion").append(table);
}

async function loadModel() {
  try {
    const [info, card] = await Promise.all([request("/v1/model"), request("/v1/card")]);
    classes = info.classes;
    if (info.limits) limits = { ...limits, ...info.limits };
    const accuracy = info.test_accuracy == null ? "" : `, ${pct(info.test_accuracy)} on the test set`;
    $("summary").textContent = `${info.recipe || info.architecture} (${info.architecture})${accuracy}; ${info.classes.length} classes; ${info.backend} backend.`;
    showCard(info, card);
  } catch (error) {
    $("summary").textContent = `The model is not available: ${error.message}`;
  }
}

// Dropped or pasted files: the images are predicted; the rest are named in the status.
function takeFiles(list) {
  const given = [...list];
  const images = given.filter((f) => f.type.startsWith("image/") || !f.type);
  const others = given.filter((f) => !images.includes(f));
  if (given.length && !images.length) {
    setStatus(`${given.length === 1 ? "That file is" : "Those files are"} not an image; use PNG, JPEG, WebP, BMP, GIF or TIFF files.`, true);
    return;
  }
  predict(images).then(() => {
    if (others.length) {
      const status = $("status");
      status.textContent += ` Skipped ${plural(others.length, "file")} that ${others.length === 1 ? "is" : "are"} not an image: ${others.map((f) => f.name).join(", ")}.`;
    }
  });
}

function wire() {
  const drop = $("drop");
  drop.addEventListener("click", () => $("files").click());
  drop.addEventListener("keydown", (event) => {
    if (event.key === "Enter" || event.key === " ") { event.preventDefault(); $("files").click(); }
  });
  // Files dropped anywhere on the page are taken (the browser would otherwise open them in place of the page);
  // the drop zone is lit while files are over it, its own text included.
  document.addEventListener("dragover", (event) => {
    event.preventDefault();
    drop.classList.toggle("over", drop.contains(event.target));
  });
  document.addEventListener("dragleave", (event) => {
    if (!event.relatedTarget || !drop.contains(event.relatedTarget)) drop.classList.remove("over");
  });
  document.addEventListener("drop", (event) => {
    event.preventDefault();
    drop.classList.remove("over");
    takeFiles(event.dataTransfer.files);
  });
  document.addEventListener("paste", (event) => {
    const files = event.clipboardData ? [...event.clipboardData.files] : [];
    if (files.length) { event.preventDefault(); takeFiles(files); }
  });
  for (const id of ["files", "camera"]) {
    $(id).addEventListener("change", (event) => { predict([...event.target.files]); event.target.value = ""; });
  }
}

wire();
loadModel().then(loadGallery);
