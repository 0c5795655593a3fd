/**
 * Lowering a graph to a CKKS instruction list. Secret values are kept lazily as affine maps of
 * ciphertexts (sum over terms of a sparse matrix times a ciphertext's elements, plus a bias), so
 * chains of linear ops (Conv, BatchNormalization, AveragePool, Flatten, Gemm, scalings, additions)
 * fuse into one plaintext-diagonal transform and cost one level. A transform is emitted only where a
 * ciphertext-ciphertext product or a polynomial needs its input in slots (materialization), choosing
 * the output layout by a cost estimate. What a node does to a secret is what its op declares
 * (`OpDef.secret`, read through `secretFormOf`): layout and affine ops update the pending maps by
 * their primitives' structure (backends/ckks/sparse.ts; no op is evaluated per element or per
 * column), polynomials (Poly, integer Pow, x*x, PartialRelu with its polynomial) are evaluated on
 * ciphertexts, comparisons and other non-polynomial forms are refused. Degree-2 polynomials are
 * completed to a square, their coefficients folded into the transforms on either side, so each
 * costs one level.
 */
import { PicError } from '../../ir/errors.js'
import { constantOf, describeNode, graphInputs, type Graph, type Node } from '../../ir/graph.js'
import { powerPoly, secretFormOf, type Prim } from '../../ir/linear.js'
import type { Operand } from '../../ir/op.js'
import { OPS } from '../../ir/ops/index.js'
import { coeffsDegree, type PolyAttrs } from '../../ir/ops/pi.js'
import { broadcastIndex } from '../../ir/ops/util.js'
import { toPowerBasis } from '../../ir/poly.js'
import { sizeOf, type Tensor, type TensorType } from '../../ir/tensor.js'
import {
  bestTransform,
  contiguousLayout,
  identityCols,
  im2colLayout,
  isIdentity,
  layoutOfSpec,
  planTransform,
  primaries,
  scaleRows,
  slotMap,
  SlotOverflowError,
  specName,
  compactionPlan,
  transformCost,
  type CompactionPlan,
  babyOf,
  type Layout,
  type OutSpec,
  type SparseCols,
  type TransformPlan,
} from './layout.js'
import { addSparse, chainTimesCols } from './sparse.js'
import type { ConstVector, InstrOp } from './plan.js'

/** Chebyshev polynomials of at least this degree are evaluated in their own basis. */
export const CHEBYSHEV_FROM = 8

const squarings = (k: number) => (k <= 1 ? 0 : Math.ceil(Math.log2(k)))

/**
 * How the power basis reaches c x^k: x^k from squarings alone (a = 0), or the coefficient rides on
 * x^a and multiplies x^(k-a) when that saves a level; `depth` counts the coefficient's product too.
 */
function powerSplit(k: number): { a: number; depth: number } {
  let best = { a: 0, depth: squarings(k) + 1 }
  for (let a = 1; a < k; a++) {
    const depth = Math.max(squarings(a) + 1, squarings(k - a)) + 1
    if (depth < best.depth) best = { a, depth }
  }
  return best
}

/**
 * Levels a degree-d polynomial with every coefficient nonzero takes here: none for an affine map,
 * one for a square completed (d = 2), ceil(log2 d) + 1 in the Chebyshev recurrence (Chebyshev
 * coefficients from CHEBYSHEV_FROM up), else the deepest power-basis term.
 */
export function polyEvalDepth(d: number, chebyshev: boolean): number {
  if (d <= 1) return 0
  if (d === 2) return 1
  if (chebyshev && d >= CHEBYSHEV_FROM) return squarings(d) + 1
  let depth = 0
  for (let k = 1; k <= d; k++) depth = Math.max(depth, powerSplit(k).depth)
  return depth
}

export class LowerError extends PicError {
  /** True when the graph did not fit the ring's slots, so a larger ring may lower it. */
  constructor(message: string, readonly slotOverflow = false) {
    super(message)
  }
}

/** A ciphertext group: one register per ciphertext, its layout (undefined until an input is placed). */
export interface CtVal {
  regs: number[]
  layout?: Layout
  n: number
  input?: string
  /** The tensor's shape, where known (strided maps read their geometry from it). */
  shape?: readonly number[]
}

interface Term {
  ct: CtVal
  map: SparseCols
}

type Val = { kind: 'const'; t: Tensor } | { kind: 'secret'; type: TensorType; terms: Term[]; bias: Float64Array }

export interface RawInstr {
  op: InstrOp
  dst: number
  args: number[]
  step?: number
  pt?: string
  node?: string
  /**
   * mulPlain whose rescaled result is multiplied by ciphertext `reg` in instruction `mul` (then
   * rescaled): its plaintext scale is chosen so that this product lands exactly on the normal scale.
   */
  pair?: { reg: number; mul: number }
  /** mulPlain whose rescaled result must have exactly the scale of register `matchScaleOf`. */
  matchScaleOf?: number
}

export interface LoweredGraph {
  instrs: RawInstr[]
  registers: number
  inputs: { name: string; shape: number[]; ct: CtVal }[]
  outputs: { name: string; shape: number[]; ct: CtVal }[]
  constants: Record<string, ConstVector>
  notes: string[]
  refreshes: number
  /** Most rescales on any path (levels the chain must hold between refreshes). */
  depth: number
  /** Every point where a step asked for levels, in order: where a refresh may go (backends/ckks/placement.ts). */
  sites: RefreshSite[]
}

/**
 * A point where a step (a transform, a polynomial, a product, a compaction level) needs `levels`
 * levels of ciphertexts `regs`; `pos` is the index of the step's first instruction. Sites are
 * numbered in the order the lowering meets them, which does not depend on the budget or on where
 * refreshes go, so a site of a lowering without refreshes names the same point in every other.
 */
