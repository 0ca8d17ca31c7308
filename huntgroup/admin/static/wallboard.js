// The huntgroup wallboard: renders the snapshots of /events (server-sent events) and makes
// the waits and times in state tick between two of them. Plain JavaScript, no library, no
// build step. Every text comes from the server and goes in with textContent (never as
// HTML): member names and numbers are not trusted.
"use strict";

const STATES = {
  free: "free",
  ringing: "ringing",
  talking: "talking",
  wrap_up: "wrap-up",
  paused: "paused",
  unavailable: "unavailable",
  logged_out: "logged out",
};
const RECONNECT_MS = 5000;

let clockOffset = 0; // the server's clock minus ours, in seconds

function serverNow() {
  return Date.now() / 1000 + clockOffset;
}

function duration(seconds) {
  const s = Math.max(0, Math.floor(seconds));
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const pad = (n) => String(n).padStart(2, "0");
  return h > 0 ? `${h}:${pad(m)}:${pad(s % 60)}` : `${m}:${pad(s % 60)}`;
}

function tick() {
  const now = serverNow();
  for (const element of document.querySelectorAll("[data-since]")) {
    element.textContent = duration(now - Number(element.dataset.since));
  }
}

function setSince(element, since) {
  if (since === null || since === undefined) {
    delete element.dataset.since;
    element.textContent = "–";
  } else {
    element.dataset.since = String(since);
    element.textContent = duration(serverNow() - since);
  }
}

function groupSection(name) {
  for (const section of document.querySelectorAll("section.group")) {
    if (section.dataset.group === name) {
      return section;
    }
  }
  const template = document.getElementById("group-template");
  const section = template.content.firstElementChild.cloneNode(true);
  section.dataset.group = name;
  document.getElementById("groups").appendChild(section);
  return section;
}

function renderServiceLevel(section, level) {
  const value = section.querySelector(".service-level");
  const detail = section.querySelector(".sl-detail");
  const counted = level.answered + level.unanswered_after;
  value.textContent = level.percent === null ? "–" : `${level.percent.toFixed(1)} %`;
  detail.textContent = `${level.answered_within} of ${counted} calls`;
  let grade = "none";
  if (level.percent !== null) {
    grade = level.percent >= 80 ? "good" : level.percent >= 60 ? "fair" : "poor";
  }
  value.dataset.grade = grade;
}

function renderMembers(section, members) {
  const body = section.querySelector("tbody");
  const rows = [];
  for (const member of members) {
    const row = document.createElement("tr");
    row.dataset.member = member.member;
    row.dataset.state = member.state;
    const who = document.createElement("td");
    who.className = "member";
    who.textContent = member.name ? `${member.name} (${member.member})` : member.member;
    const state = document.createElement("td");
    state.className = "state";
    state.textContent = STATES[member.state] || member.state;
    if (member.state === "paused" && member.paused_reason) {
      state.textContent += ` (${member.paused_reason})`;
    }
    const since = document.createElement("td");
    since.className = "since";
    setSince(since, member.since);
    rows.push(row);
    row.append(who, state, since);
  }
  body.replaceChildren(...rows);
}

function render(snapshot) {
  clockOffset = snapshot.time - Date.now() / 1000;
  document.getElementById("sl-seconds").textContent = String(snapshot.service_level_seconds);
  document.getElementById("sl-day").textContent = snapshot.day;
  document.getElementById("node-state").textContent = snapshot.draining ? "draining" : "";
  const seen = new Set();
  for (const group of snapshot.groups) {
    seen.add(group.group);
    const section = groupSection(group.group);
    section.querySelector(".name").textContent = group.group;
    section.querySelector(".pilot").textContent = group.pilot;
    const waiting = section.querySelector(".waiting");
    waiting.textContent = String(group.callers);
    section.dataset.waiting = String(group.callers);
    setSince(section.querySelector(".oldest-wait"), group.oldest_since);
    section.querySelector(".free").textContent = `${group.members_free} / ${group.members_total}`;
    renderServiceLevel(section, group.service_level);
    renderMembers(section, group.members);
  }
  for (const section of document.querySelectorAll("section.group")) {
    if (!seen.has(section.dataset.group)) {
      section.remove();
    }
  }
}

function showConnection(state, text) {
  const element = document.getElementById("connection");
  element.dataset.state = state;
  element.textContent = text;
}

async function signedOut() {
  // A stream the server refused: our cookie may be void (the token changed). The page
  // itself is refused then (a redirect to the sign-in page, or 401).
  try {
    const answer = await fetch("/", { method: "HEAD", redirect: "manual" });
    return answer.type === "opaqueredirect" || answer.status === 401;
  } catch (failure) {
    return false; // the server is away: try the stream again later
  }
}

function connect() {
  const source = new EventSource("/events");
  source.addEventListener("open", () => showConnection("live", "live"));
  source.addEventListener("snapshot", (received) => {
    showConnection("live", "live");
    render(JSON.parse(received.data));
  });
  source.addEventListener("error", async () => {
    if (source.readyState !== EventSource.CLOSED) {
      showConnection("reconnecting", "reconnecting…");
      return; // the browser reconnects by itself
    }
    showConnection("offline", "offline, retrying…");
    if (await signedOut()) {
      window.location.replace("/login");
      return;
    }
    setTimeout(connect, RECONNECT_MS);
  });
}

connect();
setInterval(tick, 1000);
