/**
 * The importer on well-formed input: initializers in raw_data and in every typed field, float16,
 * external data (with offset and length) inside the model's folder, Constant node forms, symbolic
 * dims bound on request, and op versions by opset.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import { importModel } from '../../compiler/onnx-import.js'
import { onnx } from '../../compiler/onnx-tensor.js'
import type { Tensor } from '../../ir/tensor.js'

const DT = onnx.TensorProto.DataType

/** A model y = Identity(w) for one initializer w, or y = Identity(c) for a Constant node's attribute. */
function identityOf(w: onnx.ITensorProto | undefined, constAttr?: onnx.IAttributeProto, opset = 13): Uint8Array {
  return onnx.ModelProto.encode({
    irVersion: 8,
    opsetImport: [{ domain: '', version: opset }],
    graph: {
      name: 'g',
      node: [...(constAttr ? [{ opType: 'Constant', output: ['w'], name: 'c', attribute: [constAttr] }] : []), { opType: 'Identity', input: ['w'], output: ['y'], name: 'id' }],
      initializer: w ? [w] : [],
      output: [{ name: 'y' }],
    },
  }).finish()
}

function valueOf(bytes: Uint8Array, opts = {}): Tensor {
  const g = importModel(bytes, { file: 'm.onnx', ...opts })
  return (g.nodes.find((n) => n.name === 'w')!.attrs as { value: Tensor }).value
}

const plain = (t: Tensor) => ({ dtype: t.dtype, shape: t.shape, data: Array.from(t.data) })

describe('initializers', () => {
  const cases: [string, onnx.ITensorProto, ReturnType<typeof plain>][] = [
    ['float_data', { dataType: DT.FLOAT, dims: [3], floatData: [1.5, -2, 0.25] }, { dtype: 'float32', shape: [3], data: [1.5, -2, 0.25] }],
    ['double_data', { dataType: DT.DOUBLE, dims: [2], doubleData: [0.1, 1e300] }, { dtype: 'float64', shape: [2], data: [0.1, 1e300] }],
    ['int64_data', { dataType: DT.INT64, dims: [2, 1], int64Data: [-7, 2 ** 40] }, { dtype: 'int64', shape: [2, 1], data: [-7, 2 ** 40] }],
    ['int32_data', { dataType: DT.INT32, dims: [2], int32Data: [-3, 5] }, { dtype: 'int32', shape: [2], data: [-3, 5] }],
    ['bool in int32_data', { dataType: DT.BOOL, dims: [3], int32Data: [1, 0, 1] }, { dtype: 'bool', shape: [3], data: [1, 0, 1] }],
    ['float16 in int32_data', { dataType: DT.FLOAT16, dims: [3], int32Data: [0x3c00, 0xc000, 0x3555] }, { dtype: 'float16', shape: [3], data: [1, -2, 0.333251953125] }],
    ['float raw_data', { dataType: DT.FLOAT, dims: [2], rawData: new Uint8Array(Float32Array.of(3.5, -1).buffer) }, { dtype: 'float32', shape: [2], data: [3.5, -1] }],
    ['int64 raw_data', { dataType: DT.INT64, dims: [2], rawData: new Uint8Array(BigInt64Array.of(-5n, 1n << 50n).buffer) }, { dtype: 'int64', shape: [2], data: [-5, 2 ** 50] }],
    ['uint8 raw_data', { dataType: DT.UINT8, dims: [2], rawData: Uint8Array.of(255, 7) }, { dtype: 'uint8', shape: [2], data: [255, 7] }],
    ['scalar', { dataType: DT.FLOAT, dims: [], floatData: [42] }, { dtype: 'float32', shape: [], data: [42] }],
  ]
  for (const [what, t, want] of cases) it(what, () => expect(plain(valueOf(identityOf({ name: 'w', ...t })))).toEqual(want))
})

describe('Constant nodes', () => {
  const A = onnx.AttributeProto.AttributeType
  it('value_float, value_floats, value_int, value_ints, value', () => {
    expect(plain(valueOf(identityOf(undefined, { name: 'value_float', type: A.FLOAT, f: 0.5 })))).toEqual({ dtype: 'float32', shape: [], data: [0.5] })
    expect(plain(valueOf(identityOf(undefined, { name: 'value_floats', type: A.FLOATS, floats: [1, 2] })))).toEqual({ dtype: 'float32', shape: [2], data: [1, 2] })
    expect(plain(valueOf(identityOf(undefined, { name: 'value_int', type: A.INT, i: -4 })))).toEqual({ dtype: 'int64', shape: [], data: [-4] })
    expect(plain(valueOf(identityOf(undefined, { name: 'value_ints', type: A.INTS, ints: [3, 9] })))).toEqual({ dtype: 'int64', shape: [2], data: [3, 9] })
    const t = { dataType: DT.DOUBLE, dims: [1], doubleData: [2.25] }
    expect(plain(valueOf(identityOf(undefined, { name: 'value', type: A.TENSOR, t })))).toEqual({ dtype: 'float64', shape: [1], data: [2.25] })
  })
})

describe('external data inside the folder', () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'pic-ext-ok-'))
  afterAll(() => rmSync(dir, { recursive: true, force: true }))
  writeFileSync(path.join(dir, 'weights.bin'), new Uint8Array(Float32Array.of(9, 1, 2, 3, 4).buffer))
  const ext = (extra: { key: string; value: string }[]) =>
    identityOf({ name: 'w', dataType: DT.FLOAT, dims: [2, 2], dataLocation: onnx.TensorProto.DataLocation.EXTERNAL, externalData: [{ key: 'location', value: 'weights.bin' }, ...extra] })
  it('reads the range given by offset and length', () => {
    const t = valueOf(ext([{ key: 'offset', value: '4' }, { key: 'length', value: '16' }]), { baseDir: dir })
    expect(plain(t)).toEqual({ dtype: 'float32', shape: [2, 2], data: [1, 2, 3, 4] })
  })
})

describe('symbols and opsets', () => {
  const model = (opset: number, op = 'Relu') =>
    onnx.ModelProto.encode({
      irVersion: 8,
      opsetImport: [{ domain: '', version: opset }],
      graph: {
        name: 'g',
        node: [{ opType: op, input: ['x'], output: ['y'], name: 'n' }],
        input: [{ name: 'x', type: { tensorType: { elemType: DT.FLOAT, shape: { dim: [{ dimParam: 'batch' }, { dimValue: 3 }] } } } }],
        output: [{ name: 'y' }],
      },
    }).finish()
  it('binds a symbolic dim to 1 by default and to a given value on request', () => {
    expect(importModel(model(13)).nodes.at(-1)!.type.shape).toEqual([1, 3])
    const g = importModel(model(13), { symbols: { batch: 7 } })
    expect(g.nodes.at(-1)!.type.shape).toEqual([7, 3])
    expect(g.symbols).toEqual({ batch: 7 })
  })
  it('reads each op from the opset its entry declares', () => {
    expect(importModel(model(6)).nodes.at(-1)!.op).toBe('Relu')
    expect(importModel(model(1, 'Softplus')).nodes.at(-1)!.op).toBe('Softplus')
    expect(() => importModel(model(13, 'HardSwish'), { file: 'm.onnx' })).toThrow("m.onnx: unsupported op: HardSwish before opset 14 (node 'n')")
  })
})
