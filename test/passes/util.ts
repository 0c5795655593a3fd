/** Helpers for pass tests: seeded random inputs, fixture loading, and comparison with the oracle. */
import { readFileSync } from 'node:fs'
import { expect } from 'vitest'
import { importModel } from '../../compiler/onnx-import.js'
import { readNpy } from '../../compiler/npy.js'
import { GraphBuilder } from '../../ir/builder.js'
import type { Graph } from '../../ir/graph.js'
import { RawAttrs, type AttrValue } from '../../ir/op.js'
import { OPS } from '../../ir/ops/index.js'
import { interpret } from '../../ir/interpret.js'
import { tensor, sizeOf, type Tensor } from '../../ir/tensor.js'
import { argmax, top1Agreement } from '../../passes/ola.js'
import type { Pass } from '../../passes/pass.js'
import { passContext, runPipeline } from '../../passes/pass.js'
import { digits } from '../helpers.js'

/** Deterministic uniform values in [lo, hi) (mulberry32). */
export function random(shape: readonly number[], seed = 1, lo = -2, hi = 2): Tensor {
  let s = seed >>> 0
  const next = () => {
    s = (s + 0x6d2b79f5) >>> 0
    let t = s
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
  return tensor('float32', shape, Array.from({ length: sizeOf(shape) }, () => lo + (hi - lo) * next()))
}

export function fixture(name: string): Graph {
  return importModel(readFileSync(digits(`${name}.onnx`)), { file: `${name}.onnx` })
}

/** The digits test images, or the first n of them. */
export function testX(n?: number): Tensor {
  const x = readNpy(digits('test_x.npy'))
  if (n === undefined) return x
  const per = sizeOf(x.shape.slice(1))
  return tensor(x.dtype, [n, ...x.shape.slice(1)], x.data.slice(0, n * per))
}

/** Run passes (verifying after each). */
export function apply(g: Graph, ...passes: Pass[]): Graph {
  return runPipeline(g, passes, passContext())
}

export function run(g: Graph, inputs: Tensor[]): Tensor[] {
  const out = interpret(g, inputs)
  return g.outputs.map((o) => out.get(o)!)
}

/** max |a - b| over every output, and the largest |a|. */
export function compare(a: Graph, b: Graph, inputs: Tensor[]): { maxAbs: number; scale: number } {
  const [ra, rb] = [run(a, inputs), run(b, inputs)]
  let maxAbs = 0
  let scale = 0
  ra.forEach((t, k) => {
    expect(rb[k].shape).toEqual(t.shape)
    t.data.forEach((v, i) => {
      maxAbs = Math.max(maxAbs, Math.abs(v - rb[k].data[i]))
      scale = Math.max(scale, Math.abs(v))
    })
  })
  return { maxAbs, scale }
}

/** The transformed graph computes what the original does, to `rel` of the outputs' magnitude. */
export function expectSame(before: Graph, after: Graph, inputs: Tensor[], rel = 1e-9): void {
  const { maxAbs, scale } = compare(before, after, inputs)
  expect(maxAbs).toBeLessThanOrEqual(rel * Math.max(scale, 1e-300))
}

/**
 * `after`, compiled from the digits fixture `name` (imported as `before`), keeps every test-set top-1
 * of the original and of PyTorch's reference logits, and the logits to `rel` (see expectSame).
 */
export function expectKeepsFixture(name: string, before: Graph, after: Graph, rel: number): void {
  const x = testX()
  const [a, b] = [run(before, [x])[0], run(after, [x])[0]]
  expect(top1Agreement(a, b)).toBe(1)
  expect(top1Agreement(readNpy(digits(`ref_${name}.npy`)), b)).toBe(1)
  expectSame(before, after, [x], rel)
}

export function ops(g: Graph): Record<string, number> {
  const c: Record<string, number> = {}
  for (const n of g.nodes) c[n.op] = (c[n.op] ?? 0) + 1
  return c
}

/** Top-1 class of row i of an [N, K] logit tensor (written here, independent of the code under test). */
/** Top-1 agreement of two [N, K] logit tensors. */
export { top1Agreement as agreement } from '../../passes/ola.js'

/** Top-1 accuracy of a digits graph on the test images. */
export function accuracy(g: Graph): number {
  const [o] = run(g, [testX()])
  const y = readNpy(digits('test_y.npy'))
  let right = 0
  argmax(o).forEach((v, i) => (right += v === y.data[i] ? 1 : 0))
  return right / o.shape[0]
}

/** Add an ONNX op with raw ONNX attributes (parsed by the op table like the importer does). */
export function onnxNode(b: GraphBuilder, op: string, inputs: string[], name: string, raw: Record<string, AttrValue> = {}): string {
  return b.add(op, inputs, OPS[op].attrs(RawAttrs.of(raw, b.opset)), { name }).name
}

export function constant(b: GraphBuilder, name: string, shape: number[], values: number[] | Tensor): string {
  return b.constant(name, Array.isArray(values) ? tensor('float32', shape, values) : values).name
}

/** The graph without its constants, one `name = Op(inputs)` per node (constant inputs as `#name`). */
export function skeleton(g: Graph): string[] {
  const consts = new Set(g.nodes.filter((n) => n.op === 'Constant').map((n) => n.name))
  return g.nodes
    .filter((n) => n.op !== 'Constant' && n.op !== 'Input')
    .map((n) => `${n.name} = ${n.op}(${n.inputs.map((i) => (consts.has(i) ? `#${i}` : i)).join(', ')})`)
}
