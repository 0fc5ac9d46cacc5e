// Keyboard labelling without page reloads. The page works without this file: the buttons,
// the undo form and the skip link are plain HTML that post or navigate.
(function () {
  "use strict";
  var root = document.getElementById("labeller");
  if (!root || !window.fetch) return;

  var voteForm = root.querySelector("form.vote");
  // The test set's answers by key, as the page's buttons name them (1..n, 0 unsure, x not a face).
  var KEYS = {};
  if (voteForm) {
    Array.prototype.forEach.call(voteForm.querySelectorAll("button[data-key]"), function (button) {
      KEYS[button.dataset.key] = button.value;
    });
  }
  var undoForm = root.querySelector("form.undo");
  var img = root.querySelector("img.face");
  var bar = root.querySelector("progress");
  var count = root.querySelector(".count");
  var status = root.querySelector(".status");
  var skipLink = root.querySelector("a.skip");
  var csrf = root.querySelector("input[name=csrfmiddlewaretoken]").value;
  var busy = false;
  var shownAt = performance.now();
  var current = voteForm ? {id: voteForm.elements.image.value, shown: voteForm.elements.shown.value} : null;

  function preload(src) {
    if (src) { new Image().src = src; }
  }

  function say(text, isError) {
    status.textContent = text;
    status.classList.toggle("error", !!isError);
  }

  function startClock() { shownAt = performance.now(); }
  if (img) {
    img.addEventListener("load", startClock);
    if (img.complete) startClock();
  }
  preload(root.dataset.preload);

  function show(state) {
    if (state.next_error) return;  // the vote is stored; the next image waits for a reload
    bar.value = state.progress.done;
    bar.max = state.progress.total;
    count.textContent = state.progress_text || (state.progress.done + " / " + state.progress.total);
    if (!state.current || !img || !voteForm) {
      // Into or out of the "all done" state: let the server render that page.
      window.location.assign(root.dataset.labelUrl + (state.current ? "?image=" + state.current.id : ""));
      return;
    }
    current = state.current;
    voteForm.elements.image.value = current.id;
    voteForm.elements.shown.value = current.shown;
    if (skipLink) skipLink.href = root.dataset.labelUrl + "?skip=" + current.id;
    img.src = current.src;
    if (img.complete) startClock();
    history.replaceState(null, "", root.dataset.labelUrl + "?image=" + current.id);
    preload(state.preload && state.preload.src);
  }

  function request(url, options) {
    busy = true;
    options.headers = {"Accept": "application/json", "X-CSRFToken": csrf};
    options.credentials = "same-origin";
    return fetch(url, options).then(function (response) {
      return response.json().catch(function () { return {}; }).then(function (body) {
        if (!response.ok) throw new Error(body.error || ("the server answered " + response.status));
        return body;
      });
    }).finally(function () { busy = false; });
  }

  function vote(label) {
    if (busy || !current) return;
    var body = new FormData();
    body.append("image", current.id);
    body.append("label", label);
    body.append("shown", current.shown);
    body.append("time_spent_ms", String(Math.round(performance.now() - shownAt)));
    request(root.dataset.voteUrl, {method: "POST", body: body}).then(function (state) {
      var text = "Saved: " + state.vote.label + ".";
      if (state.feedback) text += " " + state.feedback;
      if (state.next_error) text += " " + state.next_error;
      say(text, !!state.next_error);
      show(state);
    }).catch(function (error) { say("Not saved: " + error.message, true); });
  }

  function undo() {
    if (busy) return;
    request(root.dataset.undoUrl, {method: "POST", body: new FormData()}).then(function (state) {
      say(state.undone ? "Undone: your vote " + state.undone.label + "." : "Nothing to undo.");
      if (state.undone) show(state);
    }).catch(function (error) { say("Undo failed: " + error.message, true); });
  }

  function skip() {
    if (busy || !current) return;
    request(root.dataset.labelUrl + "?skip=" + current.id, {method: "GET"}).then(function (state) {
      say("Skipped.");
      show(state);
    }).catch(function (error) { say("Skip failed: " + error.message, true); });
  }

  if (voteForm) {
    voteForm.addEventListener("submit", function (event) {
      if (!event.submitter) return;  // very old browser: let the form post
      event.preventDefault();
      vote(event.submitter.value);
    });
  }
  undoForm.addEventListener("submit", function (event) { event.preventDefault(); undo(); });
  if (skipLink) skipLink.addEventListener("click", function (event) { event.preventDefault(); skip(); });

  document.addEventListener("keydown", function (event) {
    if (event.ctrlKey || event.metaKey || event.altKey || event.repeat) return;
    var target = event.target;
    if (target && target.closest && target.closest("input, textarea, select")) return;
    var key = event.key.toLowerCase();
    if (KEYS.hasOwnProperty(key)) { event.preventDefault(); vote(KEYS[key]); }
    else if (key === "u") { event.preventDefault(); undo(); }
    else if (key === "s") { event.preventDefault(); skip(); }
  });
})();
