// The overview's charts: uPlot over the hourly rollups embedded in the page as JSON.
(function () {
  "use strict";
  const palette = ["#2563eb", "#dc2626", "#16a34a", "#9333ea"];

  function series(labels) {
    return [{}].concat(labels.map((label, i) => ({
      label: label, stroke: palette[i % palette.length], width: 2, spanGaps: true,
      points: { show: true, size: 5 },
    })));
  }

  // uPlot's own tick labels keep at most three decimals, so a spend axis of sub-cent steps read "0, 0, 0":
  // label each tick with as many decimals as the step between ticks needs (Intl drops trailing zeros).
  function axisValues(self, splits, axisIndex, space, increment) {
    const decimals = increment > 0 && increment < 1 ? Math.min(12, Math.ceil(-Math.log10(increment)) + 1) : 1;
    const format = new Intl.NumberFormat("en-US", { maximumFractionDigits: decimals });
    return splits.map((value) => (value == null ? "" : format.format(value)));
  }
  window.IsthmusCharts = { axisValues: axisValues };

  const charts = {
    requests: (d) => ({ labels: ["Requests", "Errors"], columns: [d.requests, d.errors] }),
    latency: (d) => ({ labels: ["p50", "p95", "p99"], columns: [d.p50, d.p95, d.p99] }),
    tokens: (d) => ({ labels: ["Input", "Output"], columns: [d.tokens_in, d.tokens_out] }),
    spend: (d) => ({ labels: ["USD"], columns: [d.cost] }),
  };

  function draw() {
    const source = document.getElementById("overview-data");
    if (!source || typeof uPlot === "undefined") return;
    const data = JSON.parse(source.textContent);
    for (const element of document.querySelectorAll("[data-chart]")) {
      const spec = charts[element.dataset.chart](data);
      const width = Math.max(320, element.clientWidth);
      new uPlot({
        width: width, height: 200, series: series(spec.labels),
        axes: [{}, { size: 60, values: axisValues }], legend: { live: false },
      }, [data.t].concat(spec.columns), element);
    }
  }

  document.addEventListener("DOMContentLoaded", draw);
})();
