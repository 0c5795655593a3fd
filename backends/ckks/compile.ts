/**
 * From a graph to a finished CKKS plan: lower, measure the depth, choose secure parameters (or place
 * bootstraps when no leveled set exists), give every ciphertext the lowest level its consumers need
 * (mod-switching early, so rotations run on short ciphertexts), track exact scales with the primes
 * SEAL will pick, and add statistics from the calibrated cost model.
 */
import { PicError } from '../../ir/errors.js'
import { describeNode, type Graph } from '../../ir/graph.js'
import { opCost, type CostOp } from './cost.js'
import { lowerGraph, inputSlotMap, LowerError, outputSlots, type LoweredGraph, type RawInstr } from './lower.js'
import { checkSecure, chooseParams, keySwitchKeyBytes, maxLogQ, sealPrimes, totalBits, chainFor, type CkksParams, type SecurityLevel } from './params.js'
import type { CkksPlan, Instr, ParamChoice } from './plan.js'
import { gib, planMemory, SEAL_HEAP_BYTES, usableHeap, type PlaintextMode, type PlanMemory } from './memory.js'
import { validatePlan } from './validate.js'
import { RefreshModel, type PlacementResult } from './placement.js'
import { DEFAULT_REFRESH_BOUND, REFRESH_SIGMA, refreshReserve, withInferenceDistance, type RefreshMask } from './refresh.js'

export interface CompileOptions {
  security?: SecurityLevel
  /** Smallest scale (bits) accepted; the precision target. Default 26. */
  minLogScale?: number
  maxLogScale?: number
  /** Force a ring degree. */
  logN?: number
  /** Most ciphertexts the client may encrypt per input. Default 8. */
  maxInputCts?: number
  /** Bits of q0 above the scale for the outputs' magnitude. Default 10. */
  headroom?: number
  model?: string
  /** Most bytes of key-switching keys (rotation + relinearization) the plan may need (default: what the heap leaves). */
  keyBudgetBytes?: number
  /** node-seal's heap the plan must fit (default 4 GiB). */
  heapBytes?: number
  /** Plaintexts resident (encoded once) or encoded on demand; default: resident when they fit. */
  plaintexts?: PlaintextMode
  /**
   * Leveled parameters only (`--refresh none`): the plan runs without interaction or is refused;
   * strided maps stay one transform each (their compaction would spend levels).
   */
  leveledOnly?: boolean
  /**
   * Where client-aided refreshes go: 'cost' (default) chooses the sites by the modelled latency of
   * the whole plan (backends/ckks/placement.ts); 'latest' refreshes only where a step would overrun
   * the chain.
   */
  refreshPlacement?: 'cost' | 'latest'
  /**
   * Reserve the modulus a masked refresh needs (backends/ckks/refresh.ts; default true): levels
   * below every refresh and a larger q0, so the client decrypts value + mask without wrapping.
   * False gives the plans of before, which only `--refresh-mask off` runs.
   */
  refreshMask?: boolean
  /** B, the bound on |x| at every refresh the mask is sized for (default DEFAULT_REFRESH_BOUND). */
  refreshBound?: number
  /** Progress lines (pic compile prints them on stderr). */
  log?: (message: string) => void
}

/** node-seal runs in a 4 GB WebAssembly heap; choosing the ring, keys get at most 3 GiB of it. */
export const DEFAULT_KEY_BUDGET = 3 * 2 ** 30

export class CkksCompileError extends PicError {}

const COST_OF: Partial<Record<string, CostOp>> = {
  rotate: 'rotate',
  mulPlain: 'mulPlain',
  addPlain: 'addPlain',
  add: 'add',
  mul: 'mul',
  square: 'square',
  relin: 'relin',
  rescale: 'rescale',
  modswitch: 'modswitch',
  negate: 'negate',
}

/** Estimated ms of a client-aided refresh (decrypt, decode, encode, encrypt). */
function refreshCost(logN: number, primes: number): number {
  return opCost('decrypt', logN, 1) + opCost('decode', logN, 1) + opCost('encode', logN, primes) + opCost('encrypt', logN, primes)
}

interface Leveled {
  instrs: Instr[]
  registers: number
  inputLevels: number[][]
  depth: number
}

