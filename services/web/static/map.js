// The grid e-map: grids coloured by a measure (quintiles, as the PNG export), area outlines, hotspot
// alerts, the houses from zoom 14 on, and a grid's roster and open petitions on click.
// Leaflet from npm, served by this service (/vendor/leaflet); no base map unless one is configured.
(function () {
  "use strict";
  var el = document.getElementById("map");
  if (!el || !window.L) return;
  var COLOURS = ["#fff5eb", "#fdd0a2", "#fd8d3c", "#d94801", "#7f2704"];
  var NO_DATA = "#e5e7eb";
  var HOUSE_ZOOM = 14;
  var started = performance.now();
  var select = document.getElementById("measure");
  var status = document.querySelector("[data-map-status]");
  var state = { values: {}, measure: select.value, breaks: [] };
  var emap = (window.emap = { drawnGrids: 0, alerts: [], ready: false });

  var map = L.map(el, { preferCanvas: true, zoomSnap: 0.25, attributionControl: !!el.dataset.tiles });
  var canvas = L.canvas({ padding: 0.2 });
  emap.map = map;
  var bounds = JSON.parse(el.dataset.bounds || "null");
  if (bounds) map.fitBounds([[bounds[1], bounds[0]], [bounds[3], bounds[2]]]);
  else map.setView([36.25, 120.05], 10);
  if (el.dataset.tiles) {
    L.tileLayer(el.dataset.tiles, { attribution: el.dataset.tilesAttribution || "", subdomains: "01234567" }).addTo(map);
  }

  function getJSON(url) {
    return fetch(url, { credentials: "same-origin" }).then(function (r) {
      if (!r.ok) throw new Error(url + ": HTTP " + r.status);
      return r.json();
    });
  }

  // numpy.quantile's default (linear) method, so the page and the PNG classify alike
  function quantile(sorted, q) {
    var pos = (sorted.length - 1) * q, lo = Math.floor(pos), hi = Math.ceil(pos);
    return sorted[lo] + (sorted[hi] - sorted[lo]) * (pos - lo);
  }
  function classify() {
    var vs = [];
    Object.keys(state.values).forEach(function (k) {
      var v = state.values[k][state.measure];
      if (v !== null && v !== undefined) vs.push(v);
    });
    vs.sort(function (a, b) { return a - b; });
    state.breaks = vs.length ? [0.2, 0.4, 0.6, 0.8].map(function (q) { return quantile(vs, q); }) : [];
  }
  function colour(v) {
    if (v === null || v === undefined) return NO_DATA;
    var i = 0;
    state.breaks.forEach(function (b) { if (v > b) i++; });
    return COLOURS[i];
  }
  function fmt(v) {
    if (state.measure === "satisfaction") return (v * 100).toFixed(0) + "%";
    return Math.round(v * 100) / 100 + "";
  }
  function valueOf(id) {
    var g = state.values[id];
    return g ? g[state.measure] : null;
  }
  function style(feature) {
    return { renderer: canvas, weight: 0.6, color: "#6b7280", fillOpacity: 0.8, fillColor: colour(valueOf(feature.id)) };
  }
  function legend() {
    var ul = document.querySelector("[data-legend]");
    ul.innerHTML = "";
    var rows = [[NO_DATA, "无数据"]];
    var edges = [null].concat(state.breaks, [null]);
    if (state.breaks.length) {
      for (var i = 0; i < 5; i++) {
        var lo = edges[i], hi = edges[i + 1];
        rows.push([COLOURS[i], lo === null ? "≤ " + fmt(hi) : hi === null ? "> " + fmt(lo) : fmt(lo) + " – " + fmt(hi)]);
      }
    }
    rows.forEach(function (r) {
      var li = document.createElement("li");
      var sw = document.createElement("span");
      sw.className = "swatch";
      sw.style.background = r[0];
      li.appendChild(sw);
      li.appendChild(document.createTextNode(r[1]));
      ul.appendChild(li);
    });
    document.querySelector("[data-measure-label]").textContent = select.options[select.selectedIndex].text;
  }

  var gridLayer = L.geoJSON(null, { style: style, onEachFeature: function (f, layer) {
    layer.on("click", function () { showGrid(f.id); });
    layer.bindTooltip(function () {
      var v = valueOf(f.id);
      return f.properties.name + "：" + (v === null || v === undefined ? "无数据" : fmt(v));
    }, { sticky: true });
  } }).addTo(map);
  var outlineLayer = L.geoJSON(null, { style: function (f) {
    return f.properties.level === "town"
      ? { renderer: canvas, color: "#0b4a8b", weight: 2.5, fill: false, interactive: false }
      : { renderer: canvas, color: "#334155", weight: 1.2, dashArray: "4 3", fill: false, interactive: false };
  } }).addTo(map);
  var alertLayer = L.layerGroup().addTo(map);
  var houseLayer = L.layerGroup().addTo(map);

  function text(tag, content, cls) {
    var n = document.createElement(tag);
    n.textContent = content;
    if (cls) n.className = cls;
    return n;
  }
  function person(p) { return p && p.name ? p.name + "（" + p.staff_id + "）" : "—"; }

  function showGrid(id) {
    var body = document.querySelector("[data-detail-body]");
    getJSON(el.dataset.detail + encodeURIComponent(id)).then(function (d) {
      var box = document.createElement("div");
      box.setAttribute("data-detail-body", "");
      box.setAttribute("data-grid", d.grid_id);
      box.appendChild(text("p", d.town + " · " + d.village + " · " + d.name));
      var dl = document.createElement("dl");
      dl.className = "pairs";
      [["网格长", person(d.leader)], ["包联干部", person(d.cadre)],
       ["网格员（N）", d.helpers.map(function (h) { return h.name; }).join("、") || "—"],
       ["户数", d.households], ["人口", d.population], ["在办诉求", d.open_petitions.length]].forEach(function (r) {
        dl.appendChild(text("dt", r[0]));
        dl.appendChild(text("dd", String(r[1])));
      });
      box.appendChild(dl);
      if (d.open_petitions.length) {
        var ul = document.createElement("ul");
        ul.className = "roster";
        d.open_petitions.forEach(function (o) {
          var li = document.createElement("li");
          if (o.url) {
            var a = text("a", o.petition_id);
            a.href = o.url;
            li.appendChild(a);
          } else li.appendChild(text("span", o.petition_id));
          li.appendChild(document.createTextNode(" · " + o.status));
          ul.appendChild(li);
        });
        box.appendChild(ul);
      }
      body.replaceWith(box);
    }).catch(function () { body.textContent = "网格信息暂不可用。"; });
  }

  emap.showGrid = showGrid;

  function drawAlerts(alerts) {
    var ul = document.querySelector("[data-alerts]");
    ul.innerHTML = "";
    if (!alerts.length) ul.appendChild(text("li", "本期间无热点预警。", "hint"));
    alerts.forEach(function (a) {
      var latlng = [a.point[1], a.point[0]];
      L.circleMarker(latlng, { renderer: canvas, radius: 11, color: "#b91c1c", weight: 4, fillOpacity: 0.15 })
        .bindTooltip((a.kind === "emerging" ? "新发" : "聚集") + "热点：" + a.area.name + " · " + a.category + " · " + a.count + " 件")
        .addTo(alertLayer);
      emap.alerts.push({ id: a.alert_id, level: a.area.level, area: a.area.id, lat: latlng[0], lon: latlng[1] });
      var li = document.createElement("li");
      li.setAttribute("data-alert-area", a.area.id);
      li.setAttribute("data-alert-level", a.area.level);
      var b = text("button", "定位", "secondary");
      b.type = "button";
      b.addEventListener("click", function () { map.setView(latlng, Math.max(map.getZoom(), 14)); });
      li.appendChild(text("span", (a.kind === "emerging" ? "新发 " : "聚集 ") + a.area.name + " · " + a.category + " · " + a.count + " 件 "));
      li.appendChild(b);
      ul.appendChild(li);
    });
  }

  var houseRequest = 0;
  function drawHouses() {
    var box = document.getElementById("show-houses");
    houseLayer.clearLayers();
    if (!el.dataset.houses || !box || !box.checked || map.getZoom() < HOUSE_ZOOM) return;
    var b = map.getBounds(), mine = ++houseRequest;
    var bbox = [b.getWest(), b.getSouth(), b.getEast(), b.getNorth()].map(function (v) { return v.toFixed(5); }).join(",");
    getJSON(el.dataset.houses + "?bbox=" + bbox).then(function (d) {
      if (mine !== houseRequest) return;
      d.points.forEach(function (p) {
        L.circleMarker([p[1], p[0]], { renderer: canvas, radius: 2, weight: 0, fillColor: "#1f2937", fillOpacity: 0.8, interactive: false }).addTo(houseLayer);
      });
      emap.houses = d.points.length;
    });
  }
  map.on("moveend", drawHouses);
  var houseBox = document.getElementById("show-houses");
  if (houseBox) houseBox.addEventListener("change", drawHouses);

  select.addEventListener("change", function () {
    state.measure = select.value;
    classify();
    gridLayer.setStyle(style);
    legend();
    var url = new URL(location.href);
    url.searchParams.set("measure", state.measure);
    history.replaceState(null, "", url);
    var png = document.querySelector("[data-export-png]");
    var pngUrl = new URL(png.href, location.href);
    pngUrl.searchParams.set("measure", state.measure);
    png.href = pngUrl.pathname + pngUrl.search;
  });

  Promise.all([getJSON(el.dataset.grids), getJSON(el.dataset.outlines), getJSON(el.dataset.measures)])
    .then(function (r) {
      state.values = r[2].grids || {};
      classify();
      gridLayer.addData(r[0]);
      outlineLayer.addData(r[1]);
      drawAlerts(r[2].alerts || []);
      legend();
      emap.drawnGrids = gridLayer.getLayers().length;
      emap.gridIds = gridLayer.getLayers().map(function (l) { return l.feature.id; });
      emap.ready = true;
      emap.readyMs = performance.now(); // since navigation start
      emap.scriptMs = performance.now() - started;
      el.setAttribute("data-drawn-grids", String(emap.drawnGrids));
      el.setAttribute("data-ready", "1");
      status.textContent = "已绘制 " + emap.drawnGrids + " 个网格。";
      drawHouses();
    })
    .catch(function (e) {
      status.textContent = "地图数据暂不可用，请稍后刷新。";
      el.setAttribute("data-error", String(e));
    });
})();
