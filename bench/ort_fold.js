#!/usr/bin/env node
// Benchmark peer of bnfold's fold: onnxruntime-node's own offline
// optimisation. Creating a session with graphOptimizationLevel 'basic'
// (which includes its Conv+BatchNormalization fusion) and
// optimizedModelFilePath writes the optimised model to OUT.
//
//   node bench/ort_fold.js MODEL.onnx OUT.onnx
'use strict';

const path = require('path');
const ort = require(path.join(__dirname, '..', 'tests', 'ort', 'node_modules',
                              'onnxruntime-node'));

ort.InferenceSession.create(process.argv[2], {
  graphOptimizationLevel: 'basic',
  optimizedModelFilePath: process.argv[3],
}).catch((e) => { process.stderr.write(`ort_fold.js: ${e.message}\n`); process.exit(2); });