/** Levels by need (backward), mod-switches where a consumer needs fewer primes, exact scales (forward). */
export function assignLevels(l: LoweredGraph, p: CkksParams, primeValues: bigint[], refreshLevel = 0): Leveled {
  const need = new Map<number, number>()
  for (const o of l.outputs) need.set(o.ct.regs[0], 0)
  const live: RawInstr[] = []
  for (let k = l.instrs.length - 1; k >= 0; k--) {
    const i = l.instrs[k]
    const nd = need.get(i.dst)
    if (nd === undefined) continue
    live.push(i)
    const req = i.op === 'refresh' ? refreshLevel : nd + (i.op === 'rescale' ? 1 : 0)
    for (const a of i.args) need.set(a, Math.max(need.get(a) ?? 0, req))
  }
  live.reverse()
  let depth = 0
  for (const inp of l.inputs) for (const r of inp.ct.regs) depth = Math.max(depth, need.get(r) ?? 0)
  for (const i of live) if (i.op === 'refresh') depth = Math.max(depth, need.get(i.dst)!)
  const L = p.primes.length - 2
  if (depth > L) throw new CkksCompileError(`internal: depth ${depth} exceeds the ${L} levels of the chain`)
  const delta = 2 ** p.logScale
  const level = new Map<number, number>()
  const scale = new Map<number, number>()
  for (const inp of l.inputs)
    for (const r of inp.ct.regs) {
      level.set(r, need.get(r) ?? 0)
      scale.set(r, delta)
    }
  let nreg = l.registers
  const out: Instr[] = []
  const switched = new Map<string, number>()
  const q = (lv: number) => Number(primeValues[lv])
  for (const i of live) {
    const dstLevel = need.get(i.dst)!
    const req = i.op === 'rescale' ? dstLevel + 1 : dstLevel
    const args = i.args.map((a) => {
      const la = level.get(a)!
      if (i.op === 'refresh' || la === req) return a
      if (la < req) throw new CkksCompileError(`internal: register ${a} at level ${la} below ${req}`)
      const key = `${a}:${req}`
      let r = switched.get(key)
      if (r === undefined) {
        r = nreg++
        switched.set(key, r)
        level.set(r, req)
        scale.set(r, scale.get(a)!)
        out.push({ op: 'modswitch', dst: r, args: [a], level: req, scale: scale.get(a)!, node: i.node })
      }
      return r
    })
    const s0 = scale.get(args[0])!
    let s: number
    let ptScale: number | undefined
    switch (i.op) {
      case 'add': {
        const s1 = scale.get(args[1])!
        if (Math.abs(s0 - s1) > 1e-9 * s0) throw new CkksCompileError(`internal: adding scales 2^${Math.log2(s0)} and 2^${Math.log2(s1)}`)
        s = s0
        break
      }
      case 'mul':
        s = s0 * scale.get(args[1])!
        break
      case 'square':
        s = s0 * s0
        break
      case 'mulPlain': {
        let target = delta
        if (i.pair) target = (delta * q(need.get(i.pair.mul)!)) / scale.get(i.pair.reg)!
        if (i.matchScaleOf !== undefined) target = scale.get(i.matchScaleOf)!
        ptScale = (target * q(req)) / s0
        s = s0 * ptScale
        break
      }
      case 'rescale':
        s = s0 / q(req)
        break
      case 'refresh':
        s = delta
        break
      default:
        s = s0
    }
    const bitsAtLevel = p.primes.slice(0, dstLevel + 1).reduce((a, b) => a + b, 0)
    if (Math.log2(s) >= bitsAtLevel) throw new CkksCompileError(`internal: scale 2^${Math.log2(s).toFixed(1)} too large for level ${dstLevel}`)
    level.set(i.dst, dstLevel)
    scale.set(i.dst, s)
    const ins: Instr = { op: i.op, dst: i.dst, args, level: dstLevel, scale: s }
    if (i.step !== undefined) ins.step = i.step
    if (i.pt !== undefined) ins.pt = i.pt
    if (ptScale !== undefined) ins.ptScale = ptScale
    if (i.node !== undefined) ins.node = i.node
    out.push(ins)
  }
  return { instrs: out, registers: nreg, inputLevels: l.inputs.map((inp) => inp.ct.regs.map((r) => need.get(r) ?? 0)), depth }
}

