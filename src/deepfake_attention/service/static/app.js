// The analyst page: upload one image to /v1/analyze and show the verdict, maps and faces.
// No build step, no dependencies. The token (when the server needs one) stays in sessionStorage.
"use strict";

const $ = (id) => document.getElementById(id);
const TOKEN_KEY = "deepfake-attention-token";
const PLAIN_WORDS = {
  401: "This server needs an access token. Enter it in the box above and try again.",
  413: "The file is too large for this server.",
  415: "This kind of file cannot be analysed here.",
  422: "The image could not be read.",
  429: "The server is busy right now. Please try again in a moment.",
  503: "The server is still starting. Please try again in a moment.",
  504: "The analysis took too long.",
};
let photoUrl = null;

function authHeaders() {
  const token = sessionStorage.getItem(TOKEN_KEY);
  return token ? { Authorization: `Bearer ${token}` } : {};
}

function setStatus(text) { $("status").textContent = text; }

function showError(text) {
  const box = $("error");
  box.textContent = text;
  box.hidden = !text;
}

async function readDetail(response) {
  try {
    const body = await response.json();
    return typeof body.detail === "string" ? body.detail : "";
  } catch (_) {
    return "";
  }
}

async function explain(response) {
  const detail = await readDetail(response);
  if (response.status === 401) $("token-section").hidden = false;
  const words = PLAIN_WORDS[response.status] || `Something went wrong on the server (error ${response.status}).`;
  return detail && response.status !== 401 ? `${words} Details: ${detail}.` : words;
}

async function loadModel() {
  let response;
  try {
    response = await fetch("/v1/model", { headers: authHeaders() });
  } catch (_) {
    $("model-info").textContent = "The server could not be reached.";
    return;
  }
  if (!response.ok) {
    $("model-info").textContent = await explain(response);
    return;
  }
  $("token-section").hidden = true;
  const model = await response.json();
  $("untrained-banner").hidden = model.trained;
  $("model-info").textContent =
    `Model ${model.sha256.slice(0, 12)} · decision threshold ${model.threshold.toFixed(2)} · ` +
    `faces found by: ${model.preprocess.detector === "none" ? "whole image" : model.preprocess.detector}` +
    (model.trained ? "" : " · UNTRAINED");
}

function percent(value, total) { return `${(100 * value / total).toFixed(4)}%`; }

function layer(src, kind, alt) {
  const img = document.createElement("img");
  img.className = `layer ${kind}`;
  img.src = src;
  img.alt = alt;
  return img;
}

function placeOnPhoto(stage, det, size) {
  const box = det.crop_box || det.box;
  const [x0, y0, x1, y1] = box;
  const place = (el) => {
    el.style.left = percent(x0, size[0]);
    el.style.top = percent(y0, size[1]);
    el.style.width = percent(x1 - x0, size[0]);
    el.style.height = percent(y1 - y0, size[1]);
    stage.appendChild(el);
  };
  const n = det.face_index + 1;
  place(layer(det.attention_png, "attention", `Attention map over face ${n}`));
  if (det.gradcampp_png) place(layer(det.gradcampp_png, "gradcampp", `Grad-CAM++ map over face ${n}`));
  const outline = document.createElement("div");
  outline.className = "box";
  const [bx0, by0, bx1, by1] = det.box;
  outline.style.left = percent(bx0, size[0]);
  outline.style.top = percent(by0, size[1]);
  outline.style.width = percent(bx1 - bx0, size[0]);
  outline.style.height = percent(by1 - by0, size[1]);
  stage.appendChild(outline);
}

function faceItem(det, threshold) {
  const n = det.face_index + 1;
  const item = document.createElement("li");
  const thumb = document.createElement("div");
  thumb.className = "thumb";
  const crop = document.createElement("img");
  crop.src = det.crop_png;
  crop.alt = `Face ${n} as the model saw it`;
  thumb.append(crop, layer(det.attention_png, "attention", `Attention map of face ${n}`));
  if (det.gradcampp_png) thumb.appendChild(layer(det.gradcampp_png, "gradcampp", `Grad-CAM++ map of face ${n}`));
  const text = document.createElement("p");
  const label = document.createElement("span");
  label.className = `face-label ${det.label}`;
  label.textContent = det.label.toUpperCase();
  text.append(`Face ${n}: `, label,
    ` · P(fake) = ${det.prob_fake.toFixed(3)} (threshold ${threshold.toFixed(2)}) · box ${det.box.join(", ")}`);
  item.append(thumb, text);
  if (det.words) {
    const words = document.createElement("p");
    words.className = "words";
    words.textContent = det.words;
    item.appendChild(words);
  }
  return item;
}

function videoItem(det, threshold) {
  const n = det.face_index + 1;
  const item = document.createElement("li");
  for (const [key, name] of [["attention_png", "Attention map"], ["gradcampp_png", "Grad-CAM++ map"]]) {
    if (!det[key]) continue;
    const img = document.createElement("img");
    img.className = "map";
    img.src = det[key];
    img.alt = `${name} of face track ${n}`;
    item.appendChild(img);
  }
  const text = document.createElement("p");
  const label = document.createElement("span");
  label.className = `face-label ${det.label}`;
  label.textContent = det.label.toUpperCase();
  text.append(`Face track ${n}: `, label, ` · P(fake) = ${det.prob_fake.toFixed(3)} (threshold ${threshold.toFixed(2)})`);
  item.appendChild(text);
  return item;
}

