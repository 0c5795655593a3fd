/**
 * Bad input ends in one clear line: each hostile or unsupported model (built with the ONNX writer or
 * as raw protobuf) must fail with a PicError whose exact message names the file, the ONNX node (name
 * and op) where there is one, and the problem, quickly and without large allocations. A few of them
 * go through the built CLI (`npm test` builds dist/ first).
 */
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import { writeModel } from '../../compiler/onnx-export.js'
import { importModel, type ImportOptions } from '../../compiler/onnx-import.js'
import { onnx, tensorToProto } from '../../compiler/onnx-tensor.js'
import { PicError } from '../../ir/errors.js'
import { GraphBuilder } from '../../ir/builder.js'
import { interpret, InterpretError } from '../../ir/interpret.js'
import { tensor } from '../../ir/tensor.js'
import { pic, xorshift32 } from '../helpers.js'

const F = onnx.TensorProto.DataType.FLOAT

function vi(name: string, dims: (number | string)[], elemType: number = F): onnx.IValueInfoProto {
  const dim = dims.map((d) => (typeof d === 'number' ? { dimValue: d } : { dimParam: d }))
  return { name, type: { tensorType: { elemType, shape: { dim } } } }
}

function node(opType: string, input: string[], output: string[], name = output[0], domain = ''): onnx.INodeProto {
  return { opType, input, output, name, domain }
}

interface Parts {
  nodes?: onnx.INodeProto[]
  inputs?: onnx.IValueInfoProto[]
  outputs?: onnx.IValueInfoProto[]
  inits?: onnx.ITensorProto[]
  valueInfo?: onnx.IValueInfoProto[]
  opset?: number
  ir?: number
}

/** A raw ModelProto: x[1,4] by default, output y. */
function model(p: Parts): Uint8Array {
  return onnx.ModelProto.encode({
    irVersion: p.ir ?? 8,
    opsetImport: [{ domain: '', version: p.opset ?? 13 }],
    graph: {
      name: 'g',
      node: p.nodes ?? [node('Relu', ['x'], ['y'])],
      input: p.inputs ?? [vi('x', [1, 4])],
      output: p.outputs ?? [vi('y', [1, 4])],
      initializer: p.inits ?? [],
      valueInfo: p.valueInfo ?? [],
    },
  }).finish()
}

/** A small valid CNN written by the writer: Conv (3 -> 4 channels) then Relu. */
function smallCnn(): Uint8Array {
  const b = new GraphBuilder('cnn', 13)
  b.input('x', 'float32', ['N', 3, 8, 8])
  b.constant('w', tensor('float32', [4, 3, 3, 3], new Float64Array(108).fill(0.5)))
  b.add('Conv', ['x', 'w'], { kernel: [3, 3], strides: [1, 1], pads: [1, 1, 1, 1], dilations: [1, 1], autoPad: 'NOTSET', ceil: false, group: 1 }, { name: 'conv' })
  b.add('Relu', ['conv'], {}, { name: 'y' })
  return writeModel(b.build(['y']))
}

function failure(bytes: Uint8Array, opts: ImportOptions = {}): string {
  try {
    importModel(bytes, { file: 'bad.onnx', ...opts })
  } catch (e) {
    expect(e).toBeInstanceOf(PicError)
    const msg = (e as Error).message
    expect(msg).not.toMatch(/\n/)
    return msg
  }
  throw new Error('the model was accepted')
}

function decodeEdit(bytes: Uint8Array, edit: (m: onnx.ModelProto) => void): Uint8Array {
  const m = onnx.ModelProto.decode(bytes)
  edit(m)
  return onnx.ModelProto.encode(m).finish()
}

function random(n: number, seed: number): Uint8Array {
  const next = xorshift32(seed)
  return new Uint8Array(n).map(() => next() & 0xff)
}