/**
 * Keep the rotation keys within the budget: the most used steps keep their own key; every other
 * rotation becomes a chain of power-of-two rotations (more key switches, fewer keys).
 */
/** The fewest keys any plan at ring degree 2^logN can make do with: logN - 1 power-of-two rotations and relinearization. */
function minKeys(logN: number): number {
  return logN
}

function fitKeys(lv: Leveled, p: CkksParams, budget: number, notes: string[]): Leveled {
  const S = 2 ** (p.logN - 1)
  const per = keySwitchKeyBytes(p.logN, p.primes.length)
  const uses = new Map<number, number>()
  for (const i of lv.instrs) if (i.op === 'rotate') uses.set(i.step!, (uses.get(i.step!) ?? 0) + 1)
  const relin = lv.instrs.some((i) => i.op === 'relin') ? 1 : 0
  const maxKeys = Math.floor(budget / per) - relin
  if (uses.size <= maxKeys) return lv
  const pow2: number[] = []
  for (let s2 = 1; s2 < S; s2 *= 2) pow2.push(s2)
  if (pow2.length > maxKeys) throw new CkksCompileError(`the ${pow2.length} power-of-two rotation keys alone (${(pow2.length * per / 2 ** 30).toFixed(1)} GiB) exceed the key budget of ${(budget / 2 ** 30).toFixed(1)} GiB`)
  const keep = new Set(pow2)
  for (const [step] of [...uses].sort((a, b) => b[1] - a[1] || a[0] - b[0])) {
    if (keep.size >= maxKeys) break
    keep.add(step)
  }
  let nreg = lv.registers
  const out: Instr[] = []
  let split = 0
  for (const i of lv.instrs) {
    if (i.op !== 'rotate' || keep.has(i.step!)) {
      out.push(i)
      continue
    }
    split++
    const bits = pow2.filter((b) => (i.step! & b) !== 0)
    let src = i.args[0]
    bits.forEach((b, j) => {
      const dst = j === bits.length - 1 ? i.dst : nreg++
      out.push({ ...i, dst, args: [src], step: b })
      src = dst
    })
  }
  const used = new Set(out.filter((i) => i.op === 'rotate').map((i) => i.step!))
  notes.push(`key budget ${(budget / 2 ** 30).toFixed(1)} GiB: ${uses.size} rotation steps need ${(uses.size * per / 2 ** 30).toFixed(1)} GiB of keys; ${split} rotations split into power-of-two chains, ${used.size} keys remain`)
  return { ...lv, instrs: out, registers: nreg }
}

/** Estimated evaluation time (ms) of an instruction list at ring degree 2^logN. */
export function estimateMs(instrs: readonly Instr[], logN: number, encodeOnDemand?: { primes: number }): { byKind: Record<string, number>; total: number } {
  const lv = new Map<number, number>()
  for (const i of instrs) lv.set(i.dst, i.level)
  const byKind: Record<string, number> = {}
  let total = 0
  for (const i of instrs) {
    const inLevel = i.args.length > 0 ? (lv.get(i.args[0]) ?? i.level) : i.level
    const primes = inLevel + 1
    const op = COST_OF[i.op]
    const ms = op ? opCost(op, logN, primes) : i.op === 'refresh' ? refreshCost(logN, i.level + 1) : 0
    byKind[i.op] = (byKind[i.op] ?? 0) + ms
    total += ms
    if (encodeOnDemand && (i.op === 'mulPlain' || i.op === 'addPlain')) {
      const e = opCost('encode', logN, encodeOnDemand.primes)
      byKind.encode = (byKind.encode ?? 0) + e
      total += e
    }
  }
  return { byKind, total }
}

interface Candidate {
  params: CkksParams
  lowered: LoweredGraph
  budget: number
  /** Levels assigned with the chain's primes, when already done while choosing. */
  levels?: { primeValues: bigint[]; lv: Leveled }
  /** Notes of the memory stages, already applied while choosing. */
  notes?: string[]
  /** The masked refreshes' reserve this chain holds. */
  mask?: RefreshMask
}

/**
 * The chain for L levels between refreshes: q0, L scale primes, the special prime (chainFor); for
 * masked refreshes R = mask.level more scale primes (the levels below every refresh where the
 * client decrypts) and q0 raised to what the mask needs (refresh.ts's refreshReserve).
 */