function showResult(result, file) {
  const section = $("result");
  const verdict = $("verdict");
  const untrained = result.model_trained ? "" : "UNTRAINED MODEL (meaningless): ";
  $("untrained-banner").hidden = result.model_trained;
  verdict.className = "verdict";
  if (result.status === "ok") {
    if (result.model_trained) verdict.classList.add(result.label);  // no red/green for a meaningless score
    verdict.textContent = `${untrained}${result.label.toUpperCase()}, P(fake) = ${result.prob_fake.toFixed(3)}`;
    const what = result.kind === "video" ? ["video", "face track"] : ["image", "face"];
    $("verdict-detail").textContent =
      `Calibrated probability that the ${what[0]} is manipulated (its most suspicious ${what[1]}), against a decision ` +
      `threshold of ${result.threshold.toFixed(2)}. ${result.faces} ${what[1]}${result.faces === 1 ? "" : "s"} scored ` +
      `in ${result.seconds.toFixed(2)} s.`;
  } else {
    verdict.textContent = `${untrained}No verdict: ${result.error || result.status}`;
    $("verdict-detail").textContent = "No face was found, so nothing was scored. Try a file where a face is clearly visible.";
  }
  const stage = $("stage");
  stage.querySelectorAll(".layer, .box").forEach((el) => el.remove());
  if (photoUrl) URL.revokeObjectURL(photoUrl);
  const photo = $("photo");
  const video = result.kind === "video";
  $("stage-figure").hidden = video && !result.panel;
  $("stage-caption").textContent = video
    ? "The video's panel: each face track with its maps, as the command line renders it."
    : "Your image with the selected map over each face the model scored.";
  photo.alt = video ? "Panel of the video's face tracks and their maps" : "The uploaded image with the selected map drawn over each face";
  photo.onerror = video ? null : () => {
    $("stage-figure").hidden = true;
    setStatus("Your browser cannot display this image format; the faces below show what the model saw.");
  };
  photoUrl = video ? null : URL.createObjectURL(file);
  if (!video) photo.src = photoUrl;
  else if (result.panel) photo.src = result.panel;
  else photo.removeAttribute("src");
  const faces = $("faces");
  faces.replaceChildren();
  for (const det of result.detections) {
    if (video) {
      faces.appendChild(videoItem(det, result.threshold));
      continue;
    }
    if (result.image_size) placeOnPhoto(stage, det, result.image_size);
    faces.appendChild(faceItem(det, result.threshold));
  }
  if (!result.detections.length) {
    const none = document.createElement("li");
    none.textContent = "No face was found.";
    faces.appendChild(none);
  }
  section.hidden = false;
}

async function send(url, options) {
  try {
    return await fetch(url, { ...options, headers: authHeaders() });
  } catch (_) {
    setStatus("");
    showError("The server could not be reached. Check that it is still running and try again.");
    return null;
  }
}

function upload(file) {
  const form = new FormData();
  form.append("file", file, file.name);
  return form;
}

async function analyzeVideo(file) {
  // Videos run as background jobs: upload, then ask for the status every second.
  setStatus(`Uploading the video ${file.name}…`);
  const created = await send("/v1/jobs", { method: "POST", body: upload(file) });
  if (!created) return;
  if (!created.ok) {
    setStatus("");
    showError(await explain(created));
    return;
  }
  const job = await created.json();
  for (;;) {
    setStatus(`Video ${file.name}: ${job.status === "queued" ? "waiting its turn" : "being analysed"}…`);
    await new Promise((resolve) => setTimeout(resolve, 1000));
    const response = await send(job.status_url, {});
    if (!response) return;
    if (!response.ok) {
      setStatus("");
      showError(await explain(response));
      return;
    }
    const state = await response.json();
    job.status = state.status;
    if (state.status === "done") {
      showResult(state.result, file);
      setStatus(`Analysis of ${state.result.path} finished.`);
      return;
    }
    if (state.status === "failed") {
      setStatus("");
      showError(`The video could not be analysed. Details: ${state.error}`);
      return;
    }
  }
}

async function analyze(file) {
  if (!file) return;
  showError("");
  if (file.type.startsWith("video/")) return analyzeVideo(file);  // a hint only: the server reads the bytes
  setStatus(`Analysing ${file.name}…`);
  const response = await send("/v1/analyze", { method: "POST", body: upload(file) });
  if (!response) return;
  if (!response.ok) {
    const detail = response.status === 415 ? await response.clone().json().catch(() => ({})) : {};
    if (typeof detail.detail === "string" && detail.detail.includes("/v1/jobs")) return analyzeVideo(file);
    setStatus("");
    showError(await explain(response));
    return;
  }
  const result = await response.json();
  showResult(result, file);
  setStatus(`Analysis of ${result.path} finished.`);
}

function setupControls() {
  for (const radio of document.querySelectorAll('input[name="map"]')) {
    radio.addEventListener("change", () => { $("result").dataset.map = radio.value; });
  }
  const slider = $("opacity");
  const update = () => {
    document.documentElement.style.setProperty("--map-opacity", String(slider.value / 100));
    $("opacity-value").textContent = `${slider.value}%`;
  };
  slider.addEventListener("input", update);
  update();
}

function setupUpload() {
  const input = $("file-input");
  input.addEventListener("change", () => { analyze(input.files[0]); input.value = ""; });
  const zone = $("drop-zone");
  zone.addEventListener("dragover", (event) => { event.preventDefault(); zone.classList.add("dragging"); });
  zone.addEventListener("dragleave", () => zone.classList.remove("dragging"));
  zone.addEventListener("drop", (event) => {
    event.preventDefault();
    zone.classList.remove("dragging");
    analyze(event.dataTransfer.files[0]);
  });
  $("token-form").addEventListener("submit", (event) => {
    event.preventDefault();
    sessionStorage.setItem(TOKEN_KEY, $("token").value.trim());
    $("token").value = "";
    loadModel();
  });
}

document.addEventListener("DOMContentLoaded", () => {
  setupControls();
  setupUpload();
  loadModel();
});
