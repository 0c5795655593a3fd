/**
 * The fast path for evaluation: onnxruntime's float32 kernels for the nodes that cost the time
 * (Conv, ConvTranspose, Gemm, MatMul), handed to the interpreter as an `Accelerator` (ir/interpret.ts).
 * Every other node, and every node this cannot take (non-float32 types, shapes onnxruntime refuses),
 * runs the float64 reference. Each node becomes a one-node ONNX model written by PIC's own writer,
 * its constant inputs (the weights) as initializers so onnxruntime packs them once; sessions are
 * cached per node, shapes and weights. One intra-op thread: results are the same on every run.
 *
 * onnxruntime-node is an optional dependency: without it `ortAccelerator()` returns undefined and
 * everything runs in float64. It is used through its synchronous native binding (the public
 * `InferenceSession.run` is a Promise; the interpreter is synchronous), which is why the version is
 * pinned; if the binding is not what this expects, the accelerator turns itself off with a note.
 */
import { createRequire } from 'node:module'
import { GraphBuilder } from '../ir/builder.js'
import type { Node } from '../ir/graph.js'
import type { Accelerator } from '../ir/interpret.js'
import type { Tensor } from '../ir/tensor.js'
import { writeModel } from './onnx-export.js'

/** The ops worth a call into onnxruntime: their cost grows faster than their data. */
const HEAVY = new Set(['Conv', 'ConvTranspose', 'Gemm', 'MatMul'])

interface OrtTensor {
  readonly data: Float32Array
  readonly dims: readonly number[]
}
interface OrtSession {
  loadModel(buf: ArrayBufferLike, offset: number, length: number, options: object): void
  run(feeds: Record<string, OrtTensor>, fetches: Record<string, null>, options: object): Record<string, OrtTensor>
}
interface Ort {
  newSession(): OrtSession
  tensor(data: Float32Array, dims: readonly number[]): OrtTensor
  version: string
}

let loaded: Ort | null | undefined

/** onnxruntime-node's native binding, or null when it is not installed or not the expected one. */
function loadOrt(): Ort | null {
  if (loaded !== undefined) return loaded
  loaded = null
  try {
    const require = createRequire(import.meta.url)
    const { binding, initOrt } = require('onnxruntime-node/dist/binding.js')
    // onnxruntime-common as onnxruntime-node itself resolves it (its Tensor class is what the binding reads)
    const common = createRequire(require.resolve('onnxruntime-node'))('onnxruntime-common')
    const version: string = require('onnxruntime-node/package.json').version
    initOrt()
    if (typeof binding?.InferenceSession !== 'function' || typeof common?.Tensor !== 'function') return null
    loaded = {
      newSession: () => new binding.InferenceSession(),
      tensor: (data, dims) => new common.Tensor('float32', data, dims),
      version,
    }
  } catch {
    loaded = null
  }
  return loaded
}

/** Whether onnxruntime-node is installed and usable here (its version), for reports. */
export function ortVersion(): string | undefined {
  return loadOrt()?.version
}

const SESSION_OPTIONS = { intraOpNumThreads: 1, interOpNumThreads: 1, executionMode: 'sequential', graphOptimizationLevel: 'all' }

/** A numeric id per weight array, so that a session is reused only for the same weights. */
const ids = new WeakMap<object, number>()
let nextId = 1
function idOf(o: object): number {
  let v = ids.get(o)
  if (v === undefined) ids.set(o, (v = nextId++))
  return v
}

interface Compiled {
  session: OrtSession
  /** Feed names of the non-constant inputs, in input order (absent: a constant or an empty slot). */
  feeds: (string | undefined)[]
}

/**
 * The accelerator, or undefined without onnxruntime-node. `onError` hears once why a node fell back
 * (a model onnxruntime refuses); that node then runs in float64 for the rest of the process.
 */
export function ortAccelerator(opts: { onError?: (message: string) => void } = {}): Accelerator | undefined {
  const ort = loadOrt()
  if (!ort) return undefined
  const sessions = new Map<string, Compiled | null>()
  let broken = false

  const compile = (n: Node, ins: readonly Tensor[], constant: readonly boolean[]): Compiled | null => {
    const b = new GraphBuilder('node', 13)
    const feeds: (string | undefined)[] = []
    const names = ins.map((t, i) => {
      if (!n.inputs[i]) return ''
      const name = `in${i}`
      if (constant[i]) b.constant(name, t)
      else {
        b.input(name, t.dtype, t.shape)
        feeds[i] = name
      }
      return name
    })
    b.add(n.op, names, n.attrs, { name: 'out' })
    const bytes = writeModel(b.build(['out']), { opset: undefined, valueInfo: false })
    const session = ort.newSession()
    session.loadModel(bytes.buffer, bytes.byteOffset, bytes.byteLength, SESSION_OPTIONS)
    return { session, feeds }
  }

  return {
    name: `onnxruntime-node ${ort.version} (float32 Conv, ConvTranspose, Gemm, MatMul)`,
    kernel(n, ins, constant) {
      if (broken || !HEAVY.has(n.op) || n.type.dtype !== 'float32' || ins.some((t, i) => n.inputs[i] && t.dtype !== 'float32')) return undefined
      const key = `${n.op}|${n.name}|${ins.map((t, i) => (!n.inputs[i] ? '-' : constant[i] ? `c${idOf(t.data)}` : t.shape.join('x'))).join('|')}`
      let c = sessions.get(key)
      if (c === undefined) {
        try {
          c = compile(n, ins, constant)
        } catch (e) {
          c = null
          opts.onError?.(`onnxruntime refused node '${n.name}' (${n.op}), which runs in float64: ${(e as Error).message.split('\n')[0]}`)
        }
        sessions.set(key, c)
      }
      if (!c) return undefined
      const feeds: Record<string, OrtTensor> = {}
      c.feeds.forEach((name, i) => {
        if (name) feeds[name] = ort.tensor(new Float32Array(ins[i].data), ins[i].shape)
      })
      let out: OrtTensor
      try {
        out = c.session.run(feeds, { out: null }, {}).out
      } catch (e) {
        broken = true
        opts.onError?.(`onnxruntime failed on node '${n.name}' (${n.op}); evaluation continues in float64: ${(e as Error).message.split('\n')[0]}`)
        return undefined
      }
      return { dtype: 'float32', shape: n.type.shape, data: new Float64Array(out.data) }
    },
  }
}
