// The leaders' view charts (ECharts from npm, served by this service): trend, categories, and the
// rankings with each area's 95% Wilson interval drawn as a band around its rate.
(function () {
  "use strict";
  var holder = document.getElementById("leaders-data");
  if (!holder || !window.echarts) return;
  var data = JSON.parse(holder.textContent);
  var pct = function (v) { return v === null || v === undefined ? "—" : (v * 100).toFixed(1) + "%"; };
  function chart(name, option) {
    var el = document.querySelector("[data-chart='" + name + "']");
    if (!el) return;
    var c = echarts.init(el, null, { renderer: "canvas" });
    c.setOption(Object.assign({ animation: false, aria: { enabled: true } }, option));
    window.addEventListener("resize", function () { c.resize(); });
    el.setAttribute("data-drawn", "1");
  }
  chart("trend", {
    tooltip: { trigger: "axis" },
    legend: { top: 0 },
    grid: { left: 48, right: 48, top: 40, bottom: 30 },
    xAxis: { type: "category", data: data.series.map(function (p) { return p.start.slice(0, 10); }) },
    yAxis: [{ type: "value", name: "件" }, { type: "value", name: "比率", min: 0, max: 1, axisLabel: { formatter: pct } }],
    series: [
      { name: "受理", type: "bar", data: data.series.map(function (p) { return p.accepted; }) },
      { name: "办结", type: "bar", data: data.series.map(function (p) { return p.closed; }) },
      { name: "办结率", type: "line", yAxisIndex: 1, data: data.series.map(function (p) { return p.closure_rate; }) },
      { name: "及时联系率", type: "line", yAxisIndex: 1, data: data.series.map(function (p) { return p.contacted_on_time_rate; }) },
      { name: "满意率", type: "line", yAxisIndex: 1, data: data.series.map(function (p) { return p.satisfaction_rate; }) }
    ]
  });
  chart("categories", {
    tooltip: { trigger: "axis" },
    grid: { left: 110, right: 20, top: 10, bottom: 30 },
    xAxis: { type: "value" },
    yAxis: { type: "category", inverse: true, data: data.categories.map(function (c) { return c.name; }) },
    series: [{ name: "受理", type: "bar", data: data.categories.map(function (c) { return c.accepted; }) }]
  });
  function ranking(name, rows) {
    // a transparent bar up to the interval's lower bound, the interval stacked on it, the rate as a dot
    chart(name, {
      tooltip: { trigger: "axis", formatter: function (ps) {
        var r = rows[ps[0].dataIndex];
        return r.name + "<br>" + data.metric + " " + pct(r.rate) + "（n=" + r.n + "）<br>95% 区间 " + pct(r.low) + " – " + pct(r.high);
      } },
      grid: { left: 150, right: 24, top: 10, bottom: 30 },
      xAxis: { type: "value", min: 0, max: 1, axisLabel: { formatter: pct } },
      yAxis: { type: "category", inverse: true, data: rows.map(function (r) { return r.name; }) },
      series: [
        { type: "bar", stack: "ci", itemStyle: { color: "transparent" }, data: rows.map(function (r) { return r.low; }) },
        { name: "95% 区间", type: "bar", stack: "ci", itemStyle: { color: "#9ec5f0" },
          data: rows.map(function (r) { return r.high === null || r.low === null ? null : r.high - r.low; }) },
        { name: data.metric, type: "scatter", symbolSize: 9, itemStyle: { color: "#0b4a8b" }, data: rows.map(function (r) { return r.rate; }) }
      ]
    });
  }
  ranking("towns", data.towns);
  ranking("villages", data.villages);
})();
