/**
 * Refresh placement by cost. With a chain of L levels between client-aided refreshes, the lowering
 * refreshes a ciphertext where a step would overrun the chain: the latest point. Levels are then
 * given by need (backends/ckks/compile.ts's assignLevels): an instruction runs at the number of
 * rescales left before the next refresh, and its cost grows with that level (a key switch at level
 * l touches (l + 1) (l + 2) residues). Where the refresh sits therefore decides which steps run on
 * long ciphertexts: refreshing after a transform instead of before it puts the transform's
 * rotations at the bottom of the chain, and a refresh where a value takes fewer ciphertexts costs
 * fewer round trips.
 *
 * The model: the instruction list of a lowering without refreshes (budget Infinity) and its sites,
 * the points where a step asks for levels (`RefreshSite`). A placement is a set X of sites. Replayed
 * forward, a site refreshes its ciphertexts when it is in X (and they are not fresh) or when the
 * step would overrun the chain, exactly as the lowering's `ensure` does; every later reader takes
 * the fresh copy. Replayed backward, every register gets the level its readers need, and the plan's
 * latency is the cost table's price of each instruction at its input level, the mod-switches where a
 * reader needs fewer primes and the refreshes: the estimate compile.ts makes of a finished plan
 * (encryption of the inputs aside, as there), without lowering again.
 *
 * The search starts from the cheaper of X = {} (the latest point) and the placements found for
 * shorter chains, and flips one site at a time, keeping a flip that lowers the modelled latency,
 * until a sweep over all sites changes nothing (at most `maxSweeps`). One flip moves every later
 * refresh too, since the forced ones follow from X. The result is never worse than the latest
 * point under the model; it is a local optimum, not a proof of the global one (placing refreshes
 * on a DAG is NP-hard in general); the tests compare it with every placement of a small graph.
 */
import { opCost, type CostOp } from './cost.js'
import type { LoweredGraph } from './lower.js'

const OP_CODES: readonly CostOp[] = ['rotate', 'mulPlain', 'addPlain', 'add', 'mul', 'square', 'relin', 'rescale', 'modswitch', 'negate']

export interface PlacementResult {
  /** Sites where a refresh goes early (the lowering's `refreshAt`). */
  at: Set<number>
  /** Modelled latency (ms) and refreshes of the chosen placement. */
  ms: number
  refreshes: number
  /** Sites where a refresh goes, chosen or forced by the chain (a seed for another chain length). */
  refreshedSites: Uint8Array
  /** The same at the latest point (X = {}). */
  latestMs: number
  latestRefreshes: number
  /** Placements the search priced. */
  evaluated: number
}

/** Prices placements of refreshes for one lowering without refreshes, one ring and one chain length. */
export class RefreshModel {
  private readonly nI: number
  private readonly R: number
  private readonly op: Int8Array
  private readonly rescale: Uint8Array
  private readonly dst: Int32Array
  private readonly argStart: Int32Array
  private readonly args: Int32Array
  private readonly sitePos: Int32Array
  private readonly siteStart: Int32Array
  private readonly siteRegs: Int32Array
  private readonly siteLevels: Int32Array
  private readonly outputs: number[]
  /** Price of each op code by prime count (index = primes). */
  private readonly price: Float64Array[]
  private readonly refreshPrice: Float64Array

  /**
   * `reserve`: levels kept below every refresh for masking it (refresh.ts): a refresh reads its
   * value at level `reserve`, so a chain of `levels` between refreshes has levels + reserve primes.
   */
  constructor(
    lowered: LoweredGraph,
    readonly levels: number,
    logN: number,
    readonly reserve = 0,
  ) {
    if (lowered.refreshes > 0) throw new Error('internal: the refresh model needs a lowering without refreshes')
    const instrs = lowered.instrs
    this.nI = instrs.length
    this.R = lowered.registers
    this.op = new Int8Array(this.nI)
    this.rescale = new Uint8Array(this.nI)
    this.dst = new Int32Array(this.nI)
    this.argStart = new Int32Array(this.nI + 1)
    let na = 0
    for (const i of instrs) na += i.args.length
    this.args = new Int32Array(na)
    na = 0
    instrs.forEach((i, k) => {
      this.op[k] = OP_CODES.indexOf(i.op as CostOp)
      this.rescale[k] = i.op === 'rescale' ? 1 : 0
      this.dst[k] = i.dst
      this.argStart[k] = na
      for (const a of i.args) this.args[na++] = a
    })
    this.argStart[this.nI] = na
    const sites = lowered.sites
    this.sitePos = Int32Array.from(sites, (s) => s.pos)
    this.siteLevels = Int32Array.from(sites, (s) => s.levels)
    this.siteStart = new Int32Array(sites.length + 1)
    let ns = 0
    for (const s of sites) ns += s.regs.length
    this.siteRegs = new Int32Array(ns)
    ns = 0
    sites.forEach((s, k) => {
      this.siteStart[k] = ns
      for (const r of s.regs) this.siteRegs[ns++] = r
    })
    this.siteStart[sites.length] = ns
    this.outputs = lowered.outputs.flatMap((o) => o.ct.regs)
    const P = levels + reserve + 3
    this.price = OP_CODES.map((o) => Float64Array.from({ length: P }, (_, p) => (p > 0 ? opCost(o, logN, p) : 0)))
    this.refreshPrice = Float64Array.from({ length: P }, (_, p) => (p > 0 ? opCost('decrypt', logN, 1) + opCost('decode', logN, 1) + opCost('encode', logN, p) + opCost('encrypt', logN, p) : 0))
  }

