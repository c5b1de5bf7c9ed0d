// The Socket.IO connection to the /agent namespace (PROTOCOL.md): acknowledgements as promises,
// and the connection state the header shows. socket.io-client reconnects by itself after a
// network loss; a refusal (bad token, wrong role, full server) is reported instead.

export class SocketError extends Error {
  constructor(code, message, details = {}) {
    super(message);
    this.code = code;
    this.details = details;
  }
}

const ACK_TIMEOUT_MS = 10000;
const REFRESH_ACK_MS = 3000;   // auth:refresh unanswered this long: reconnect with the new token

/**
 * Connect. Callbacks: onState("connected" | "reconnecting" | "offline"), onConnect() after every
 * (re)connection, onRefused(message, code) when the server refuses the connection.
 */
export function connectLive(token, { onState, onConnect, onRefused }) {
  const socket = window.io("/agent", {
    path: "/ws/chat",
    auth: { token },
    reconnectionDelay: 500,
    reconnectionDelayMax: 3000,
  });
  const pending = new Set();   // calls waiting for an ack; failed at once when the connection drops

  socket.on("connect", () => {
    onState("connected");
    onConnect();
  });
  socket.on("disconnect", () => {
    for (const entry of pending) entry.reject(new SocketError("disconnected", "The connection was lost"));
    pending.clear();
    onState(socket.active ? "reconnecting" : "offline");
  });
  socket.on("connect_error", (error) => {
    if (socket.active) {           // a network problem: socket.io retries by itself
      onState("reconnecting");
      return;
    }
    onRefused(error.message || "The server refused the connection", error.data?.code || "unauthorized");
  });

  /** Emit an event; resolves to the ack's data, rejects with a SocketError. */
  function call(event, data = {}, timeoutMs = ACK_TIMEOUT_MS) {
    return new Promise((resolve, reject) => {
      if (!socket.connected) {
        reject(new SocketError("disconnected", "Not connected; it will be retried when the connection is back"));
        return;
      }
      const entry = { reject };
      pending.add(entry);
      socket.timeout(timeoutMs).emit(event, data, (timeoutError, ack) => {
        if (!pending.delete(entry)) return;
        if (timeoutError) {
          reject(new SocketError("timeout", "The server did not answer in time"));
        } else if (ack && ack.ok) {
          resolve(ack.data || {});
        } else {
          const error = ack?.error || {};
          reject(new SocketError(error.code || "internal", error.message || "Something went wrong", error.details));
        }
      });
    });
  }

  /** Use a new token: for every later (re)connection, and on this connection at once, through
   * `auth:refresh` (PROTOCOL.md); a server that refuses or does not answer it in time (one
   * without the event) gets a reconnection with the new token instead, after which the chats
   * resume as after any reconnection. */
  async function renew(newToken) {
    socket.auth = { token: newToken };
    if (!socket.connected) return;          // the next (re)connection presents it
    try {
      await call("auth:refresh", { token: newToken }, REFRESH_ACK_MS);
    } catch (error) {
      if (error.code === "disconnected") return;   // reconnecting anyway, with the new token
      socket.disconnect().connect();
    }
  }

  return {
    call,
    renew,
    on: (event, handler) => socket.on(event, handler),
    connected: () => socket.connected,
    retry: () => socket.connect(),
    close: () => socket.disconnect(),
  };
}
