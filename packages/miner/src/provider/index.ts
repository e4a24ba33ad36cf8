export * from './auth.js';
export * from './errors.js';
export * from './lease.js';
export * from './models.js';
export * from './ocr.js';
export * from './onnx.js';
export * from './queue.js';
export * from './server.js';
