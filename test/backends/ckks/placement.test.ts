/**
 * Refreshes placed by cost (backends/ckks/placement.ts). The placement model must price a lowering
 * as compile.ts prices the finished plan (the plan's own estimate is the oracle); its search must
 * find the cheapest of all placements on a graph small enough to enumerate; on a chain of
 * convolutions and squares with two levels between refreshes the cheapest placement has a closed
 * form (every rotation at the bottom of the chain, where the latest point puts them at the top);
 * and the plans it makes compute what the interpreter computes, noiselessly and under node-seal.
 */
import { describe, expect, it } from 'vitest'
import { compileCkks, compileOptionsFrom, runPlan, simulatePlan } from '../../../backends/ckks/index.js'
import { assignLevels } from '../../../backends/ckks/compile.js'
import { lowerGraph } from '../../../backends/ckks/lower.js'
import { chainFor, maxLogQ, sealPrimes } from '../../../backends/ckks/params.js'
import { RefreshModel } from '../../../backends/ckks/placement.js'
import { GraphBuilder } from '../../../ir/builder.js'
import type { Graph } from '../../../ir/graph.js'
import { argmax } from '../../../passes/ola.js'
import { constant, onnxNode, random } from '../../passes/util.js'
import { compiledGraph, maxAbsDiff, reference, testImages } from './helpers.js'

/** x [1,2,8,8] -> (conv 3x3 -> square) x k -> dense 10: 2k + 1 levels. */
function chainNet(k: number): Graph {
  const b = new GraphBuilder('chain', 13, { N: 1 })
  b.input('x', 'float32', ['N', 2, 8, 8])
  let h = 'x'
  for (let i = 0; i < k; i++) {
    const c = onnxNode(b, 'Conv', [h, constant(b, `w${i}`, [2, 2, 3, 3], random([2, 2, 3, 3], 20 + i, -0.3, 0.3)), constant(b, `b${i}`, [2], random([2], 40 + i, -0.1, 0.1))], `c${i}`, { pads: [1, 1, 1, 1] })
    h = onnxNode(b, 'Mul', [c, c], `s${i}`)
  }
  const f = onnxNode(b, 'Flatten', [h], 'flat', { axis: 1 })
  return b.build([onnxNode(b, 'Gemm', [f, constant(b, 'wd', [128, 10], random([128, 10], 7, -0.2, 0.2)), constant(b, 'bd', [10], random([10], 8))], 'out')])
}

const slots = 4096
const free = (g: Graph) => lowerGraph(g, { slots, maxInputCts: 8, budget: Infinity })

/** Levels of the plan lowered at chain length L with the given early sites. */
function leveled(g: Graph, L: number, at?: ReadonlySet<number>) {
  const primes = chainFor(L, 26, 10, maxLogQ(13, 128))!
  const lowered = lowerGraph(g, { slots, maxInputCts: 8, budget: L, refreshAt: at })
  return assignLevels(lowered, { logN: 13, primes, logScale: 26, security: 128 }, sealPrimes(13, primes))
}