export interface RefreshSite {
  pos: number
  regs: number[]
  levels: number
}

export interface LowerConfig {
  slots: number
  /** Most ciphertexts a client-side input layout may take. */
  maxInputCts: number
  /** Levels available between refreshes (Infinity: leveled, no refresh). */
  budget: number
  /** Transform plans from an earlier lowering of the same graph at the same slot count. */
  cache?: Map<string, unknown>
  /** Tensors larger than the ring span several ciphertexts (else they are a slot overflow: a larger ring may hold them). */
  multiCt?: boolean
  /** Strided maps computed gapped, then compacted (levels for products); default true. */
  compactStrided?: boolean
  /** Images per inference (the graph's batch), interleaved in the slots; default 1. */
  batch?: number
  /**
   * Sites (numbered as in `LoweredGraph.sites`) whose ciphertexts are refreshed even though the
   * budget would still hold them (placement by cost); refreshes forced by the budget stay.
   */
  refreshAt?: ReadonlySet<number>
}

function withData(t: TensorType, data: Float64Array): Tensor {
  return { dtype: t.dtype, shape: [...t.shape], data }
}

/** Transforms with more diagonals than this try the gapped-then-compacted form for strided terms. */
const FACTOR_ABOVE = 1024

type StridedPlans = { gapped: TransformPlan; net: CompactionPlan }[]

class Lowerer {
  instrs: RawInstr[] = []
  nreg = 0
  constants: Record<string, ConstVector> = {}
  nconst = 0
  notes: string[] = []
  vals = new Map<string, Val>()
  inputs: LoweredGraph['inputs'] = []
  depth = new Map<number, number>()
  refreshes = 0
  /** Register -> its refreshed copy: a value used by several consumers past the budget (a residual fork) is refreshed once. */
  refreshed = new Map<number, number>()
  sites: RefreshSite[] = []
  transformsAt = new Map<string, number>()
  readonly S: number
  readonly graphInputs: Set<string>

  constructor(
    readonly g: Graph,
    readonly cfg: LowerConfig,
  ) {
    this.S = cfg.slots
    this.graphInputs = new Set(graphInputs(g).map((n) => n.name))
  }

  reg(): number {
    return this.nreg++
  }

  emit(op: InstrOp, args: number[], extra: Partial<RawInstr> = {}): number {
    const dst = this.reg()
    this.instrs.push({ op, dst, args, ...extra })
    const d = Math.max(0, ...args.map((a) => this.depth.get(a) ?? 0))
    this.depth.set(dst, op === 'refresh' ? 0 : op === 'rescale' ? d + 1 : d)
    return dst
  }

  /**
   * Make sure ciphertext group ct has `levels` levels left before the budget; refresh it if not, or
   * if the placement chose this site. A ciphertext refreshed before is read from its fresh copy.
   */
  ensure(ct: CtVal, levels: number, node: string): CtVal {
    const site = this.sites.length
    this.sites.push({ pos: this.instrs.length, regs: [...ct.regs], levels })
    const regs = ct.regs.map((r) => this.refreshed.get(r) ?? r)
    const d = Math.max(...regs.map((r) => this.depth.get(r) ?? 0))
    const chosen = d > 0 && this.cfg.refreshAt?.has(site) === true
    if (!chosen && d + levels <= this.cfg.budget) return { ...ct, regs }
    if (levels > this.cfg.budget) throw new LowerError(`${node}: needs ${levels} levels in one step, more than the ${this.cfg.budget} available`)
    const fresh = ct.regs.filter((r) => !this.refreshed.has(r)).length
    this.refreshes += fresh
    this.notes.push(
      `${node}: bootstrap (refresh) placed before this step: ${chosen ? `depth ${d} of the chain's ${this.cfg.budget} levels, placed here by cost` : `depth ${d} + ${levels} exceeds the ${this.cfg.budget} levels of the chain`}${fresh < ct.regs.length ? ` (${ct.regs.length - fresh} of ${ct.regs.length} ciphertexts already refreshed for another consumer)` : ''}`,
    )
    return {
      ...ct,
      regs: ct.regs.map((r, k) => {
        if (regs[k] !== r) return regs[k]
        const c = this.emit('refresh', [r], { node })
        this.refreshed.set(r, c)
        return c
      }),
    }
  }

  sparseConst(prefix: string, slots: ArrayLike<number>, values: ArrayLike<number>): string {
    const id = `${prefix}${this.nconst++}`
    this.constants[id] = { kind: 'sparse', length: this.S, slots: Int32Array.from(slots), values: Float64Array.from(values) }
    return id
  }

  indexConst(prefix: string, data: ArrayLike<number>): string {
    const id = `${prefix}${this.nconst++}`
    this.constants[id] = { kind: 'index', length: data.length, data: Int32Array.from(data) }
    return id
  }

  /** Per-slot vector of an element-indexed vector on ciphertext `ct` of a layout (replicas included). */
  slotVector(layout: Layout, v: Float64Array, ct = 0): { slots: number[]; values: number[] } {
    const pairs: [number, number][] = []
    const lo = ct * this.S
    const hi = lo + this.S
    for (let i = 0; i < layout.n; i++) {
      if (v[i] === 0) continue
      for (let p = layout.start[i]; p < layout.start[i + 1]; p++) if (layout.pos[p] >= lo && layout.pos[p] < hi) pairs.push([layout.pos[p] - lo, v[i]])
    }
    pairs.sort((a, b) => a[0] - b[0])
    return { slots: pairs.map((p) => p[0]), values: pairs.map((p) => p[1]) }
  }

