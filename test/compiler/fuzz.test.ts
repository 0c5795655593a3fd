/**
 * Seeded mutations of the digits models (bytes flipped in the protobuf; attributes, dims, element
 * types, op types and input names changed in the decoded model): every one either imports and runs
 * at another batch size, or fails with a one-line PicError. Nothing else may escape.
 */
import { readFileSync } from 'node:fs'
import { describe, expect, it } from 'vitest'
import { importModel } from '../../compiler/onnx-import.js'
import { onnx } from '../../compiler/onnx-tensor.js'
import { PicError } from '../../ir/errors.js'
import { interpret } from '../../ir/interpret.js'
import { tensor } from '../../ir/tensor.js'
import { digits, MODELS, xorshift32 } from '../helpers.js'

const files = MODELS.map((m) => readFileSync(digits(`${m}.onnx`)))
const x = tensor('float32', [2, 1, 8, 8], new Float64Array(128).fill(0.5))

function rng(seed: number): () => number {
  const next = xorshift32(seed)
  return () => next() / 2 ** 32
}

/** 'ok', or the error's class and message when it is not a one-line PicError. */
function outcome(bytes: Uint8Array): string {
  try {
    interpret(importModel(bytes, { file: 'fuzz.onnx' }), [x])
    return 'ok'
  } catch (e) {
    if (e instanceof PicError && !e.message.includes('\n')) return 'error'
    return `${(e as Error).constructor.name}: ${(e as Error).message}`
  }
}

const VALUES = [-1, 0, 1, 2, 3, 7, 1000, 1e9, -1e9, 2 ** 40]
const OPS = ['Conv', 'Relu', 'Gemm', 'Reshape', 'Pad', 'MaxPool', 'AveragePool', 'Flatten', 'Add', 'Transpose', 'Squeeze', 'Concat', 'Softmax', 'Gather', 'Slice', 'ReduceMean', 'Shape']

function mutate(seed: number): Uint8Array {
  const r = rng(seed)
  const pick = <T>(a: readonly T[]): T => a[Math.floor(r() * a.length)]
  const m = onnx.ModelProto.decode(files[seed % files.length])
  const g = m.graph as onnx.GraphProto
  const nodes = g.node as onnx.NodeProto[]
  for (let k = 0; k < 1 + Math.floor(r() * 3); k++) {
    const n = pick(nodes)
    const t = pick(g.initializer as onnx.TensorProto[])
    const attrs = n.attribute as onnx.AttributeProto[]
    switch (Math.floor(r() * 8)) {
      case 0: {
        const a = pick(attrs)
        if (a && a.ints.length > 0) a.ints[Math.floor(r() * a.ints.length)] = pick(VALUES)
        else if (a) a.i = pick(VALUES)
        break
      }
      case 1:
        if (attrs.length > 0) pick(attrs).f = pick([NaN, Infinity, -1, 0, 1e30])
        break
      case 2:
        if (n.input.length > 0) n.input[Math.floor(r() * n.input.length)] = pick(nodes).output[0]
        break
      case 3:
        if (t) t.dims[Math.floor(r() * Math.max(1, t.dims.length))] = pick(VALUES)
        break
      case 4:
        if (t) t.dataType = Math.floor(r() * 17)
        break
      case 5:
        n.opType = pick(OPS)
        break
      case 6: {
        const d = (g.input[0].type!.tensorType!.shape!.dim ?? [])[Math.floor(r() * 4)]
        if (d) Object.assign(d, { dimParam: '', dimValue: pick(VALUES) })
        break
      }
      default:
        if (n.input.length > 0) n.input.splice(Math.floor(r() * n.input.length), 1)
    }
  }
  return onnx.ModelProto.encode(m).finish()
}

function flipBytes(seed: number): Uint8Array {
  const r = rng(seed)
  const b = Uint8Array.from(files[seed % files.length])
  for (let k = 0; k < 1 + Math.floor(r() * 8); k++) {
    const near = Math.floor(r() * Math.min(b.length, 2000))
    b[r() < 0.5 ? near : b.length - 1 - near] = Math.floor(r() * 256)
  }
  return b
}

describe('mutated models end in a PicError or run', () => {
  for (const [what, make] of [['structural mutations', mutate], ['flipped bytes', flipBytes]] as const) {
    it(what, () => {
      const seen = new Map<string, number>()
      for (let seed = 1; seed <= 300; seed++) {
        const o = outcome(make(seed))
        seen.set(o, (seen.get(o) ?? 0) + 1)
      }
      expect([...seen.keys()].filter((k) => k !== 'ok' && k !== 'error')).toEqual([])
      expect(seen.get('error')).toBeGreaterThan(10)
    })
  }
})
