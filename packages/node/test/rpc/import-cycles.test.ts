/**
 * The node's modules import each other without cycles: the RPC is built from a narrow context
 * (rpc/context.ts), so api.ts and market-api.ts no longer import node.ts, which imports them.
 * The imports are read with the TypeScript compiler's own pre-processor (type-only imports
 * included: a type cycle still ties the modules together for a reader).
 */
import assert from 'node:assert/strict';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';

const SRC = resolve(dirname(fileURLToPath(import.meta.url)), '../../../src');

function sources(dir: string, out: string[] = []): string[] {
  for (const name of readdirSync(dir)) {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) sources(path, out);
    else if (name.endsWith('.ts') && !name.endsWith('.d.ts')) out.push(path);
  }
  return out;
}

/** Module → the modules of this package it imports (relative specifiers, .js → .ts). */
function importGraph(root: string): Map<string, string[]> {
  const graph = new Map<string, string[]>();
  for (const file of sources(root)) {
    const info = ts.preProcessFile(readFileSync(file, 'utf8'), true, true);
    const deps = info.importedFiles
      .map((f) => f.fileName)
      .filter((s) => s.startsWith('.'))
      .map((s) => relative(root, resolve(dirname(file), s.replace(/\.js$/, '.ts'))));
    graph.set(relative(root, file), deps);
  }
  return graph;
}

/** Strongly connected components with more than one module (or a module importing itself). */
export function cycles(graph: Map<string, string[]>): string[][] {
  let next = 0;
  const index = new Map<string, number>();
  const low = new Map<string, number>();
  const stack: string[] = [];
  const onStack = new Set<string>();
  const out: string[][] = [];
  const visit = (v: string) => {
    index.set(v, next);
    low.set(v, next++);
    stack.push(v);
    onStack.add(v);
    for (const w of graph.get(v) ?? []) {
      if (!index.has(w)) {
        visit(w);
        low.set(v, Math.min(low.get(v)!, low.get(w)!));
      } else if (onStack.has(w)) low.set(v, Math.min(low.get(v)!, index.get(w)!));
    }
    if (low.get(v) === index.get(v)) {
      const scc: string[] = [];
      for (let w = stack.pop()!; ; w = stack.pop()!) {
        onStack.delete(w);
        scc.push(w);
        if (w === v) break;
      }
      if (scc.length > 1 || (graph.get(v) ?? []).includes(v)) out.push(scc.sort());
    }
  };
  for (const v of graph.keys()) if (!index.has(v)) visit(v);
  return out;
}

test('the cycle finder finds a planted cycle (the check below can fail)', () => {
  const graph = new Map([
    ['node.ts', ['api.ts', 'chain.ts']],
    ['api.ts', ['market-api.ts']],
    ['market-api.ts', ['node.ts']],
    ['chain.ts', []],
  ]);
  assert.deepEqual(cycles(graph), [['api.ts', 'market-api.ts', 'node.ts']]);
  graph.set('market-api.ts', ['rpc/context.ts']);
  assert.deepEqual(cycles(graph), []);
});

test('no import cycle among the node package’s modules (node.ts ↔ api.ts ↔ market-api.ts is gone)', () => {
  const graph = importGraph(SRC);
  assert.ok(graph.has('node.ts') && graph.has('api.ts') && graph.has('market-api.ts'), 'read the sources');
  assert.ok(graph.get('node.ts')!.includes('api.ts'), 'node.ts builds the RPC');
  assert.deepEqual(cycles(graph), []);
});