  run(): LoweredGraph {
    for (const n of this.g.nodes) {
      try {
        this.node(n)
      } catch (e) {
        if (e instanceof LowerError) throw e
        throw new LowerError(`${describeNode(n)}: ${(e as Error).message}`, e instanceof SlotOverflowError)
      }
    }
    const outputs: LoweredGraph['outputs'] = []
    for (const o of this.g.outputs) {
      const v = this.vals.get(o)!
      if (v.kind === 'const') throw new LowerError(`output '${o}' does not depend on the input`)
      const ct = this.materialize(v, o)
      if (ct.regs.length > 1) throw new LowerError(`output '${o}' of ${ct.n} values is larger than one ciphertext's ${this.S} slots; the runtime decrypts one ciphertext per output`)
      outputs.push({ name: o, shape: [...v.type.shape], ct })
    }
    return { instrs: this.instrs, registers: this.nreg, inputs: this.inputs, outputs, constants: this.constants, notes: this.notes, refreshes: this.refreshes, depth: Math.max(0, ...this.depth.values()), sites: this.sites }
  }

  node(n: Node): void {
    if (this.graphInputs.has(n.name)) {
      const size = sizeOf(n.type.shape)
      const K = this.cfg.batch ?? 1
      if (n.type.shape.length > 0 && n.type.shape[0] !== K) throw new LowerError(`${describeNode(n)}: the CKKS plan packs ${K} image(s) per inference, got shape [${n.type.shape.join(',')}]`)
      const ct: CtVal = { regs: [], n: size, input: n.name, shape: n.type.shape }
      this.inputs.push({ name: n.name, shape: [...n.type.shape], ct })
      this.vals.set(n.name, { kind: 'secret', type: n.type, terms: [{ ct, map: identityCols(size) }], bias: new Float64Array(size) })
      return
    }
    const c = constantOf(n)
    if (c) {
      this.vals.set(n.name, { kind: 'const', t: c })
      return
    }
    const def = OPS[n.op]
    if (!def) throw new LowerError(`${describeNode(n)}: unknown op`)
    const ins = n.inputs.map((x) => (x ? this.vals.get(x) : undefined))
    const operands: Operand[] = ins.map((v) => {
      if (!v) return { dtype: 'float32', shape: [], secret: false }
      if (v.kind === 'const') return { dtype: v.t.dtype, shape: v.t.shape, secret: false, value: v.t }
      return { dtype: v.type.dtype, shape: v.type.shape, secret: true }
    })
    const f = secretFormOf(n, operands)
    const x0 = ins[0] as Val & { kind: 'secret' }
    switch (f.form) {
      case 'public': {
        const t = def.eval(ins.map((v) => (v ? (v as { t: Tensor }).t : (undefined as unknown as Tensor))), n.attrs, n.type)
        this.vals.set(n.name, { kind: 'const', t })
        return
      }
      case 'layout':
      case 'affine':
        this.vals.set(n.name, this.affine(n, ins, f.terms))
        return
      case 'poly':
        if (!x0 || x0.kind !== 'secret') throw new LowerError(`${describeNode(n)}: a polynomial of a constant on the encrypted path`)
        this.vals.set(n.name, f.positions ? this.partialPoly(n, x0, f.poly, f.positions, n.type) : this.poly(n, x0, f.poly, n.type))
        return
      case 'compare':
        if (f.what === 'relu' && f.positions) throw new LowerError(`${describeNode(n)} keeps exact ReLUs; CKKS needs them approximated (compile with --approx)`)
        throw new LowerError(`${describeNode(n)} is not a polynomial; CKKS needs it approximated (compile with --approx)`)
      case 'product': {
        const secret = ins.map((v, i) => (v && v.kind === 'secret' ? i : -1)).filter((i) => i >= 0)
        if (secret.length === 2 && n.inputs.length === 2) {
          const a = ins[0] as Val & { kind: 'secret' }
          const b = ins[1] as Val & { kind: 'secret' }
          if (n.inputs[0] === n.inputs[1]) {
            this.vals.set(n.name, this.poly(n, a, powerPoly(2), n.type))
            return
          }
          if (sizeOf(a.type.shape) !== sizeOf(n.type.shape) || sizeOf(b.type.shape) !== sizeOf(n.type.shape))
            throw new LowerError(`${describeNode(n)}: products of secret tensors need equal shapes`)
          this.vals.set(n.name, this.product(n, a, b))
          return
        }
        throw new LowerError(`${describeNode(n)}: not supported on encrypted values by the CKKS backend`)
      }
      case 'nonpoly':
        if (f.why) throw new LowerError(`${describeNode(n)}: ${f.why}`)
        throw new LowerError(`${describeNode(n)} is not a polynomial; CKKS needs it approximated (compile with --approx)`)
    }
  }

  /**
   * Push the pending affine maps through a layout or affine node by its declared terms: each term
   * (input i, primitives P_1..P_n) turns every map M of input i into P_n ... P_1 M, computed from the
   * primitives' structure; the bias is the op's own reference `eval` at the inputs' biases (exact for
   * an affine op), its only evaluation.
   */
  affine(n: Node, ins: (Val | undefined)[], declared: readonly { input: number; prims: readonly Prim[] }[]): Val {
    const terms: Term[] = []
    for (const d of declared) {
      const v = ins[d.input]
      if (!v || v.kind !== 'secret') throw new LowerError(`${describeNode(n)}: the op declares a term for input ${d.input}, which is not secret`)
      for (const t of v.terms) terms.push({ ct: t.ct, map: chainTimesCols(d.prims, t.map) })
    }
    const args = ins.map((v) => {
      if (!v) return undefined as unknown as Tensor
      if (v.kind === 'const') return v.t
      return withData(v.type, v.bias)
    })
    const bias = Float64Array.from(OPS[n.op].eval(args, n.attrs, n.type).data)
    return { kind: 'secret', type: n.type, terms: mergeTerms(terms), bias }
  }

