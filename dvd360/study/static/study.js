/* The rater's side of a dvd360 study packet: videos, answers, progress, export.
 *
 * The packet's description (ids, sets, labels, criteria; never which method is which) is the
 * JSON in <script id="dvd360-packet">. Answers live in localStorage under
 * "dvd360-study:<packet_id>" and are written on every change. All pages of a packet sit in
 * one folder: browsers that separate the storage of pages opened from disk do so by folder
 * (Firefox) or not at all (Chromium), so every page of the packet sees the same answers. "Export answers" downloads
 *   {schema, packet_id, rater_id, mapping_checksum, started_at, updated_at, exported_at,
 *    user_agent, answers: {set_id: {criterion: {label, answered_at}}}, answers_sha256, answers_mac}
 * where answers_sha256 is the SHA-256 of the canonical JSON of `answers` (keys sorted, no
 * spaces), the same form dvd360.study.packets.canonical_json writes, and answers_mac is the
 * HMAC-SHA256, keyed by the packet's answer_token (in these pages only, never exported), of the
 * canonical JSON of {packet_id, rater_id, mapping_checksum, answers} (dvd360.study.answers.answers_mac).
 * Videos come from media/<name>.js files that hold base64 mp4 bytes: played from Blob URLs,
 * they stay same-origin when the page is opened from disk, which WebGL needs to use them as
 * textures (a video file beside the page counts as cross-origin there and taints WebGL).
 */
