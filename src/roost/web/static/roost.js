/* Roost's progressive JavaScript. Every page works without it; with it:
 * - the compose box counts characters as the server does (counter.js),
 * - favourite, boost and delete happen in place (the same forms, sent with fetch),
 * - the home timeline shows "N new posts" as they arrive, to reveal on demand,
 * - notifications arrive live, and a profile's followers count follows the account live,
 * - a profile's follower-history chart and a race's chart and standings update live
 *   (the charts are drawn by chart.js).
 * Live updates come over the Mastodon streaming WebSocket, signed in by the session cookie.
 */
(function () {
  "use strict";

  var csrfMeta = document.querySelector('meta[name="csrf-token"]');
  var csrf = csrfMeta ? csrfMeta.getAttribute("content") : "";

  function plural(n, one, many) { return n + " " + (n === 1 ? one : many); }

  // Ids are 64-bit numbers in decimal: compare them as strings, never as floats.
  function newer(a, b) {
    if (a.length !== b.length) return a.length > b.length;
    return a > b;
  }

  function fromHTML(html) {
    var template = document.createElement("template");
    template.innerHTML = html;
    return template.content;
  }

  // The entries (with a data-id) at the top level of a fragment of HTML.
  function topLevel(fragment) {
    return Array.prototype.filter.call(fragment.children, function (element) {
      return element.hasAttribute("data-id");
    });
  }

  function fetchHTML(url, options) {
    options = options || {};
    options.credentials = "same-origin";
    options.headers = Object.assign({ "X-Requested-With": "fetch", "X-CSRF-Token": csrf },
                                    options.headers || {});
    return fetch(url, options).then(function (response) {
      if (!response.ok) throw new Error("HTTP " + response.status);
      return response.text();
    });
  }

  // -- character counter ---------------------------------------------------------------------

  function setUpCounter(textarea) {
    var counter = document.getElementById(textarea.getAttribute("data-counter"));
    var form = textarea.form;
    var spoiler = form ? form.querySelector('[name="spoiler_text"]') : null;
    var button = form ? form.querySelector('button[type="submit"]') : null;
    var max = parseInt(textarea.getAttribute("data-max"), 10) || 500;
    if (!counter || !window.RoostCount) return;
    function update() {
      var used = RoostCount.countCharacters(textarea.value) +
                 (spoiler ? RoostCount.countCharacters(spoiler.value) : 0);
      var left = max - used;
      counter.textContent = left >= 0 ? plural(left, "character left", "characters left")
                                      : plural(-left, "character too many", "characters too many");
      counter.classList.toggle("over", left < 0);
      counter.setAttribute("data-count", String(used));
      if (button) button.disabled = left < 0 || textarea.value.trim() === "";
    }
    textarea.addEventListener("input", update);
    if (spoiler) spoiler.addEventListener("input", update);
    update();
  }

  // -- post actions in place -----------------------------------------------------------------

  function setUpActions() {
    document.addEventListener("submit", function (event) {
      var form = event.target;
      if (!(form instanceof HTMLFormElement) || !form.classList.contains("action")) return;
      var article = form.closest("article.status");
      if (!article || !window.fetch) return;
      var question = form.getAttribute("data-confirm");
      if (question && !window.confirm(question)) { event.preventDefault(); return; }
      event.preventDefault();
      var action = form.getAttribute("data-action");
      var button = form.querySelector("button");
      if (button) button.disabled = true;
      fetchHTML(form.action, { method: "POST", body: new FormData(form) })
        .then(function (html) {
          if (action === "delete") {
            announce("Post deleted.");
            var next = article.nextElementSibling;
            article.remove();
            if (next && next.focus) next.focus();
            return;
          }
          var replacement = fromHTML(html).querySelector("article.status");
          if (!replacement) throw new Error("no post in the answer");
          article.replaceWith(replacement);
          var twin = { favourite: "unfavourite", unfavourite: "favourite",
                       reblog: "unreblog", unreblog: "reblog" }[action];
          var again = replacement.querySelector('form[data-action="' + twin + '"] button') ||
                      replacement.querySelector('form[data-action="' + action + '"] button');
          if (again) again.focus();
        })
        .catch(function () { form.submit(); }); // let the server say what went wrong
    });
  }

  var liveRegion = null;
  function announce(text) {
    if (!liveRegion) {
      liveRegion = document.createElement("div");
      liveRegion.className = "visually-hidden";
      liveRegion.setAttribute("role", "status");
      liveRegion.setAttribute("aria-live", "polite");
      document.body.appendChild(liveRegion);
    }
    liveRegion.textContent = text;
  }

  // -- streaming -----------------------------------------------------------------------------

  /* One WebSocket to /api/v1/streaming carrying the given subscriptions; reconnects with
   * back-off, and calls onReconnect after a reconnection (events may have been missed). */
  function stream(subscriptions, onEvent, onReconnect) {
    if (!window.WebSocket) return;
    var url = (location.protocol === "https:" ? "wss://" : "ws://") + location.host +
              "/api/v1/streaming";
    var delay = 1000;
    var opened = false;
    function connect() {
      var socket = new WebSocket(url);
      socket.onopen = function () {
        delay = 1000;
        subscriptions.forEach(function (s) {
          socket.send(JSON.stringify(Object.assign({ type: "subscribe" }, s)));
        });
        if (opened && onReconnect) onReconnect();
        opened = true;
        document.body.setAttribute("data-stream-state", "open");
      };
      socket.onmessage = function (message) {
        var data;
        try { data = JSON.parse(message.data); } catch (e) { return; }
        if (data && data.event) onEvent(data.event, data.payload);
      };
      socket.onclose = function () {
        document.body.setAttribute("data-stream-state", "closed");
        setTimeout(connect, delay);
        delay = Math.min(delay * 2, 30000);
      };
    }
    connect();
  }

  /* A list that new entries arrive at the top of: the home timeline (shown on demand, behind
   * "N new posts") or the notifications (shown at once). */
  function liveList(options) {
    var list = document.getElementById(options.listId);
    var button = document.getElementById("new-items-button");
    if (!list) return null;
    var pending = {};
    var pendingCount = 0;

    function newest() {
      var first = list.querySelector(":scope > [data-id]");
      return first ? first.getAttribute("data-id") : null;
    }

    function showButton() {
      if (!button) return;
      button.textContent = pendingCount > 40 ? "More than 40 new posts: reload"
                                             : plural(pendingCount, "new post", "new posts");
      button.hidden = pendingCount === 0;
    }

    function reveal(focusFirst) {
      var top = newest();
      if (pendingCount > 40) { location.reload(); return; }
      var url = list.getAttribute("data-fragment") + (top ? "&since_id=" + top : "");
      fetchHTML(url).then(function (html) {
        var fragment = fromHTML(html);
        var items = topLevel(fragment);
        var fresh = items.filter(function (item) {
          return !list.querySelector(':scope > [data-id="' + item.getAttribute("data-id") + '"]');
        });
        for (var i = fresh.length - 1; i >= 0; i--) {
          fresh[i].classList.add("arrived");
          list.insertBefore(fresh[i], list.firstChild);
        }
        var empty = document.getElementById(options.emptyId);
        if (fresh.length && empty) empty.remove();
        pending = {};
        pendingCount = 0;
        showButton();
        if (fresh.length && focusFirst) fresh[0].focus();
        if (fresh.length && options.announce) announce(options.announce(fresh.length));
      }).catch(function () {});
    }

    function arrived(id) {
      if (list.querySelector(':scope > [data-id="' + id + '"]')) return;
      var top = newest();
      if (top && !newer(id, top)) return;
      if (pending[id]) return;
      pending[id] = true;
      pendingCount++;
      if (options.autoReveal) reveal(false); else showButton();
    }

    // After a reconnection: whatever arrived meanwhile.
    function catchUp() {
      if (options.autoReveal) { reveal(false); return; }
      var top = newest();
      var url = list.getAttribute("data-fragment") + (top ? "&since_id=" + top : "");
      fetchHTML(url).then(function (html) {
        topLevel(fromHTML(html)).forEach(function (item) {
          arrived(item.getAttribute("data-id"));
        });
      }).catch(function () {});
    }

    function gone(id) {
      if (pending[id]) { delete pending[id]; pendingCount--; showButton(); }
      var shown = list.querySelectorAll('[data-id="' + id + '"], [data-original-id="' + id + '"]');
      Array.prototype.forEach.call(shown, function (item) {
        var entry = item.closest("#" + options.listId + " > [data-id]") || item;
        entry.remove();
      });
    }

    if (button) button.addEventListener("click", function () { reveal(true); });
    return { arrived: arrived, gone: gone, catchUp: catchUp };
  }

  function setUpHome() {
    var home = liveList({ listId: "timeline", emptyId: "timeline-empty" });
    if (!home) return;
    stream([{ stream: "user" }], function (event, payload) {
      if (event === "update") {
        var status;
        try { status = JSON.parse(payload); } catch (e) { return; }
        home.arrived(String(status.id));
      } else if (event === "delete") {
        home.gone(String(payload));
      }
    }, home.catchUp);
  }

  function setUpNotifications() {
    var list = liveList({
      listId: "notifications", emptyId: "notifications-empty", autoReveal: true,
      announce: function (n) { return plural(n, "new notification", "new notifications"); }
    });
    if (!list) return;
    stream([{ stream: "user:notification" }], function (event, payload) {
      if (event !== "notification") return;
      var notification;
      try { notification = JSON.parse(payload); } catch (e) { return; }
      list.arrived(String(notification.id));
    }, list.catchUp);
  }


  // -- charts: follower history and races -----------------------------------------------------

  var MINUTE = 60000, HOUR = 3600000, DAY = 86400000, MAX_POINTS = 1500;
  var STEPS = { minute: MINUTE, hour: HOUR, day: DAY };

  // Points [[ms, count]] from the history API, from ``start`` (ms) to now every ``step``.
  function history(accountId, start, step) {
    var now = Date.now();
    start = Math.max(start, now - (MAX_POINTS - 2) * STEPS[step]);
    var url = "/api/v1/roost/accounts/" + encodeURIComponent(accountId) +
              "/followers/history?step=" + step + "&start=" +
              encodeURIComponent(new Date(start).toISOString());
    return fetch(url, { credentials: "same-origin" }).then(function (response) {
      if (!response.ok) throw new Error("HTTP " + response.status);
      return response.json();
    }).then(function (rows) {
      return rows.map(function (row) { return [Date.parse(row.at), row.followers_count]; });
    });
  }

  var RANGES = {
    hour: { span: HOUR, step: "minute" },
    day: { span: DAY, step: "hour" },
    week: { span: 7 * DAY, step: "hour" }
  };

  function setUpHistoryChart(figure, onFollowers) {
    if (!window.RoostChart || !window.fetch) return;
    var area = figure.querySelector(".chart-area");
    var accountId = figure.getAttribute("data-account-id");
    var label = "@" + figure.getAttribute("data-username");
    var chart = RoostChart.create(area, {});
    var buttons = figure.querySelectorAll("button[data-range]");
    var loaded = false;
    function load(range) {
      Array.prototype.forEach.call(buttons, function (button) {
        button.setAttribute("aria-pressed", String(button.getAttribute("data-range") === range));
      });
      var chosen = RANGES[range];
      var born = Date.parse(figure.getAttribute("data-created-at")) || 0;
      var start = chosen ? Date.now() - chosen.span : born;
      var age = Date.now() - born;
      var step = chosen ? chosen.step : age <= 6 * HOUR ? "minute" : age <= 2 * DAY ? "hour" : "day";
      history(accountId, start, step).then(function (points) {
        // "all": drop the empty years before the account's first follower.
        if (!chosen) {
          var first = 0;
          while (first < points.length - 1 && points[first][1] === 0 &&
                 points[first + 1][1] === 0) first++;
          points = points.slice(first);
        }
        chart.setSeries(accountId, label, points);
        figure.setAttribute("data-range", range);
        loaded = true;
      }).catch(function () {});
    }
    Array.prototype.forEach.call(buttons, function (button) {
      button.addEventListener("click", function () { load(button.getAttribute("data-range")); });
    });
    onFollowers(function (count, at) {
      if (loaded) chart.addPoint(accountId, at, count);
    });
    load(figure.getAttribute("data-range") || "day");
  }

  function formatWhen(iso) {
    if (!iso) return "–";
    var d = new Date(iso);
    var months = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov",
                  "Dec"];
    return d.getUTCDate() + " " + months[d.getUTCMonth()] + " " + d.getUTCFullYear() + ", " +
           String(d.getUTCHours()).padStart(2, "0") + ":" +
           String(d.getUTCMinutes()).padStart(2, "0") + " UTC";
  }

  function setUpRace(raceId) {
    var table = document.getElementById("standings");
    var figure = document.getElementById("race-chart");
    if (!table || !raceId) return;
    var body = table.querySelector("tbody");
    var names = {};
    Array.prototype.forEach.call(body.rows, function (row) {
      names[row.getAttribute("data-account-id")] = "@" + row.getAttribute("data-username");
    });
    var chart = null;
    var loaded = false;
    var queued = [];
    var markersShown = 0;

    function showLeadChanges(changes) {
      var list = document.getElementById("lead-changes");
      var empty = document.getElementById("lead-changes-empty");
      if (list && changes.length > list.children.length) {
        for (var i = list.children.length; i < changes.length; i++) {
          var item = document.createElement("li");
          var time = document.createElement("time");
          time.setAttribute("datetime", changes[i].at);
          time.textContent = formatWhen(changes[i].at);
          item.appendChild(time);
          item.appendChild(document.createTextNode(": " + (names[changes[i].leader_id] || "?") +
                                                   " took the lead"));
          list.appendChild(item);
        }
        if (empty) empty.hidden = true;
      }
      if (chart) {
        for (var j = markersShown; j < changes.length; j++) {
          chart.addMarker(Date.parse(changes[j].at),
                          (names[changes[j].leader_id] || "?") + " took the lead");
        }
        markersShown = changes.length;
      }
    }

    function cell(row, field, value) {
      var found = row.querySelector('[data-field="' + field + '"]');
      if (found) found.textContent = value;
    }

    function update(race) {
      var leader = race.standings.length ? race.standings[0].followers_count : 0;
      race.standings.forEach(function (s) {
        var id = String(s.account.id);
        var row = body.querySelector('tr[data-account-id="' + id + '"]');
        if (!row) return;
        row.setAttribute("data-followers", String(s.followers_count));
        cell(row, "followers", Number(s.followers_count).toLocaleString("en"));
        cell(row, "gap", Number(leader - s.followers_count).toLocaleString("en"));
        cell(row, "velocity", Math.round(Number(s.velocity_per_hour)).toLocaleString("en-US"));
        cell(row, "projected", formatWhen(s.projected_at));
        cell(row, "reached", formatWhen(s.reached_at));
        var follower = row.querySelector('[data-field="follower"]');
        if (follower && s.milestone_follower && !follower.querySelector("a")) {
          var link = document.createElement("a");
          link.href = "/@" + encodeURIComponent(s.milestone_follower.acct);
          link.textContent = "@" + s.milestone_follower.acct;
          follower.textContent = "";
          follower.appendChild(link);
        }
        body.appendChild(row); // standings order: the server's
        var at = Date.now();
        if (loaded) chart.addPoint(id, at, s.followers_count);
        else queued.push([id, at, s.followers_count]);
      });
      showLeadChanges(race.lead_changes || []);
      var winner = document.getElementById("race-winner");
      if (winner && race.winner_id && winner.hidden) {
        winner.textContent = (names[race.winner_id] || "?") + " won, reaching " +
          Number(race.target).toLocaleString("en") + " on " + formatWhen(race.finished_at) + ".";
        winner.hidden = false;
      }
    }

    if (figure && window.RoostChart && window.fetch) {
      chart = RoostChart.create(figure.querySelector(".chart-area"),
                                { target: Number(figure.getAttribute("data-target")) });
      var start = Date.parse(figure.getAttribute("data-start"));
      var step = figure.getAttribute("data-step") || "minute";
      var ids = Object.keys(names);
      Promise.all(ids.map(function (id) { return history(id, start, step); }))
        .then(function (all) {
          all.forEach(function (points, i) {
            var id = ids[i];
            var row = body.querySelector('tr[data-account-id="' + id + '"]');
            // The page's own numbers end the line, so it is never behind the table.
            points.push([Date.now(), Number(row.getAttribute("data-followers"))]);
            chart.setSeries(id, names[id], points);
          });
          loaded = true;
          queued.forEach(function (q) { chart.addPoint(q[0], q[1], q[2]); });
          queued = [];
          var changes = [];
          Array.prototype.forEach.call(document.querySelectorAll("#lead-changes li"),
                                       function (item) {
            changes.push({ at: item.getAttribute("data-at"),
                           leader_id: item.getAttribute("data-leader-id") });
          });
          showLeadChanges(changes);
          figure.setAttribute("data-loaded", "true");
        }).catch(function () {});
    }

    stream([{ stream: "roost:race", race_id: raceId }], function (event, payload) {
      if (event !== "roost.race") return;
      var race;
      try { race = JSON.parse(payload); } catch (e) { return; }
      if (String(race.id) === raceId) update(race);
    });
  }

  function setUpProfile(accountId) {
    var counts = document.querySelectorAll("[data-followers-count]");
    if (!counts.length || !accountId) return;
    var listeners = [];
    var figure = document.getElementById("history-chart");
    if (figure) setUpHistoryChart(figure, function (listener) { listeners.push(listener); });
    stream([{ stream: "roost:followers", account_id: accountId }], function (event, payload) {
      if (event !== "roost.followers") return;
      var data;
      try { data = JSON.parse(payload); } catch (e) { return; }
      if (String(data.account_id) !== accountId) return;
      Array.prototype.forEach.call(counts, function (element) {
        element.textContent = Number(data.followers_count).toLocaleString("en");
      });
      var at = Date.parse(data.at) || Date.now();
      listeners.forEach(function (listener) { listener(data.followers_count, at); });
    });
  }

  function start() {
    Array.prototype.forEach.call(document.querySelectorAll("textarea[data-counter]"),
                                 setUpCounter);
    setUpActions();
    var live = document.body.getAttribute("data-live");
    if (live === "home") setUpHome();
    else if (live === "notifications") setUpNotifications();
    else if (live === "profile") setUpProfile(document.body.getAttribute("data-account-id"));
    else if (live === "race") setUpRace(document.body.getAttribute("data-race-id"));
    document.documentElement.classList.add("js");
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
