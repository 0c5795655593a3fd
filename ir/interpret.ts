/**
 * The float64 reference interpreter: the oracle every pass and backend is compared with. Runs the
 * nodes in order, frees each intermediate after its last use, and re-instantiates the graph when the
 * inputs bind its symbolic dims (the batch) to other values.
 */
import { GraphError, instantiate } from './builder.js'
import { PicError } from './errors.js'
import { describeNode, graphInputs, inputDims, type Graph, type Node } from './graph.js'
import { OPS } from './ops/index.js'
import { castValue, formatType, isNarrow, sameShape, sizeOf, type Tensor } from './tensor.js'

export class InterpretError extends PicError {}

/**
 * Faster kernels for some nodes (onnxruntime's float32 Conv, Gemm and MatMul: compiler/ort.ts). The
 * interpreter asks it first for every node and falls back to the op's float64 reference `eval` when
 * it answers undefined. Results then agree with the reference to float32 precision, not exactly, so
 * the oracle (tests, `pic infer`) runs without one; calibration, `eval` and OLA's replays use one
 * when it is available. `constant[i]` says whether input i is a compile-time constant (weights).
 */
export interface Accelerator {
  readonly name: string
  kernel(n: Node, ins: readonly Tensor[], constant: readonly boolean[]): Tensor | undefined
}

/** One node's value: the accelerator's kernel when it has one, else the op's reference eval. */
export function evalNode(n: Node, ins: readonly Tensor[], accel?: Accelerator, constant?: readonly boolean[]): Tensor {
  const v = accel?.kernel(n, ins, constant ?? ins.map(() => false)) ?? OPS[n.op].eval(ins, n.attrs, n.type)
  // narrow integers wrap and float16 rounds, as ONNX stores them
  return isNarrow(n.type.dtype) ? { ...v, data: v.data.map((x) => castValue(x, n.type.dtype)) } : v
}

/** Per node: which inputs are Constant nodes (what an accelerator may treat as weights). */
export function constantInputs(g: Graph): Map<string, boolean[]> {
  const consts = new Set(g.nodes.filter((n) => n.op === 'Constant').map((n) => n.name))
  return new Map(g.nodes.map((n) => [n.name, n.inputs.map((x) => consts.has(x))]))
}

export interface InterpretOptions {
  /** Called with every node's value as it is computed (calibration, tracing). */
  onValue?: (node: Node, value: Tensor) => void
  /** Keep every intermediate value in the result (default: graph outputs only). */
  keepAll?: boolean
  /** Faster kernels to try first (default none: the float64 reference for every node). */
  accel?: Accelerator
}

/** Bind symbolic dims from the given input shapes; returns the graph to run (maybe `g` itself). */
export function bindInputs(g: Graph, inputs: readonly Tensor[]): Graph {
  const ins = graphInputs(g)
  if (inputs.length !== ins.length) throw new InterpretError(`the graph takes ${ins.length} inputs, got ${inputs.length}`)
  const symbols: Record<string, number> = {}
  let rebind = false
  ins.forEach((n, i) => {
    const t = inputs[i]
    if (sameShape(t.shape, n.type.shape)) return
    const dims = inputDims(n)
    if (t.shape.length !== dims.length) throw new InterpretError(`input '${n.name}' expects ${formatType(n.type)}, got rank ${t.shape.length}`)
    dims.forEach((d, k) => {
      if (typeof d === 'string') {
        if (symbols[d] !== undefined && symbols[d] !== t.shape[k]) throw new InterpretError(`dimension '${d}' is bound to both ${symbols[d]} and ${t.shape[k]}`)
        symbols[d] = t.shape[k]
        rebind = true
      } else if (d !== t.shape[k]) throw new InterpretError(`input '${n.name}' expects ${formatType(n.type)}, got shape [${t.shape.join(',')}]`)
    })
  })
  if (!rebind) return g
  try {
    return instantiate(g, symbols)
  } catch (e) {
    if (!(e instanceof GraphError)) throw e
    const bound = Object.entries(symbols).map(([k, v]) => `${k} = ${v}`).join(', ')
    const where = e.node ? `${describeNode(e.node)}: ` : ''
    throw new InterpretError(`the graph does not hold with ${bound}: ${where}${e.message}`)
  }
}