export function refreshChain(L: number, logN: number, logScale: number, headroom: number, room: number, mask?: { sigma: number; bound: number }): { primes: number[]; mask?: RefreshMask } | undefined {
  if (!mask) {
    const primes = chainFor(L, logScale, headroom, room)
    return primes && { primes }
  }
  const r = refreshReserve(logN, logScale, Math.min(60, logScale + headroom), mask.sigma, mask.bound)
  const base = r.q0 + (L + r.levels) * logScale
  const special = Math.min(60, room - base)
  if (special < Math.max(r.q0, logScale)) return undefined
  return { primes: [r.q0, ...new Array<number>(L + r.levels).fill(logScale), special], mask: r.spec }
}

type Fitted = { lv: Leveled; mode: PlaintextMode; memory: PlanMemory }

/** The parameter sets priced by the bootstrap path, in the order tried (the plan's `stats.choices`). */
function describeChoices(choices: readonly ParamChoice[], p: CkksParams, reserve = 0): string {
  const chosenL = p.primes.length - 2 - reserve
  const rows = [...choices].sort((a, b) => Number(b.fits) - Number(a.fits) || a.estimatedMs - b.estimatedMs)
  const txt = rows
    .slice(0, 6)
    .map((c) => `N = ${2 ** c.logN} with ${c.levels} levels: ${(c.estimatedMs / 1000).toFixed(1)} s, ${c.refreshes} refreshes, ${c.rotationKeys} keys, ${gib(c.peakBytes)} GiB${c.fits ? '' : ' (does not fit)'}${c.logN === p.logN && c.levels === chosenL ? ' [chosen]' : ''}`)
    .join('; ')
  return `parameters by estimated latency (${choices.length} ring and chain pairs priced): ${txt}`
}

/** Transform plans by ring degree, shared by the lowerings of one compilation (one per bootstrap budget). */
type TransformCache = Map<number, Map<string, unknown>>

function lowerAt(g: Graph, logN: number, budget: number, opts: CompileOptions, cache?: TransformCache, multiCt = false, refreshAt?: ReadonlySet<number>): LoweredGraph {
  let c = cache?.get(logN)
  if (cache && !c) cache.set(logN, (c = new Map()))
  const input = g.nodes.find((n) => n.op === 'Input')
  const batch = input && input.type.shape.length > 0 ? input.type.shape[0] : 1
  return lowerGraph(g, { slots: 2 ** (logN - 1), maxInputCts: opts.maxInputCts ?? 8, budget, cache: c, multiCt, compactStrided: !opts.leveledOnly, batch, refreshAt })
}