  /** Bring a pending value into slots: one transform (or nothing when it already is a ciphertext). */
  materialize(v: Val & { kind: 'secret' }, node: string, forced?: OutSpec, clean = false): CtVal {
    const nOut = sizeOf(v.type.shape)
    const K = this.cfg.batch ?? 1
    if (K > 1 && v.type.shape[0] !== K) throw new LowerError(`value '${node}' of shape [${v.type.shape.join(',')}] does not keep the batch of ${K} images as its first axis, so the images cannot be interleaved; compile with --batch 1`)
    const big = [nOut, ...v.terms.map((t) => t.ct.n)].find((k) => k > this.S)
    if (big !== undefined && !this.cfg.multiCt) throw new SlotOverflowError(`tensor of ${big} elements does not fit ${this.S} slots`)
    const zeroBias = v.bias.every((x) => x === 0)
    if (v.terms.length === 1 && zeroBias && isIdentity(v.terms[0].map)) {
      const ct = v.terms[0].ct
      if (!ct.layout) this.placeInput(ct, contiguousLayout(ct.n, this.S, K))
      const isClean = !clean || ct.layout!.spec?.kind !== 'blockRows'
      if (isClean && (!forced || (ct.layout!.spec && JSON.stringify(ct.layout!.spec) === JSON.stringify(forced)))) return ct
    }
    if (v.terms.length === 0) throw new LowerError(`value '${node}' is a constant on the encrypted path`)
    let spec = forced
    for (const t of v.terms) {
      if (t.ct.layout) continue
      const placed = !forced && v.terms.length === 1 ? im2colLayout(t.map, this.S, this.cfg.maxInputCts, K) : undefined
      if (placed) {
        this.placeInput(t.ct, placed.layout)
        spec = placed.spec
        this.notes.push(`input '${t.ct.input}' packed for its first transform: ${placed.layout.cts} ciphertext(s), ${placed.layout.pos.length} slots used (replicated patches)`)
      } else this.placeInput(t.ct, contiguousLayout(t.ct.n, this.S, K))
    }
    const terms = v.terms.map((t) => ({ layout: t.ct.layout!, map: t.map }))
    const seq = this.transformsAt.get(node) ?? 0
    this.transformsAt.set(node, seq + 1)
    // the same transform of another lowering at this ring (another bootstrap budget): refreshes change registers, not layouts or maps
    const key = `${node}#${seq}|${spec ? JSON.stringify(spec) : ''}|${clean}|${nOut}|${terms.map((t) => `${t.layout.cts}:${t.layout.pos.length}:${t.map.cols}:${t.map.idx.length}`).join(',')}`
    let plan = this.cfg.cache?.get(key) as TransformPlan | undefined
    if (!plan) {
      // the direct transform's layout and cost first (diagonals without values); built in full only if used
      const forcedPlan = spec ? planTransform(terms, spec, nOut) : undefined
      const probe = forcedPlan ?? (this.cfg.cache?.get(`${key}|probe`) as TransformPlan | undefined) ?? bestTransform(terms, nOut, undefined, clean, K, true)
      const f = !forced && probe.diagonals.length > FACTOR_ABOVE && this.cfg.compactStrided !== false && K === 1 ? this.stridedTerms(v, node, key, transformCost(probe)) : undefined
      if (f) {
        this.cfg.cache?.set(`${key}|probe`, probe)
        return this.finishStrided(v, f, node, clean)
      }
      plan = forcedPlan ?? planTransform(terms, probe.spec, nOut)!
      this.cfg.cache?.set(key, plan)
    }
    return this.emitTransform(v, plan, node)
  }

  /** The value from its strided terms' compacted ciphertexts and its other terms (one more transform when there are any). */
  finishStrided(v: Val & { kind: 'secret' }, f: { rest: Term[]; compacted: CtVal[] }, node: string, clean: boolean): CtVal {
    const nOut = sizeOf(v.type.shape)
    if (f.rest.length > 0 || f.compacted.length > 1) return this.materialize({ ...v, terms: [...f.rest, ...f.compacted.map((ct) => ({ ct, map: identityCols(nOut) }))] }, node, undefined, clean)
    // the bias goes straight onto the compacted ciphertexts
    const ct = f.compacted[0]
    if (v.bias.every((x) => x === 0)) return ct
    const regs = ct.regs.map((r, c) => {
      const sv = this.slotVector(ct.layout!, v.bias, c)
      return sv.slots.length === 0 ? r : this.emit('addPlain', [r], { pt: this.sparseConst('b', sv.slots, sv.values), node })
    })
    return { ...ct, regs }
  }

