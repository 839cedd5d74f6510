// Keeps a page's live part current without reloading it: fetches the part again about once a
// second and patches the page in place, and draws the route's charts from the worker's samples.
// Plain script, no build step and no library: the gateway may run with no internet access.
(function () {
  "use strict";

  const EVERY_MS = 1000;
  const MAX_BACKOFF_MS = 10000;
  const REQUEST_TIMEOUT_MS = 8000;
  const GAP_S = 5; // samples further apart than this are not joined by a line
  const MIN_SPAN_S = 60; // a route that just started is drawn over a minute, not squeezed to the right
  const COLOURS = ["#0969da", "#bf3989", "#1a7f37", "#9a6700", "#8250df", "#cf222e", "#1b7c83"];
  const SVG = "http://www.w3.org/2000/svg";

  const root = document.querySelector("[data-live-url]");
  if (!root) {
    return;
  }
  const indicator = document.querySelector("[data-live-status]");
  let samples = [];
  let windowS = 300;
  let clockOffsetS = 0; // the server's clock minus ours: samples carry the worker's time
  let failures = 0;
  let timer = null;
  let inFlight = false;
  let stopped = false;

  function showStatus(kind, text) {
    if (!indicator) {
      return;
    }
    indicator.className = "live-status " + kind;
    indicator.textContent = text;
  }

  // Patching instead of replacing: a button under the pointer, a text selection or a focused
  // field survives an update, because elements whose markup did not change stay the same nodes.
  function morph(current, next) {
    if (current.nodeType !== next.nodeType || current.nodeName !== next.nodeName) {
      current.replaceWith(document.importNode(next, true));
      return;
    }
    if (current.nodeType !== Node.ELEMENT_NODE) {
      if (current.nodeValue !== next.nodeValue) {
        current.nodeValue = next.nodeValue;
      }
      return;
    }
    for (const attribute of Array.from(current.attributes)) {
      if (!next.hasAttribute(attribute.name)) {
        current.removeAttribute(attribute.name);
      }
    }
    for (const attribute of Array.from(next.attributes)) {
      if (current.getAttribute(attribute.name) !== attribute.value) {
        current.setAttribute(attribute.name, attribute.value);
      }
    }
    if (current.hasAttribute("data-live-keep")) {
      return;
    }
    morphChildren(current, next);
  }

  function morphChildren(current, next) {
    const have = Array.from(current.childNodes);
    const want = Array.from(next.childNodes);
    want.forEach(function (child, index) {
      if (index < have.length) {
        morph(have[index], child);
      } else {
        current.appendChild(document.importNode(child, true));
      }
    });
    for (let index = want.length; index < have.length; index += 1) {
      have[index].remove();
    }
  }

  function patch(html) {
    const parsed = document.createElement("template");
    parsed.innerHTML = html;
    morphChildren(root, parsed.content);
  }

  // Charts

  function formatBitrate(bps) {
    if (bps === 0) {
      return "0";
    }
    if (bps >= 1e6) {
      return (bps / 1e6).toFixed(bps >= 1e7 ? 0 : 1) + " Mb/s";
    }
    return (bps / 1e3).toFixed(0) + " kb/s";
  }

  function formatMs(ms) {
    if (ms === 0) {
      return "0 ms";
    }
    return (ms >= 10 ? ms.toFixed(0) : ms.toFixed(1)) + " ms";
  }

  function formatAgo(seconds) {
    if (seconds === 0) {
      return "now";
    }
    if (seconds >= 90) {
      return "−" + (seconds / 60).toFixed(1).replace(".0", "") + " min";
    }
    return "−" + Math.round(seconds) + " s";
  }

  // A round top for the axis: 1, 2 or 5 times a power of ten, at least the largest value.
  function niceTop(value) {
    if (!(value > 0)) {
      return 1;
    }
    const power = Math.pow(10, Math.floor(Math.log10(value)));
    for (const step of [1, 2, 5, 10]) {
      if (step * power >= value) {
        return step * power;
      }
    }
    return 10 * power;
  }

  function node(name, attributes, text) {
    const element = document.createElementNS(SVG, name);
    for (const key of Object.keys(attributes)) {
      element.setAttribute(key, attributes[key]);
    }
    if (text !== undefined) {
      element.textContent = text;
    }
    return element;
  }

  function drawChart(svg, inputs, pick, format) {
    const box = svg.viewBox.baseVal;
    const left = 64;
    const right = box.width - 8;
    const top = 8;
    const bottom = box.height - 30;
    const now = Date.now() / 1000 + clockOffsetS;
    const oldest = samples.length ? samples[0].t : now;
    // Whole minutes, so the axis reads in round numbers.
    const span = Math.min(windowS, Math.ceil(Math.max(MIN_SPAN_S, now - oldest) / 60) * 60);
    const from = now - span;
    let highest = 0;
    for (const sample of samples) {
      for (const input of inputs) {
        const value = pick(sample.inputs[input.key]);
        if (value !== null && value > highest) {
          highest = value;
        }
      }
    }
    const ceiling = niceTop(highest);
    const x = function (t) {
      return left + ((t - from) / span) * (right - left);
    };
    const y = function (value) {
      return bottom - (value / ceiling) * (bottom - top);
    };

    svg.replaceChildren();
    for (const fraction of [0, 0.5, 1]) {
      const level = y(ceiling * fraction);
      svg.appendChild(node("line", { class: "grid", x1: left, x2: right, y1: level, y2: level }));
      svg.appendChild(node("text", { x: left - 6, y: level + 3, "text-anchor": "end" }, format(ceiling * fraction)));
    }
    for (const fraction of [0, 0.5, 1]) {
      const label = formatAgo(span * (1 - fraction));
      const anchor = fraction === 0 ? "start" : fraction === 1 ? "end" : "middle";
      svg.appendChild(node("text", { x: left + fraction * (right - left), y: box.height - 14, "text-anchor": anchor }, label));
    }

    // Which input was on air, as a band under the plot: a failover shows as a change of colour.
    const band = node("g", { class: "on-air-band" });
    samples.forEach(function (sample, index) {
      const input = inputs.find(function (candidate) {
        return candidate.id === sample.active;
      });
      const following = samples[index + 1];
      const until = following && following.t - sample.t <= GAP_S ? following.t : sample.t + 1;
      if (input && sample.t >= from) {
        const start = x(sample.t);
        band.appendChild(node("rect", { x: start, y: bottom + 2, width: Math.max(x(until) - start, 0) + 0.6, height: 4, fill: input.colour }));
      }
    });
    svg.appendChild(band);

    let points = 0;
    for (const input of inputs) {
      let path = "";
      let previous = null;
      for (const sample of samples) {
        const value = pick(sample.inputs[input.key]);
        if (value === null || sample.t < from) {
          previous = null;
          continue;
        }
        const joined = previous !== null && sample.t - previous <= GAP_S;
        path += (joined ? "L" : "M") + x(sample.t).toFixed(1) + " " + y(value).toFixed(1);
        previous = sample.t;
        points += 1;
      }
      if (path) {
        svg.appendChild(node("path", { d: path, stroke: input.colour, "data-input": input.id }));
      }
    }
    svg.setAttribute("data-points", String(points));
  }

  function drawCharts(status) {
    const charts = document.querySelector("[data-charts]");
    if (!charts || !status) {
      return;
    }
    const inputs = status.inputs.map(function (input, index) {
      return { id: input.id, key: String(input.id), name: input.name, active: input.active, colour: COLOURS[index % COLOURS.length] };
    });
    const bitrate = function (figures) {
      return figures ? figures.bps : null;
    };
    const rtt = function (figures) {
      return figures && typeof figures.rtt === "number" ? figures.rtt : null;
    };
    drawChart(charts.querySelector("[data-chart=bitrate]"), inputs, bitrate, formatBitrate);
    drawChart(charts.querySelector("[data-chart=rtt]"), inputs, rtt, formatMs);

    const legend = charts.querySelector("[data-legend]");
    const last = samples.length ? samples[samples.length - 1] : null;
    legend.replaceChildren();
    for (const input of inputs) {
      const item = document.createElement("span");
      item.className = input.active ? "legend-item onair-name" : "legend-item";
      const swatch = document.createElement("span");
      swatch.className = "swatch";
      swatch.style.background = input.colour;
      item.appendChild(swatch);
      const figures = last ? last.inputs[input.key] : null;
      let text = input.name;
      if (figures) {
        text += ": " + formatBitrate(figures.bps) + (typeof figures.rtt === "number" ? ", RTT " + formatMs(figures.rtt) : "");
      }
      item.appendChild(document.createTextNode(text + (input.active ? " (on air)" : "")));
      legend.appendChild(item);
    }
  }

  function addSamples(received, window) {
    windowS = window || windowS;
    const newest = samples.length ? samples[samples.length - 1].t : -Infinity;
    for (const sample of received) {
      if (sample.t > newest) {
        samples.push(sample);
      }
    }
    const from = Date.now() / 1000 + clockOffsetS - windowS;
    samples = samples.filter(function (sample) {
      return sample.t >= from;
    });
  }

  // Polling

  function url() {
    const target = new URL(root.getAttribute("data-live-url"), window.location.href);
    if (samples.length) {
      target.searchParams.set("since", String(samples[samples.length - 1].t));
    }
    return target;
  }

  function schedule(delay) {
    if (!stopped && timer === null) {
      timer = window.setTimeout(tick, delay);
    }
  }

  function stop(text) {
    stopped = true;
    showStatus("stale", text);
  }

  async function tick() {
    timer = null;
    // A hidden tab costs the server nothing; it catches up as soon as it is shown again.
    if (document.hidden || inFlight) {
      return;
    }
    inFlight = true;
    let delay = EVERY_MS;
    const abort = new AbortController();
    const deadline = window.setTimeout(function () {
      abort.abort();
    }, REQUEST_TIMEOUT_MS);
    try {
      const response = await fetch(url(), {
        headers: { Accept: "application/json" },
        credentials: "same-origin",
        cache: "no-store",
        signal: abort.signal,
      });
      // Logged out (sent to the login page) or the role was taken away: polling on cannot help.
      if (response.redirected || response.status === 403) {
        stop("Not signed in any more: reload the page to sign in again.");
        return;
      }
      if (response.status === 404) {
        stop("This route no longer exists.");
        return;
      }
      if (!response.ok) {
        throw new Error("HTTP " + response.status);
      }
      const data = await response.json();
      if (typeof data.now === "number") {
        clockOffsetS = data.now - Date.now() / 1000;
      }
      patch(data.html);
      if (data.samples) {
        addSamples(data.samples, data.window_s);
      }
      drawCharts(data.status);
      failures = 0;
      showStatus("live", "live · " + new Date().toLocaleTimeString());
    } catch (error) {
      failures += 1;
      delay = Math.min(EVERY_MS * Math.pow(2, failures), MAX_BACKOFF_MS);
      showStatus("stale", "no update since the last try failed (" + (error.name === "AbortError" ? "timed out" : error.message) + "); retrying");
    } finally {
      window.clearTimeout(deadline);
      inFlight = false;
    }
    schedule(delay);
  }

  document.addEventListener("visibilitychange", function () {
    if (!document.hidden) {
      schedule(0);
    }
  });
  showStatus("", "connecting…");
  tick();
})();
