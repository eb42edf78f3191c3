// Draws /api/v1/quotes/history for ?symbol= (default BTC) over the last day by default.
(function () {
  "use strict";
  var DAY_SECONDS = 86400;
  var page = new URLSearchParams(window.location.search);
  var symbol = (page.get("symbol") || "BTC").split(",")[0].trim().toUpperCase();
  var query = new URLSearchParams({
    symbol: symbol,
    interval: page.get("interval") || "5m",
    time_start: page.get("time_start") || String(Math.floor(Date.now() / 1000) - DAY_SECONDS),
    count: page.get("count") || "10000",
  });
  if (page.get("time_end")) {
    query.set("time_end", page.get("time_end"));
  }
  var title = document.getElementById("title");
  var status = document.getElementById("status");
  var target = document.getElementById("chart");
  title.textContent = symbol + " price history";
  document.title = symbol + " · coinquote price history";

  function finish(state, message) {
    status.textContent = message;
    document.body.setAttribute("data-state", state);
  }

  function draw(coin) {
    var xs = [], ys = [], currency = "";
    coin.quotes.forEach(function (point) {
      currency = Object.keys(point.quote)[0];
      xs.push(Date.parse(point.timestamp) / 1000);
      ys.push(Number(point.quote[currency].price));
    });
    title.textContent = coin.name + " (" + coin.symbol + ") price history";
    if (!xs.length) {
      finish("empty", "No stored quote in this range (" + query.get("interval") + " interval).");
      return;
    }
    var options = {
      width: Math.max(320, target.clientWidth || 960),
      height: 420,
      // The axis in UTC, like the intervals and the API's times.
      tzDate: function (ts) { return uPlot.tzDate(new Date(ts * 1000), "Etc/UTC"); },
      scales: { x: { time: true } },
      axes: [{}, { size: 80 }],
      series: [
        {},
        { label: coin.symbol + " in " + currency, stroke: "#2962ff", width: 2,
          points: { show: xs.length < 60 } },
      ],
    };
    new uPlot(options, [xs, ys], target);
    finish("ready", xs.length + " points, " + query.get("interval") + " interval, from " +
      new Date(xs[0] * 1000).toISOString() + " to " + new Date(xs[xs.length - 1] * 1000).toISOString() +
      " (UTC).");
  }

  fetch("api/v1/quotes/history?" + query.toString(), { headers: { Accept: "application/json" } })
    .then(function (response) {
      return response.json().then(function (body) { return { ok: response.ok, body: body }; });
    })
    .then(function (answer) {
      if (!answer.ok) {
        finish("error", answer.body.message || "The history could not be read.");
        return;
      }
      var coin = answer.body.data[symbol];
      if (!coin) {
        finish("error", "Nothing stored for " + symbol + ".");
        return;
      }
      draw(coin);
    })
    .catch(function () { finish("error", "The history could not be read."); });
})();
