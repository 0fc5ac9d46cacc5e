// Runs static/annotator/label.js against a minimal fake page and prints what it sent.
// Usage: node label_harness.js PATH/TO/label.js
"use strict";
const fs = require("fs");
const vm = require("vm");

function element(props) {
  const listeners = {};
  return Object.assign({
    dataset: {}, classList: {toggle() {}}, textContent: "", value: "", complete: true,
    addEventListener(type, fn) { (listeners[type] = listeners[type] || []).push(fn); },
    fire(type, event) { (listeners[type] || []).forEach((fn) => fn(event)); },
    closest() { return null; },
  }, props);
}

const imageInput = {value: "11"}, shownInput = {value: "token-11"};
const buttons = [["1", "negative"], ["2", "neutral"], ["3", "positive"]].map(
  ([key, value]) => ({dataset: {key}, value}));
const voteForm = element({elements: {image: imageInput, shown: shownInput},
                          querySelectorAll: (sel) => (sel === "button[data-key]" ? buttons : [])});
const undoForm = element({});
const img = element({src: "/images/11/"});
const bar = element({}), count = element({}), status = element({});
const skip = element({href: "/label/t/?skip=11"});
const csrf = {value: "csrf-123"};
const root = element({
  dataset: {labelUrl: "/label/t/", voteUrl: "/label/t/vote/", undoUrl: "/label/t/undo/", preload: "/images/12/"},
  querySelector(sel) {
    return {"form.vote": voteForm, "form.undo": undoForm, "img.face": img, "progress": bar, ".count": count,
            ".status": status, "a.skip": skip, "input[name=csrfmiddlewaretoken]": csrf}[sel];
  },
});
const docListeners = {};
const sent = [], preloaded = [];
let nextId = 12, clock = 1000;

function state(extra) {
  const id = nextId++;
  return Object.assign({current: {id, src: `/images/${id}/`, shown: `token-${id}`},
                        preload: {id: id + 1, src: `/images/${id + 1}/`}, progress: {done: 1, total: 9}}, extra);
}

const sandbox = {
  document: {
    getElementById: (id) => (id === "labeller" ? root : null),
    addEventListener: (type, fn) => { docListeners[type] = fn; },
  },
  window: {location: {assign(url) { sent.push({navigate: url}); }}},
  history: {replaceState() {}},
  performance: {now: () => clock},
  Image: function () { return {set src(v) { preloaded.push(v); }}; },
  FormData: class { constructor() { this.fields = {}; } append(k, v) { this.fields[k] = v; } },
  fetch: (url, options) => {
    sent.push({url, method: options.method, headers: options.headers, body: options.body ? options.body.fields : null});
    const body = url.endsWith("/vote/") ? state({vote: {label: options.body.fields.label}})
      : url.endsWith("/undo/") ? state({undone: {image: 11, label: "neutral"}}) : state({});
    return Promise.resolve({ok: true, status: 200, json: () => Promise.resolve(body)});
  },
};
sandbox.window.fetch = sandbox.fetch;
vm.createContext(sandbox);
vm.runInContext(fs.readFileSync(process.argv[2], "utf8"), sandbox);

function press(key, extra) {
  const event = Object.assign({key, target: null, preventDefault() {}}, extra);
  docListeners.keydown(event);
}
const tick = () => new Promise((resolve) => setTimeout(resolve, 0));

(async () => {
  clock = 1800; press("1"); press("2"); await tick();       // the second key arrives while busy
  clock = 2500; press("3"); await tick();
  press("2", {ctrlKey: true}); press("1", {target: {closest: () => ({})}}); await tick();
  press("u"); await tick();
  press("s"); await tick();
  press("x"); await tick();
  console.log(JSON.stringify({sent, preloaded, img: img.src, image: imageInput.value, shown: shownInput.value}));
})();
