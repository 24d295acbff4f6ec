// The live view's event stream (Server-Sent Events on /api/watch/NAME/events): every committed write
// arrives as a "samples" event; "denied" means access ended; "reset" means the server could not replay
// what was missed. When the browser gives up on the stream, the window is reloaded (which says why)
// and a new stream opened, with a growing delay.

// url(lastEventId): the stream's address. hooks: {reload() -> Promise<lastEventId or null>,
// samples(list), denied(body), reset(), changed()} (changed: the connection state changed).
export function createStream(state, url, hooks) {
  let source = null;
  let reconnectTimer = null;
  let reconnectDelay = 1000;
  let failed = false; // until the first error the badge says "connecting", not "offline"

  function connect(lastEventId) {
    if (source) source.close();
    const es = new EventSource(url(lastEventId));
    source = es;
    es.onopen = () => {
      if (source !== es) return;
      state.connected = true;
      reconnectDelay = 1000;
      hooks.changed();
    };
    es.onerror = () => {
      if (source !== es) return;
      state.connected = false;
      failed = true;
      hooks.changed();
      // CONNECTING: the browser retries by itself and sends Last-Event-ID. CLOSED (an HTTP error such as
      // a revoked link): it gave up, so we reload the window (which tells us why) and open a new stream.
      if (es.readyState === EventSource.CLOSED) scheduleReconnect();
    };
    es.addEventListener("samples", (e) => {
      if (source !== es) return;
      state.lastEventId = e.lastEventId || state.lastEventId;
      state.eventsReceived += 1;
      let data;
      try {
        data = JSON.parse(e.data);
      } catch (err) {
        return;
      }
      hooks.samples(data.samples || []);
    });
    es.addEventListener("denied", (e) => {
      if (source !== es) return;
      // The owner revoked the link, made the profile private or removed the share.
      let body = {};
      try {
        body = JSON.parse(e.data);
      } catch (err) {
        /* keep the generic text */
      }
      es.close();
      state.connected = false;
      failed = true;
      hooks.denied(body);
      hooks.changed();
      scheduleReconnect();
    });
    es.addEventListener("reset", () => {
      if (source !== es) return;
      state.resets += 1;
      hooks.reset();
    });
  }

  function scheduleReconnect() {
    if (reconnectTimer) return;
    if (source) source.close();
    source = null;
    reconnectTimer = setTimeout(async () => {
      reconnectTimer = null;
      const lastEventId = await hooks.reload();
      if (lastEventId === null && state.error) {
        reconnectDelay = Math.min(reconnectDelay * 2, 60e3);
        scheduleReconnect();
        return;
      }
      connect(lastEventId);
    }, reconnectDelay);
    reconnectDelay = Math.min(reconnectDelay * 2, 30e3);
  }

  return { connect: connect, scheduleReconnect: scheduleReconnect, failed: () => failed };
}