/** Compile a graph (batch 1, polynomial ops only on the secret path) to a CKKS plan. */
export function compileCkks(g: Graph, opts: CompileOptions = {}): CkksPlan {
  const security = opts.security ?? 128
  const minS = opts.minLogScale ?? 26
  const headroom = opts.headroom ?? 10
  const maskReq = opts.refreshMask === false ? undefined : { sigma: REFRESH_SIGMA, bound: opts.refreshBound ?? DEFAULT_REFRESH_BOUND }
  let logNs = opts.logN ? [opts.logN] : [13, 14, 15]
  const extraNotes: string[] = []
  let chosen: Candidate | undefined
  let preFitted: Fitted | undefined
  const choices: ParamChoice[] = []
  let probe: LoweredGraph | undefined
  const cache: TransformCache = new Map()
  // the smallest ring whose slots hold every tensor; when none does, tensors span several ciphertexts of the largest
  let multiCt = false
  const log = opts.log ?? (() => {})
  const t0 = performance.now()
  const secs = () => ((performance.now() - t0) / 1000).toFixed(1)
  for (;;) {
    try {
      log(`ckks: lowering at N = ${2 ** logNs[0]}${multiCt ? ', tensors over several ciphertexts' : ''}`)
      probe = lowerAt(g, logNs[0], Infinity, opts, cache, multiCt)
      break
    } catch (e) {
      if (!(e instanceof LowerError && e.slotOverflow) || (logNs.length === 1 && multiCt)) throw e
      if (logNs.length === 1) {
        multiCt = true
        extraNotes.push(`tensors larger than the ${2 ** (logNs[0] - 1)} slots of N = ${2 ** logNs[0]} span several ciphertexts`)
      } else logNs = logNs.slice(1)
    }
  }
  const depth = probe.depth
  log(`ckks: depth ${depth}, lowered in ${secs()} s`)
  const budget = opts.keyBudgetBytes ?? DEFAULT_KEY_BUDGET
  const keysFit = (logN: number, primes: number) => minKeys(logN) * keySwitchKeyBytes(logN, primes) <= budget
  let leveled = chooseParams({ depth, security, minLogScale: minS, maxLogScale: opts.maxLogScale, headroom, logNs })
  if (leveled && !keysFit(leveled.logN, leveled.primes.length)) {
    extraNotes.push(`a leveled chain for depth ${depth} (N = ${2 ** leveled.logN}, ${leveled.primes.length} primes) needs more key memory than the ${(budget / 2 ** 30).toFixed(1)} GiB budget`)
    leveled = undefined
  }
  if (!leveled && opts.leveledOnly)
    throw new CkksCompileError(`depth ${depth} fits no leveled CKKS parameter set at ${security}-bit security within node-seal's memory, so the plan would need refreshes; compile with --refresh client (the default) for client-aided refreshes`)
  if (leveled) {
    if (leveled.logN !== logNs[0]) log(`ckks: leveled parameters at N = ${2 ** leveled.logN} (${leveled.primes.length} primes): lowering again at that ring (${secs()} s)`)
    const lowered = leveled.logN === logNs[0] ? probe : lowerAt(g, leveled.logN, Infinity, opts, cache, multiCt)
    chosen = { params: leveled, lowered, budget: Infinity }
  } else {
    // every ring and every chain length between refreshes, priced as a whole plan (with the memory
    // stages applied: plaintexts on demand, key chains); the cheapest that fits is kept (within 3%, the one with the smaller heap peak)
    let best: { c: Candidate; fitted: Fitted; est: number } | undefined
    let tooShort: LowerError | undefined
    log(`ckks: depth ${depth} needs client-aided refreshes: placing them and pricing each ring and chain length (one line per candidate)`)
    for (const logN of logNs) {
      // the ring's lowering without refreshes: what the placement model prices
      const free = opts.refreshPlacement === 'latest' ? undefined : logN === logNs[0] ? probe : lowerAt(g, logN, Infinity, opts, cache, multiCt)
      const room = maxLogQ(logN, security)
      let Lmax = 0
      const chainAt = (L: number) => refreshChain(L, logN, minS, headroom, room, maskReq)
      for (let c = chainAt(Lmax + 1); c && keysFit(logN, c.primes.length); c = chainAt(Lmax + 1)) Lmax++
      let bestHere = Infinity
      let sinceBest = 0
      const seeds: Uint8Array[] = []
      // short chains first: client-aided refreshes are cheap and key switching grows with the square of the chain
      // (from 1 level when the masked refreshes' reserve leaves no more, as at N = 8192 at 192-bit security)
      for (let L = Math.min(2, Math.max(1, Lmax)); L <= Lmax; L++) {
        const { primes, mask } = chainAt(L)!
        const params: CkksParams = { logN, primes, logScale: minS, security }
        let lowered: LoweredGraph
        let placed: PlacementResult | undefined
        try {
          placed = free && new RefreshModel(free, L, logN, mask?.level ?? 0).search(seeds)
          if (placed) seeds.push(placed.refreshedSites)
          lowered = lowerAt(g, logN, L, opts, cache, multiCt, placed?.at)
        } catch (e) {
          // a step that needs more levels than this chain has: try a longer one
          if (e instanceof LowerError && !e.slotOverflow) {
            tooShort = e
            continue
          }
          throw e
        }
        const primeValues = sealPrimes(logN, primes)
        const lv = assignLevels(lowered, params, primeValues, mask?.level)
        const notes: string[] = []
        const fitted = fitMemory(lv, lowered, params, opts, notes)
        const est = estimateMs(fitted.lv.instrs, logN, fitted.mode === 'on demand' ? { primes: primes.length - 1 } : undefined).total
        const refreshes = fitted.lv.instrs.filter((i) => i.op === 'refresh').length
        log(`ckks: N = ${2 ** logN} with ${L} levels between refreshes: ${(est / 1000).toFixed(1)} s estimated, ${refreshes} refreshes${placed ? ` (${placementText(placed)})` : ''}${fitted.memory.fits ? '' : ", does not fit node-seal's heap"} (${secs()} s)`)
        if (placed) notes.push(`refreshes placed by cost at this chain: ${placementText(placed)}`)
        const keys = new Set(fitted.lv.instrs.filter((i) => i.op === 'rotate').map((i) => i.step!)).size
        choices.push({ logN, levels: L, refreshes, estimatedMs: Math.round(est), peakBytes: fitted.memory.peakBytes, fits: fitted.memory.fits, rotationKeys: keys, plaintexts: fitted.mode, ...(placed ? { latestPointMs: Math.round(placed.latestMs), latestPointRefreshes: placed.latestRefreshes } : {}) })
        if (fitted.memory.fits && (!best || preferred(est, fitted.memory.peakBytes, best.est, best.fitted.memory.peakBytes))) best = { c: { params, lowered, budget: L, levels: { primeValues, lv }, notes, mask }, fitted, est }
        if (fitted.memory.fits && est < bestHere) {
          bestHere = est
          sinceBest = 0
        } else sinceBest++
        // the cost rises with the chain once refreshes are few (key switches grow with its length): stop well past the minimum,
        // or three lengths after it (the placements of shorter chains fit longer ones, so past the minimum only key switching grows)
        if ((est > 1.5 * bestHere || sinceBest >= 3) && L >= 4) break
      }
    }
    if (choices.length === 0 && tooShort) throw tooShort
    if (!best) {
      // nothing fits: refuse with the candidate that needs the least memory
      const least = choices.reduce((a, b) => (b.peakBytes < a.peakBytes ? b : a), choices[0])
      if (least) {
        const room = maxLogQ(least.logN, security)
        const { primes, mask } = refreshChain(least.levels, least.logN, minS, headroom, room, maskReq)!
        const params: CkksParams = { logN: least.logN, primes, logScale: minS, security }
        const lowered = lowerAt(g, least.logN, least.levels, opts, cache, multiCt)
        const primeValues = sealPrimes(least.logN, primes)
        chosen = { params, lowered, budget: least.levels, levels: { primeValues, lv: assignLevels(lowered, params, primeValues, mask?.level) }, mask }
      }
    } else {
      chosen = best.c
      preFitted = best.fitted
    }
  }
  if (!chosen) throw new CkksCompileError(`depth ${depth} fits no CKKS parameter set at ${security}-bit security`)
  const { params, lowered } = chosen
  checkSecure(params)
  const primeValues = chosen.levels?.primeValues ?? sealPrimes(params.logN, params.primes)
  const lv0 = chosen.levels?.lv ?? assignLevels(lowered, params, primeValues)
  if (chosen.notes) extraNotes.push(...chosen.notes)
  const fitted = preFitted ?? fitMemory(lv0, lowered, params, opts, extraNotes)
  if (choices.length > 1) extraNotes.push(describeChoices(choices, params, chosen.mask?.level))
  log(`ckks: finishing the plan at N = ${2 ** params.logN}, ${params.primes.length} primes: constants, keys and estimates (${secs()} s)`)
  const plan = finish(g, opts, params, primeValues, lowered, fitted.lv, depth, extraNotes, fitted.mode, fitted.memory, choices)
  if (plan.stats.bootstraps > 0 && chosen.mask) {
    const m = (plan.refreshMask = withInferenceDistance(chosen.mask, plan.stats.bootstraps))
    plan.stats.notes.push(`refreshes masked in the coefficient domain (statistical distance 2^-${m.sigma} per refresh, 2^${m.distancePerInferenceLog2} per inference; masks 2^${m.maskLog2} ceil(scale |x|), |x| <= ${m.bound} at every refresh): the client decrypts at level ${m.level}, ${m.level} level(s) below each refresh and q0 = ${params.primes[0]} bits reserved for it (${m.bits} bits needed)`)
  }
  validatePlan(plan, g)
  log(`ckks: plan validated, ${plan.instructions.length} instructions, ${plan.keys.rotations.length} rotation key(s) (${secs()} s)`)
  return plan
}