describe('malformed files', () => {
  it('empty file', () => expect(failure(new Uint8Array(0))).toBe('bad.onnx: the file is empty'))
  it('truncated protobuf', () => {
    const good = smallCnn()
    expect(failure(good.subarray(0, Math.floor(good.length * 0.6)))).toBe('bad.onnx: not a valid ONNX model: the protobuf ends inside a field (truncated file?)')
  })
  it('random bytes', () => {
    expect(failure(random(4096, 1))).toBe('bad.onnx: not a valid ONNX model: the protobuf is corrupt (invalid wire type 7 at offset 4)')
    expect(failure(random(4096, 2))).toBe('bad.onnx: not a valid ONNX model: the protobuf is corrupt (invalid wire type 4 at offset 48)')
  })
  it('random bytes that happen to decode', () => {
    expect(failure(Uint8Array.from([0x08, 0x07, 0x3a, 0x00]))).toBe('bad.onnx: not an ONNX model: the graph has no outputs')
    expect(failure(Uint8Array.from([0x08, 0xff, 0xff, 0xff, 0xff, 0x0f]))).toBe('bad.onnx: not an ONNX model: ir_version 4294967295 is not an ONNX IR version (1 to 11)')
  })
  it('missing ir_version', () => expect(failure(decodeEdit(smallCnn(), (m) => (m.irVersion = 0)))).toBe('bad.onnx: not an ONNX model: ir_version is missing'))
  it('missing graph', () => expect(failure(decodeEdit(smallCnn(), (m) => (m.graph = null)))).toBe('bad.onnx: not an ONNX model: the graph is missing'))
  it('opset out of range', () => {
    expect(failure(model({ opset: 99 }))).toBe('bad.onnx: opset 99 is not supported (PIC reads opsets 1 to 21)')
    expect(failure(model({ opset: 0 }))).toBe('bad.onnx: opset 0 is not supported (PIC reads opsets 1 to 21)')
    expect(failure(decodeEdit(model({}), (m) => (m.opsetImport = [])))).toBe('bad.onnx: the model imports no default-domain (ai.onnx) opset')
  })
})

describe('malformed graphs', () => {
  it('a cycle', () => {
    const nodes = [node('Relu', ['x'], ['a']), node('Add', ['a', 'c'], ['b'], 'add'), node('Relu', ['b'], ['c'], 'back'), node('Relu', ['b'], ['y'])]
    expect(failure(model({ nodes }))).toBe("bad.onnx: the graph has a cycle through node 'add' (Add) -> node 'back' (Relu)")
  })
  it('unknown ops, all listed at once', () => {
    const nodes = [node('FooOp', ['x'], ['a']), node('BarOp', ['a'], ['b']), node('BarOp', ['b'], ['c'], 'bar2'), node('Attention', ['c'], ['y'], 'attn', 'com.microsoft')]
    expect(failure(model({ nodes }))).toBe(
      "bad.onnx: unsupported ops: FooOp (node 'a'); BarOp (2 nodes: 'b', 'bar2'); com.microsoft.Attention (node 'attn')",
    )
  })
  it('an op version older than PIC reads', () => {
    expect(failure(model({ nodes: [node('Gelu', ['x'], ['y'], 'g')], opset: 13 }))).toBe("bad.onnx: unsupported op: Gelu before opset 20 (node 'g')")
  })
  it('mismatched Conv channels', () => {
    const bytes = decodeEdit(smallCnn(), (m) => (m.graph!.input![0] = vi('x', ['N', 5, 8, 8])))
    expect(failure(bytes)).toBe("bad.onnx: node 'conv' (Conv): input has 5 channels but the weight expects 3 (3 per group x 1 groups)")
  })
  it('a reference to a missing input', () => {
    expect(failure(model({ nodes: [node('Add', ['x', 'nope'], ['y'], 'add')] }))).toBe(
      "bad.onnx: node 'add' (Add): input 'nope' is not produced by any node, initializer or graph input",
    )
  })
  it('a reference to a missing initializer', () => {
    const bytes = decodeEdit(smallCnn(), (m) => (m.graph!.initializer = []))
    expect(failure(bytes)).toBe("bad.onnx: node 'conv' (Conv): input 'w' is not produced by any node, initializer or graph input")
  })
  it('value_info disagreeing with inferred shapes', () => {
    const nodes = [node('Relu', ['x'], ['a']), node('Relu', ['a'], ['y'])]
    expect(failure(model({ nodes, valueInfo: [vi('a', [1, 5])] }))).toBe("bad.onnx: node 'a' (Relu): the model declares 'a' with shape [1, 5] but it computes [1, 4]")
    expect(failure(model({ nodes, outputs: [vi('y', [4, 1])] }))).toBe("bad.onnx: node 'y' (Relu): the model declares 'y' with shape [4, 1] but it computes [1, 4]")
  })
})

