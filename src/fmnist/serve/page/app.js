// The page's behaviour: send images to /v1/predict, show what the model saw and its probabilities, fill the
// gallery and the model card. Plain DOM code; nothing is fetched from anywhere but this service.
"use strict";

const $ = (id) => document.getElementById(id);
let classes = [];

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

function setStatus(message, isError = false) {
  const status = $("status");
  status.textContent = message;
  status.classList.toggle("error", isError);
}

async function getJSON(path) {
  const response = await fetch(path);
  const body = await response.json();
  if (!response.ok) throw new Error(body.error ? body.error.message : response.statusText);
  return body;
}

async function predict(files) {
  if (!files.length) return;
  const form = new FormData();
  for (const file of files) form.append("image", file, file.name || "image.png");
  const mode = $("mode").value;
  setStatus(`Sending ${files.length} image${files.length > 1 ? "s" : ""}…`);
  try {
    const response = await fetch(`/v1/predict?return_input=true&top_k=3&preprocess=${encodeURIComponent(mode)}`,
                                 { method: "POST", body: form });
    const body = await response.json();
    if (!response.ok) throw new Error(body.error ? body.error.message : response.statusText);
    // Each result goes on top: the last file first, so that this upload reads in the order it was chosen.
    for (let i = body.predictions.length - 1; i >= 0; i--) {
      const item = body.predictions[i];
      if (item.error) showFailure(item, files[i]); else showResult(item, files[i]);
    }
    const done = body.predictions.length - (body.failed || 0);
    setStatus(`Predicted ${done} image${done === 1 ? "" : "s"}` +
              (body.failed ? `; ${body.failed} could not be used (see below).` : "."), Boolean(body.failed));
  } catch (error) {
    setStatus(`Could not predict: ${error.message}`, true);
  }
}

function showResult(p, file) {
  const original = el("img", { alt: `your image ${file.name || ""}` });
  original.src = URL.createObjectURL(file);
  const seen = el("img", { class: "seen", alt: "the 28x28 image the model saw", src: `data:image/png;base64,${p.input_png}` });
  const views = el("div", { class: "views" },
    el("figure", {}, original, el("figcaption", { text: "yours" })),
    el("figure", {}, seen, el("figcaption", { text: `model input (${p.preprocess})` })));
  const badge = el("span", { class: p.confident ? "badge" : "badge unsure",
                              text: p.confident ? "confident" : "not confident" });
  if (!p.confident) badge.title = "Low probability: the image may not be clothing, or not prepared like the dataset";
  const verdict = el("p", { class: "verdict" }, el("span", { class: "name", text: p.name }), ` ${pct(p.probability)}`, badge);
  const bars = el("div", { class: "bars", role: "list", "aria-label": "class probabilities" });
  const order = p.probabilities.map((q, i) => [q, i]).sort((a, b) => b[0] - a[0]);
  for (const [q, i] of order) {
    const bar = el("div", { class: i === p.index ? "bar top" : "bar" });
    bar.style.width = pct(q);
    bars.append(el("span", { role: "listitem", text: classes[i] || String(i) }),
                el("div", { class: "bar-track", "aria-hidden": "true" }, bar),
                el("span", { class: "pct", text: pct(q) }));
  }
  const item = el("li", { class: "result" }, views, el("div", {}, verdict, bars));
  $("results").prepend(item);
}

function showFailure(item, file) {
  const original = el("img", { alt: `your image ${file.name || ""}` });
  original.src = URL.createObjectURL(file);
  const views = el("div", { class: "views" }, el("figure", {}, original, el("figcaption", { text: "yours" })));
  const why = el("p", { class: "verdict" }, el("span", { class: "name", text: "Not predicted" }));
  $("results").prepend(el("li", { class: "result" }, views,
                          el("div", {}, why, el("p", { class: "error", text: item.error.message }))));
}

function pngFile(base64, name) {
  const bytes = Uint8Array.from(atob(base64), (c) => c.charCodeAt(0));
  return new File([bytes], name, { type: "image/png" });
}

async function loadGallery() {
  const gallery = $("gallery");
  try {
    const { items } = await getJSON("/v1/gallery");
    if (!items.length) {
      gallery.append(el("p", { class: "hint", text: "No test set on this machine: the gallery is empty." }));
      return;
    }
    for (const item of items) {
      const button = el("button", { type: "button", "aria-label": `Try test image ${item.index}: ${item.name}` },
        el("img", { alt: "", src: `data:image/png;base64,${item.png}` }), item.name);
      button.addEventListener("click", () => predict([pngFile(item.png, `test-${item.index}.png`)]));
      gallery.append(button);
    }
  } catch (error) {
    gallery.append(el("p", { class: "hint", text: `Gallery unavailable: ${error.message}` }));
  }
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
  const table = el("table", {}, el("caption", { text: `Confusion matrix (rows: true class, columns: predicted; ${card.source})` }));
  const head = el("tr", {}, el("th", { text: "" }));
  info.classes.forEach((name) => head.append(el("th", { scope: "col", text: name })));
  table.append(head);
  m.forEach((row, i) => {
    const tr = el("tr", {}, el("th", { scope: "row", text: info.classes[i] }));
    row.forEach((count, j) => {
      const td = el("td", { text: String(count) });
      const alpha = max ? Math.sqrt(count / max) : 0;
      td.style.background = i === j ? `rgba(26,115,232,${alpha})` : `rgba(179,38,30,${alpha})`;
      if (alpha > 0.55) td.style.color = "#fff";
      tr.append(td);
    });
    table.append(tr);
  });
  $("confusion").append(table);
}

async function loadModel() {
  try {
    const [info, card] = await Promise.all([getJSON("/v1/model"), getJSON("/v1/card")]);
    classes = info.classes;
    const accuracy = info.test_accuracy == null ? "" : `, ${pct(info.test_accuracy)} on the test set`;
    $("summary").textContent = `${info.recipe || info.architecture} (${info.architecture})${accuracy}; ${info.classes.length} classes; ${info.backend} backend.`;
    showCard(info, card);
  } catch (error) {
    $("summary").textContent = `The model is not available: ${error.message}`;
  }
}

function wire() {
  const drop = $("drop");
  drop.addEventListener("click", () => $("files").click());
  drop.addEventListener("keydown", (event) => {
    if (event.key === "Enter" || event.key === " ") { event.preventDefault(); $("files").click(); }
  });
  drop.addEventListener("dragover", (event) => { event.preventDefault(); drop.classList.add("over"); });
  drop.addEventListener("dragleave", () => drop.classList.remove("over"));
  drop.addEventListener("drop", (event) => {
    event.preventDefault();
    drop.classList.remove("over");
    const dropped = [...event.dataTransfer.files];
    const images = dropped.filter((f) => f.type.startsWith("image/") || !f.type);
    if (dropped.length && !images.length) {
      setStatus(`${dropped.length === 1 ? "That file is" : "Those files are"} not an image; drop PNG, JPEG, WebP, BMP, GIF or TIFF files.`, true);
      return;
    }
    predict(images);
  });
  for (const id of ["files", "camera"]) {
    $(id).addEventListener("change", (event) => { predict([...event.target.files]); event.target.value = ""; });
  }
}

wire();
loadModel().then(loadGallery);