  /**
   * A strided map (stride-2 convolution, pooling then convolution, strided 1x1 shortcut) on a
   * channel-major tensor, whose compact output would need a diagonal per output row: computed
   * instead into a gapped layout, output channel c at input channel block c mod (S / HW) of
   * ciphertext floor(c / (S / HW)), position (s y, s x), where every output reads its inputs at
   * the same offsets (one diagonal per channel offset and tap), then moved into place by a
   * compaction network (`compactionPlan`): per digit of the displacement, one masked rotation per
   * digit value, one level per digit. Undefined when no term is strided or it would not be cheaper.
   */
  stridedTerms(v: Val & { kind: 'secret' }, node: string, key: string, directCost: number): { rest: Term[]; compacted: CtVal[] } | undefined {
    const S = this.S
    const out = v.type.shape
    if (out.length !== 4 || out[0] !== 1) return undefined
    const [, Cout, h, w] = out
    const nOut = Cout * h * w
    const rest: Term[] = []
    // per strided term, candidate gapped layouts: one output channel per input channel block, or
    // s^2 channels a block at the s x s sub-positions (Lee et al.'s multiplexing: denser, fewer ciphertexts)
    const jobs: { term: Term; options: { slots: Int32Array; sub?: Int32Array }[] }[] = []
    for (const t of v.terms) {
      const sh = t.ct.shape
      const lay = t.ct.layout
      // element e at slot e (replicas, if any, every B slots)
      const contiguous = lay && lay.spec?.kind === 'replicated'
      if (!sh || sh.length !== 4 || !contiguous || sh[2] % h !== 0 || sh[3] % w !== 0 || sh[2] / h !== sh[3] / w || sh[2] / h < 2 || sh[2] * sh[3] > S) {
        rest.push(t)
        continue
      }
      const s = sh[2] / h
      const HW = sh[2] * sh[3]
      const Cb = Math.floor(S / HW)
      const plain = new Int32Array(nOut)
      const multiplexed = new Int32Array(nOut)
      const sub = new Int32Array(nOut)
      for (let c = 0; c < Cout; c++) {
        const q = Math.floor(c / Cb) % (s * s)
        for (let y = 0; y < h; y++)
          for (let x = 0; x < w; x++) {
            const o = (c * h + y) * w + x
            plain[o] = Math.floor(c / Cb) * S + (c % Cb) * HW + s * y * sh[3] + s * x
            multiplexed[o] = Math.floor(c / (Cb * s * s)) * S + (c % Cb) * HW + (s * y + Math.floor(q / s)) * sh[3] + s * x + (q % s)
            sub[o] = q
          }
      }
      jobs.push({ term: t, options: s * s <= 64 && Cout > Cb ? [{ slots: plain }, { slots: multiplexed, sub }] : [{ slots: plain }] })
    }
    if (jobs.length === 0) return undefined
    const fkey = `${key}|strided`
    let cached = this.cfg.cache?.get(fkey) as StridedPlans | undefined
    if (!cached) {
      const plans: StridedPlans = []
      let cost = 0
      const target = Int32Array.from({ length: nOut }, (_, o) => o)
      for (const j of jobs) {
        const terms = [{ layout: j.term.ct.layout!, map: j.term.map }]
        let best: { gapped: TransformPlan; net: CompactionPlan; cost: number } | undefined
        for (const opt of j.options) {
          // a sub-position's elements keep their order, so each sub-position is compacted on its own
          const net = compactionPlan(opt.slots, target, S, undefined, opt.sub)
          if (!net) continue
          const gapped = planTransform(terms, { kind: 'slots', slots: opt.slots }, nOut)!
          const c = transformCost(gapped) + net.cost
          if (!best || c < best.cost) best = { gapped, net, cost: c }
        }
        if (!best) return undefined
        cost += best.cost
        plans.push({ gapped: best.gapped, net: best.net })
      }
      // the direct transforms of the other terms are paid either way
      if (cost >= directCost) return undefined
      cached = plans
      this.cfg.cache?.set(fkey, cached)
    }
    const compacted = jobs.map((j, k) => {
      // the plans were made for these terms (same node, layouts and maps: the cache key)
      const { gapped, net } = cached![k]
      const g = this.emitTransform({ kind: 'secret', type: v.type, terms: [j.term], bias: new Float64Array(nOut) }, gapped, node)
      return this.emitCompaction(g, net, nOut, v.type.shape, node)
    })
    return { rest, compacted }
  }

  /** Run a compaction network on the ciphertexts of a gapped layout: one masked rotation per digit value, one level per digit, per (source, target) ciphertext pair. */
  emitCompaction(g: CtVal, net: CompactionPlan, nOut: number, shape: readonly number[], node: string): CtVal {
    const S = this.S
    const byTarget = new Map<number, number[]>()
    for (const grp of net.groups) {
      let ct: CtVal = { regs: [g.regs[grp.source]], layout: g.layout, n: g.n }
      for (const level of grp.levels) {
        ct = this.ensure(ct, 1, node)
        const r = this.emitProducts({ kind: 'secret', type: { dtype: 'float32', shape: [g.n] }, terms: [{ ct, map: identityCols(g.n) }], bias: new Float64Array(g.n) }, level, node, new Map())
        ct = { regs: [r], layout: g.layout, n: g.n }
      }
      const list = byTarget.get(grp.target) ?? []
      list.push(ct.regs[0])
      byTarget.set(grp.target, list)
    }
    const layout = layoutOfSpec({ kind: 'replicated', B: S }, nOut, S)
    const regs: number[] = []
    for (let c = 0; c < layout.cts; c++) {
      const list = byTarget.get(c)!
      let r = list[0]
      for (const x of list.slice(1)) r = this.emit('add', [r, x], { node })
      regs.push(r)
    }
    this.notes.push(`${node}: strided map computed gapped, then compacted: ${net.groups.length} group(s), ${net.groups.map((grp) => `${grp.levels.length} levels of ${grp.levels.map((l) => l.diagonals.length).join('/')} diagonals`).join('; ')}`)
    return { regs, layout, n: nOut, shape }
  }

  placeInput(ct: CtVal, layout: Layout): void {
    ct.layout = layout
    ct.regs = Array.from({ length: layout.cts }, () => this.reg())
  }