describe('declared sizes that could not exist', () => {
  it('graph input dims', () => {
    expect(failure(model({ inputs: [vi('x', [1, 3, 100000, 100000])] }))).toBe(
      "bad.onnx: graph input 'x': shape [1, 3, 100000, 100000] has 30000000000 elements, more than the 134217728 a tensor may hold",
    )
    expect(failure(model({ inputs: [vi('x', [-3, 4])] }))).toBe("bad.onnx: graph input 'x': invalid dimension -3 in shape [-3, 4]")
  })
  it('initializer dims', () => {
    const huge = { name: 'w', dataType: F, dims: [1000000, 1000000], rawData: new Uint8Array(16) }
    expect(failure(model({ nodes: [node('Add', ['x', 'w'], ['y'])], inits: [huge] }))).toBe(
      "bad.onnx: initializer 'w': declares 1000000000000 elements, more than the 134217728 PIC accepts",
    )
    const unsafe = { name: 'w', dataType: F, dims: [2 ** 62], rawData: new Uint8Array(16) }
    expect(failure(model({ nodes: [node('Add', ['x', 'w'], ['y'])], inits: [unsafe] }))).toBe(
      "bad.onnx: initializer 'w': declares dimension 4611686018427387904, more than the 134217728 elements PIC accepts",
    )
  })
  it('initializer data shorter than its dims', () => {
    const short = { name: 'w', dataType: F, dims: [1, 4], rawData: new Uint8Array(8) }
    expect(failure(model({ nodes: [node('Add', ['x', 'w'], ['y'])], inits: [short] }))).toBe("bad.onnx: initializer 'w': has 8 bytes of data, expected 16 for shape [1, 4]")
  })
  it('a convolution whose im2col buffer could not exist', () => {
    const w = tensorToProto(tensor('float32', [1, 64, 11, 11], new Float64Array(64 * 121)), 'w')
    const bytes = model({ nodes: [node('Conv', ['x', 'w'], ['y'], 'conv')], inputs: [vi('x', [1, 64, 512, 512])], outputs: [vi('y', [1, 1, 502, 502])], inits: [w] })
    expect(failure(bytes)).toBe(`bad.onnx: node 'conv' (Conv): the convolution needs ${64 * 11 * 11 * 502 * 502} elements of im2col buffer per image, more than the ${2 ** 27} PIC allows`)
  })
  it('an intermediate shape beyond the limit', () => {
    const shape = tensorToProto(tensor('int64', [3], [100000, 100000, 4]), 'shape')
    expect(failure(model({ nodes: [node('Expand', ['x', 'shape'], ['y'], 'expand')], inits: [shape] }))).toBe(
      "bad.onnx: node 'expand' (Expand): shape [100000, 100000, 4] has 40000000000 elements, more than the 134217728 a tensor may hold",
    )
  })
})

