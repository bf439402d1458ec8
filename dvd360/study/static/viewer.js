/* A self-contained 360° viewer: a <video> holding an equirectangular (ERP) panorama, shown in
 * a <canvas> as the view from the sphere's centre. WebGL, no libraries, no network.
 *
 * One full-screen quad; its fragment shader casts a ray per pixel and samples the video
 * texture where the ray meets the sphere. Directions use x right, y up, z forward:
 *   d = (cos(lat) sin(lon), sin(lat), cos(lat) cos(lon)),
 *   u = lon / 360° + 0.5 (the flat video's middle column faces lon 0, lon grows to the right),
 *   v = 0.5 - lat / 180° (row 0 is straight up).
 * Yaw and pitch (degrees) turn the camera; dragging grabs the scene (drag left = turn right);
 * arrow keys turn it by 10°. The mouse wheel keeps scrolling the page (no zoom).
 *
 * All views of a page share one WebGL context on an off-screen canvas and copy each picture
 * into their own 2D canvas: one context instead of one per video keeps start-up cheap
 * (browsers also cap the number of live contexts). A view redraws when its video shows a new
 * frame or when it is turned.
 */
(function () {
  "use strict";

  var VERTEX = [
    "attribute vec2 corner;",
    "varying vec2 screen;",
    "void main() { screen = corner; gl_Position = vec4(corner, 0.0, 1.0); }"
  ].join("\n");

  var FRAGMENT = [
    "precision highp float;",
    "varying vec2 screen;",
    "uniform sampler2D panorama;",
    "uniform float yaw, pitch, tanHalfHeight, aspect;",
    "const float PI = 3.141592653589793;",
    "void main() {",
    "  vec3 d = normalize(vec3(screen.x * tanHalfHeight * aspect, screen.y * tanHalfHeight, 1.0));",
    "  float cp = cos(pitch), sp = sin(pitch), cy = cos(yaw), sy = sin(yaw);",
    "  d = vec3(d.x, d.y * cp + d.z * sp, -d.y * sp + d.z * cp);",
    "  d = vec3(d.x * cy + d.z * sy, d.y, -d.x * sy + d.z * cy);",
    "  float lon = atan(d.x, d.z);",
    "  float lat = asin(clamp(d.y, -1.0, 1.0));",
    "  gl_FragColor = texture2D(panorama, vec2(lon / (2.0 * PI) + 0.5, 0.5 - lat / PI));",
    "}"
  ].join("\n");

  function compile(gl, type, source) {
    var shader = gl.createShader(type);
    gl.shaderSource(shader, source);
    gl.compileShader(shader);
    if (!gl.getShaderParameter(shader, gl.COMPILE_STATUS)) {
      throw new Error("360 viewer shader: " + gl.getShaderInfoLog(shader));
    }
    return shader;
  }

  /* The shared off-screen WebGL renderer. */
  function Renderer() {
    var canvas = document.createElement("canvas");
    var gl = canvas.getContext("webgl", { preserveDrawingBuffer: true, antialias: false, alpha: false });
    if (!gl) { throw new Error("this browser has no WebGL"); }
    this.canvas = canvas;
    this.gl = gl;
    var program = gl.createProgram();
    gl.attachShader(program, compile(gl, gl.VERTEX_SHADER, VERTEX));
    gl.attachShader(program, compile(gl, gl.FRAGMENT_SHADER, FRAGMENT));
    gl.linkProgram(program);
    if (!gl.getProgramParameter(program, gl.LINK_STATUS)) {
      throw new Error("360 viewer program: " + gl.getProgramInfoLog(program));
    }
    gl.useProgram(program);
    this.uniforms = {};
    var names = ["yaw", "pitch", "tanHalfHeight", "aspect", "panorama"];
    for (var i = 0; i < names.length; i++) {
      this.uniforms[names[i]] = gl.getUniformLocation(program, names[i]);
    }
    gl.uniform1i(this.uniforms.panorama, 0);
    gl.bindBuffer(gl.ARRAY_BUFFER, gl.createBuffer());
    gl.bufferData(gl.ARRAY_BUFFER, new Float32Array([-1, -1, 1, -1, -1, 1, 1, 1]), gl.STATIC_DRAW);
    var corner = gl.getAttribLocation(program, "corner");
    gl.enableVertexAttribArray(corner);
    gl.vertexAttribPointer(corner, 2, gl.FLOAT, false, 0, 0);
  }

  Renderer.prototype.createTexture = function () {
    var gl = this.gl, texture = gl.createTexture();
    gl.bindTexture(gl.TEXTURE_2D, texture);
    // Videos need not be powers of two: no mipmaps, clamp at the edges (WebGL 1 rules).
    gl.texParameteri(gl.TEXTURE_2D, gl.TEXTURE_MIN_FILTER, gl.LINEAR);
    gl.texParameteri(gl.TEXTURE_2D, gl.TEXTURE_MAG_FILTER, gl.LINEAR);
    gl.texParameteri(gl.TEXTURE_2D, gl.TEXTURE_WRAP_S, gl.CLAMP_TO_EDGE);
    gl.texParameteri(gl.TEXTURE_2D, gl.TEXTURE_WRAP_T, gl.CLAMP_TO_EDGE);
    return texture;
  };

  Renderer.prototype.upload = function (texture, video) {
    var gl = this.gl;
    gl.bindTexture(gl.TEXTURE_2D, texture);
    gl.texImage2D(gl.TEXTURE_2D, 0, gl.RGBA, gl.RGBA, gl.UNSIGNED_BYTE, video);
  };

  /* Draw `view` at width x height and copy the picture into its 2D context. */
  Renderer.prototype.render = function (view, width, height) {
    var gl = this.gl, canvas = this.canvas;
    if (canvas.width < width || canvas.height < height) {
      canvas.width = Math.max(canvas.width, width);
      canvas.height = Math.max(canvas.height, height);
    }
    gl.viewport(0, 0, width, height);
    gl.bindTexture(gl.TEXTURE_2D, view.texture);
    gl.uniform1f(this.uniforms.yaw, view.yaw * Math.PI / 180);
    gl.uniform1f(this.uniforms.pitch, view.pitch * Math.PI / 180);
    gl.uniform1f(this.uniforms.tanHalfHeight, Math.tan(view.fov * Math.PI / 360));
    gl.uniform1f(this.uniforms.aspect, width / height);
    gl.drawArrays(gl.TRIANGLE_STRIP, 0, 4);
    // GL's viewport starts at the bottom-left corner; the 2D copy reads from the top-left.
    view.context.drawImage(canvas, 0, canvas.height - height, width, height, 0, 0, width, height);
  };

  var shared = null;
  function renderer() {
    if (!shared) { shared = new Renderer(); }
    return shared;
  }

  function View(canvas, video) {
    this.renderer = renderer();
    this.canvas = canvas;
    this.context = canvas.getContext("2d");
    this.video = video;
    this.texture = this.renderer.createTexture();
    this.yaw = 0;
    this.pitch = 0;
    this.fov = 75;         // vertical field of view, degrees
    this.frames = 0;       // pictures drawn from video content
    this.hasFrame = false;
    this.listen();
    this.watchVideo();
  }

  View.prototype.setView = function (yaw, pitch) {
    this.yaw = ((yaw + 180) % 360 + 360) % 360 - 180;
    this.pitch = Math.max(-89, Math.min(89, pitch));
    this.draw();
    this.canvas.dispatchEvent(new CustomEvent("viewchange", { detail: { yaw: this.yaw, pitch: this.pitch } }));
  };

  View.prototype.draw = function () {
    var canvas = this.canvas, scale = window.devicePixelRatio || 1;
    var width = Math.max(1, Math.round(canvas.clientWidth * scale));
    var height = Math.max(1, Math.round(canvas.clientHeight * scale));
    if (canvas.width !== width || canvas.height !== height) {
      canvas.width = width;
      canvas.height = height;
    }
    if (!this.hasFrame) { return; }
    this.renderer.render(this, width, height);
    this.frames += 1;
  };

  View.prototype.refresh = function () {
    if (this.video.readyState >= 2) {   // HAVE_CURRENT_DATA: there is a frame to show
      this.renderer.upload(this.texture, this.video);
      this.hasFrame = true;
    }
    this.draw();
  };

  View.prototype.watchVideo = function () {
    var self = this, video = this.video;
    ["loadeddata", "seeked"].forEach(function (name) {
      video.addEventListener(name, function () { self.refresh(); });
    });
    if (typeof video.requestVideoFrameCallback === "function") {
      var onFrame = function () { self.refresh(); video.requestVideoFrameCallback(onFrame); };
      video.requestVideoFrameCallback(onFrame);
    } else {
      var tick = function () { if (!video.paused) { self.refresh(); } window.requestAnimationFrame(tick); };
      window.requestAnimationFrame(tick);
    }
    window.addEventListener("resize", function () { self.draw(); });
    this.refresh();
  };

  View.prototype.listen = function () {
    var self = this, canvas = this.canvas, last = null;
    canvas.addEventListener("pointerdown", function (event) {
      last = { x: event.clientX, y: event.clientY };
      canvas.setPointerCapture(event.pointerId);
      canvas.classList.add("dragging");
    });
    canvas.addEventListener("pointermove", function (event) {
      if (!last) { return; }
      var degreesPerPixel = self.fov / Math.max(1, canvas.clientHeight);
      self.setView(self.yaw - (event.clientX - last.x) * degreesPerPixel,
                   self.pitch + (event.clientY - last.y) * degreesPerPixel);
      last = { x: event.clientX, y: event.clientY };
    });
    var release = function () { last = null; canvas.classList.remove("dragging"); };
    canvas.addEventListener("pointerup", release);
    canvas.addEventListener("pointercancel", release);
    canvas.addEventListener("keydown", function (event) {
      var steps = { ArrowLeft: [-10, 0], ArrowRight: [10, 0], ArrowUp: [0, 10], ArrowDown: [0, -10] };
      if (steps[event.key]) {
        event.preventDefault();
        self.setView(self.yaw + steps[event.key][0], self.pitch + steps[event.key][1]);
      }
    });
  };

  window.DVD360Viewer = {
    attach: function (canvas, video) {
      var view = new View(canvas, video);
      canvas.dvd360Viewer = view;
      return view;
    }
  };
})();