(function () {
  "use strict";

  var packet = JSON.parse(document.getElementById("dvd360-packet").textContent);
  var storageKey = "dvd360-study:" + packet.packet_id;
  var page = document.body.getAttribute("data-page");
  var setId = document.body.getAttribute("data-set-id");
  var storageOk = true;

  function now() { return new Date().toISOString(); }

  function emptyState() {
    return { packet_id: packet.packet_id, rater_id: packet.rater_id, started_at: now(),
             updated_at: null, answers: {} };
  }

  function loadState() {
    try {
      var stored = JSON.parse(window.localStorage.getItem(storageKey));
      if (stored && stored.packet_id === packet.packet_id && stored.answers) { return stored; }
    } catch (error) {
      storageOk = false;
    }
    return emptyState();
  }

  var state = loadState();

  function saveState() {
    state.updated_at = now();
    try {
      window.localStorage.setItem(storageKey, JSON.stringify(state));
      storageOk = true;
    } catch (error) {
      storageOk = false;
    }
    showSaveStatus();
  }

  function showSaveStatus() {
    var element = document.getElementById("save-status");
    if (!element) { return; }
    if (!storageOk) {
      element.textContent = "This browser refuses to store answers: export them before closing the page.";
      element.className = "save-status warning";
    } else if (Object.keys(state.answers).length === 0) {
      element.textContent = "Your answers are saved in this browser as you go.";
      element.className = "save-status";
    } else {
      element.textContent = "Answers saved in this browser at " + new Date(state.updated_at).toLocaleTimeString() + ".";
      element.className = "save-status";
    }
  }

  function answeredCount(id) {
    var answers = state.answers[id] || {};
    return packet.criteria.filter(function (c) { return answers[c] && answers[c].label; }).length;
  }

  function totals() {
    var done = 0;
    packet.sets.forEach(function (s) { done += answeredCount(s.id); });
    return { done: done, total: packet.sets.length * packet.criteria.length };
  }

  function showProgress() {
    var t = totals();
    var bar = document.getElementById("progress-bar");
    var text = document.getElementById("progress-text");
    if (bar) { bar.max = t.total; bar.value = t.done; }
    if (text) { text.textContent = t.done + " of " + t.total + " answers given"; }
    document.querySelectorAll("[data-set-status]").forEach(function (element) {
      var id = element.getAttribute("data-set-status");
      var n = answeredCount(id);
      element.textContent = n === packet.criteria.length ? "complete" :
        (n === 0 ? "not started" : n + " of " + packet.criteria.length + " answered");
      element.className = n === packet.criteria.length ? "status complete" : "status incomplete";
    });
    var finish = document.getElementById("finish-summary");
    if (finish) {
      finish.textContent = t.done === t.total ? "All questions are answered. Export your answers and send the file back." :
        (t.total - t.done) + " answers are still missing: open the sets marked below to finish them, then export.";
    }
  }

  function onAnswer(event) {
    var input = event.target;
    if (!input.matches("input[type=radio]")) { return; }
    state.answers[setId] = state.answers[setId] || {};
    state.answers[setId][input.name] = { label: input.value, answered_at: now() };
    markRow(input.closest("tr"), true);
    saveState();
    showProgress();
  }

  function markRow(row, answered) {
    if (row) { row.classList.toggle("answered", answered); }
  }

  function restoreAnswers() {
    var answers = state.answers[setId] || {};
    Object.keys(answers).forEach(function (criterion) {
      var input = document.querySelector("input[name='" + criterion + "'][value='" + answers[criterion].label + "']");
      if (input) { input.checked = true; markRow(input.closest("tr"), true); }
    });
  }

  /* Canonical JSON: object keys sorted, no whitespace (matches Python's
   * json.dumps(sort_keys=True, separators=(",", ":"), ensure_ascii=False) for these values). */
  function canonical(value) {
    if (value === null || typeof value !== "object") { return JSON.stringify(value); }
    if (Array.isArray(value)) { return "[" + value.map(canonical).join(",") + "]"; }
    return "{" + Object.keys(value).sort().map(function (key) {
      return JSON.stringify(key) + ":" + canonical(value[key]);
    }).join(",") + "}";
  }

  function hex(buffer) {
    return Array.prototype.map.call(new Uint8Array(buffer), function (b) {
      return ("0" + b.toString(16)).slice(-2);
    }).join("");
  }

  function sha256Hex(text) {
    return window.crypto.subtle.digest("SHA-256", new TextEncoder().encode(text)).then(hex);
  }

  function hmacSha256Hex(keyHex, text) {
    var keyBytes = new Uint8Array(keyHex.match(/../g).map(function (pair) { return parseInt(pair, 16); }));
    return window.crypto.subtle.importKey("raw", keyBytes, { name: "HMAC", hash: "SHA-256" }, false, ["sign"])
      .then(function (key) { return window.crypto.subtle.sign("HMAC", key, new TextEncoder().encode(text)); })
      .then(hex);
  }

  function exportAnswers() {
    if (!(window.crypto && window.crypto.subtle)) {
      window.alert("This browser cannot compute the checksum the answer file needs. Please use a current Chrome, Edge, Firefox or Safari.");
      return Promise.resolve();
    }
    var signed = canonical({ packet_id: packet.packet_id, rater_id: packet.rater_id,
                             mapping_checksum: packet.mapping_checksum, answers: state.answers });
    return Promise.all([sha256Hex(canonical(state.answers)), hmacSha256Hex(packet.answer_token, signed)])
    .then(function (results) {
      var digest = results[0];
      var document_ = {
        schema: packet.answers_schema, packet_id: packet.packet_id, rater_id: packet.rater_id,
        mapping_checksum: packet.mapping_checksum, started_at: state.started_at,
        updated_at: state.updated_at, exported_at: now(), user_agent: navigator.userAgent,
        answers: state.answers, answers_sha256: digest, answers_mac: results[1]
      };
      var blob = new Blob([JSON.stringify(document_, null, 2) + "\n"], { type: "application/json" });
      var link = document.createElement("a");
      link.href = URL.createObjectURL(blob);
      link.download = "dvd360-answers-" + packet.packet_id + ".json";
      document.body.appendChild(link);
      link.click();
      link.remove();
      var note = document.getElementById("export-note");
      if (note) {
        note.textContent = "Downloaded " + link.download + " (" + totals().done + " of " + totals().total +
          " answers). Send this file back to the study organiser.";
      }
    });
  }

  function loadVideos() {
    var media = window.DVD360Media || {};
    document.querySelectorAll("video[data-media]").forEach(function (video) {
      var encoded = media[video.getAttribute("data-media")];
      if (!encoded) { video.insertAdjacentText("afterend", "This video file is missing from the packet."); return; }
      var binary = window.atob(encoded);
      var bytes = new Uint8Array(binary.length);
      for (var i = 0; i < binary.length; i++) { bytes[i] = binary.charCodeAt(i); }
      video.src = URL.createObjectURL(new Blob([bytes], { type: "video/mp4" }));
      var playing = video.play();
      if (playing && playing.catch) { playing.catch(function () { /* autoplay refused: controls remain */ }); }
    });
  }

  function describeView(detail) {
    var yaw = Math.round(detail.yaw), pitch = Math.round(detail.pitch);
    var turn = yaw === 0 ? "straight ahead" : (Math.abs(yaw) >= 170 ? "behind you (the seam)" :
      Math.abs(yaw) + "° " + (yaw > 0 ? "right" : "left"));
    var tilt = pitch === 0 ? "" : ", " + Math.abs(pitch) + "° " + (pitch > 0 ? "up" : "down");
    return "Looking " + turn + tilt;
  }

  function startViewers() {
    if (!window.DVD360Viewer) { return; }
    var link = document.getElementById("link-views");
    var views = [], syncing = false;
    document.querySelectorAll("canvas[data-video]").forEach(function (canvas) {
      var video = document.getElementById(canvas.getAttribute("data-video"));
      var card = canvas.closest(".video-card");
      var heading = card.querySelector(".view-heading");
      var view;
      try {
        view = window.DVD360Viewer.attach(canvas, video);
      } catch (error) {
        canvas.insertAdjacentText("afterend", "The 360° view needs WebGL (" + error.message + "); use the flat video.");
        return;
      }
      views.push(view);
      canvas.addEventListener("viewchange", function (event) {
        heading.textContent = describeView(event.detail);
        if (link && link.checked && !syncing) {   // turn the other views the same way
          syncing = true;
          views.forEach(function (other) { if (other !== view) { other.setView(event.detail.yaw, event.detail.pitch); } });
          syncing = false;
        }
      });
      card.querySelectorAll("[data-view]").forEach(function (button) {
        button.addEventListener("click", function () {
          var direction = button.getAttribute("data-view").split(",");
          view.setView(Number(direction[0]), Number(direction[1]));
        });
      });
    });
  }

  document.querySelectorAll("[data-action=export]").forEach(function (button) {
    button.addEventListener("click", exportAnswers);
  });
  if (page === "set") {
    restoreAnswers();
    document.getElementById("questions").addEventListener("change", onAnswer);
    loadVideos();
    startViewers();
  }
  if (!state.updated_at) {
    saveState();   // records started_at on first opening
  }
  showSaveStatus();
  showProgress();
  window.DVD360Study = { state: function () { return state; }, exportAnswers: exportAnswers };
})();