/** Estimates this close are a tie: the cost table's error on another machine is larger (see backends/ckks/README.md). */
const TIE = 0.03

/**
 * Whether a candidate (estimate, peak bytes) beats the best so far: clearly cheaper, or within the
 * tie margin and smaller in node-seal's heap (further from an allocation failure).
 */
function preferred(est: number, peak: number, bestEst: number, bestPeak: number): boolean {
  return est < bestEst * (1 - TIE) || (est <= bestEst * (1 + TIE) && peak < bestPeak)
}

/** One line on a placement: the model's latency and refreshes, against the latest point's. */
function placementText(p: PlacementResult): string {
  const early = p.at.size === 0 ? 'the latest point is already the cheapest' : `${p.at.size} site(s) refreshed early`
  return `${early}; modelled ${(p.ms / 1000).toFixed(1)} s and ${p.refreshes} refreshes against ${(p.latestMs / 1000).toFixed(1)} s and ${p.latestRefreshes} at the latest point (${p.evaluated} placements priced)`
}

/** "node 'NAME' (OP)" of an IR node, by the model's own names. */
export function layerName(g: Graph, name: string): string {
  const n = g.nodes.find((x) => x.name === name)
  return n ? describeNode(n) : `node '${name}'`
}

function memoryOf(lv: Leveled, lowered: LoweredGraph, p: CkksParams, mode: PlaintextMode, heapBytes: number): PlanMemory {
  return planMemory({
    logN: p.logN,
    primeCount: p.primes.length,
    rotationKeys: new Set(lv.instrs.filter((i) => i.op === 'rotate').map((i) => i.step!)).size,
    relin: lv.instrs.some((i) => i.op === 'relin'),
    instructions: lv.instrs,
    inputs: lowered.inputs.map((inp, k) => ({ regs: inp.ct.regs, levels: lv.inputLevels[k] })),
    outputs: lowered.outputs.map((o) => ({ reg: o.ct.regs[0] })),
    plaintexts: mode,
    heapBytes,
  })
}

