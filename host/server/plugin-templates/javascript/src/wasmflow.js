// Helpers for wasmflow flavor plugins written in JavaScript (the Rust SDK's helpers, in JS).
// The WIT values arrive as jco maps them: a variant is `{ tag, val }`, a list of numbers a typed
// array, an `s64` a BigInt.

import { getDirectories } from 'wasi:filesystem/preopens@0.2.12';
import { log as hostLog } from 'wasmflow:plugin/host@0.1.0';

export * from './matrix.js';
import { PluginError, invalidModel } from './matrix.js';

/**
 * Runs `f`, handing a `PluginError` to the host as the export's `error` result and turning any
 * other exception (a bug) into an `internal` error instead of a trap.
 */
export function guarded(f) {
  try {
    return f();
  } catch (e) {
    if (e instanceof PluginError) throw { kind: e.kind, message: e.message };
    throw { kind: 'internal', message: e && e.message ? e.message : String(e) };
  }
}

/** A line in the server's log at `level` (trace, debug, info, warn, error). */
export function log(level, message) {
  hostLog(level, message);
}

/** `load`'s argument: `{ flavor, section }`. */
export function parseLoadConfig(config) {
  try {
    const cfg = JSON.parse(config);
    return { flavor: cfg.flavor, section: cfg.section || {} };
  } catch (e) {
    throw invalidModel(`bad load config: ${e.message}`);
  }
}

/** The bytes of a file of the model directory (mounted read-only at /model) as text. */
export function readModelFile(relPath) {
  if (typeof relPath !== 'string' || relPath === '' || relPath.startsWith('/') ||
      relPath.split('/').includes('..')) {
    throw invalidModel(`bad model file path '${relPath}'`);
  }
  const preopen = getDirectories().find(([, guestPath]) => guestPath === '/model');
  if (!preopen) throw invalidModel('the host did not mount the model directory at /model');
  let file;
  try {
    file = preopen[0].openAt({ symlinkFollow: true }, relPath, {}, { read: true });
  } catch (e) {
    throw invalidModel(`cannot read '${relPath}': ${e && e.payload !== undefined ? e.payload : e}`);
  }
  const chunks = [];
  let offset = 0n;
  for (;;) {
    const [bytes, eof] = file.read(65536n, offset);
    chunks.push(bytes);
    offset += BigInt(bytes.length);
    if (eof || bytes.length === 0) break;
  }
  return new TextDecoder().decode(concat(chunks));
}

function concat(chunks) {
  const all = new Uint8Array(chunks.reduce((n, c) => n + c.length, 0));
  let at = 0;
  for (const c of chunks) {
    all.set(c, at);
    at += c.length;
  }
  return all;
}
