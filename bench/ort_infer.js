#!/usr/bin/env node
// Benchmark peer of bnfold's check: onnxruntime-node (CPU) loads MODEL and
// runs two inferences on random inputs (default 1x3x224x224; DIMS such as
// 1x3x8x112x112 otherwise) in this one process. Prints "load_s infer_s"
// (session creation, then both runs) on stdout.
//
//   node bench/ort_infer.js MODEL.onnx [THREADS [DIMS]]
'use strict';

const path = require('path');
const ort = require(path.join(__dirname, '..', 'tests', 'ort', 'node_modules',
                              'onnxruntime-node'));

async function main() {
  const model = process.argv[2];
  const threads = Number(process.argv[3] || 0);
  const dims = (process.argv[4] || '1x3x224x224').split('x').map(Number);
  const count = dims.reduce((a, b) => a * b, 1);
  const t0 = process.hrtime.bigint();
  const opts = threads > 0 ? { intraOpNumThreads: threads } : {};
  const session = await ort.InferenceSession.create(model, opts);
  const t1 = process.hrtime.bigint();
  const name = session.inputNames[0];
  let seed = 1;
  for (let s = 0; s < 2; s++) {
    const x = new Float32Array(count);
    for (let i = 0; i < x.length; i++) {
      seed = (seed * 1103515245 + 12345) % 2147483648;
      x[i] = seed / 2147483648 * 2 - 1;
    }
    await session.run({ [name]: new ort.Tensor('float32', x, dims) });
  }
  const t2 = process.hrtime.bigint();
  process.stdout.write(`${Number(t1 - t0) / 1e9} ${Number(t2 - t1) / 1e9}\n`);
}

main().catch((e) => { process.stderr.write(`ort_infer.js: ${e.message}\n`); process.exit(2); });
