/**
 * AveragePool edge cases the conformance set leaves out, in closed form: with count_include_pad the
 * divisor counts the taps inside the padded input, also for dilated windows that ceil_mode lets run
 * past it (an average of ones over real taps only is 1).
 */
import { describe, expect, it } from 'vitest'
import { GraphBuilder } from '../../ir/builder.js'
import { interpret } from '../../ir/interpret.js'
import { tensor } from '../../ir/tensor.js'

function avgPool(x: number[][], attrs: { k: number; s: number; d: number; p: number; ceil: boolean }): number[] {
  const h = x.length
  const b = new GraphBuilder('pool', 19)
  b.input('x', 'float32', [1, 1, h, h])
  const { k, s, d, p, ceil } = attrs
  b.add('AveragePool', ['x'], { kernel: [k, k], strides: [s, s], dilations: [d, d], pads: [p, p, p, p], autoPad: 'NOTSET', ceil, countIncludePad: true }, { name: 'y' })
  return Array.from(interpret(b.build(['y']), [tensor('float32', [1, 1, h, h], x.flat())]).get('y')!.data)
}

const ones = (n: number) => Array.from({ length: n }, () => new Array<number>(n).fill(1))

describe('AveragePool count_include_pad', () => {
  it('counts pads inside the window: [[1,2,1],[2,4,2],[1,2,1]] / 4', () => {
    expect(avgPool(ones(3), { k: 2, s: 1, d: 2, p: 1, ceil: false })).toEqual([1, 2, 1, 2, 4, 2, 1, 2, 1].map((v) => v / 4))
  })
  it('does not count dilated taps that ceil_mode puts past the padded input', () => {
    expect(avgPool(ones(4), { k: 2, s: 2, d: 2, p: 0, ceil: true })).toEqual([1, 1, 1, 1])
  })
})
