/** recognize-activations: GELU, SiLU, HardSwish and partial ReLU in their exported spellings. */
import { describe, expect, it } from 'vitest'
import { GraphBuilder } from '../../ir/builder.js'
import type { Graph } from '../../ir/graph.js'
import type { PartialReluAttrs } from '../../ir/ops/pi.js'
import { recognizeActivations } from '../../passes/recognize-activations.js'
import { common } from '../../passes/pipelines.js'
import { apply, constant, expectKeepsFixture, expectSame, fixture, onnxNode, ops, random, skeleton } from './util.js'

const SHAPE = [2, 3, 4, 4]
const x = [random(SHAPE, 11, -4, 4)]

function graph(build: (b: GraphBuilder) => string): Graph {
  const b = new GraphBuilder('g', 13)
  b.input('x', 'float32', SHAPE)
  return b.build([build(b)])
}

/** Recognized as exactly `expected` (after dead-code removal) and numerically the same to `rel`. */
function expectRecognized(g: Graph, expected: string[], rel: number): void {
  const h = apply(g, recognizeActivations)
  expect(skeleton(h)).toEqual(expected)
  expectSame(g, h, x, rel)
}

describe('GELU', () => {
  it('recognizes the PyTorch erf export in cnn_gelu', () => {
    const g = fixture('cnn_gelu')
    const h = apply(g, ...common)
    expect(ops(h).Gelu).toBe(2)
    expect(ops(h).Erf).toBeUndefined()
    expectKeepsFixture('cnn_gelu', g, h, 1e-6)
  })

  it('recognizes other groupings: Mul by 1/sqrt2, 1 + erf first, Div by 2, constants as [1] tensors', () => {
    const g = graph((b) => {
      constant(b, 'r', [1], [Math.fround(Math.SQRT1_2)])
      constant(b, 'one', [1], [1])
      constant(b, 'two', [], [2])
      onnxNode(b, 'Mul', ['r', 'x'], 'z')
      onnxNode(b, 'Erf', ['z'], 'e')
      onnxNode(b, 'Add', ['one', 'e'], 'a')
      onnxNode(b, 'Mul', ['a', 'x'], 'm')
      return onnxNode(b, 'Div', ['m', 'two'], 'y')
    })
    expectRecognized(g, ['y = Gelu(x)'], 1e-6)
  })

  it('recognizes the tanh approximation', () => {
    const g = graph((b) => {
      constant(b, 'three', [], [3])
      constant(b, 'k', [], [0.044715])
      constant(b, 's', [], [Math.sqrt(2 / Math.PI)])
      constant(b, 'one', [], [1])
      constant(b, 'half', [], [0.5])
      onnxNode(b, 'Pow', ['x', 'three'], 'x3')
      onnxNode(b, 'Mul', ['k', 'x3'], 'kx3')
      onnxNode(b, 'Add', ['x', 'kx3'], 'in')
      onnxNode(b, 'Mul', ['in', 's'], 'arg')
      onnxNode(b, 'Tanh', ['arg'], 't')
      onnxNode(b, 'Add', ['t', 'one'], 'a')
      onnxNode(b, 'Mul', ['half', 'x'], 'hx')
      return onnxNode(b, 'Mul', ['hx', 'a'], 'y')
    })
    expectRecognized(g, ['y = Gelu(x)'], 1e-9)
    expect(apply(g, recognizeActivations).nodes.find((n) => n.op === 'Gelu')!.attrs).toEqual({ approximate: 'tanh' })
  })

  it('leaves x * (1 + erf(x / sqrt3)) / 2 and x * (1 + erf(u / sqrt2)) / 2 alone', () => {
    for (const [div, arg] of [[Math.sqrt(3), 'x'], [Math.SQRT2, 'u']]) {
      const g = graph((b) => {
        constant(b, 'd', [], [div as number])
        constant(b, 'one', [], [1])
        constant(b, 'half', [], [0.5])
        if (arg === 'u') onnxNode(b, 'Neg', ['x'], 'u')
        onnxNode(b, 'Div', [arg as string, 'd'], 'z')
        onnxNode(b, 'Erf', ['z'], 'e')
        onnxNode(b, 'Add', ['e', 'one'], 'a')
        onnxNode(b, 'Mul', ['x', 'a'], 'm')
        return onnxNode(b, 'Mul', ['m', 'half'], 'y')
      })
      expect(apply(g, recognizeActivations)).toEqual(g)
    }
  })
})

