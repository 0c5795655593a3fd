import { describe, expect, it } from 'vitest'
import { GraphBuilder } from '../../ir/builder.js'
import { tensor } from '../../ir/tensor.js'
import { calibrate } from '../../passes/calibrate.js'
import { random } from './util.js'

function graph() {
  const b = new GraphBuilder('g', 13)
  b.input('x', 'float32', ['N', 2, 3])
  b.add('Relu', ['x'], {}, { name: 'r' })
  b.add('PartialRelu', ['x'], { mask: tensor('float32', [1, 2, 1], [0, 1]) }, { name: 'p' })
  b.add('Add', ['r', 'p'], {}, { name: 'y' })
  return b.build(['y'])
}

describe('calibrate', () => {
  const x = random([10, 2, 3], 3, -3, 3)
  const byChannel = (c: number) => {
    const v: number[] = []
    for (let n = 0; n < 10; n++) for (let k = 0; k < 3; k++) v.push(x.data[n * 6 + c * 3 + k])
    return v
  }
  const mean = (v: number[]) => v.reduce((s, t) => s + t, 0) / v.length
  const std = (v: number[]) => Math.sqrt(mean(v.map((t) => (t - mean(v)) ** 2)))

  it('records per-channel and overall statistics of every activation input, in batches with progress', () => {
    const logs: string[] = []
    const st = calibrate(graph(), x, { batch: 4, bins: 8, log: (m) => logs.push(m) })
    expect(logs).toEqual(['calibrate: 4/10 samples', 'calibrate: 8/10 samples', 'calibrate: 10/10 samples'])
    const r = st.get('r')!
    for (const c of [0, 1]) {
      const v = byChannel(c)
      expect(r.channels.count[c]).toBe(30)
      expect(r.channels.mean[c]).toBeCloseTo(mean(v), 12)
      expect(r.channels.std[c]).toBeCloseTo(std(v), 12)
      expect(r.channels.min[c]).toBe(Math.min(...v))
      expect(r.channels.max[c]).toBe(Math.max(...v))
    }
    const all = [...byChannel(0), ...byChannel(1)]
    expect(r.mean).toBeCloseTo(mean(all), 12)
    expect(r.std).toBeCloseTo(std(all), 12)
    expect(r.histogram.counts.reduce((s, t) => s + t, 0)).toBe(60)
    expect(r.histogram.lo).toBe(Math.min(...all))
    expect(r.histogram.hi).toBe(Math.max(...all))
    expect(r.sample.x.length).toBe(60)
  })

  it('counts only the positions a PartialRelu mask selects', () => {
    const p = calibrate(graph(), x).get('p')!
    expect(p.channels.count).toEqual([0, 30])
    expect(p.count).toBe(30)
    expect(p.mean).toBeCloseTo(mean(byChannel(1)), 12)
    expect(p.min).toBe(Math.min(...byChannel(1)))
  })

  it('feeds a model with a fixed batch size chunks of exactly that size', () => {
    const b = new GraphBuilder('g', 13)
    b.input('x', 'float32', [4, 2, 3])
    b.add('Relu', ['x'], {}, { name: 'r' })
    const r = calibrate(b.build(['r']), x).get('r')!
    expect(r.count).toBe(8 * 6)
    expect(r.channels.mean[0]).toBeCloseTo(mean(byChannel(0).slice(0, 24)), 12)
  })
})
