// Live figures: the subscriptions licenseChanged and alertsChanged over one websocket
// (graphql-transport-ws, signed in by the tab's session cookie). Only when the socket cannot be
// used does the page poll instead (every 30 seconds, backing off while the server fails); it
// tries the socket again now and then, and stops polling once the socket is back.

const PROTOCOL = "graphql-transport-ws";
export const POLL_MS = 30_000;
const MAX_BACKOFF_MS = 5 * 60_000;
const RECONNECT_MS = 30_000;
// The server closes with these when the connection is not signed in: polling finds out why.
const NOT_SIGNED_IN = new Set([4401, 4403]);

/**
 * new LiveFigures({licenseQuery, alertsQuery, onLicense, onAlerts, poll, onMode}).start()
 * - onLicense(license) / onAlerts(alerts): a subscription sent new figures.
 * - poll(): reads everything once; resolves to true when it worked (drives the backoff).
 * - onMode(mode, retryInMs): "connecting", "live", or "polling" (retryInMs: the next poll).
 */
export class LiveFigures {
  constructor({ licenseQuery, alertsQuery, onLicense, onAlerts, poll, onMode }) {
    Object.assign(this, { licenseQuery, alertsQuery, onLicense, onAlerts, poll, onMode });
    this.socket = null;
    this.mode = "stopped";
    this.pollTimer = null;
    this.reconnectTimer = null;
    this.failures = 0;
    this.reconnects = 0;
  }

  start() {
    this.stopped = false;
    this.connect();
  }

  stop() {
    this.stopped = true;
    this.clearTimers();
    if (this.socket) {
      const socket = this.socket;
      this.socket = null;
      socket.onclose = null;
      socket.close(1000, "signed out");
    }
    this.setMode("stopped");
  }

  /** The poll's delay now: 30 s, doubling (up to 5 minutes) after each failed read. */
  pollDelay() {
    return this.failures === 0 ? POLL_MS : Math.min(POLL_MS * 2 ** this.failures, MAX_BACKOFF_MS);
  }

  /** A read outside the schedule worked or failed (e.g. after Refresh now). */
  noteRead(ok) {
    this.failures = ok ? 0 : this.failures + 1;
    if (this.mode === "polling") this.schedulePoll();
  }

  setMode(mode) {
    this.mode = mode;
    document.body.dataset.live = mode;
    this.onMode?.(mode, mode === "polling" ? this.pollDelay() : 0);
  }

  clearTimers() {
    window.clearTimeout(this.pollTimer);
    window.clearTimeout(this.reconnectTimer);
    this.pollTimer = null;
    this.reconnectTimer = null;
  }

  connect() {
    if (this.stopped) return;
    this.setModeIfNotPolling("connecting");
    const scheme = window.location.protocol === "https:" ? "wss:" : "ws:";
    let socket;
    try {
      socket = new WebSocket(`${scheme}//${window.location.host}/graphql`, PROTOCOL);
    } catch {
      this.fallBack();
      return;
    }
    this.socket = socket;
    let acknowledged = false;
    socket.onopen = () => socket.send(JSON.stringify({ type: "connection_init", payload: {} }));
    socket.onmessage = (event) => {
      let message;
      try {
        message = JSON.parse(event.data);
      } catch {
        return;
      }
      if (message.type === "connection_ack") {
        acknowledged = true;
        this.reconnects = 0;
        this.subscribe(socket, "license", this.licenseQuery);
        this.subscribe(socket, "alerts", this.alertsQuery);
        window.clearTimeout(this.pollTimer);
        this.pollTimer = null;
        this.failures = 0;
        this.setMode("live");
      } else if (message.type === "ping") {
        socket.send(JSON.stringify({ type: "pong" }));
      } else if (message.type === "next") {
        const { data, errors } = message.payload || {};
        if (errors?.length || !data) {
          socket.close(4000, "subscription failed");
        } else if (message.id === "license" && data.licenseChanged) {
          this.onLicense(data.licenseChanged);
        } else if (message.id === "alerts" && data.alertsChanged) {
          this.onAlerts(data.alertsChanged);
        }
      } else if (message.type === "error" || message.type === "complete") {
        socket.close(4000, "subscription ended");
      }
    };
    socket.onclose = (event) => {
      if (this.socket !== socket) return;
      this.socket = null;
      if (this.stopped) return;
      if (NOT_SIGNED_IN.has(event.code) || !acknowledged) this.reconnects += 1;
      this.fallBack();
    };
  }

  setModeIfNotPolling(mode) {
    if (this.mode !== "polling") this.setMode(mode);
  }

  subscribe(socket, id, query) {
    socket.send(JSON.stringify({ id, type: "subscribe", payload: { query } }));
  }

  /** The socket failed: poll now and on a schedule, and try the socket again later. */
  fallBack() {
    const wasPolling = this.mode === "polling";
    this.setMode("polling");
    if (!wasPolling) this.pollNow();
    const wait = Math.min(RECONNECT_MS * 2 ** Math.max(0, this.reconnects - 1), MAX_BACKOFF_MS);
    window.clearTimeout(this.reconnectTimer);
    this.reconnectTimer = window.setTimeout(() => this.connect(), wait);
  }

  async pollNow() {
    window.clearTimeout(this.pollTimer);
    this.pollTimer = null;
    const ok = await this.poll();
    if (this.stopped) return;
    this.failures = ok ? 0 : this.failures + 1;
    if (this.mode === "polling") {
      this.schedulePoll();
      this.onMode?.("polling", this.pollDelay());
    }
  }

  schedulePoll() {
    window.clearTimeout(this.pollTimer);
    this.pollTimer = window.setTimeout(() => this.pollNow(), this.pollDelay());
  }
}