  emitTransform(v0: Val & { kind: 'secret' }, plan: TransformPlan, node: string): CtVal {
    const S = this.S
    const v = { ...v0, terms: v0.terms.map((t) => ({ ...t, ct: this.ensure(t.ct, 1, node) })) }
    const nOut = sizeOf(v.type.shape)
    const layout = layoutOfSpec(plan.spec, nOut, S)
    const babyRegs = new Map<string, number>()
    const regs = (plan.chunks ?? [plan]).map((part, c) => {
      let r = this.emitProducts(v, part, node, babyRegs)
      if (v.bias.some((x) => x !== 0)) {
        const sv = this.slotVector(layout, v.bias, c)
        if (sv.slots.length > 0) r = this.emit('addPlain', [r], { pt: this.sparseConst('b', sv.slots, sv.values), node })
      }
      return r
    })
    const spec = specName(plan.spec)
    this.notes.push(
      `${node}: transform of ${v.terms.length} term(s) -> ${nOut} values${layout.cts > 1 ? ` in ${layout.cts} ciphertexts` : ''}, layout ${spec}: ${plan.diagonals.length} diagonals, baby step ${plan.babyStep}, ${plan.babyRotations}+${plan.giantRotations} rotations, reduction ${plan.reduction.count}`,
    )
    return { regs, layout, n: nOut, shape: v.type.shape }
  }

  /** The products, rotations and reduction of one output ciphertext; baby-step rotations shared through `babyRegs`. */
  emitProducts(v: Val & { kind: 'secret' }, plan: TransformPlan, node: string, babyRegs: Map<string, number>): number {
    const S = this.S
    const g = plan.babyStep
    const baby = (term: number, ct: number, b: number): number => {
      const x = v.terms[term].ct.regs[ct]
      if (b === 0) return x
      const key = `${term}:${ct}:${b}`
      let r = babyRegs.get(key)
      if (r === undefined) babyRegs.set(key, (r = this.emit('rotate', [x], { step: b, node })))
      return r
    }
    const giants = new Map<number, typeof plan.diagonals>()
    for (const d of plan.diagonals) {
      const G = (d.k - babyOf(d.k, g, S) + S) % S
      let l = giants.get(G)
      if (!l) giants.set(G, (l = []))
      l.push(d)
    }
    let total: number | undefined
    for (const G of [...giants.keys()].sort((a, b) => a - b)) {
      let acc: number | undefined
      for (const d of giants.get(G)!) {
        const x = baby(d.term, d.ct, babyOf(d.k, g, S))
        // the slots rotated by G, still ascending: the ones that wrap around come first
        const n = d.slots.length
        let wrap = 0
        while (wrap < n && d.slots[wrap] + G < S) wrap++
        const slots = new Int32Array(n)
        const values = new Float64Array(n)
        for (let i = wrap; i < n; i++) {
          slots[i - wrap] = d.slots[i] + G - S
          values[i - wrap] = d.values[i]
        }
        for (let i = 0; i < wrap; i++) {
          slots[n - wrap + i] = d.slots[i] + G
          values[n - wrap + i] = d.values[i]
        }
        const pt = this.sparseConst('w', slots, values)
        const m = this.emit('mulPlain', [x], { pt, node })
        acc = acc === undefined ? m : this.emit('add', [acc, m], { node })
      }
      if (G !== 0) acc = this.emit('rotate', [acc!], { step: G, node })
      total = total === undefined ? acc : this.emit('add', [total, acc!], { node })
    }
    let r = this.emit('rescale', [total!], { node })
    for (let t = 0; t < plan.reduction.count; t++) {
      const rot = this.emit('rotate', [r], { step: (plan.reduction.step * 2 ** t) % S, node })
      r = this.emit('add', [r, rot], { node })
    }
    return r
  }

  /** Per-element channel index of a tensor for a per-channel attribute along `axis`. */
  channelOf(type: TensorType, axis: number, C: number): Int32Array {
    const n = sizeOf(type.shape)
    const ch = new Int32Array(n)
    if (C === 1) return ch
    const ax = axis < 0 ? axis + type.shape.length : axis
    const inner = sizeOf(type.shape.slice(ax + 1))
    for (let i = 0; i < n; i++) ch[i] = Math.floor(i / inner) % C
    return ch
  }

  elementwiseAffine(v: Val & { kind: 'secret' }, alpha: Float64Array, beta: Float64Array, type: TensorType): Val & { kind: 'secret' } {
    const terms = v.terms.map((t) => ({ ct: t.ct, map: scaleRows(t.map, alpha) }))
    const bias = v.bias.map((b, i) => alpha[i] * b + beta[i])
    return { kind: 'secret', type, terms, bias }
  }

  /** Per-element normalization and power-basis rows of a Poly (per-channel coefficients expanded). */
  polyRows(a: PolyAttrs, type: TensorType): { alpha: Float64Array; beta: Float64Array; rows: number[][]; basis: 'power' | 'chebyshev' } {
    const N = sizeOf(type.shape)
    const C = a.coeffs.length
    const ch = this.channelOf(type, a.axis, C)
    const deg = Math.max(...a.coeffs.map((r) => r.length - 1))
    const keepCheb = a.basis === 'chebyshev' && deg >= CHEBYSHEV_FROM
    const power = a.coeffs.map((row) => {
      const p = keepCheb ? [...row] : toPowerBasis(a.basis, row)
      return [...p, ...new Array<number>(deg + 1 - p.length).fill(0)]
    })
    const alpha = new Float64Array(N)
    const beta = new Float64Array(N)
    const rows: number[][] = []
    for (let i = 0; i < N; i++) {
      alpha[i] = 1 / a.scale[ch[i]]
      beta[i] = -a.shift[ch[i]] / a.scale[ch[i]]
      rows.push(power[ch[i]])
    }
    return { alpha, beta, rows, basis: keepCheb ? 'chebyshev' : 'power' }
  }

