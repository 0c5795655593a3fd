/**
 * The ONNX writer: import(write(g)) equals g for every digits model (same nodes, types, attributes
 * and constants, identical interpreter outputs, symbolic batch kept), and the writer refuses
 * PIC-only ops and attribute forms the target opset lacks.
 */
import { readdirSync, readFileSync } from 'node:fs'
import path from 'node:path'
import { describe, expect, it } from 'vitest'
import { writeModel } from '../../compiler/onnx-export.js'
import { importModel } from '../../compiler/onnx-import.js'
import { onnx } from '../../compiler/onnx-tensor.js'
import { digits } from '../helpers.js'
import { testX } from '../passes/util.js'
import { GraphBuilder } from '../../ir/builder.js'
import type { Graph } from '../../ir/graph.js'
import { interpret } from '../../ir/interpret.js'
import { tensor } from '../../ir/tensor.js'

const models = readdirSync(path.dirname(digits('test_x.npy'))).filter((f) => f.endsWith('.onnx'))

/** Nodes as plain data: tensors compared by dtype, shape and values; origins left out. */
function plain(g: Graph) {
  const norm = (v: unknown): unknown => {
    if (v instanceof Float64Array) return Array.from(v)
    if (Array.isArray(v)) return v.map(norm)
    if (v && typeof v === 'object') return Object.fromEntries(Object.entries(v).filter(([, x]) => x !== undefined).map(([k, x]) => [k, norm(x)]))
    return v
  }
  return g.nodes.map((n) => norm({ name: n.name, op: n.op, inputs: n.inputs, attrs: n.attrs, type: n.type }))
}

describe('writeModel round trip', () => {
  it('covers every digits model', () => expect(models.length).toBe(9))
  for (const f of models) {
    it(f, () => {
      const g = importModel(readFileSync(digits(f)), { file: f })
      const bytes = writeModel(g)
      const back = importModel(bytes, { file: `${f} (written)` })
      expect(plain(back)).toEqual(plain(g))
      expect(back.outputs).toEqual(g.outputs)
      expect(back.opset).toBe(g.opset)
      const x = testX(5)
      const want = interpret(g, [x]).get(g.outputs[0])!
      const got = interpret(back, [x]).get(back.outputs[0])!
      expect(got.shape).toEqual([5, 10])
      expect(Array.from(got.data)).toEqual(Array.from(want.data))

      const m = onnx.ModelProto.decode(bytes)
      expect(Number(m.irVersion)).toBe(8)
      const dims = (v: onnx.IValueInfoProto) => v.type!.tensorType!.shape!.dim!.map((d) => d.dimParam || Number(d.dimValue))
      expect(dims(m.graph!.input![0])).toEqual(['N', 1, 8, 8])
      expect(dims(m.graph!.output![0])).toEqual(['N', 10])
      expect(m.graph!.valueInfo!.length).toBe(g.nodes.filter((n) => n.op !== 'Input' && n.op !== 'Constant').length - 1)
      const batchDims = m.graph!.valueInfo!.filter((v) => dims(v)[0] === 'N').length
      expect(batchDims).toBeGreaterThan(0)
      expect(m.graph!.valueInfo!.every((v) => dims(v).every((d, i) => typeof d === 'number' || (i === 0 && d === 'N')))).toBe(true)
      // value_info is checked against another batch size on import
      const five = importModel(bytes, { symbols: { N: 5 } })
      expect(five.nodes.find((n) => n.name === g.outputs[0])!.type.shape).toEqual([5, 10])
    })
  }
})

describe('writeModel keeps every symbolic dim', () => {
  it('names two symbols of equal value apart in value_info', () => {
    const b = new GraphBuilder('g', 13, { batch: 1, seq: 1 })
    b.input('x', 'float32', ['batch', 'seq'])
    b.add('Relu', ['x'], {}, { name: 'r' })
    b.add('Neg', ['r'], {}, { name: 'y' })
    const bytes = writeModel(b.build(['y']))
    const m = onnx.ModelProto.decode(bytes)
    const dims = (v: onnx.IValueInfoProto) => v.type!.tensorType!.shape!.dim!.map((d) => d.dimParam || Number(d.dimValue))
    expect(m.graph!.valueInfo!.map(dims)).toEqual([['batch', 'seq']])
    expect(m.graph!.output!.map(dims)).toEqual([['batch', 'seq']])
    const h = importModel(bytes, { symbols: { batch: 4, seq: 10 } })
    expect(h.nodes.find((n) => n.name === 'y')!.type.shape).toEqual([4, 10])
  })
})

describe('writeModel refuses what ONNX cannot hold', () => {
  it('refuses PIC-only ops', () => {
    const b = new GraphBuilder('g', 13)
    b.input('x', 'float32', ['N', 4])
    b.add('Poly', ['x'], { basis: 'power', axis: 1, coeffs: [[0, 1, 1]], shift: [0], scale: [1] }, { name: 'p' })
    expect(() => writeModel(b.build(['p']), { file: 'out.onnx' })).toThrow(
      "out.onnx: node 'p' (Poly): Poly is a PIC op with no ONNX form; lower it to ONNX ops before writing",
    )
  })
  it('refuses attributes that became inputs at the target opset', () => {
    const b = new GraphBuilder('g', 13)
    b.input('x', 'float32', [1, 4])
    b.add('Clip', ['x'], { min: 0, max: 6 }, { name: 'c' })
    const g = b.build(['c'])
    expect(() => writeModel(g, { file: 'out.onnx' })).toThrow("out.onnx: node 'c' (Clip): Clip bounds are inputs, not attributes, from opset 11")
    const back = importModel(writeModel(g, { opset: 10 }))
    expect(Array.from(interpret(back, [tensor('float32', [1, 4], [-1, 2, 7, 3])]).get('c')!.data)).toEqual([0, 2, 6, 3])
  })
  it('raises the opset to what the ops need', () => {
    const b = new GraphBuilder('g', 13)
    b.input('x', 'float32', [2])
    b.add('Gelu', ['x'], { approximate: 'tanh' }, { name: 'y' })
    const m = onnx.ModelProto.decode(writeModel(b.build(['y'])))
    expect(Number(m.opsetImport![0].version)).toBe(20)
    expect(Number(m.irVersion)).toBe(9)
  })
})
