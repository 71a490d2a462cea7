// Gatehouse reviewer console: starts the asciinema player on the player
// page. The page passes everything in data- attributes (the recording's
// URL, or the live stream's when watching), so it needs no inline script
// and the Content-Security-Policy stays strict. Changing the speed
// restarts the player at the same time (the player takes its speed when
// it is created); clicking an event seeks to it.
"use strict";

(function () {
  var el = document.getElementById("player");
  if (!el || !window.AsciinemaPlayer) {
    return;
  }
  var speed = document.getElementById("speed");
  var live = el.dataset.live || "";
  var player = null;

  function options(startAt, autoPlay) {
    var opts = { fit: "width", autoPlay: autoPlay, preload: true };
    var cols = parseInt(el.dataset.cols, 10);
    var rows = parseInt(el.dataset.rows, 10);
    if (cols > 0 && rows > 0) {
      opts.cols = cols;
      opts.rows = rows;
    }
    if (speed) {
      var v = parseFloat(speed.value);
      if (v > 0) {
        opts.speed = v;
      }
    }
    if (startAt > 0) {
      opts.startAt = startAt;
    }
    return opts;
  }

  function start(startAt, autoPlay) {
    if (player) {
      player.dispose();
    }
    // Live: the eventsource driver reads asciicast v2 lines as Server-Sent
    // Events; otherwise the recording driver fetches the whole cast.
    var src = live ? { driver: "eventsource", url: live } : el.dataset.cast;
    player = AsciinemaPlayer.create(src, el, options(startAt, autoPlay));
  }

  start(0, !!live);

  if (speed) {
    speed.addEventListener("change", function () {
      start(player.getCurrentTime(), true);
    });
  }
  var seeks = document.querySelectorAll("button.seek");
  for (var i = 0; i < seeks.length; i++) {
    seeks[i].addEventListener("click", function (ev) {
      var t = parseFloat(ev.currentTarget.dataset.t);
      if (live || !(t >= 0)) {
        return;
      }
      player.seek(t).then(function () {
        return player.play();
      });
    });
  }
})();