describe('ckks: refreshes placed by cost', () => {
  const g = compiledGraph('cnn_square')
  // plans without the masked refreshes' reserve (refresh.ts), which leaves one chain length at N = 8192, 192-bit
  const opts = { security: 192 as const, logN: 13, keyBudgetBytes: Infinity, refreshMask: false }

  it("the model prices a placement as the finished plan's estimate does, at every chain length", () => {
    // with the reserve too: every refresh reads its value one level up
    for (const refreshMask of [true, false]) {
      const latest = compileCkks(g, { ...opts, refreshMask, refreshPlacement: 'latest' })
      const cost = compileCkks(g, { ...opts, refreshMask })
      const real = latest.stats.choices!
      const modelled = cost.stats.choices!
      expect(modelled.map((c) => c.levels)).toEqual(real.map((c) => c.levels))
      for (const [k, c] of modelled.entries()) {
        // the model's price of the latest point against the plan compiled there (rounded to ms)
        expect(Math.abs(c.latestPointMs! - real[k].estimatedMs)).toBeLessThanOrEqual(1)
        expect(c.latestPointRefreshes).toBe(real[k].refreshes)
        expect(c.estimatedMs).toBeLessThanOrEqual(real[k].estimatedMs)
      }
    }
    const latest = compileCkks(g, { ...opts, refreshPlacement: 'latest' })
    const cost = compileCkks(g, opts)
    expect(cost.stats.estimatedTotalMs).toBeLessThan(latest.stats.estimatedTotalMs)
    expect(cost.stats.notes.join('\n')).toMatch(/refreshes placed by cost at this chain: \d+ site\(s\) refreshed early; modelled [\d.]+ s and \d+ refreshes against [\d.]+ s and \d+ at the latest point/)
    expect(cost.stats.notes.join('\n')).toMatch(/bootstrap \(refresh\) placed before this step: depth \d+ of the chain's \d+ levels, placed here by cost/)
  })

  it('the search finds the cheapest of all placements where they can be enumerated', () => {
    const lowered = free(chainNet(3))
    const seeds: Uint8Array[] = []
    for (const L of [2, 3]) {
      const m = new RefreshModel(lowered, L, 13)
      expect(m.sites).toBeLessThanOrEqual(14)
      let best = Infinity
      const X = new Uint8Array(m.sites)
      for (let mask = 0; mask < 2 ** m.sites; mask++) {
        for (let s = 0; s < m.sites; s++) X[s] = (mask >> s) & 1
        best = Math.min(best, m.cost(X)?.ms ?? Infinity)
      }
      // as compile.ts does: each chain length seeded with the sites of the shorter ones
      const found = m.search(seeds)!
      seeds.push(found.refreshedSites)
      expect(found.ms).toBeCloseTo(best, 9)
      expect(found.ms).toBeLessThan(found.latestMs)
    }
  })

  it('two levels between refreshes: every rotation at the bottom of the chain, where the latest point puts the transforms at the top', () => {
    const net = chainNet(4)
    const found = new RefreshModel(free(net), 2, 13).search()!
    // the output level of each transform: its rescale (one that does not follow a relinearization); its rotations run at that level + 1
    const outLevels = (lv: ReturnType<typeof leveled>) => {
      const relin = new Set(lv.instrs.filter((i) => i.op === 'relin').map((i) => i.dst))
      return new Set(lv.instrs.filter((i) => i.op === 'rescale' && !relin.has(i.args[0])).map((i) => i.level))
    }
    const latest = leveled(net, 2)
    const placed = leveled(net, 2, found.at)
    // latest: a refresh before each convolution (the square before it used both levels): the convolutions end at level 1, the last (dense) at 0
    expect(outLevels(latest)).toEqual(new Set([0, 1]))
    expect(Math.max(...latest.instrs.filter((i) => i.op === 'rotate').map((i) => i.level))).toBe(2)
    // by cost: a refresh before each square instead, every transform ends at the bottom of the chain
    expect(outLevels(placed)).toEqual(new Set([0]))
    expect(Math.max(...placed.instrs.filter((i) => i.op === 'rotate').map((i) => i.level))).toBe(1)
    // as many refreshes, each moved from before a convolution to before its square
    expect(placed.instrs.filter((i) => i.op === 'refresh').length).toBe(latest.instrs.filter((i) => i.op === 'refresh').length)
    expect(found.refreshes).toBe(found.latestRefreshes)
  })

  it('--refresh-at takes cost (the default) or latest', () => {
    expect(compileOptionsFrom({}).refreshPlacement).toBe('cost')
    expect(compileOptionsFrom({ refreshAt: 'latest' }).refreshPlacement).toBe('latest')
    expect(() => compileOptionsFrom({ refreshAt: 'early' })).toThrow(/--refresh-at must be 'cost' or 'latest', got 'early'/)
  })

  it('placed plans compute what the interpreter computes, noiselessly and encrypted with node-seal', async () => {
    const plan = compileCkks(g, opts)
    expect(plan.stats.bootstraps).toBeGreaterThan(0)
    const x = testImages('digits', 2)
    const ref = reference(g, x)
    expect(maxAbsDiff(simulatePlan(plan, x)[0].data, ref.data)).toBeLessThan(1e-9)
    // the placement under test, not the refresh mask (its precision cost: test/backends/ckks/refresh.test.ts)
    const res = await runPlan(plan, x, { refresh: 'client', refreshMask: 'off' })
    expect(res.refresh.count).toBe(2 * plan.stats.bootstraps)
    expect(maxAbsDiff(res.outputs[0].data, ref.data)).toBeLessThanOrEqual(0.05)
    expect(argmax(res.outputs[0])).toEqual(argmax(ref))
    const net = chainNet(4)
    const xs = random([2, 2, 8, 8], 9, -1, 1)
    const chain = compileCkks(net, { logN: 13 })
    expect(chain.stats.bootstraps).toBeGreaterThan(0)
    const want = reference(net, xs)
    expect(maxAbsDiff(simulatePlan(chain, xs)[0].data, want.data) / Math.max(1, ...Array.from(want.data, Math.abs))).toBeLessThan(1e-9)
  }, 120_000)
})
