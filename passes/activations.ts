/**
 * The elementwise non-polynomial activations the approximation passes can replace by polynomials:
 * which ops they are, where their kinks lie (for exact quadrature), and the function itself,
 * evaluated through the op table's reference `eval` so the fit target is the interpreter's own
 * semantics. Abs is fitted as its sign (Abs(x) = x sign(x), the max(a, b) decomposition of MaxPool).
 */
import { constantOf, type Graph, type Node } from '../ir/graph.js'
import { OPS } from '../ir/ops/index.js'
import type { PartialReluAttrs } from '../ir/ops/pi.js'
import { broadcastIndex } from '../ir/ops/util.js'
import { sizeOf, tensor, type Tensor } from '../ir/tensor.js'
import type { Fn } from './fit.js'

type Kinks = (a: Record<string, unknown>, consts: readonly number[]) => number[]

const at0: Kinks = () => [0]
const smooth: Kinks = () => []

/** Op -> its kinks. Extra inputs must be scalar constants (Clip's bounds, PRelu's slope). */
export const ACTIVATIONS: Readonly<Record<string, Kinks>> = {
  Relu: at0,
  LeakyRelu: at0,
  PRelu: at0,
  PartialRelu: at0,
  Abs: at0,
  Elu: at0,
  Selu: at0,
  Sigmoid: smooth,
  Tanh: smooth,
  Softplus: smooth,
  Erf: smooth,
  Exp: smooth,
  Gelu: smooth,
  Silu: smooth,
  HardSwish: () => [-3, 3],
  HardSigmoid: (a) => [(0 - (a.beta as number)) / (a.alpha as number), (1 - (a.beta as number)) / (a.alpha as number)],
  Clip: (a, c) => [c[0] ?? (a.min as number | undefined) ?? -Infinity, c[1] ?? (a.max as number | undefined) ?? Infinity].filter(Number.isFinite),
}

/** Ops that stay exact under `--keep-relu` (they go to garbled circuits). */
export const RELU_OPS: ReadonlySet<string> = new Set(['Relu', 'PartialRelu'])

function constantInputs(n: Node, g: Map<string, Node>): Tensor[] | undefined {
  const out: Tensor[] = []
  for (const i of n.inputs.slice(1)) {
    if (!i) continue
    const p = g.get(i)
    if (p?.op !== 'Constant') return undefined
    const v = constantOf(p)!
    if (sizeOf(v.shape) !== 1) return undefined
    out.push(v)
  }
  return out
}

export interface Activation {
  node: Node
  /** The function to fit (sign for Abs, ReLU for PartialRelu). */
  fn: Fn
  kinks: number[]
  /** 'Sign' when the polynomial replaces sign(x) inside x * p(x) (Abs), else the op. */
  target: string
}

/** The activation view of a node, or undefined when the node is not an approximable activation. */
export function activation(n: Node, byName: Map<string, Node>): Activation | undefined {
  const kinks = ACTIVATIONS[n.op]
  if (!kinks) return undefined
  const consts = constantInputs(n, byName)
  if (!consts) return undefined
  const raw = consts.map((c) => c.data[0])
  if (n.op === 'Abs') return { node: n, fn: (x) => x.map(Math.sign), kinks: [0], target: 'Sign' }
  if (n.op === 'PartialRelu') return { node: n, fn: (x) => x.map((v) => (v > 0 ? v : 0)), kinks: [0], target: 'Relu' }
  const def = OPS[n.op]
  const fn: Fn = (x) => {
    const t = tensor('float64', [x.length], x)
    return def.eval([t, ...consts.map((c) => ({ ...c, dtype: 'float64' as const }))], n.attrs, t).data
  }
  return { node: n, fn, kinks: kinks(n.attrs as Record<string, unknown>, raw), target: n.op }
}

/** Every approximable activation of the graph, in topological order. */
export function activations(g: Graph): Activation[] {
  const byName = new Map(g.nodes.map((n) => [n.name, n]))
  const out: Activation[] = []
  for (const n of g.nodes) {
    const a = activation(n, byName)
    if (a) out.push(a)
  }
  return out
}

/** For PartialRelu: which elements of a tensor of `shape` the mask selects (undefined = all). */
export function maskSelector(n: Node, shape: readonly number[]): Uint8Array | undefined {
  if (n.op !== 'PartialRelu') return undefined
  const m = (n.attrs as unknown as PartialReluAttrs).mask
  const idx = broadcastIndex(m.shape, shape)
  return Uint8Array.from({ length: sizeOf(shape) }, (_, i) => (m.data[idx ? idx[i] : i] !== 0 ? 1 : 0))
}
