// The live view's charts (uPlot, loaded before this module as the global uPlot): one per charted field
// the window has values for, in a fixed order, sharing one x range; drag to zoom, double-click to reset.
import { chartSeries, formatClock, readoutText } from "./fields.js";

// el: {charts, chartHint}; range(): the x range in seconds when not zoomed; onHover(tSec or null);
// onZoom({min, max} in seconds, or null for the whole range) when the viewer zooms in or out.
export function createCharts(state, el, range, onHover, onZoom = () => {}) {
  const charts = new Map(); // key -> {plot, figure, readout}
  let fields = []; // [{key, label, unit, color}] from fields.js
  let zoomRange = null; // {min, max} in seconds when the viewer zoomed in, else null (whole window)

  function chartSize() {
    const width = Math.max(200, Math.floor(el.charts.clientWidth));
    const height = window.matchMedia("(max-width: 899px)").matches ? 100 : 110;
    return { width: width, height: height };
  }

  function makeChart(spec) {
    const figure = document.createElement("figure");
    figure.className = "chart chart-" + spec.key;
    const caption = document.createElement("figcaption");
    const name = document.createElement("span");
    name.className = "chart-name";
    name.textContent = spec.label + " (" + spec.unit + ")";
    const readout = document.createElement("span");
    readout.className = "chart-readout";
    caption.append(name, readout);
    const holder = document.createElement("div");
    figure.append(caption, holder);
    // Keep the charts in a fixed order whatever order their fields first appear in.
    const order = fields.map((c) => c.key);
    let before = null;
    for (const other of el.charts.children) {
      if (order.indexOf(other.dataset.key) > order.indexOf(spec.key)) {
        before = other;
        break;
      }
    }
    figure.dataset.key = spec.key;
    el.charts.insertBefore(figure, before);
    const size = chartSize();
    const axisStyle = { stroke: "#1a1a1a", grid: { stroke: "#d5d9de", width: 1 }, ticks: { stroke: "#9aa3ad", width: 1 }, font: "12px system-ui, sans-serif" };
    const plot = new uPlot(
      {
        width: size.width,
        height: size.height,
        legend: { show: false },
        scales: { x: { time: true } },
        cursor: {
          sync: { key: "tracker-watch" },
          drag: { x: true, y: false, setScale: false },
          points: { size: 8 },
          bind: {
            // Double-click goes back to the whole window (uPlot's own handler would fit the data).
            dblclick: () => () => {
              zoomRange = null;
              applyXScale();
              onZoom(null);
              return null;
            },
          },
        },
        axes: [
          Object.assign({ size: 26, space: 72, values: (u, splits) => splits.map((v) => formatClock(v, u.scales.x.max - u.scales.x.min)) }, axisStyle),
          Object.assign({ size: 44 }, axisStyle),
        ],
        series: [{}, { label: spec.label, stroke: spec.color, width: 2, fill: spec.color + "1f", points: { show: false } }],
        hooks: {
          setSelect: [
            (u) => {
              if (u.select.width > 4) {
                zoomRange = { min: u.posToVal(u.select.left, "x"), max: u.posToVal(u.select.left + u.select.width, "x") };
                applyXScale();
                onZoom({ min: zoomRange.min, max: zoomRange.max });
              }
              u.setSelect({ left: 0, top: 0, width: 0, height: 0 }, false);
            },
          ],
          setCursor: [(u) => onCursor(u, spec, readout)],
        },
      },
      [[], []],
      holder
    );
    const chart = { plot: plot, figure: figure, readout: readout };
    charts.set(spec.key, chart);
    return chart;
  }

  function render(samples) {
    const counts = {};
    for (const spec of fields) {
      const data = chartSeries(samples, spec.key);
      counts[spec.key] = data[0].length;
      let chart = charts.get(spec.key);
      if (data[0].length === 0) {
        if (chart) chart.figure.hidden = true;
        continue;
      }
      if (!chart) chart = makeChart(spec);
      chart.figure.hidden = false;
      chart.plot.setData(data, false);
    }
    state.chartPoints = counts;
    el.chartHint.hidden = !Object.values(counts).some((n) => n > 1);
    applyXScale();
  }

  function applyXScale() {
    const x = zoomRange || range();
    state.zoom = zoomRange ? { min: zoomRange.min, max: zoomRange.max } : null;
    state.chartRange = { min: x.min, max: x.max }; // seconds: what the time axes span
    for (const chart of charts.values()) {
      if (!chart.figure.hidden) chart.plot.setScale("x", { min: x.min, max: x.max });
    }
  }

  function onCursor(u, spec, readout) {
    const idx = u.cursor.idx;
    if (idx === null || idx === undefined || u.data[0].length === 0) {
      readout.textContent = "";
      onHover(null);
      return;
    }
    const tSec = u.data[0][idx];
    readout.textContent = readoutText(u.data[1][idx], spec.unit, new Date(tSec * 1000).toLocaleTimeString());
    onHover(tSec);
  }

  return {
    setFields(list) {
      fields = list;
    },
    render: render,
    resetZoom() {
      zoomRange = null;
    },
    // The window slides: keep "now" at the right edge unless the viewer zoomed in.
    slide() {
      if (!zoomRange && charts.size) applyXScale();
    },
    // Put the charts' cursor at a time (seconds), as if the viewer hovered there (the map's route does).
    showTime(tSec) {
      for (const chart of charts.values()) {
        if (chart.figure.hidden) continue;
        const left = chart.plot.valToPos(tSec, "x");
        if (left >= 0 && left <= chart.plot.bbox.width / devicePixelRatio) {
          chart.plot.setCursor({ left: left, top: chart.plot.bbox.height / devicePixelRatio / 2 });
        }
      }
    },
    resize() {
      const size = chartSize();
      for (const chart of charts.values()) chart.plot.setSize(size);
    },
  };
}
