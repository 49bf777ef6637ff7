#!/usr/bin/env node
// Reference runner for the bnfold tests: evaluates an ONNX model once in
// onnxruntime (CPU provider, every graph optimisation switched off so ORT
// does not fuse BatchNormalization on its own) and stores the outputs as
// .npy files.
//
//   node tests/ort/run.js MODEL.onnx OUTDIR [NAME=FILE.npy ...]
//
// Writes OUTDIR/<k>.npy for output number k and OUTDIR/outputs.json holding
// the output names in graph order.  Any failure prints a single line on
// stderr and exits with status 2.
//
// Must keep working on node 18 (Debian 12's nodejs), so only plain CommonJS
// and long-standing Buffer/typed-array APIs are used here.
'use strict';

const fs = require('fs');
const path = require('path');

const PROG = 'ort/run.js';

class UsageError extends Error {}

function die(err) {
  let msg = err && err.message !== undefined ? String(err.message) : String(err);
  msg = msg.replace(/\s*\n\s*/g, ' | ').trim();
  process.stderr.write(`${PROG}: ${msg || 'unknown error'}\n`);
  process.exit(2);
}

// ---------------------------------------------------------------------------
// .npy support.  Only little-endian (or byte-order-free) C-ordered arrays of
// the element types below are handled; anything else is rejected.

// npy kind+size -> ORT tensor type name and the typed array that holds it.
const NPY_TYPES = {
  f4: { ort: 'float32', Arr: Float32Array },
  f8: { ort: 'float64', Arr: Float64Array },
  f2: { ort: 'float16', Arr: Uint16Array }, // ORT wants raw half bits
  i8: { ort: 'int64', Arr: BigInt64Array },
  i4: { ort: 'int32', Arr: Int32Array },
  i2: { ort: 'int16', Arr: Int16Array },
  i1: { ort: 'int8', Arr: Int8Array },
  u1: { ort: 'uint8', Arr: Uint8Array },
  u2: { ort: 'uint16', Arr: Uint16Array },
  u4: { ort: 'uint32', Arr: Uint32Array },
  u8: { ort: 'uint64', Arr: BigUint64Array },
  b1: { ort: 'bool', Arr: Uint8Array },
};

// ORT tensor type name -> npy descr used when writing outputs.
const ORT_TO_DESCR = {
  float32: '<f4',
  float64: '<f8',
  float16: '<f2',
  int64: '<i8',
  int32: '<i4',
  int16: '<i2',
  int8: '|i1',
  uint8: '|u1',
  uint16: '<u2',
  uint32: '<u4',
  uint64: '<u8',
  bool: '|b1',
};

const MAGIC = Buffer.from([0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59]); // \x93NUMPY

