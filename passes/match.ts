/**
 * Pattern-matching helpers shared by the rewriting passes (not a pass): constant lookups, products
 * flattened into factors, per-channel constants, and tolerant comparison of float32 constants.
 */
import type { TensorType } from '../ir/tensor.js'
import { sizeOf, tensor, type Tensor } from '../ir/tensor.js'
import type { RewriteContext } from '../ir/rewrite.js'
import type { Node } from '../ir/graph.js'
import { broadcastShapes } from '../ir/ops/util.js'

/** Relative tolerance for constants a framework stored as float32 (sqrt(2), 1/6, ...). */
export const F32_TOL = 1e-6

export function near(a: number, b: number, rel = F32_TOL): boolean {
  return Math.abs(a - b) <= rel * Math.max(Math.abs(a), Math.abs(b), 1e-30)
}

/** The value of a one-element constant, else undefined. */
export function scalarOf(cx: RewriteContext, name: string): number | undefined {
  const v = cx.constant(name)
  return v && sizeOf(v.shape) === 1 ? v.data[0] : undefined
}

/** The producer of `name` when it has op `op` (one of `op` when a list). */
export function producerOf(cx: RewriteContext, name: string, op: string | readonly string[]): Node | undefined {
  const p = cx.producer(name)
  if (!p) return undefined
  return (typeof op === 'string' ? p.op === op : op.includes(p.op)) ? p : undefined
}

export interface Product {
  /** Product of the one-element constant factors. */
  k: number
  /** Constant factors with more than one element. */
  consts: Tensor[]
  /** Non-constant factors. */
  terms: string[]
}

/**
 * `name` as a product: Mul nodes, Div by a constant and Neg are flattened into factors. Nodes below
 * the top are only entered when nothing else uses them, so a match never removes a shared value.
 */
export function product(cx: RewriteContext, name: string, top = true): Product {
  const v = cx.constant(name)
  if (v) return sizeOf(v.shape) === 1 ? { k: v.data[0], consts: [], terms: [] } : { k: 1, consts: [v], terms: [] }
  const n = cx.producer(name)
  if (!n || (!top && cx.uses(name) !== 1)) return { k: 1, consts: [], terms: [name] }
  return nodeProduct(cx, n)
}

/** `product` of the node being rewritten (it is not in the new graph yet). */
export function nodeProduct(cx: RewriteContext, n: Node): Product {
  if (n.op === 'Mul') return times(product(cx, n.inputs[0], false), product(cx, n.inputs[1], false))
  if (n.op === 'Neg') {
    const p = product(cx, n.inputs[0], false)
    return { ...p, k: -p.k }
  }
  if (n.op === 'Div') {
    const d = scalarOf(cx, n.inputs[1])
    if (d !== undefined && d !== 0) {
      const p = product(cx, n.inputs[0], false)
      return { ...p, k: p.k / d }
    }
  }
  return { k: 1, consts: [], terms: [n.name] }
}

function times(a: Product, b: Product): Product {
  return { k: a.k * b.k, consts: [...a.consts, ...b.consts], terms: [...a.terms, ...b.terms] }
}

/** Is the product exactly `k * x` for the single term x? Returns x. */
export function singleTerm(p: Product): string | undefined {
  return p.consts.length === 0 && p.terms.length === 1 ? p.terms[0] : undefined
}

/**
 * The per-channel values of a constant that broadcasts to `out` and varies at most along axis 1:
 * one value when it is a scalar in effect, C values otherwise; undefined when it varies elsewhere.
 */
export function channelValues(t: Tensor, out: TensorType): number[] | undefined {
  const R = out.shape.length
  if (t.shape.length > R) return undefined
  try {
    const s = broadcastShapes([t.shape, out.shape])
    if (s.length !== R || s.some((d, i) => d !== out.shape[i])) return undefined
  } catch {
    return undefined
  }
  if (sizeOf(t.shape) === 1) return [t.data[0]]
  const off = R - t.shape.length
  for (let i = 0; i < t.shape.length; i++) if (t.shape[i] !== 1 && i + off !== 1) return undefined
  return Array.from(t.data)
}

/** A [1, C, 1, ...] tensor of rank `rank`, C on `axis` (a scalar when there is one value). */
export function channelTensor(values: readonly number[], rank: number, dtype: Tensor['dtype'], axis = 1): Tensor {
  if (values.length === 1) return tensor(dtype, [], values)
  const shape = new Array<number>(rank).fill(1)
  shape[axis < 0 ? axis + rank : axis] = values.length
  return tensor(dtype, shape, values)
}

