/** Half-gates garbling: the ReLU and max-pool circuits agree with plaintext on random shares. */
import { describe, expect, it } from 'vitest'
import { encodeLabels, evaluate, fromBits, garble, getWindowCircuit, toBits } from '../../../backends/mpc/gc.js'
import { decode, encode, freshSeed, Prg } from '../../../backends/mpc/ring.js'

const F = 13
const W = 41

function run(k: number, relu: boolean, vals: number[][]) {
  const n = vals.length
  const circ = getWindowCircuit({ k, inBits: W, shift: F, relu, outBits: 64 })
  const prg = new Prg(freshSeed(), 't')
  const sa = prg.ring(n * k)
  const sb = new BigUint64Array(n * k)
  for (let i = 0; i < n; i++) for (let j = 0; j < k; j++) sb[i * k + j] = encode(vals[i][j], 2 * F) - sa[i * k + j]
  const u = prg.ring(n)
  const gb = garble(circ, n, freshSeed(), 7)
  const la = encodeLabels(gb, n, circ.inputsA, toBits(sa, W))
  const lb = encodeLabels(gb, n, circ.inputsB, toBits(sb, W))
  const lu = encodeLabels(gb, n, circ.inputsU, toBits(u, 64))
  const out = fromBits(evaluate(circ, n, la, lb, lu, gb.tables, gb.decode, 7, gb.hashKey), 64)
  return { circ, got: Array.from(out, (z, i) => decode(z - u[i], F)) }
}

describe('garbled circuits', () => {
  it('ReLU with truncation: 130 AND gates, exact to one ulp', () => {
    const vals = [[3.25], [-2.5], [0], [1000.125], [-0.0001], [7.77]]
    const { circ, got } = run(1, true, vals)
    expect(circ.ands).toBe(130)
    vals.forEach((v, i) => expect(Math.abs(got[i] - Math.max(0, v[0]))).toBeLessThan(2 ** -F * 1.01))
  })
  it('ReLU then max over a 2x2 window, and signed max without ReLU', () => {
    const vals = [[1, -2, 3.5, 0.25], [-1, -2, -3, -4], [5, 5, 4, 6], [-7, 8, 0, 0]]
    const a = run(4, true, vals)
    const b = run(4, false, vals)
    vals.forEach((v, i) => {
      expect(a.got[i]).toBeCloseTo(Math.max(0, ...v), 3)
      expect(b.got[i]).toBeCloseTo(Math.max(...v), 3)
    })
  })
})