describe('SiLU and HardSwish', () => {
  it('recognizes x * Sigmoid(x) in both orders, and not x * Sigmoid(-x)', () => {
    for (const first of [true, false]) {
      const g = graph((b) => {
        onnxNode(b, 'Sigmoid', ['x'], 's')
        return onnxNode(b, 'Mul', first ? ['x', 's'] : ['s', 'x'], 'y')
      })
      expectRecognized(g, ['y = Silu(x)'], 1e-12)
    }
    const g = graph((b) => {
      onnxNode(b, 'Neg', ['x'], 'n')
      onnxNode(b, 'Sigmoid', ['n'], 's')
      return onnxNode(b, 'Mul', ['x', 's'], 'y')
    })
    expect(apply(g, recognizeActivations)).toEqual(g)
  })

  it('recognizes x * HardSigmoid(x) (alpha 1/6) and x * Clip(x + 3, 0, 6) / 6, not HardSigmoid with alpha 0.2', () => {
    const viaSigmoid = (alpha: number) =>
      graph((b) => {
        onnxNode(b, 'HardSigmoid', ['x'], 'h', { alpha, beta: 0.5 })
        return onnxNode(b, 'Mul', ['h', 'x'], 'y')
      })
    expectRecognized(viaSigmoid(Math.fround(1 / 6)), ['y = HardSwish(x)'], 1e-6)
    const viaClip = graph((b) => {
      constant(b, 'three', [], [3])
      constant(b, 'zero', [], [0])
      constant(b, 'six', [], [6])
      onnxNode(b, 'Add', ['three', 'x'], 'a')
      onnxNode(b, 'Clip', ['a', 'zero', 'six'], 'c')
      onnxNode(b, 'Mul', ['x', 'c'], 'm')
      return onnxNode(b, 'Div', ['m', 'six'], 'y')
    })
    expectRecognized(viaClip, ['y = HardSwish(x)'], 1e-12)
    const g = viaSigmoid(0.2)
    expect(apply(g, recognizeActivations)).toEqual(g)
  })
})

describe('partial ReLU', () => {
  it('recognizes senet_partial_relu: a channel mask and a pixel mask, carried as the initializers', () => {
    const g = fixture('senet_partial_relu')
    const h = apply(g, ...common)
    const prs = h.nodes.filter((n) => n.op === 'PartialRelu')
    expect(prs.length).toBe(2)
    expect(ops(h).Relu).toBeUndefined()
    const masks = g.nodes.filter((n) => n.name.endsWith('.mask')).map((n) => n.attrs.value)
    expect(prs.map((n) => (n.attrs as unknown as PartialReluAttrs).mask)).toEqual(masks)
    expectKeepsFixture('senet_partial_relu', g, h, 1e-9)
  })

  const mask = random([1, 3, 4, 4], 5, 0, 1).data.map((v) => (v < 0.4 ? 0 : 1))

  function masked(order: number, m: Float64Array = mask, complement?: Float64Array) {
    return graph((b) => {
      constant(b, 'm', [1, 3, 4, 4], Array.from(m))
      onnxNode(b, 'Relu', ['x'], 'r')
      onnxNode(b, 'Mul', order & 1 ? ['r', 'm'] : ['m', 'r'], 'on')
      if (complement) constant(b, 'k', [1, 3, 4, 4], Array.from(complement))
      else onnxNode(b, 'Sub', [constant(b, 'one', [], [1]), 'm'], 'k')
      onnxNode(b, 'Mul', order & 2 ? ['x', 'k'] : ['k', 'x'], 'off')
      return onnxNode(b, 'Add', order & 4 ? ['off', 'on'] : ['on', 'off'], 'y')
    })
  }

  it('recognizes m * Relu(x) + (1 - m) * x in every operand order', () => {
    for (let order = 0; order < 8; order++) {
      const g = masked(order)
      const h = apply(g, recognizeActivations)
      expect(skeleton(h)).toEqual(['y = PartialRelu(x)'])
      expect((h.nodes.find((n) => n.op === 'PartialRelu')!.attrs as unknown as PartialReluAttrs).mask.data).toEqual(mask)
      expectSame(g, h, x, 1e-12)
    }
  })

  it('recognizes x + m * (Relu(x) - x)', () => {
    const g = graph((b) => {
      constant(b, 'm', [1, 3, 1, 1], [1, 0, 1])
      onnxNode(b, 'Relu', ['x'], 'r')
      onnxNode(b, 'Sub', ['r', 'x'], 'd')
      onnxNode(b, 'Mul', ['d', 'm'], 'md')
      return onnxNode(b, 'Add', ['x', 'md'], 'y')
    })
    expectRecognized(g, ['y = PartialRelu(x)'], 1e-12)
  })

  it('makes an all-ones mask a Relu, and leaves masks that are not 0/1 or not complementary', () => {
    expectRecognized(masked(0, new Float64Array(mask.length).fill(1)), ['y = Relu(x)'], 1e-12)
    const half = masked(0, new Float64Array(mask.length).fill(0.5))
    expect(apply(half, recognizeActivations)).toEqual(half)
    const wrong = masked(0, mask, mask)
    expect(apply(wrong, recognizeActivations)).toEqual(wrong)
  })
})