/**
 * Fit node-seal's heap: plaintexts resident when they fit, else encoded on demand (one buffer at a
 * time); then, if the keys still do not leave room, rarely used rotation steps become chains of
 * power-of-two rotations until the keys fit what the context, ciphertexts and plaintexts leave.
 * A plan that still does not fit is refused by the validator.
 */
function fitMemory(lv0: Leveled, lowered: LoweredGraph, p: CkksParams, opts: CompileOptions, notes: string[]): Fitted {
  const heap = opts.heapBytes ?? SEAL_HEAP_BYTES
  let lv = opts.keyBudgetBytes !== undefined ? fitKeys(lv0, p, opts.keyBudgetBytes, notes) : lv0
  let mode: PlaintextMode = opts.plaintexts ?? 'resident'
  let mem = memoryOf(lv, lowered, p, mode, heap)
  if (!mem.fits && opts.plaintexts === undefined) {
    const resident = mem.plaintextBytes
    mode = 'on demand'
    mem = memoryOf(lv, lowered, p, mode, heap)
    notes.push(`plaintexts encoded on demand: resident they would take ${(resident / 2 ** 30).toFixed(2)} GiB of node-seal's heap`)
  }
  if (!mem.fits && opts.keyBudgetBytes === undefined) {
    const room = usableHeap(heap) - mem.contextBytes - mem.ciphertextBytes - mem.plaintextBytes
    try {
      const lv2 = fitKeys(lv, p, room, notes)
      const mem2 = memoryOf(lv2, lowered, p, mode, heap)
      if (mem2.peakBytes < mem.peakBytes) {
        lv = lv2
        mem = mem2
      }
    } catch (e) {
      if (!(e instanceof CkksCompileError)) throw e
      // not even the power-of-two keys leave room: keep only those, so a refusal states the least this plan needs
      const lv2 = fitKeys(lv, p, minKeys(p.logN) * keySwitchKeyBytes(p.logN, p.primes.length), notes)
      const mem2 = memoryOf(lv2, lowered, p, mode, heap)
      if (mem2.peakBytes < mem.peakBytes) {
        lv = lv2
        mem = mem2
      }
    }
  }
  return { lv, mode, memory: mem }
}

