import { describe, expect, it } from 'vitest'
import { GraphBuilder } from '../../ir/builder.js'
import { RawAttrs } from '../../ir/op.js'
import { OPS } from '../../ir/ops/index.js'
import { passContext, runPipeline } from '../../passes/pass.js'
import { lowerMaxpool } from '../../passes/lower-maxpool.js'
import { common } from '../../passes/pipelines.js'
import { expectSame, fixture, onnxNode, ops, random, testX } from './util.js'

function pool(raw: Record<string, number[] | number | string>, shape = [2, 3, 7, 7]) {
  const b = new GraphBuilder('g', 13)
  b.input('x', 'float32', shape)
  onnxNode(b, 'MaxPool', ['x'], 'y', raw)
  return b.build(['y'])
}

const lower = (g: ReturnType<typeof pool>, options: Record<string, unknown> = { approx: 'ola' }) => {
  const logs: string[] = []
  const out = runPipeline(g, [lowerMaxpool], passContext(options, { log: (m) => logs.push(m) }))
  return { out, logs }
}

describe('lower-maxpool', () => {
  const cases: Record<string, Record<string, number[] | number | string>> = {
    'k2 s2': { kernel_shape: [2, 2], strides: [2, 2] },
    'k3 s2 pads 1': { kernel_shape: [3, 3], strides: [2, 2], pads: [1, 1, 1, 1] },
    'k3 s1 SAME_UPPER': { kernel_shape: [3, 3], auto_pad: 'SAME_UPPER' },
    'k2 s2 ceil_mode': { kernel_shape: [2, 2], strides: [2, 2], ceil_mode: 1 },
    'k2 s1 dilation 2': { kernel_shape: [2, 2], dilations: [2, 2] },
    'k3x2 s(1,2) pads (0,1,2,0)': { kernel_shape: [3, 2], strides: [1, 2], pads: [0, 1, 2, 0] },
  }
  for (const [name, raw] of Object.entries(cases))
    it(`is exact before approximation: ${name}`, () => {
      const g = pool(raw)
      const { out } = lower(g)
      expect(ops(out).MaxPool).toBeUndefined()
      expect(ops(out).Abs).toBeGreaterThan(0)
      expectSame(g, out, [random([2, 3, 7, 7], 7)])
    })

  it('is exact on the cnn_bn_relu_maxpool fixture', () => {
    const g = runPipeline(fixture('cnn_bn_relu_maxpool'), common, passContext())
    expectSame(g, lower(g).out, [testX(40)])
  })

  it('does nothing without --approx or with --keep-relu', () => {
    const g = pool(cases['k2 s2'])
    expect(lower(g, {}).out).toBe(g)
    expect(lower(g, { approx: 'ola', keepRelu: true }).out).toBe(g)
  })

  it('--maxpool avg uses AveragePool and says the semantics changed', () => {
    const g = pool(cases['k2 s2'])
    const { out, logs } = lower(g, { approx: 'hermite:2', maxpool: 'avg' })
    expect(ops(out).AveragePool).toBe(1)
    expect(ops(out).MaxPool).toBeUndefined()
    expect(logs).toEqual(["lower-maxpool: MaxPool 'y' replaced by AveragePool: the model's semantics changed"])
  })

  it("refuses MaxPool's indices output, in both modes (it is not a value additions and multiplications can give)", () => {
    const b = new GraphBuilder('g', 13)
    b.input('x', 'float32', [2, 3, 7, 7])
    const attrs = OPS.MaxPool.attrs(RawAttrs.of({ kernel_shape: [2, 2], strides: [2, 2] }))
    b.add('MaxPool', ['x'], { ...attrs, output: 0, outputs: 2 }, { name: 'y' })
    b.add('MaxPool', ['x'], { ...attrs, output: 1, outputs: 2 }, { name: 'i' })
    const g = b.build(['y', 'i'])
    for (const maxpool of ['poly', 'avg']) expect(() => lower(g, { approx: 'ola', maxpool })).toThrow("MaxPool 'i': its indices output cannot be computed with additions and multiplications")
  })

  it('rejects an unknown --maxpool mode', () => {
    expect(() => lower(pool(cases['k2 s2']), { approx: 'ola', maxpool: 'min' })).toThrow("--maxpool 'min': expected poly or avg")
  })
})
