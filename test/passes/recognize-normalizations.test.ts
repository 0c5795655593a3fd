/**
 * recognize-normalizations: Softmax and LogSoftmax spelled out (below); LayerNorm as opset-13 exporters spell it (ReduceMean, Sub, Pow, ReduceMean,
 * Add, Sqrt, Div, then Mul and Add by the affine parameters) becomes one LayerNormalization with the
 * parameters folded in: before and expected IR as text, numbers against the float64 interpreter on
 * the spelled-out graph, and against ONNX's own LayerNormalization test data; graphs that only look
 * alike stay exactly as they were.
 */
import { existsSync, readFileSync } from 'node:fs'
import path from 'node:path'
import { describe, expect, it } from 'vitest'
import { importModel } from '../../compiler/onnx-import.js'
import { readTensorPb } from '../../compiler/onnx-tensor.js'
import { GraphBuilder } from '../../ir/builder.js'
import type { Graph } from '../../ir/graph.js'
import { interpret } from '../../ir/interpret.js'
import { recognizeNormalizations } from '../../passes/recognize-normalizations.js'
import { ROOT } from '../onnx-testdata.js'
import { apply, constant, expectSame, onnxNode, random, skeleton } from './util.js'

const SHAPE = [2, 5, 8]
const x = [random(SHAPE, 3, -3, 3)]

/** x -> LayerNorm over `axes` spelled out; `square` as Pow or Mul; scale and bias when given. */
function spelled(opts: { axes?: number[]; meanAxes2?: number[]; square?: 'pow' | 'mul'; affine?: boolean; eps?: number } = {}): Graph {
  const b = new GraphBuilder('ln', 13)
  b.input('x', 'float32', SHAPE)
  const axes = opts.axes ?? [-1]
  onnxNode(b, 'ReduceMean', ['x'], 'mean', { axes })
  onnxNode(b, 'Sub', ['x', 'mean'], 'd')
  if (opts.square === 'mul') onnxNode(b, 'Mul', ['d', 'd'], 'sq')
  else {
    constant(b, 'two', [], [2])
    onnxNode(b, 'Pow', ['d', 'two'], 'sq')
  }
  onnxNode(b, 'ReduceMean', ['sq'], 'var', { axes: opts.meanAxes2 ?? axes })
  constant(b, 'eps', [], [opts.eps ?? 1e-5])
  onnxNode(b, 'Add', ['var', 'eps'], 've')
  onnxNode(b, 'Sqrt', ['ve'], 'std')
  const n = onnxNode(b, 'Div', ['d', 'std'], 'n')
  if (!opts.affine) return b.build([n])
  const inner = SHAPE.slice(SHAPE.length - axes.length)
  constant(b, 'gamma', inner, random(inner, 5, 0.5, 1.5))
  constant(b, 'beta', inner, random(inner, 6, -0.5, 0.5))
  onnxNode(b, 'Mul', ['n', 'gamma'], 'scaled')
  return b.build([onnxNode(b, 'Add', ['scaled', 'beta'], 'y')])
}