  poly(n: Node, x: Val & { kind: 'secret' }, a: PolyAttrs, type: TensorType): Val {
    const { alpha, beta, rows, basis } = this.polyRows(a, type)
    const t = this.elementwiseAffine(x, alpha, beta, type)
    return basis === 'chebyshev' ? this.chebyshevEval(n, t, rows, type) : this.polyEval(n, t, rows, type)
  }

  /**
   * y_i = sum_k rows[i][k] T_k(t_i) evaluated in the Chebyshev basis (high degrees, where the power
   * basis cancels catastrophically): T_2n = 2 T_n^2 - 1, T_2n+1 = 2 T_n+1 T_n - t, with t brought to
   * the product's exact scale by its own plaintext product; depth ceil(log2 d) + 1.
   */
  chebyshevEval(n: Node, t: Val & { kind: 'secret' }, rows: number[][], type: TensorType): Val {
    const N = sizeOf(type.shape)
    const node = n.name
    const d = coeffsDegree(rows)
    const coef = (k: number) => Float64Array.from(rows, (r) => r[k] ?? 0)
    const tc = this.ensure(this.materialize(t, node, undefined, true), polyEvalDepth(d, true), node)
    const lay = tc.layout!
    const regs = tc.regs.map((x, c) => {
      let minusOneId: ReturnType<typeof this.sparseConst> | undefined
      const minusOne = () => {
        if (minusOneId === undefined) {
          const sv = this.slotVector(lay, new Float64Array(N).fill(-1), c)
          minusOneId = this.sparseConst('c', sv.slots, sv.values)
        }
        return minusOneId
      }
      const T: number[] = [NaN, x]
      const cheb = (k: number): number => {
        if (T[k] !== undefined) return T[k]
        const m = Math.ceil(k / 2)
        const l = Math.floor(k / 2)
        const prod = m === l ? this.emit('square', [cheb(m)], { node }) : this.emit('mul', [cheb(m), cheb(l)], { node })
        const p = this.emit('rescale', [this.emit('relin', [prod], { node })], { node })
        const two = this.emit('add', [p, p], { node })
        if (m === l) return (T[k] = this.emit('addPlain', [two], { pt: minusOne(), node }))
        const mt = this.emit('mulPlain', [T[1]], { pt: minusOne(), node, matchScaleOf: two })
        return (T[k] = this.emit('add', [two, this.emit('rescale', [mt], { node })], { node }))
      }
      let acc: number | undefined
      for (let k = 1; k <= d; k++) {
        const ck = coef(k)
        if (ck.every((v) => v === 0)) continue
        const sv = this.slotVector(lay, ck, c)
        const m = this.emit('mulPlain', [cheb(k)], { pt: this.sparseConst('c', sv.slots, sv.values), node })
        acc = acc === undefined ? m : this.emit('add', [acc, m], { node })
      }
      let r = this.emit('rescale', [acc!], { node })
      const c0 = coef(0)
      if (c0.some((v) => v !== 0)) {
        const sv = this.slotVector(lay, c0, c)
        r = this.emit('addPlain', [r], { pt: this.sparseConst('c', sv.slots, sv.values), node })
      }
      return r
    })
    return { kind: 'secret', type, terms: [{ ct: { regs, layout: lay, n: N, shape: type.shape }, map: identityCols(N) }], bias: new Float64Array(N) }
  }

  /**
   * A polynomial on the positions a mask selects (SENet's partial ReLU with its polynomial): the
   * polynomial where the mask is nonzero, the identity elsewhere.
   */
  partialPoly(n: Node, x: Val & { kind: 'secret' }, poly: PolyAttrs, positions: Tensor, type: TensorType): Val {
    const N = sizeOf(type.shape)
    const idx = broadcastIndex(positions.shape, type.shape)
    const { alpha, beta, rows, basis } = this.polyRows(poly, type)
    for (let i = 0; i < N; i++)
      if (positions.data[idx ? idx[i] : i] === 0) {
        alpha[i] = 1
        beta[i] = 0
        rows[i] = [0, 1]
      }
    const t = this.elementwiseAffine(x, alpha, beta, type)
    return basis === 'chebyshev' ? this.chebyshevEval(n, t, rows, type) : this.polyEval(n, t, rows, type)
  }

