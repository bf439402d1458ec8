/* The results page's gallery: plays the embedded videos and drives their 360 views.
 *
 * Each video's mp4 bytes sit base64-encoded in <script type="application/octet-stream"
 * id="media-ID">; they play from a Blob URL (one per video, shared by every <video> showing it),
 * which stays same-origin when the page is opened from disk, so WebGL may use the frames
 * (a file beside the page would count as cross-origin and taint the viewer). Videos play
 * while on screen and pause off it. Views of one prompt set turn together while its
 * "turn all views together" box is ticked. The viewer itself is window.DVD360Viewer.
 */
(function () {
  "use strict";

  var urls = {};
  function mediaUrl(id) {
    if (!(id in urls)) {
      var holder = document.getElementById("media-" + id);
      if (!holder) { urls[id] = null; return null; }
      var binary = window.atob(holder.textContent.trim());
      var bytes = new Uint8Array(binary.length);
      for (var i = 0; i < binary.length; i++) { bytes[i] = binary.charCodeAt(i); }
      urls[id] = URL.createObjectURL(new Blob([bytes], { type: "video/mp4" }));
    }
    return urls[id];
  }

  function play(video) {
    var started = video.play();
    if (started && started.catch) { started.catch(function () { /* autoplay refused: the controls remain */ }); }
  }

  function loadVideos() {
    var watcher = "IntersectionObserver" in window ? new IntersectionObserver(function (entries) {
      entries.forEach(function (entry) {
        if (entry.isIntersecting) { play(entry.target); } else { entry.target.pause(); }
      });
    }) : null;
    document.querySelectorAll("video[data-media]").forEach(function (video) {
      var url = mediaUrl(video.getAttribute("data-media"));
      if (!url) { video.insertAdjacentText("afterend", "This video is missing from the page."); return; }
      video.src = url;
      video.addEventListener("click", function () { if (video.paused) { play(video); } else { video.pause(); } });
      if (watcher) { watcher.observe(video); } else { play(video); }
    });
  }

  function heading(detail) {
    var lon = Math.round(detail.yaw), lat = Math.round(detail.pitch);
    if (lon === -180) { lon = 180; }
    return "lon " + lon + "°, lat " + lat + "°" + (Math.abs(lon) >= 175 ? " (the seam)" : "");
  }

  function startViewers() {
    document.querySelectorAll(".prompt-set").forEach(function (set) {
      var link = set.querySelector(".link-views input"), views = [], syncing = false;
      set.querySelectorAll("canvas.view360").forEach(function (canvas) {
        var card = canvas.closest(".video-card"), label = card.querySelector(".view-heading"), view;
        try {
          view = window.DVD360Viewer.attach(canvas, document.getElementById(canvas.getAttribute("data-video")));
        } catch (error) {
          label.textContent = "360 view unavailable: " + error.message;
          return;
        }
        views.push(view);
        canvas.addEventListener("viewchange", function (event) {
          label.textContent = heading(event.detail);
          if (syncing || !link || !link.checked) { return; }
          syncing = true;
          views.forEach(function (other) { if (other !== view) { other.setView(event.detail.yaw, event.detail.pitch); } });
          syncing = false;
        });
        card.querySelectorAll("button[data-view]").forEach(function (button) {
          button.addEventListener("click", function () {
            var target = button.getAttribute("data-view").split(",").map(Number);
            view.setView(target[0], target[1]);
          });
        });
      });
    });
  }

  loadVideos();
  if (window.DVD360Viewer) { startViewers(); }
})();