function finish(g: Graph, opts: CompileOptions, params: CkksParams, primeValues: bigint[], lowered: LoweredGraph, lv: Leveled, depth: number, extraNotes: string[], mode: PlaintextMode, memory: PlanMemory, choices: readonly ParamChoice[] = []): CkksPlan {
  const S = 2 ** (params.logN - 1)
  const constants = { ...lowered.constants }
  const rotations = [...new Set(lv.instrs.filter((i) => i.op === 'rotate').map((i) => i.step!))].sort((a, b) => a - b)
  const relin = lv.instrs.some((i) => i.op === 'relin')
  const counts: Record<string, number> = {}
  for (const i of lv.instrs) counts[i.op] = (counts[i.op] ?? 0) + 1
  const est = estimateMs(lv.instrs, params.logN, mode === 'on demand' ? { primes: params.primes.length - 1 } : undefined)
  const k = params.primes.length
  const perKey = keySwitchKeyBytes(params.logN, k)
  const inputs = lowered.inputs.map((inp, idx) => {
    const id = `layout_in${idx}`
    constants[id] = { kind: 'index', length: inp.ct.layout!.cts * S, data: inputSlotMap(inp.ct) }
    const levels = lv.inputLevels[idx]
    return {
      name: inp.name,
      shape: inp.shape,
      regs: inp.ct.regs,
      levels,
      scale: 2 ** params.logScale,
      slotMap: id,
      layout: `${inp.ct.layout!.cts} ciphertext(s), ${inp.ct.layout!.pos.length} slots filled${inp.ct.layout!.cts > 1 || inp.ct.layout!.pos.length > inp.ct.n ? ' (replicated for the first transform)' : ''}`,
    }
  })
  const outputs = lowered.outputs.map((o, idx) => {
    const id = `layout_out${idx}`
    constants[id] = { kind: 'index', length: o.ct.n, data: outputSlots(o.ct) }
    const spec = o.ct.layout!.spec
    return { name: o.name, shape: o.shape, reg: o.ct.regs[0], slots: id, layout: spec ? JSON.stringify(spec) : 'contiguous' }
  })
  let encMs = 0
  for (const levels of lv.inputLevels)
    for (const l of levels) encMs += opCost('encode', params.logN, l + 1) + opCost('encrypt', params.logN, l + 1)
  const decMs = outputs.length * (opCost('decrypt', params.logN, 1) + opCost('decode', params.logN, 1))
  const bootstraps = lv.instrs.filter((i) => i.op === 'refresh').length
  const notes = [...lowered.notes, ...extraNotes]
  if (bootstraps > 0)
    notes.push(`depth ${depth} exceeds leveled parameters at ${params.security}-bit security: ${bootstraps} bootstrap(s) placed; node-seal cannot bootstrap, run with --refresh client for client-aided refreshes`)
  const round = (x: number) => Math.round(x * 1000) / 1000
  return {
    format: 'pic-ckks-plan',
    version: 1,
    model: opts.model ?? g.name,
    params: {
      ...params,
      slots: S,
      totalBits: totalBits(params),
      maxBits: maxLogQ(params.logN, params.security),
      primeValues: primeValues.map(String),
    },
    keys: { rotations, relin },
    plaintexts: mode,
    batching:
      lowered.inputs[0].shape[0] > 1
        ? `${lowered.inputs[0].shape[0]} images per inference, interleaved in the slots (element i of image b at slot i K + b of the layout); estimates are per inference: ${(est.total / lowered.inputs[0].shape[0]).toFixed(1)} ms per image`
        : 'one image per inference: each image is encrypted, evaluated and decrypted on its own',
    inputs,
    outputs,
    instructions: lv.instrs,
    registers: lv.registers,
    constants,
    stats: {
      depth: lv.depth,
      networkDepth: depth,
      bootstraps,
      ciphertexts: inputs.reduce((a, i) => a + i.regs.length, 0),
      counts,
      estimatedMs: Object.fromEntries(Object.entries(est.byKind).map(([k2, v]) => [k2, round(v)])),
      estimatedTotalMs: round(est.total),
      estimatedEncryptMs: round(encMs),
      estimatedDecryptMs: round(decMs),
      keyBytes: { relin: relin ? perKey : 0, galois: rotations.length * perKey, perRotationKey: perKey, total: (relin ? perKey : 0) + rotations.length * perKey },
      rotationKeys: rotations.length,
      memory: { ...memory, ...(memory.peakNode !== undefined ? { peakLayer: layerName(g, memory.peakNode) } : {}) },
      ...(choices.length > 0 ? { choices: [...choices] } : {}),
      notes,
    },
  }
}