  get sites(): number {
    return this.sitePos.length
  }

  /** Modelled latency (ms) and refresh count of placement X (1 = refresh at that site); undefined when a step needs more levels than the chain has. */
  cost(X: Uint8Array): { ms: number; refreshes: number; refreshed: Uint8Array } | undefined {
    const { nI, R, levels: L } = this
    const depth = new Int32Array(2 * R)
    const copyOf = new Int32Array(R).fill(-1)
    const evPos: number[] = []
    const evSrc: number[] = []
    const evDst: number[] = []
    const mapped = new Int32Array(this.args.length)
    const refreshed = new Uint8Array(this.sitePos.length)
    let nc = 0
    let si = 0
    const nS = this.sitePos.length
    for (let k = 0; k <= nI; k++) {
      for (; si < nS && this.sitePos[si] === k; si++) {
        const lv = this.siteLevels[si]
        if (lv > L) return undefined
        let d = 0
        for (let j = this.siteStart[si]; j < this.siteStart[si + 1]; j++) {
          const r = this.siteRegs[j]
          const m = r < R && copyOf[r] >= 0 ? copyOf[r] : r
          if (depth[m] > d) d = depth[m]
        }
        if ((X[si] === 1 && d > 0) || d + lv > L)
          for (let j = this.siteStart[si]; j < this.siteStart[si + 1]; j++) {
            const r = this.siteRegs[j]
            if (r >= R || copyOf[r] >= 0) continue
            const c = R + nc++
            refreshed[si] = 1
            copyOf[r] = c
            depth[c] = 0
            evPos.push(k)
            evSrc.push(r)
            evDst.push(c)
          }
      }
      if (k === nI) break
      let d = 0
      for (let j = this.argStart[k]; j < this.argStart[k + 1]; j++) {
        const a = this.args[j]
        const m = copyOf[a] >= 0 ? copyOf[a] : a
        mapped[j] = m
        if (depth[m] > d) d = depth[m]
      }
      depth[this.dst[k]] = d + this.rescale[k]
    }
    const need = new Int32Array(R + nc).fill(-1)
    for (const o of this.outputs) need[o] = 0
    let ms = 0
    let refreshes = 0
    let ev = evPos.length - 1
    for (let k = nI - 1; k >= 0; k--) {
      const nd = need[this.dst[k]]
      if (nd >= 0) {
        const req = nd + this.rescale[k]
        if (req > L + this.reserve) return undefined
        const code = this.op[k]
        if (code >= 0) ms += this.price[code][req + 1]
        for (let j = this.argStart[k]; j < this.argStart[k + 1]; j++) if (need[mapped[j]] < req) need[mapped[j]] = req
      }
      for (; ev >= 0 && evPos[ev] === k; ev--) {
        const lc = need[evDst[ev]]
        if (lc < 0) continue
        refreshes++
        ms += this.refreshPrice[lc + 1]
        if (need[evSrc[ev]] < this.reserve) need[evSrc[ev]] = this.reserve
      }
    }
    // mod-switches: one per register and lower level a reader needs
    const ms2 = this.price[OP_CODES.indexOf('modswitch')]
    const seen = new Set<number>()
    for (let k = 0; k < nI; k++) {
      const nd = need[this.dst[k]]
      if (nd < 0) continue
      const req = nd + this.rescale[k]
      for (let j = this.argStart[k]; j < this.argStart[k + 1]; j++) {
        const a = mapped[j]
        if (need[a] > req && !seen.has(a * 64 + req)) {
          seen.add(a * 64 + req)
          ms += ms2[need[a] + 1]
        }
      }
    }
    return { ms, refreshes, refreshed }
  }

  /**
   * The cheapest placement the one-flip search finds, from the latest point or from any of `seeds`
   * (the sites another chain length refreshed at: a placement that fits a shorter chain fits this
   * one); undefined when a step needs more levels than the chain has.
   */
  search(seeds: readonly Uint8Array[] = [], maxSweeps = 4): PlacementResult | undefined {
    const latest = this.cost(new Uint8Array(this.sites))
    if (!latest) return undefined
    let X = new Uint8Array(this.sites)
    let best = latest
    let evaluated = 1
    for (const seed of seeds) {
      if (seed.length !== this.sites) continue
      const r = this.cost(seed)
      evaluated++
      if (r && r.ms < best.ms) {
        best = r
        X = Uint8Array.from(seed)
      }
    }
    for (let sweep = 0; sweep < maxSweeps; sweep++) {
      let changed = false
      for (let s = 0; s < X.length; s++) {
        X[s] ^= 1
        const r = this.cost(X)
        evaluated++
        if (r && r.ms < best.ms * (1 - 1e-9)) {
          best = r
          changed = true
        } else X[s] ^= 1
      }
      if (!changed) break
    }
    const at = new Set<number>()
    X.forEach((v, s) => v && at.add(s))
    return { at, ms: best.ms, refreshes: best.refreshes, refreshedSites: best.refreshed, latestMs: latest.ms, latestRefreshes: latest.refreshes, evaluated }
  }
}