  /**
   * y_i = sum_k rows[i][k] t_i^k. Degree <= 1 stays affine (pending); degree 2 completes the square
   * (z = sqrt|a| (t + b / 2a), y = sign(a) z^2 + c - b^2 / 4a, both affine parts folded into the
   * transforms around it; elements with a = 0 keep their linear part as a second term): one level.
   * Higher degrees: powers by squaring and one coefficient product per power, polyEvalDepth(d) levels.
   */
  polyEval(n: Node, t: Val & { kind: 'secret' }, rows: number[][], type: TensorType): Val {
    const N = sizeOf(type.shape)
    let d = 0
    let maxAbs = 0
    for (const p of rows)
      for (let k = 0; k < p.length; k++) {
        if (p[k] !== 0 && k > d) d = k
        maxAbs = Math.max(maxAbs, Math.abs(p[k]))
      }
    const coef = (k: number) => Float64Array.from(rows, (r) => r[k] ?? 0)
    if (d <= 1) return this.elementwiseAffine(t, coef(1), coef(0), type)
    if (d === 2) {
      const c2 = coef(2)
      const c1 = coef(1)
      const c0 = coef(0)
      const quad = c2.map((v) => (Math.abs(v) > 1e-12 * maxAbs ? 1 : 0))
      const za = c2.map((v, i) => (quad[i] ? Math.sqrt(Math.abs(v)) : 1))
      const zb = c2.map((v, i) => (quad[i] ? (za[i] * c1[i]) / (2 * v) : 0))
      const z = this.elementwiseAffine(t, za, zb, type)
      const zc = this.ensure(this.materialize(z, n.name), 1, n.name)
      const sq = zc.regs.map((x) => this.emit('rescale', [this.emit('relin', [this.emit('square', [x], { node: n.name })], { node: n.name })], { node: n.name }))
      const ct: CtVal = { regs: sq, layout: zc.layout, n: N, shape: type.shape }
      const sgn = c2.map((v, i) => (quad[i] ? Math.sign(v) : 0))
      const off = c0.map((v, i) => (quad[i] ? v - (c1[i] * c1[i]) / (4 * c2[i]) : v))
      const terms: Term[] = [{ ct, map: scaleRows(identityCols(N), sgn) }]
      if (quad.some((q) => q === 0)) terms.push({ ct: zc, map: scaleRows(identityCols(N), c1.map((v, i) => (quad[i] ? 0 : v))) })
      return { kind: 'secret', type, terms, bias: off }
    }
    const ks: number[] = []
    for (let k = 1; k <= d; k++) if (coef(k).some((v) => v !== 0)) ks.push(k)
    const levels = Math.max(...ks.map((k) => powerSplit(k).depth))
    const tc = this.ensure(this.materialize(t, n.name, undefined, true), levels, n.name)
    const regs = tc.regs.map((x, c) => {
      const pw: number[] = [NaN, x]
      const power = (k: number): number => {
        if (pw[k] !== undefined) return pw[k]
        const lo = Math.floor(k / 2)
        const hi = k - lo
        const m = lo === hi ? this.emit('square', [power(lo)], { node: n.name }) : this.emit('mul', [power(lo), power(hi)], { node: n.name })
        return (pw[k] = this.emit('rescale', [this.emit('relin', [m], { node: n.name })], { node: n.name }))
      }
      let acc: number | undefined
      const direct: number[] = []
      for (const k of ks) {
        const sv = this.slotVector(tc.layout!, coef(k), c)
        const pt = this.sparseConst('c', sv.slots, sv.values)
        if (squarings(k) + 1 <= levels) {
          const m = this.emit('mulPlain', [power(k)], { pt, node: n.name })
          acc = acc === undefined ? m : this.emit('add', [acc, m], { node: n.name })
          continue
        }
        const { a } = powerSplit(k)
        const other = power(k - a)
        const mp = this.emit('mulPlain', [power(a)], { pt, node: n.name })
        const raw = this.instrs[this.instrs.length - 1]
        const cm = this.emit('rescale', [mp], { node: n.name })
        const prod = this.emit('mul', [cm, other], { node: n.name })
        raw.pair = { reg: other, mul: prod }
        direct.push(this.emit('rescale', [this.emit('relin', [prod], { node: n.name })], { node: n.name }))
      }
      let r = acc === undefined ? direct.shift()! : this.emit('rescale', [acc], { node: n.name })
      for (const y of direct) r = this.emit('add', [r, y], { node: n.name })
      const c0 = coef(0)
      if (c0.some((v) => v !== 0)) {
        const sv = this.slotVector(tc.layout!, c0, c)
        r = this.emit('addPlain', [r], { pt: this.sparseConst('c', sv.slots, sv.values), node: n.name })
      }
      return r
    })
    const ct: CtVal = { regs, layout: tc.layout, n: N, shape: type.shape }
    return { kind: 'secret', type, terms: [{ ct, map: identityCols(N) }], bias: new Float64Array(N) }
  }

  product(n: Node, a: Val & { kind: 'secret' }, b: Val & { kind: 'secret' }): Val {
    const N = sizeOf(n.type.shape)
    let ca = this.materialize(a, n.name)
    if (!ca.layout!.spec) ca = this.materialize({ ...a, terms: [{ ct: ca, map: identityCols(N) }], bias: new Float64Array(N) }, n.name, contiguousLayout(N, this.S, this.cfg.batch ?? 1).spec)
    ca = this.ensure(ca, 1, n.name)
    const cb = this.ensure(this.materialize(b, n.name, ca.layout!.spec), 1, n.name)
    const regs = ca.regs.map((x, c) => this.emit('rescale', [this.emit('relin', [this.emit('mul', [x, cb.regs[c]], { node: n.name })], { node: n.name })], { node: n.name }))
    return { kind: 'secret', type: n.type, terms: [{ ct: { regs, layout: ca.layout, n: N, shape: n.type.shape }, map: identityCols(N) }], bias: new Float64Array(N) }
  }
}

function mergeTerms(terms: Term[]): Term[] {
  const out: Term[] = []
  for (const t of terms) {
    const same = out.find((o) => o.ct === t.ct)
    if (same) same.map = addSparse(same.map, t.map)
    else out.push({ ...t })
  }
  return out
}

/** Lower a graph (batch 1) to raw instructions for a slot count. */
export function lowerGraph(g: Graph, cfg: LowerConfig): LoweredGraph {
  return new Lowerer(g, cfg).run()
}

export function outputSlots(ct: CtVal): Int32Array {
  return primaries(ct.layout!)
}

export function inputSlotMap(ct: CtVal): Int32Array {
  return slotMap(ct.layout!)
}