/** Run the graph on inputs given in graph-input order or by name; returns the outputs by name. */
export function interpret(g0: Graph, given: readonly Tensor[] | Readonly<Record<string, Tensor>>, opts: InterpretOptions = {}): Map<string, Tensor> {
  const declared = graphInputs(g0)
  const list = Array.isArray(given)
    ? (given as Tensor[])
    : declared.map((n) => {
        const t = (given as Record<string, Tensor>)[n.name]
        if (!t) throw new InterpretError(`missing input '${n.name}'`)
        return t
      })
  const g = bindInputs(g0, list)
  const lastUse = new Map<string, number>()
  g.nodes.forEach((n, i) => n.inputs.forEach((x) => x && lastUse.set(x, i)))
  const outputs = new Set(g.outputs)
  const env = new Map<string, Tensor>()
  const constant = opts.accel ? constantInputs(g) : undefined
  let k = 0
  for (const [i, n] of g.nodes.entries()) {
    let v: Tensor
    if (n.op === 'Input') {
      const t = list[k++]
      v = t.dtype === n.type.dtype ? t : { ...n.type, data: t.data.map((x) => castValue(x, n.type.dtype)) }
    } else {
      const ins = n.inputs.map((x) => (x ? env.get(x)! : (undefined as unknown as Tensor)))
      try {
        v = evalNode(n, ins, opts.accel, constant?.get(n.name))
      } catch (e) {
        throw new InterpretError(`${describeNode(n)}: ${(e as Error).message}`)
      }
    }
    env.set(n.name, v)
    opts.onValue?.(n, v)
    if (!opts.keepAll)
      for (const x of n.inputs) if (x && lastUse.get(x) === i && !outputs.has(x)) env.delete(x)
  }
  if (opts.keepAll) return env
  return new Map(g.outputs.map((o) => [o, env.get(o)!]))
}

/** Convenience: the first output for a single input. */
export function run1(g: Graph, x: Tensor): Tensor {
  return interpret(g, [x]).get(g.outputs[0])!
}

/**
 * Elements one batch may hold in a graph's largest value: bounded memory, and values of at most 8 MB.
 * At 2^25, `pic eval` ran fmnist32/resnet20's 1,000 test images as one batch of 128 MB values and
 * spent 26 s in the kernel (fresh pages) against 12 s of user time; at 2^20, 0.9 s against 9 s.
 */
const BATCH_ELEMENTS = 2 ** 20

/** The largest batch (at most n) whose values stay within the memory budget of a batched run. */
export function batchSize(g: Graph, n: number): number {
  const batch = graphInputs(g)[0].type.shape[0] || 1
  const largest = Math.max(...g.nodes.map((v) => v.type.shape.reduce((p, d) => p * d, 1))) / batch
  return Math.max(1, Math.min(n, Math.floor(BATCH_ELEMENTS / Math.max(largest, 1))))
}

/**
 * Run a single-input graph over many samples (axis 0 of `x`) in as few calls as memory allows. The
 * graph is re-instantiated for the chunk size when its batch dim is symbolic and nothing batch-specific
 * was folded into it; otherwise samples run in chunks of the graph's own batch, the last one padded.
 * `onChunk` sees every chunk's values (with `valid` = real samples in it) when `keepAll` is asked for.
 */
export function runBatched(
  g: Graph,
  x: Tensor,
  opts: { onChunk?: (values: Map<string, Tensor>, valid: number, start: number) => void; keepAll?: boolean; accel?: Accelerator } = {},
): Tensor[] {
  const input = graphInputs(g)[0]
  const n = x.shape[0]
  const per = x.data.length / Math.max(n, 1)
  const gBatch = input.type.shape[0]
  let chunk = batchSize(g, n)
  let run = g
  if (chunk !== gBatch) {
    try {
      run = bindInputs(g, [{ ...input.type, shape: [chunk, ...input.type.shape.slice(1)], data: new Float64Array(0) }])
    } catch {
      run = g
      chunk = gBatch
    }
  }
  const outTypes = run.outputs.map((o) => run.nodes.find((v) => v.name === o)!.type)
  const rowLens = outTypes.map((t) => sizeOf(t.shape) / chunk)
  const outs = rowLens.map((r) => new Float64Array(n * r))
  for (let start = 0; start < n; start += chunk) {
    const valid = Math.min(chunk, n - start)
    let data = x.data.subarray(start * per, (start + chunk) * per)
    if (valid < chunk) {
      data = new Float64Array(chunk * per)
      data.set(x.data.subarray(start * per, (start + valid) * per))
    }
    const values = interpret(run, [{ dtype: x.dtype, shape: [chunk, ...x.shape.slice(1)], data }], { keepAll: opts.keepAll, accel: opts.accel })
    opts.onChunk?.(values, valid, start)
    run.outputs.forEach((o, k) => outs[k].set(values.get(o)!.data.subarray(0, valid * rowLens[k]), start * rowLens[k]))
  }
  return outTypes.map((t, k) => ({ dtype: t.dtype, shape: [n, ...t.shape.slice(1)], data: outs[k] }))
}