describe('recognize-normalizations', () => {
  it('the opset-13 spelling with its scale and shift becomes one LayerNormalization', () => {
    const g = spelled({ affine: true })
    const h = apply(g, recognizeNormalizations)
    expect(skeleton(h)).toEqual(['y = LayerNormalization(x, #y_scale, #y_bias)'])
    expect(h.nodes.find((n) => n.op === 'LayerNormalization')!.attrs).toMatchObject({ axis: 2, epsilon: 1e-5 })
    expectSame(g, h, x, 1e-12)
  })

  it('x * x for the square, two trailing axes, no affine part', () => {
    const g = spelled({ square: 'mul', axes: [1, 2], eps: 1e-3 })
    const h = apply(g, recognizeNormalizations)
    expect(skeleton(h)).toEqual(['n = LayerNormalization(x, #n_scale)'])
    expect(h.nodes.find((n) => n.op === 'LayerNormalization')!.attrs).toMatchObject({ axis: 1, epsilon: 1e-3 })
    expectSame(g, h, x, 1e-12)
  })

  it('changes nothing where the pattern only looks alike (a leading axis, or two different axes)', () => {
    for (const g of [spelled({ axes: [0] }), spelled({ axes: [-1], meanAxes2: [1] })]) {
      const h = apply(g, recognizeNormalizations)
      expect(skeleton(h)).toEqual(skeleton(g))
    }
  })

  it.skipIf(!process.env.CI && !existsSync(ROOT))("recognized, the spelled-out graph gives ONNX's LayerNormalization outputs on its own test data", () => {
    const dir = path.join(ROOT, 'node', 'test_layer_normalization_3d_axis_negative_1_epsilon')
    const op = importModel(readFileSync(path.join(dir, 'model.onnx')), { file: 'ln.onnx' }).nodes.find((n) => n.op === 'LayerNormalization')!
    const [X, W, B] = [0, 1, 2].map((k) => readTensorPb(readFileSync(path.join(dir, 'test_data_set_0', `input_${k}.pb`))))
    const want = readTensorPb(readFileSync(path.join(dir, 'test_data_set_0', 'output_0.pb')))
    const bld = new GraphBuilder('ln', 13)
    bld.input('x', 'float32', X.shape)
    onnxNode(bld, 'ReduceMean', ['x'], 'mean', { axes: [-1] })
    onnxNode(bld, 'Sub', ['x', 'mean'], 'd')
    constant(bld, 'two', [], [2])
    onnxNode(bld, 'Pow', ['d', 'two'], 'sq')
    onnxNode(bld, 'ReduceMean', ['sq'], 'var', { axes: [-1] })
    constant(bld, 'eps', [], [(op.attrs as { epsilon: number }).epsilon])
    onnxNode(bld, 'Add', ['var', 'eps'], 've')
    onnxNode(bld, 'Sqrt', ['ve'], 'std')
    onnxNode(bld, 'Div', ['d', 'std'], 'n')
    constant(bld, 'gamma', [...W.shape], W)
    constant(bld, 'beta', [...B.shape], B)
    onnxNode(bld, 'Mul', ['n', 'gamma'], 'scaled')
    const g = bld.build([onnxNode(bld, 'Add', ['scaled', 'beta'], 'y')])
    const h = apply(g, recognizeNormalizations)
    expect(skeleton(h)).toEqual(['y = LayerNormalization(x, #y_scale, #y_bias)'])
    const got = interpret(h, [X]).get(h.outputs[0])!
    expect(got.shape).toEqual(want.shape)
    for (let i = 0; i < want.data.length; i++) expect(Math.abs(got.data[i] - want.data[i])).toBeLessThanOrEqual(1e-5 + 1e-4 * Math.abs(want.data[i]))
  })

  /** x -> Exp(x - max) / Sum, or x -> y - Log(Sum(Exp(y))) over `axis`. */
  function soft(kind: 'softmax' | 'plain' | 'log', axis: number, sumAxis = axis): Graph {
    const b = new GraphBuilder('sm', 13)
    b.input('x', 'float32', SHAPE)
    const y = kind === 'plain' ? 'x' : (onnxNode(b, 'ReduceMax', ['x'], 'max', { axes: [axis] }), onnxNode(b, 'Sub', ['x', 'max'], 'y'))
    onnxNode(b, 'Exp', [y], 'e')
    constant(b, 'ax', [1], [sumAxis])
    onnxNode(b, 'ReduceSum', ['e', 'ax'], 's')
    if (kind === 'log') {
      onnxNode(b, 'Log', ['s'], 'l')
      return b.build([onnxNode(b, 'Sub', [y, 'l'], 'out')])
    }
    return b.build([onnxNode(b, 'Div', ['e', 's'], 'out')])
  }

  it('Softmax with and without the max subtracted, and LogSoftmax, spelled out become one op each', () => {
    for (const [kind, op] of [['softmax', 'Softmax'], ['plain', 'Softmax'], ['log', 'LogSoftmax']] as const) {
      const g = soft(kind, 1)
      const h = apply(g, recognizeNormalizations)
      expect(skeleton(h)).toEqual([`out = ${op}(x)`])
      expect(h.nodes.find((n) => n.op === op)!.attrs).toMatchObject({ axis: 1 })
      expectSame(g, h, x, 1e-12)
    }
  })

  it('changes nothing when the max and the sum run over different axes', () => {
    for (const kind of ['softmax', 'log'] as const) {
      const g = soft(kind, 1, 2)
      expect(skeleton(apply(g, recognizeNormalizations))).toEqual(skeleton(g))
    }
  })
})