function parseNpyHeader(text, file) {
  const descrM = /['"]descr['"]\s*:\s*['"]([^'"]+)['"]/.exec(text);
  const fortM = /['"]fortran_order['"]\s*:\s*(True|False)/.exec(text);
  const shapeM = /['"]shape['"]\s*:\s*\(([^)]*)\)/.exec(text);
  if (!descrM || !fortM || !shapeM) {
    throw new Error(`${file}: malformed .npy header`);
  }
  const shape = [];
  for (const part of shapeM[1].split(',')) {
    const t = part.trim().replace(/L$/, '');
    if (t === '') continue;
    if (!/^\d+$/.test(t)) throw new Error(`${file}: bad shape entry '${t}'`);
    shape.push(Number(t));
  }
  return { descr: descrM[1], fortran: fortM[1] === 'True', shape };
}

function readNpy(file) {
  let buf;
  try {
    buf = fs.readFileSync(file);
  } catch (e) {
    throw new Error(`cannot read ${file}: ${e.code || e.message}`);
  }
  if (buf.length < 10 || !buf.subarray(0, 6).equals(MAGIC)) {
    throw new Error(`${file}: not a .npy file`);
  }
  const major = buf[6];
  let hlen;
  let hstart;
  if (major === 1) {
    hlen = buf.readUInt16LE(8);
    hstart = 10;
  } else if (major === 2 || major === 3) {
    if (buf.length < 12) throw new Error(`${file}: truncated .npy header`);
    hlen = buf.readUInt32LE(8);
    hstart = 12;
  } else {
    throw new Error(`${file}: unsupported .npy format version ${major}.${buf[7]}`);
  }
  if (hstart + hlen > buf.length) throw new Error(`${file}: truncated .npy header`);
  const hdr = parseNpyHeader(buf.toString(major === 3 ? 'utf8' : 'latin1', hstart, hstart + hlen), file);

  const m = /^([<>|=])([a-z])(\d+)$/.exec(hdr.descr);
  if (!m) throw new Error(`${file}: unsupported dtype '${hdr.descr}'`);
  const [, order, kind, size] = m;
  const info = NPY_TYPES[kind + size];
  if (!info) throw new Error(`${file}: unsupported dtype '${hdr.descr}'`);
  if (order === '>' && size !== '1') {
    throw new Error(`${file}: big-endian data ('${hdr.descr}') is not supported`);
  }
  if (hdr.fortran && hdr.shape.filter((d) => d > 1).length > 1) {
    throw new Error(`${file}: Fortran-ordered arrays are not supported`);
  }

  const count = hdr.shape.reduce((a, b) => a * b, 1);
  const nbytes = count * info.Arr.BYTES_PER_ELEMENT;
  const dstart = hstart + hlen;
  if (buf.length - dstart < nbytes) {
    throw new Error(`${file}: expected ${nbytes} data bytes, found ${buf.length - dstart}`);
  }
  // Copy into a fresh ArrayBuffer: the payload offset inside the file need not
  // be aligned for the typed array.
  const ab = new ArrayBuffer(nbytes);
  new Uint8Array(ab).set(buf.subarray(dstart, dstart + nbytes));
  return { type: info.ort, data: new info.Arr(ab, 0, count), dims: hdr.shape };
}

function shapeLiteral(dims) {
  if (dims.length === 0) return '()';
  if (dims.length === 1) return `(${dims[0]},)`;
  return `(${dims.join(', ')})`;
}

function writeNpy(file, type, dims, data) {
  const descr = ORT_TO_DESCR[type];
  if (!descr) throw new Error(`cannot store output of type '${type}' as .npy`);
  const base = `{'descr': '${descr}', 'fortran_order': False, 'shape': ${shapeLiteral(dims)}, }`;
  // The header text is space-padded and newline-terminated so that the data
  // begins on a 64-byte boundary.  Version 1.0 stores its length in 16 bits;
  // fall back to 2.0 (32 bits) for absurdly long shapes.
  const padTo = (pre) => {
    const used = pre + base.length + 1;
    return base + ' '.repeat((64 - (used % 64)) % 64) + '\n';
  };
  let pre = 10;
  let dict = padTo(pre);
  if (dict.length > 0xffff) {
    pre = 12;
    dict = padTo(pre);
  }
  const head = Buffer.alloc(pre);
  MAGIC.copy(head, 0);
  if (pre === 10) {
    head[6] = 1;
    head[7] = 0;
    head.writeUInt16LE(dict.length, 8);
  } else {
    head[6] = 2;
    head[7] = 0;
    head.writeUInt32LE(dict.length, 8);
  }
  const body = Buffer.from(data.buffer, data.byteOffset, data.byteLength);
  fs.writeFileSync(file, Buffer.concat([head, Buffer.from(dict, 'latin1'), body]));
}

// ---------------------------------------------------------------------------

function parseArgs(argv) {
  if (argv.length < 2) {
    throw new UsageError('usage: node run.js MODEL.onnx OUTDIR [NAME=FILE.npy ...]');
  }
  const [model, outdir, ...rest] = argv;
  const feeds = new Map();
  for (const arg of rest) {
    const eq = arg.indexOf('=');
    if (eq <= 0 || eq === arg.length - 1) {
      throw new UsageError(`bad input argument '${arg}' (expected NAME=FILE.npy)`);
    }
    const name = arg.slice(0, eq);
    if (feeds.has(name)) throw new UsageError(`input '${name}' given twice`);
    feeds.set(name, arg.slice(eq + 1));
  }
  return { model, outdir, feeds };
}

function loadOrt() {
  try {
    return require('onnxruntime-node');
  } catch (e) {
    throw new Error(
      `cannot load onnxruntime-node (${e.message}); run 'sh tests/ort/install.sh' first`);
  }
}

async function main() {
  const args = parseArgs(process.argv.slice(2));
  if (!fs.existsSync(args.model)) throw new Error(`model not found: ${args.model}`);
  const ort = loadOrt();

  const session = await ort.InferenceSession.create(args.model, {
    executionProviders: ['cpu'],
    graphOptimizationLevel: 'disabled',
    intraOpNumThreads: 1,
    interOpNumThreads: 1,
    logSeverityLevel: 3,
  });

  const known = new Set(session.inputNames);
  for (const name of args.feeds.keys()) {
    if (!known.has(name)) {
      throw new Error(`model has no input '${name}' (inputs: ${session.inputNames.join(', ') || 'none'})`);
    }
  }
  const missing = session.inputNames.filter((n) => !args.feeds.has(n));
  if (missing.length) throw new Error(`no value given for input(s): ${missing.join(', ')}`);

  const feeds = {};
  for (const [name, file] of args.feeds) {
    const a = readNpy(file);
    feeds[name] = new ort.Tensor(a.type, a.data, a.dims);
  }

  const results = await session.run(feeds);

  fs.mkdirSync(args.outdir, { recursive: true });
  const names = session.outputNames;
  names.forEach((name, k) => {
    const t = results[name];
    if (!t) throw new Error(`onnxruntime returned no value for output '${name}'`);
    writeNpy(path.join(args.outdir, `${k}.npy`), t.type, Array.from(t.dims), t.data);
  });
  fs.writeFileSync(path.join(args.outdir, 'outputs.json'), JSON.stringify(names) + '\n');
}

process.on('unhandledRejection', die);
main().then(
  () => process.exit(0),
  die,
);
