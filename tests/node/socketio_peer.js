// One Socket.IO client of the official Node socket.io-client, driven over stdin/stdout by
// tests/test_socket_lean.py: argv = url, path, namespace, token, transports (comma-separated).
// stdin, one JSON per line: {"id": n, "emit": event, "data": payload} -> {"ack": n, "data": ...}
// stdout, one JSON per line: {"connected": sid, "transport": name} | {"connect_error": {...}}
//                            | {"event": name, "data": payload} | {"disconnected": reason}
"use strict";
const readline = require("node:readline");
const { io } = require("socket.io-client");

const [url, path, namespace, token, transports] = process.argv.slice(2);
const out = (obj) => process.stdout.write(JSON.stringify(obj) + "\n");

const socket = io(url + namespace, {
  path,
  auth: { token },
  transports: transports.split(","),
  reconnection: false,
});
socket.on("connect", () => out({ connected: socket.id, transport: socket.io.engine.transport.name }));
socket.on("connect_error", (err) => out({ connect_error: { message: err.message, data: err.data } }));
socket.on("disconnect", (reason) => out({ disconnected: reason }));
socket.onAny((event, data) => out({ event, data }));

readline.createInterface({ input: process.stdin }).on("line", (line) => {
  const command = JSON.parse(line);
  socket.timeout(10000).emit(command.emit, command.data, (err, answer) =>
    out({ ack: command.id, data: err ? { timeout: true } : answer }),
  );
});
process.stdin.on("end", () => {
  socket.close();
  process.exit(0);
});