describe('external data', () => {
  const root = mkdtempSync(path.join(tmpdir(), 'pic-ext-'))
  const dir = path.join(root, 'model')
  mkdirSync(dir)
  writeFileSync(path.join(root, 'secret.bin'), new Uint8Array(16))
  writeFileSync(path.join(dir, 'short.bin'), new Uint8Array(8))
  symlinkSync(path.join(root, 'secret.bin'), path.join(dir, 'link.bin'))
  afterAll(() => rmSync(root, { recursive: true, force: true }))
  const ext = (location: string, extra: { key: string; value: string }[] = []) =>
    model({
      nodes: [node('Add', ['x', 'w'], ['y'])],
      inits: [{ name: 'w', dataType: F, dims: [1, 4], dataLocation: onnx.TensorProto.DataLocation.EXTERNAL, externalData: [{ key: 'location', value: location }, ...extra] }],
    })
  const opts = { baseDir: dir, file: path.join(dir, 'bad.onnx') }
  const rel = (m: string) => m.replaceAll(dir, '<dir>').replaceAll(root, '<root>')
  it('missing file', () => expect(rel(failure(ext('weights.bin'), opts))).toBe("<dir>/bad.onnx: initializer 'w': external data file 'weights.bin' does not exist"))
  it('outside the folder by ..', () =>
    expect(rel(failure(ext('../secret.bin'), opts))).toBe("<dir>/bad.onnx: initializer 'w': external data location '../secret.bin' points outside the model's folder"))
  it('outside the folder by an absolute path', () =>
    expect(rel(failure(ext(path.join(root, 'secret.bin')), opts))).toBe(
      "<dir>/bad.onnx: initializer 'w': external data location '<root>/secret.bin' points outside the model's folder",
    ))
  it('outside the folder by a symlink', () =>
    expect(rel(failure(ext('link.bin'), opts))).toBe("<dir>/bad.onnx: initializer 'w': external data location 'link.bin' points outside the model's folder"))
  it('a range beyond the file', () => {
    expect(rel(failure(ext('short.bin', [{ key: 'offset', value: '4' }, { key: 'length', value: '16' }]), opts))).toBe(
      "<dir>/bad.onnx: initializer 'w': external data range 4+16 is outside 'short.bin' (8 bytes)",
    )
    expect(rel(failure(ext('short.bin'), opts))).toBe("<dir>/bad.onnx: initializer 'w': has 8 bytes of data, expected 16 for shape [1, 4]")
  })
  it('no folder to read from', () =>
    expect(failure(ext('weights.bin'))).toBe("bad.onnx: initializer 'w': has external data but the model was not read from a folder"))
})

describe('the CLI form: one line on stderr, non-zero exit, no stack trace', () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'pic-cli-'))
  afterAll(() => rmSync(dir, { recursive: true, force: true }))
  const cases: [string, Uint8Array, string][] = [
    ['empty.onnx', new Uint8Array(0), 'the file is empty'],
    ['truncated.onnx', smallCnn().subarray(0, 500), 'not a valid ONNX model: the protobuf ends inside a field (truncated file?)'],
    ['unknown.onnx', model({ nodes: [node('FooOp', ['x'], ['a']), node('BarOp', ['a'], ['y'])] }), "unsupported ops: FooOp (node 'a'); BarOp (node 'y')"],
    ['channels.onnx', decodeEdit(smallCnn(), (m) => (m.graph!.input![0] = vi('x', ['N', 5, 8, 8]))), "node 'conv' (Conv): input has 5 channels but the weight expects 3 (3 per group x 1 groups)"],
  ]
  for (const [name, bytes, problem] of cases) {
    it(name, () => {
      const file = path.join(dir, name)
      writeFileSync(file, bytes)
      const r = pic('inspect', file)
      expect(r.code).not.toBe(0)
      expect(r.stdout).toBe('')
      expect(r.stderr).toBe(`pic: error: ${file}: ${problem}\n`)
    })
  }
})

describe('a graph that does not hold at the given batch size', () => {
  it('names the node that breaks', () => {
    const shape = tensorToProto(tensor('int64', [2], [1, 8]), 'shape')
    const bytes = model({ nodes: [node('Reshape', ['x', 'shape'], ['y'], 'flat')], inputs: [vi('x', ['N', 2, 4])], outputs: [vi('y', [1, 8])], inits: [shape] })
    const g = importModel(bytes, { file: 'fixed.onnx' })
    expect(() => interpret(g, [tensor('float32', [3, 2, 4])])).toThrow(
      new InterpretError("the graph does not hold with N = 3: node 'flat' (Reshape): cannot reshape [3,2,4] (24 elements) to [1, 8]"),
    )
  })
})
