/** `@unc/sdk/schema`: the RPC's one schema (methods, parameters, results) and its parameter parser. */
export * from './methods.js';
export * from './parse.js';
export * as results from './results.js';
export * from './shapes.js';
export * from './values.js';
